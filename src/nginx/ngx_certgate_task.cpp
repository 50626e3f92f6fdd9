// The thread-task lifecycle.
//
// The task object is allocated with new, outside the request pool, because
// the request may end before the thread does. While it runs the request is
// held twice: r->main->count keeps the request (and its pool) alive and
// r->main->blocked makes nginx wait for us instead of finalizing it. A
// cleanup on the request pool is a second line: should the pool go anyway,
// the task forgets the request and the completion handler only frees.

#include "nginx/ngx_certgate_task.hpp"

#include <malloc.h>
#include <openssl/crypto.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "nginx/ngx_certgate_metrics.hpp"

std::atomic<long> ngx_certgate_task_t::alive{0};

// Pool threads that have run a task of ours and not yet finished exiting.
//
// nginx ends a worker's pool threads by a task that lets the worker go on
// and then calls pthread_exit(): the worker may reach exit(), and with it
// OPENSSL_cleanup(), while a pool thread still runs its thread_local
// destructors (an HMAC context, a store, a memcached client) and OpenSSL's
// own thread cleanup. That race freed OpenSSL state twice (seen once under
// AddressSanitizer). So each pool thread holds this guard, made before any
// other thread_local of ours and so destroyed after them: it ends the
// thread's use of OpenSSL itself and then counts the thread out, and the
// module's exit_process waits for the count to reach zero.
static std::atomic<long> ngx_certgate_pool_threads{0};

namespace {
struct PoolThreadGuard {
    PoolThreadGuard() { ngx_certgate_pool_threads.fetch_add(1); }
    ~PoolThreadGuard() {
        OPENSSL_thread_stop();
        ngx_certgate_pool_threads.fetch_sub(1);
    }
};
}  // namespace

// Pool threads yield to the event loop: key generation on every core must
// not starve the requests that need microseconds. The I/O threads run 10
// nice levels below the worker (worker_priority), as all did before the
// crypto pool; the crypto threads lower still, SCHED_BATCH 19 levels below
// (at most nice 19), which never preempts the event loop on a wake-up:
// docs/performance.md has the figures behind the choice.
static void ngx_certgate_thread_priority(bool crypto) noexcept {
    auto tid = static_cast<pid_t>(syscall(SYS_gettid));
    errno = 0;
    int worker_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));  // inherited
    if (errno != 0) worker_nice = 0;
    int offset = 10;
    int policy = SCHED_OTHER;
    if (crypto) {
        offset = 19;
        policy = SCHED_BATCH;
#if (CERTGATE_TEST_HOOKS)
        // Test builds only: `make bench` compares the choices (part c).
        if (const char *v = getenv("CERTGATE_TEST_CRYPTO_SCHED")) {
            std::string choice = v;
            if (choice == "idle") {
                policy = SCHED_IDLE;
            } else if (choice.rfind("batch", 0) == 0 || choice.rfind("nice", 0) == 0) {
                policy = choice[0] == 'b' ? SCHED_BATCH : SCHED_OTHER;
                offset = atoi(choice.c_str() + (choice[0] == 'b' ? 5 : 4));
            }
        }
#endif
    }
    struct sched_param param {};
    sched_setscheduler(tid, policy, &param);
    setpriority(PRIO_PROCESS, static_cast<id_t>(tid), std::min(19, worker_nice + offset));
}

void ngx_certgate_wait_for_pool_threads(ngx_log_t *log) noexcept {
    // nginx has asked every pool thread to exit (ngx_thread_pool's
    // exit_process runs before a dynamic module's); give them a moment.
    for (int i = 0; i < 2000 && ngx_certgate_pool_threads.load() > 0; ++i) ngx_msleep(1);
    long left = ngx_certgate_pool_threads.load();
    if (left > 0) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "certgate: %l thread pool threads still exiting after 2 s", left);
    }
}

ngx_connection_t *ngx_certgate_timer_ident() noexcept {
    // As nginx's own ngx_cleaner_event does (ngx_cycle.c): no socket.
    static ngx_connection_t none = [] {
        ngx_connection_t c{};
        c.fd = (ngx_socket_t)-1;
        return c;
    }();
    return &none;
}

static void ngx_certgate_timer_gone(void *data) noexcept {
    auto *timer = static_cast<ngx_event_t *>(data);
    if (timer->timer_set) ngx_del_timer(timer);
}

ngx_int_t ngx_certgate_timer_cleanup(ngx_pool_t *pool, ngx_event_t *timer) noexcept {
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == nullptr) return NGX_ERROR;
    cln->handler = ngx_certgate_timer_gone;
    cln->data = timer;
    return NGX_OK;
}

// A graceful shutdown (nginx -s quit, a reload) waits only for timers that
// are not cancelable: while requests wait on tasks, this one keeps the
// worker alive, so no connection is left open when it exits.
static ngx_event_t ngx_certgate_task_guard;
static ngx_uint_t ngx_certgate_request_tasks;

static void ngx_certgate_guard_tick(ngx_event_t *ev) noexcept {
    if (ngx_certgate_request_tasks > 0) ngx_add_timer(ev, 100);
}

static void ngx_certgate_guard_arm() {
    if (ngx_certgate_task_guard.timer_set) return;
    ngx_certgate_task_guard.handler = ngx_certgate_guard_tick;
    ngx_certgate_task_guard.data = ngx_certgate_timer_ident();
    ngx_certgate_task_guard.log = ngx_cycle->log;
    ngx_add_timer(&ngx_certgate_task_guard, 100);
}

// Freed memory back to the system after a burst (issue 18). Each pool
// thread allocates from its own malloc arena; a burst of logins, issuances
// or store work leaves the pages it freed there, resident, up to each
// arena's high-water mark, and which thread took how much of the burst
// decides how far each arena's mark moves: part d of `make bench` saw a
// worker's RSS grow by +0.2 to +1.3 MiB over a run that ended where it
// started. One second after the last of our tasks has finished, with none
// queued or running, one pool thread calls malloc_trim(0), which gives back
// the whole free pages of every arena (the main one too) and keeps what is
// in use. The event loop takes nothing: the trim runs in a pool thread; it
// holds each arena's lock in turn for the time it walks its free lists
// (microseconds for arenas this size). Once per burst, never while idle.
//
// Always in the I/O pool: the crypto threads run at SCHED_BATCH, nice 19,
// and a thread that holds the main arena's lock must not be one the
// scheduler keeps waiting while the event loop wants to allocate.
static ngx_event_t ngx_certgate_trim_timer;
static ngx_cycle_t *ngx_certgate_trim_cycle;       // whose pool removes the timer
static ngx_thread_pool_t *ngx_certgate_trim_pool;  // the I/O pool of the last I/O task
static ngx_uint_t ngx_certgate_tasks_outstanding;  // posted, not completed
static bool ngx_certgate_trim_due;                 // a burst's task completed since the last trim

// The cycle whose pool holds the timer goes (a reload in single-process
// mode): no timer, no pool of that cycle kept.
static void ngx_certgate_trim_gone(void *) noexcept {
    if (ngx_certgate_trim_timer.timer_set) ngx_del_timer(&ngx_certgate_trim_timer);
    ngx_certgate_trim_pool = nullptr;
    ngx_certgate_trim_due = false;
    ngx_certgate_trim_cycle = nullptr;
}

static void ngx_certgate_trim_run(ngx_event_t *ev) noexcept {
    if (ngx_certgate_tasks_outstanding > 0 || !ngx_certgate_trim_due ||
        ngx_certgate_trim_pool == nullptr || ngx_exiting || ngx_terminate || ngx_quit)
        return;  // a completion arms it again
    ngx_certgate_trim_due = false;
    ngx_log_t *log = ev->log;
    try {
        auto released = std::make_shared<int>(0);
        auto *task = new ngx_certgate_task_t(
            [released]() {
#ifdef __GLIBC__
                *released = malloc_trim(0);
#endif
            },
            [released, log](ngx_http_request_t *, const std::string *) {
                ngx_log_debug1(NGX_LOG_DEBUG_CORE, log, 0,
                               "certgate: malloc_trim after a burst of tasks: %s",
                               *released ? "memory returned" : "nothing to return");
                (void)log;
                return NGX_OK;
            });
        task->set_trim();
        if (task->post_background(ngx_certgate_trim_pool, log, false) != NGX_OK) delete task;
    } catch (const std::exception &) {
        // Out of memory: the next burst tries again.
    }
}

// A task of ours completed on the event loop. A request's task (or the
// portal's work after an answer) makes a trim due and sets it one second
// after the last such completion; a periodic task, or the trim itself,
// only arms it again when a trim is due and no timer is set (the feed and
// the sweep, every second in test builds, would otherwise put it off for
// ever; a burst's task that ended while the trim ran is trimmed after).
static void ngx_certgate_trim_after(ngx_thread_pool_t *pool, bool crypto, bool trim,
                                    bool periodic) noexcept {
    if (ngx_certgate_tasks_outstanding > 0) ngx_certgate_tasks_outstanding--;
    if (!periodic && !trim) {
        ngx_certgate_trim_due = true;
        if (!crypto) ngx_certgate_trim_pool = pool;
    }
    if (!ngx_certgate_trim_due || ngx_certgate_trim_pool == nullptr ||
        ngx_certgate_tasks_outstanding > 0 || ngx_exiting || ngx_terminate || ngx_quit)
        return;
    if ((periodic || trim) && ngx_certgate_trim_timer.timer_set) return;
    if (ngx_certgate_trim_cycle != ngx_cycle) {
        ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(ngx_cycle->pool, 0);
        if (cln == nullptr) return;
        cln->handler = ngx_certgate_trim_gone;
        ngx_certgate_trim_timer.handler = ngx_certgate_trim_run;
        ngx_certgate_trim_timer.data = ngx_certgate_timer_ident();
        ngx_certgate_trim_timer.cancelable = 1;
        ngx_certgate_trim_cycle = const_cast<ngx_cycle_t *>(ngx_cycle);
    }
    ngx_certgate_trim_timer.log = ngx_cycle->log;
    ngx_add_timer(&ngx_certgate_trim_timer, 1000);
}

ngx_certgate_task_t::ngx_certgate_task_t(work_t work, finish_t finish)
    : task_(), work_(std::move(work)), finish_(std::move(finish)) {
    task_.ctx = this;
    task_.handler = run_in_thread;
    // Never in a timer: nginx's thread pool calls the handler directly, as
    // its own tasks (ngx_http_copy_filter) with a request in event.data.
    task_.event.data = this;
    task_.event.handler = completed;
    alive.fetch_add(1, std::memory_order_relaxed);
}

ngx_certgate_task_t::~ngx_certgate_task_t() { alive.fetch_sub(1, std::memory_order_relaxed); }

ngx_int_t ngx_certgate_task_t::post(ngx_http_request_t *r, ngx_thread_pool_t *pool, bool crypto) {
    crypto_ = crypto;
    cleanup_ = ngx_pool_cleanup_add(r->pool, 0);
    if (cleanup_ == nullptr) return NGX_ERROR;
    cleanup_->handler = request_gone;
    cleanup_->data = this;
    request_ = r;
    task_.event.log = r->connection->log;

    ngx_certgate_metrics_tasks(1, 0);  // before: a thread may take it at once
    if (ngx_thread_task_post(pool, &task_) != NGX_OK) {
        ngx_certgate_metrics_tasks(-1, 0);
        cleanup_->handler = nullptr;
        return NGX_ERROR;
    }

    pool_ = pool;
    ngx_certgate_tasks_outstanding++;
    r->main->blocked++;
    r->main->count++;
    ngx_certgate_request_tasks++;
    ngx_certgate_guard_arm();
    return NGX_OK;
}

ngx_int_t ngx_certgate_task_t::post_background(ngx_thread_pool_t *pool, ngx_log_t *log, bool crypto,
                                               bool periodic) {
    background_ = true;
    crypto_ = crypto;
    periodic_ = periodic;
    task_.event.log = log;
    ngx_certgate_metrics_tasks(1, 0);
    if (ngx_thread_task_post(pool, &task_) != NGX_OK) {
        ngx_certgate_metrics_tasks(-1, 0);
        return NGX_ERROR;
    }
    pool_ = pool;
    ngx_certgate_tasks_outstanding++;
    return NGX_OK;
}

void ngx_certgate_task_t::run_in_thread(void *data, ngx_log_t *) noexcept {
    auto *self = static_cast<ngx_certgate_task_t *>(data);
    // First, so it is destroyed last (see PoolThreadGuard).
    thread_local PoolThreadGuard guard;
    (void)guard;
    // A thread of a pool runs only that pool's tasks, so it is set once.
    thread_local bool prioritised = false;
    if (!prioritised) {
        ngx_certgate_thread_priority(self->crypto_);
        prioritised = true;
    }
    ngx_certgate_metrics_tasks(-1, 1);
    try {
        self->work_();
    } catch (const std::exception &e) {
        self->failed_ = true;
        self->error_ = e.what();
    } catch (...) {
        self->failed_ = true;
        self->error_ = "unknown exception in thread task";
    }
    ngx_certgate_metrics_tasks(0, -1);
}

void ngx_certgate_task_t::request_gone(void *data) noexcept {
    auto *self = static_cast<ngx_certgate_task_t *>(data);
    self->request_ = nullptr;
}

void ngx_certgate_task_t::completed(ngx_event_t *ev) noexcept {
    auto *self = static_cast<ngx_certgate_task_t *>(ev->data);
    ngx_http_request_t *r = self->request_;
    ngx_certgate_trim_after(self->pool_, self->crypto_, self->trim_, self->periodic_);

    if (self->background_) {
        try {
            self->finish_(nullptr, self->failed_ ? &self->error_ : nullptr);
        } catch (const std::exception &e) {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0, "certgate: %s", e.what());
        } catch (...) {
        }
        delete self;
        return;
    }
    ngx_certgate_request_tasks--;
    if (r == nullptr) {
        delete self;
        return;
    }

    self->cleanup_->handler = nullptr;
    r->main->blocked--;

    ngx_connection_t *c = r->connection;
    ngx_int_t rc;
    try {
        rc = self->finish_(r, self->failed_ ? &self->error_ : nullptr);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "certgate: %s", e.what());
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    } catch (...) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    delete self;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}

bool ngx_certgate_post_background(ngx_thread_pool_t *pool, ngx_log_t *log,
                                  ngx_certgate_task_t::work_t work,
                                  ngx_certgate_task_t::finish_t finish, bool crypto,
                                  bool periodic) noexcept {
    try {
        auto *task = new ngx_certgate_task_t(std::move(work), std::move(finish));
        if (task->post_background(pool, log, crypto, periodic) != NGX_OK) {
            delete task;
            return false;
        }
        return true;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "certgate: %s", e.what());
        return false;
    }
}

ngx_int_t ngx_certgate_post_task(ngx_http_request_t *r, ngx_certgate_task_t::work_t work,
                                 ngx_certgate_task_t::finish_t finish,
                                 ngx_certgate_task_kind kind) noexcept {
    try {
        auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
            ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
        bool crypto = kind == ngx_certgate_task_kind::crypto;
        ngx_thread_pool_t *pool = crypto ? cmcf->crypto_thread_pool : cmcf->thread_pool;
        const ngx_str_t *name = crypto && pool != cmcf->thread_pool ? &cmcf->crypto_thread_pool_name
                                                                    : &cmcf->thread_pool_name;
        auto *task = new ngx_certgate_task_t(std::move(work), std::move(finish));
        if (task->post(r, pool, crypto && pool != cmcf->thread_pool) != NGX_OK) {
            delete task;
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "certgate: cannot post a task to thread pool \"%V\"", name);
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "certgate: task posted to thread pool \"%V\"", name);
        return NGX_DONE;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
