// Blocking work for a request, run in the nginx thread pool named by
// certgate_thread_pool, with the request resumed on the event loop.
//
//     ngx_certgate_post_task(r, [job]() { job->result = slow(); },
//                            [job](ngx_http_request_t *r) { return send(r, job->result); });
//
// `work` runs in a pool thread and may touch only what it captured (never
// r, a pool or a log); an exception it throws is caught and handed to
// `finish` as a message. `finish` runs on the event loop and returns what
// ngx_http_finalize_request() gets. The caller returns NGX_DONE.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "nginx/ngx_certgate.hpp"

class ngx_certgate_task_t {
  public:
    using work_t = std::function<void()>;
    using finish_t = std::function<ngx_int_t(ngx_http_request_t *r, const std::string *error)>;

    // Tasks created and not yet destroyed in this process (for the health
    // page of test builds, which shows that nothing is leaked).
    static std::atomic<long> alive;

    ngx_certgate_task_t(work_t work, finish_t finish);
    ~ngx_certgate_task_t();
    ngx_certgate_task_t(const ngx_certgate_task_t &) = delete;
    ngx_certgate_task_t &operator=(const ngx_certgate_task_t &) = delete;

    // `crypto`: the pool is certgate_crypto_thread_pool, apart from the I/O
    // one; its threads run at the crypto priority (below the I/O threads').
    ngx_int_t post(ngx_http_request_t *r, ngx_thread_pool_t *pool, bool crypto = false);
    // Work of the worker itself (the revocation feed, the mail sweep): no
    // request; `finish` gets r == nullptr and its return value is ignored.
    // `periodic`: a timer's steady work (the feed, the sweep), which does not
    // count as a burst for the memory trim after one.
    ngx_int_t post_background(ngx_thread_pool_t *pool, ngx_log_t *log, bool crypto = false,
                              bool periodic = false);
    // The task that returns freed memory after a burst (its completion does
    // not count as a burst's).
    void set_trim() noexcept { trim_ = true; }

  private:
    static void run_in_thread(void *data, ngx_log_t *log) noexcept;
    static void completed(ngx_event_t *ev) noexcept;
    static void request_gone(void *data) noexcept;

    ngx_thread_task_t task_;                 // nginx's node; task_.ctx points back here
    ngx_http_request_t *request_ = nullptr;  // nullptr once the request is gone
    ngx_pool_cleanup_t *cleanup_ = nullptr;
    work_t work_;
    finish_t finish_;
    std::string error_;
    bool failed_ = false;
    bool background_ = false;
    bool crypto_ = false;
    bool trim_ = false;
    bool periodic_ = false;
    ngx_thread_pool_t *pool_ = nullptr;
};

// Worker exit: waits (at most 2 s) until the pool threads that ran our tasks
// have finished exiting, so exit() does not tear OpenSSL down under them.
void ngx_certgate_wait_for_pool_threads(ngx_log_t *log) noexcept;

// What a timer of ours has as ev->data: nginx's debug logging reads every
// timer's ev->data as a connection (ngx_event_ident), so it must be one; the
// timer's owner is found from the event itself (the event is its first member).
ngx_connection_t *ngx_certgate_timer_ident() noexcept;
// Takes the timer out of the tree when the pool goes: the old cycle of a
// reload in single-process mode is freed while the process lives on.
ngx_int_t ngx_certgate_timer_cleanup(ngx_pool_t *pool, ngx_event_t *timer) noexcept;

// Posts work for the worker itself; false when the pool refused it.
// `crypto`: the pool is the crypto one (its threads at the crypto priority).
// `periodic`: a timer's steady work (see post_background).
bool ngx_certgate_post_background(ngx_thread_pool_t *pool, ngx_log_t *log,
                                  ngx_certgate_task_t::work_t work,
                                  ngx_certgate_task_t::finish_t finish, bool crypto = false,
                                  bool periodic = false) noexcept;

// Which pool a request's task goes to: `crypto` for seconds of CPU (argon2,
// key generation, signing; certgate_crypto_thread_pool), `io` for the rest.
enum class ngx_certgate_task_kind { io, crypto };

// Posts work for r; returns NGX_DONE (the request waits) or an HTTP error.
ngx_int_t ngx_certgate_post_task(ngx_http_request_t *r, ngx_certgate_task_t::work_t work,
                                 ngx_certgate_task_t::finish_t finish,
                                 ngx_certgate_task_kind kind = ngx_certgate_task_kind::io) noexcept;
