// The worker's housekeeping timer. It replaces a worker whose HSM session
// broke (see Runtime::hsm_broken). And every 30 s one worker (of all that share
// the revocation zone) revokes certificates whose .p12 was never handed over
// and sends what waits in the outbox, and every
// certgate_notify_interval one queues the expiry notices of R3 first. The
// work runs in the thread pool; the store's claims make sure that workers,
// nodes and certgatectl never send the same mail or notice twice.

#include <exception>
#include <memory>

#include "core/adapters/mail.hpp"
#include "core/app/outbox.hpp"
#include "nginx/ngx_certgate_metrics.hpp"
#include "nginx/ngx_certgate_revocation.hpp"
#include "nginx/ngx_certgate_task.hpp"

namespace {

const ngx_msec_t kOutboxInterval = 30 * 1000;

struct ngx_certgate_sweep_t {
    ngx_event_t timer;  // first: sweep_run finds the rest from it
    ngx_certgate_main_conf_t *cmcf;
    ngx_cycle_t *cycle;
    bool busy;
};

void sweep_arm(ngx_certgate_sweep_t *sweep) {
    if (ngx_exiting || ngx_terminate || ngx_quit) return;
    if (ngx_cycle != sweep->cycle) return;  // reloaded in single-process mode
    ngx_msec_t next = kOutboxInterval;
#if (CERTGATE_TEST_HOOKS)
    // Test builds look more often, so suites need not wait half a minute.
    next = 1000;
#endif
    ngx_add_timer(&sweep->timer, next);
}

void sweep_run(ngx_event_t *ev) noexcept {
    auto *sweep = reinterpret_cast<ngx_certgate_sweep_t *>(ev);
    ngx_certgate_main_conf_t *cmcf = sweep->cmcf;
    // Only a worker process is replaced; nginx without a master would stop.
    if (cmcf->runtime->hsm_broken && !ngx_exiting && ngx_process == NGX_PROCESS_WORKER) {
        // A fresh process gets a fresh PKCS#11 session: exit gracefully and
        // let the master start a new worker (it reopens the key).
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "certgate: the CA key in the HSM failed; this worker is replaced by a "
                      "new one that opens the key again");
        ngx_quit = 1;
        return;
    }
    if (sweep->busy) {
        sweep_arm(sweep);
        return;
    }
    ngx_msec_t outbox_interval = kOutboxInterval;
#if (CERTGATE_TEST_HOOKS)
    outbox_interval = 1000;
#endif
    bool mail = !cmcf->runtime->settings.mail.empty();
    bool notices = mail && cmcf->notify_interval != 0 &&
                   ngx_certgate_take_turn(cmcf, NGX_CERTGATE_TURN_NOTICES, cmcf->notify_interval);
    // The outbox's turn also revokes certificates never handed over.
    bool outbox =
        notices || ngx_certgate_take_turn(cmcf, NGX_CERTGATE_TURN_OUTBOX, outbox_interval);
    if (!outbox) {
        sweep_arm(sweep);
        return;
    }

    const certgate::Settings *s = &cmcf->runtime->settings;
    int64_t now = ngx_time();
    sweep->busy = true;
    bool posted = ngx_certgate_post_background(
        cmcf->thread_pool, ev->log,
        [s, now, notices, mail]() {
            try {
                certgate::Store &store = certgate::thread_store(s->store_uri);
                // A certificate recorded at ⑥ whose .p12 was not downloaded
                // while its flow lived never goes live.
                store.abandon_pending_certificates(
                    "", now - s->flow_lifetime_s(),
                    "not downloaded within the issuance flow's lifetime", "certgate");
                if (notices) {
                    certgate::sweep_mail(*s, store, now);
                } else if (mail) {
                    certgate::deliver_outbox(store, certgate::mail_settings(*s), now, 100);
                }
                ngx_certgate_metrics_outbox(
                    static_cast<long>(store.list_mails(certgate::MailState::queued).size() +
                                      store.list_mails(certgate::MailState::sending).size()));
            } catch (...) {
                certgate::drop_thread_store(s->store_uri);
                throw;
            }
        },
        [sweep, ev](ngx_http_request_t *, const std::string *error) -> ngx_int_t {
            sweep->busy = false;
            if (error) {
                ngx_log_error(NGX_LOG_ERR, ev->log, 0, "certgate: mail sweep: %s", error->c_str());
            }
            sweep_arm(sweep);
            return NGX_OK;
        },
        false, true);  // periodic: not a burst for the memory trim
    if (!posted) {
        sweep->busy = false;
        sweep_arm(sweep);
    }
}

}  // namespace

ngx_int_t ngx_certgate_sweep_start(ngx_cycle_t *cycle, ngx_certgate_main_conf_t *cmcf) noexcept {
    auto *sweep =
        static_cast<ngx_certgate_sweep_t *>(ngx_pcalloc(cycle->pool, sizeof(ngx_certgate_sweep_t)));
    if (sweep == nullptr) return NGX_ERROR;
    sweep->cmcf = cmcf;
    sweep->cycle = cycle;
    sweep->timer.handler = sweep_run;
    sweep->timer.data = ngx_certgate_timer_ident();
    sweep->timer.log = cycle->log;
    sweep->timer.cancelable = 1;
    if (ngx_certgate_timer_cleanup(cycle->pool, &sweep->timer) != NGX_OK) return NGX_ERROR;
    ngx_add_timer(&sweep->timer, 1000);
    return NGX_OK;
}
