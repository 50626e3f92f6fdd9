// Operations: the metrics zone, certgate_metrics, the health endpoints for
// load balancers and the audit export.
//
// Counters are std::atomic in a shared-memory zone of the module's own
// ("certgate_metrics"): lock-free and address-free, so every worker and every
// pool thread adds to them without a lock. Label values come from fixed
// lists only (error codes, key types, dependencies): nothing a user types.

#include "nginx/ngx_certgate_metrics.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>

#include "core/adapters/audit_export.hpp"
#include "core/app/health.hpp"
#include "core/app/revocation_feed.hpp"
#include "core/base/observe.hpp"
#include "core/ports/store.hpp"
#include "core/web/errors.hpp"
#include "nginx/ngx_certgate_revocation.hpp"
#include "nginx/ngx_certgate_task.hpp"

namespace {

using certgate::ErrorCode;

// The portal POSTs counted, each its own family.
struct ngx_certgate_step_t {
    const char *path;
    const char *metric;
    const char *help;
};
const ngx_certgate_step_t kSteps[] = {
    {"login", "certgate_logins_total",
     "Logins (POST login) by result: ok or the refusal's error code."},
    {"issue", "certgate_issue_auth_total",
     "Issuance user authentications (4, POST issue) by result: ok or the error code."},
    {"issue/code", "certgate_auth_codes_checked_total",
     "Authentication codes entered (5, POST issue/code) by result: ok (accepted) or the error "
     "code."},
    {"issue/confirm", "certgate_issue_confirm_total",
     "Issue button presses (6, POST issue/confirm) by result: ok or the error code."},
    {"register/master", "certgate_register_master_total",
     "Master users' first registrations (POST register/master) by result."},
    {"register/password", "certgate_register_password_total",
     "General users' new passwords at first registration (POST register/password) by result."},
};
constexpr int kStepCount = sizeof(kSteps) / sizeof(kSteps[0]);
constexpr int kErrorCount = static_cast<int>(ErrorCode::login_required) + 1;
constexpr int kResultCount = kErrorCount + 1;  // 0: ok, 1 + code: refused

const char *const kKeyTypes[] = {"rsa:2048", "rsa:3072", "ec:P-256"};
constexpr int kKeyTypeCount = 3;
const double kBuckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
constexpr int kBucketCount = sizeof(kBuckets) / sizeof(kBuckets[0]);
const char *const kDependencies[] = {"memcached", "store", "smtp"};

using counter_t = std::atomic<uint64_t>;
using gauge_t = std::atomic<int64_t>;
static_assert(counter_t::is_always_lock_free && gauge_t::is_always_lock_free,
              "shared-memory atomics must be lock-free");

struct ngx_certgate_metrics_sh_t {
    counter_t results[kStepCount][kResultCount];
    counter_t codes_sent;
    counter_t locks;
    counter_t blocks;
    counter_t downloads;
    counter_t revocations;
    counter_t issued[kKeyTypeCount];
    counter_t issue_buckets[kKeyTypeCount]
                           [kBucketCount + 1];  // per bucket, not cumulative; last +Inf
    counter_t issue_micros[kKeyTypeCount];
    counter_t p12_keys[2];  // issuances whose .p12 keys were derived ahead, at issuance
    counter_t dependency_errors[3];
    counter_t feed_polls_failed;
    gauge_t tasks_queued;
    gauge_t tasks_running;
    gauge_t outbox_mails;    // -1: not counted yet
    gauge_t feed_synced_at;  // unix time of the last successful poll, 0: never
    counter_t audit_exported;
    counter_t audit_dropped;
    counter_t audit_failed;
    counter_t feed_stale;    // times the revocation set went stale
    counter_t feed_reloads;  // full loads after a gap or an outage
};
static_assert(std::is_trivially_destructible<ngx_certgate_metrics_sh_t>::value,
              "lives in shared memory");

// This process's view of the zone (set in init_process; the zone outlives it).
ngx_certgate_metrics_sh_t *metrics_sh = nullptr;

ngx_int_t metrics_zone_init(ngx_shm_zone_t *shm_zone, void *data) noexcept {
    if (data) {  // a reload: the counters live on
        shm_zone->data = data;
        return NGX_OK;
    }
    auto *shpool = reinterpret_cast<ngx_slab_pool_t *>(shm_zone->shm.addr);
    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }
    void *sh = ngx_slab_calloc(shpool, sizeof(ngx_certgate_metrics_sh_t));
    if (sh == nullptr) return NGX_ERROR;
    auto *m = static_cast<ngx_certgate_metrics_sh_t *>(sh);
    m->outbox_mails.store(-1);
    shpool->data = sh;
    shm_zone->data = sh;
    return NGX_OK;
}

ngx_certgate_metrics_sh_t *sh_of(ngx_certgate_main_conf_t *cmcf) {
    if (cmcf == nullptr || cmcf->metrics_zone == nullptr) return nullptr;
    return static_cast<ngx_certgate_metrics_sh_t *>(cmcf->metrics_zone->data);
}

int key_type_index(const std::string &name) {
    for (int i = 0; i < kKeyTypeCount; ++i)
        if (name == kKeyTypes[i]) return i;
    return 0;
}

// The process's observer: events committed by this worker's tasks and
// dependency failures become counters; events also go to the audit export.
class ngx_certgate_observer_t final : public certgate::Observer {
  public:
    std::unique_ptr<certgate::AuditExport> audit;

    void event(const certgate::Event &e) noexcept override {
        if (ngx_certgate_metrics_sh_t *m = metrics_sh) {
            if (e.kind == certgate::event_kind::kUserLocked)
                m->locks.fetch_add(1);
            else if (e.kind == certgate::event_kind::kUserBlocked)
                m->blocks.fetch_add(1);
            else if (e.kind == "cert.downloaded")
                m->downloads.fetch_add(1);
            else if (e.kind == certgate::event_kind::kMailFailed)
                dependency_error(certgate::Dependency::smtp);
        }
        if (audit) audit->offer(e);
    }
    void dependency_error(certgate::Dependency d) noexcept override {
        if (ngx_certgate_metrics_sh_t *m = metrics_sh)
            m->dependency_errors[static_cast<int>(d)].fetch_add(1);
    }
};

ngx_certgate_observer_t *observer = nullptr;

// --- the Prometheus text format (0.0.4) ---------------------------------------------

struct ngx_certgate_exposition_t {
    std::string out;

    void head(const char *name, const char *type, const char *help) {
        out += "# HELP ";
        out += name;
        out += ' ';
        out += help;
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += type;
        out += '\n';
    }
    void sample(const std::string &name, const std::string &labels, const std::string &value) {
        out += name;
        if (!labels.empty()) out += "{" + labels + "}";
        out += ' ' + value + '\n';
    }
    void sample(const std::string &name, const std::string &labels, uint64_t v) {
        sample(name, labels, std::to_string(v));
    }
    void one(const char *name, const char *type, const char *help, int64_t v) {
        head(name, type, help);
        sample(name, "", std::to_string(v));
    }
};

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
}

std::string render_metrics(ngx_certgate_main_conf_t *cmcf) {
    ngx_certgate_exposition_t x;
    ngx_certgate_metrics_sh_t *m = sh_of(cmcf);
    if (m == nullptr) return "";

    for (int s = 0; s < kStepCount; ++s) {
        x.head(kSteps[s].metric, "counter", kSteps[s].help);
        x.sample(kSteps[s].metric, "result=\"ok\"", m->results[s][0].load());
        for (int c = 0; c < kErrorCount; ++c) {
            x.sample(
                kSteps[s].metric,
                std::string("result=\"") + certgate::error_name(static_cast<ErrorCode>(c)) + "\"",
                m->results[s][1 + c].load());
        }
    }
    x.one("certgate_auth_codes_sent_total", "counter",
          "Authentication codes mailed (handed to the relay at once).", m->codes_sent.load());
    x.one("certgate_locks_total", "counter",
          "Users locked after consecutive wrong passwords (R10).", m->locks.load());
    x.one("certgate_blocks_total", "counter",
          "Users blocked: by the lock count of R10, a master or the bank.", m->blocks.load());
    x.one("certgate_downloads_total", "counter", "One-time .p12 download tokens used.",
          m->downloads.load());
    x.one("certgate_revocations_total", "counter",
          "Certificate revocations the revocation feed brought since this node started (any node "
          "or certgatectl).",
          m->revocations.load());

    x.head("certgate_certificates_issued_total", "counter", "Certificates issued, by key type.");
    for (int k = 0; k < kKeyTypeCount; ++k)
        x.sample("certgate_certificates_issued_total",
                 std::string("key_type=\"") + kKeyTypes[k] + "\"", m->issued[k].load());

    x.head("certgate_p12_keys_total", "counter",
           "Issuances by where their .p12 keys were derived: ahead (after the code mail, in the "
           "crypto pool) or at_issuance (not ready yet, lost with memcached, or legacy).");
    x.sample("certgate_p12_keys_total", "derived=\"ahead\"", m->p12_keys[0].load());
    x.sample("certgate_p12_keys_total", "derived=\"at_issuance\"", m->p12_keys[1].load());

    x.head("certgate_issuance_duration_seconds", "histogram",
           "Time of an issuing request in the thread pool (key pair, certificate, .p12, store), by "
           "key type.");
    for (int k = 0; k < kKeyTypeCount; ++k) {
        std::string kt = std::string("key_type=\"") + kKeyTypes[k] + "\"";
        uint64_t cumulative = 0;
        for (int b = 0; b <= kBucketCount; ++b) {
            cumulative += m->issue_buckets[k][b].load();
            std::string le = b < kBucketCount ? number(kBuckets[b]) : "+Inf";
            x.sample("certgate_issuance_duration_seconds_bucket", kt + ",le=\"" + le + "\"",
                     cumulative);
        }
        x.sample("certgate_issuance_duration_seconds_sum", kt,
                 number(static_cast<double>(m->issue_micros[k].load()) / 1e6));
        x.sample("certgate_issuance_duration_seconds_count", kt, cumulative);
    }

    x.head("certgate_dependency_errors_total", "counter",
           "Failures talking to memcached, the store or the mail relay (SMTP).");
    for (int d = 0; d < 3; ++d)
        x.sample("certgate_dependency_errors_total",
                 std::string("dependency=\"") + kDependencies[d] + "\"",
                 m->dependency_errors[d].load());
    x.one("certgate_revocation_feed_errors_total", "counter",
          "Polls of the store's event table that failed.", m->feed_polls_failed.load());

    x.one("certgate_tasks_queued", "gauge", "Thread-pool tasks waiting for a thread (all workers).",
          m->tasks_queued.load());
    x.one("certgate_tasks_running", "gauge", "Thread-pool tasks running now (all workers).",
          m->tasks_running.load());
    int64_t outbox = m->outbox_mails.load();
    if (outbox >= 0)
        x.one("certgate_outbox_mails", "gauge",
              "Mails in the outbox not yet accepted by the relay (queued or being sent).", outbox);

    int64_t synced = m->feed_synced_at.load();
    x.one("certgate_revocation_feed_last_sync_timestamp_seconds", "gauge",
          "When the revocation feed last read the store (unix time; 0: never).", synced);
    if (synced > 0)
        x.one("certgate_revocation_feed_lag_seconds", "gauge",
              "Seconds since the revocation feed last read the store.",
              static_cast<int64_t>(ngx_time()) - synced);
    ngx_certgate_feed_info_t feed = ngx_certgate_feed_info(cmcf);
    x.one("certgate_revocation_feed_behind_events", "gauge",
          "Events in the store that the revocation feed had not read at its last poll.",
          feed.behind);
    x.one("certgate_revocation_feed_stale", "gauge",
          "1 while no poll read the store for longer than certgate_sync_max_lag (protected "
          "locations answer 503).",
          feed.stale ? 1 : 0);
    x.one("certgate_revocation_feed_stale_total", "counter",
          "Times the revocation set went stale (certgate_sync_max_lag passed without a good poll).",
          m->feed_stale.load());
    x.one("certgate_revocation_feed_reloads_total", "counter",
          "Full loads of the revocation set after a gap in the store's events or an outage.",
          m->feed_reloads.load());

    if (cmcf->revocation_zone != nullptr) {
        auto *shpool = reinterpret_cast<ngx_slab_pool_t *>(cmcf->revocation_zone->shm.addr);
        size_t pages = static_cast<size_t>(shpool->end - shpool->start) / ngx_pagesize;
        size_t free_pages = shpool->pfree;
        x.one("certgate_revocation_zone_size_bytes", "gauge",
              "Size of the shared-memory revocation set (certgate_revocation_zone).",
              static_cast<int64_t>(cmcf->revocation_zone->shm.size));
        x.one("certgate_revocation_zone_used_bytes", "gauge",
              "Bytes of the revocation zone's pages in use (the rest is free).",
              static_cast<int64_t>((pages > free_pages ? pages - free_pages : 0) * ngx_pagesize));
        x.one("certgate_revocation_zone_full", "gauge",
              "1 when an entry did not fit in the revocation zone (protected locations refuse).",
              ngx_certgate_revocation_state(cmcf) == NGX_CERTGATE_SET_FULL ? 1 : 0);
    }

    x.head("certgate_audit_events_total", "counter",
           "Audit events offered to the certgate_audit export, by result.");
    x.sample("certgate_audit_events_total", "result=\"exported\"", m->audit_exported.load());
    x.sample("certgate_audit_events_total", "result=\"dropped\"", m->audit_dropped.load());
    x.sample("certgate_audit_events_total", "result=\"failed\"", m->audit_failed.load());
    return x.out;
}

ngx_certgate_main_conf_t *main_of(ngx_http_request_t *r) {
    return static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
}

ngx_int_t metrics_handler(ngx_http_request_t *r) noexcept {
    try {
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) return NGX_HTTP_NOT_ALLOWED;
        ngx_int_t rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) return rc;
        return ngx_certgate_send(r, NGX_HTTP_OK, "text/plain; version=0.0.4",
                                 render_metrics(main_of(r)), true);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: metrics: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

}  // namespace

ngx_int_t ngx_certgate_metrics_zone(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    static ngx_str_t name = ngx_string("certgate_metrics");
    cmcf->metrics_zone =
        ngx_shared_memory_add(cf, &name, 16 * ngx_pagesize, &ngx_http_certgate_module);
    if (cmcf->metrics_zone == nullptr) return NGX_ERROR;
    cmcf->metrics_zone->init = metrics_zone_init;
    return NGX_OK;
}

ngx_int_t ngx_certgate_metrics_start(ngx_cycle_t *cycle, ngx_certgate_main_conf_t *cmcf) noexcept {
    try {
        metrics_sh = sh_of(cmcf);
        if (metrics_sh != nullptr) {
            // A worker that died left its tasks counted; a fresh start counts
            // from what this worker does (the gauges are of all workers).
            if (metrics_sh->tasks_queued.load() < 0) metrics_sh->tasks_queued.store(0);
            if (metrics_sh->tasks_running.load() < 0) metrics_sh->tasks_running.store(0);
        }
        if (observer == nullptr) observer = new ngx_certgate_observer_t();
        if (cmcf->audit.len) {
            auto target = certgate::parse_audit_target(ngx_certgate_str(cmcf->audit));
            observer->audit = std::make_unique<certgate::AuditExport>(std::move(target), 10000);
            if (metrics_sh != nullptr) {
                observer->audit->exported = &metrics_sh->audit_exported;
                observer->audit->dropped = &metrics_sh->audit_dropped;
                observer->audit->failed = &metrics_sh->audit_failed;
            }
            observer->audit->start();
        }
        certgate::set_observer(observer);
        return NGX_OK;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "certgate: metrics: %s", e.what());
        return NGX_ERROR;
    }
}

void ngx_certgate_metrics_stop() noexcept {
    // Pool threads may still offer events: they are dropped once stopped.
    if (observer != nullptr && observer->audit) observer->audit->stop();
}

char *ngx_certgate_set_metrics(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *lcf = static_cast<ngx_certgate_loc_conf_t *>(conf);
    if (lcf->metrics) return const_cast<char *>("is duplicate");
    lcf->metrics = 1;
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = metrics_handler;
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_certgate_module));
    cmcf->metrics = 1;
    return NGX_CONF_OK;
}

char *ngx_certgate_set_audit(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    if (cmcf->audit.len) return const_cast<char *>("is duplicate");
    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    try {
        certgate::parse_audit_target(ngx_certgate_str(value[1]));
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "certgate_audit: %s", e.what());
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    cmcf->audit = value[1];
    return NGX_CONF_OK;
}

void ngx_certgate_metrics_portal(ngx_certgate_main_conf_t *cmcf, const std::string &path,
                                 const certgate::PortalOutcome &outcome, double seconds) noexcept {
    ngx_certgate_metrics_sh_t *m = sh_of(cmcf);
    if (m == nullptr) return;
    if (outcome.code_sent) m->codes_sent.fetch_add(1);
    if (outcome.issued) {
        int k = key_type_index(cmcf->runtime->settings.key_type);
        m->issued[k].fetch_add(1);
        m->p12_keys[outcome.p12_keys_ahead ? 0 : 1].fetch_add(1);
        int b = 0;
        while (b < kBucketCount && seconds > kBuckets[b]) ++b;
        m->issue_buckets[k][b].fetch_add(1);
        m->issue_micros[k].fetch_add(static_cast<uint64_t>(seconds * 1e6));
    }
    if (outcome.result == certgate::PortalOutcome::Result::none) return;
    for (int s = 0; s < kStepCount; ++s) {
        if (path != kSteps[s].path) continue;
        int i = outcome.result == certgate::PortalOutcome::Result::ok
                    ? 0
                    : 1 + static_cast<int>(outcome.error);
        if (i < kResultCount) m->results[s][i].fetch_add(1);
        return;
    }
}

void ngx_certgate_metrics_tasks(int queued, int running) noexcept {
    if (ngx_certgate_metrics_sh_t *m = metrics_sh) {
        if (queued) m->tasks_queued.fetch_add(queued);
        if (running) m->tasks_running.fetch_add(running);
    }
}

void ngx_certgate_metrics_feed(bool ok, const certgate::FeedBatch *batch) noexcept {
    ngx_certgate_metrics_sh_t *m = metrics_sh;
    if (m == nullptr) return;
    if (!ok) {
        m->feed_polls_failed.fetch_add(1);
        m->dependency_errors[static_cast<int>(certgate::Dependency::store)].fetch_add(1);
        return;
    }
    m->feed_synced_at.store(static_cast<int64_t>(ngx_time()));
    if (batch == nullptr) return;
    for (const auto &u : batch->updates)
        if (u.kind == certgate::RevocationUpdate::Kind::serial_revoked) m->revocations.fetch_add(1);
}

void ngx_certgate_metrics_feed_stale() noexcept {
    if (ngx_certgate_metrics_sh_t *m = metrics_sh) m->feed_stale.fetch_add(1);
}

void ngx_certgate_metrics_feed_reload() noexcept {
    if (ngx_certgate_metrics_sh_t *m = metrics_sh) m->feed_reloads.fetch_add(1);
}

void ngx_certgate_metrics_outbox(long mails) noexcept {
    if (ngx_certgate_metrics_sh_t *m = metrics_sh) m->outbox_mails.store(mails);
}

// --- health for load balancers -----------------------------------------------------

ngx_int_t ngx_certgate_health_live(ngx_http_request_t *r) noexcept {
    try {
        return ngx_certgate_send(r, NGX_HTTP_OK, "application/json",
                                 certgate::live_json(static_cast<long>(ngx_pid)), true);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: live: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

ngx_int_t ngx_certgate_health_ready(ngx_http_request_t *r) noexcept {
    try {
        ngx_certgate_main_conf_t *cmcf = main_of(r);
        const certgate::Runtime *rt = cmcf->runtime;
        const certgate::Settings *settings = &rt->settings;

        // What the worker knows without I/O: the set, the feed, the CA key.
        // Fresh: loaded, nothing lost, and read within certgate_sync_max_lag
        // (with it off, within 3 intervals + 2 s).
        ngx_certgate_feed_info_t feed = ngx_certgate_feed_info(cmcf);
        int64_t lag = feed.age_ms >= 0 ? static_cast<int64_t>(feed.age_ms / 1000) : -1;
        int64_t behind = feed.behind;
        ngx_msec_t stale_after =
            cmcf->sync_max_lag ? cmcf->sync_max_lag : 3 * cmcf->sync_interval + 2000;
        bool feed_ok = ngx_certgate_revocation_state(cmcf) == NGX_CERTGATE_SET_READY &&
                       feed.age_ms >= 0 && feed.age_ms <= static_cast<ngx_msec_int_t>(stale_after);
        bool ca_ok = rt->ca != nullptr && !rt->hsm_broken.load();

        auto health = std::make_shared<certgate::Health>();
        return ngx_certgate_post_task(
            r, [health, settings]() { *health = certgate::check_health(*settings, true); },
            [health, feed_ok, ca_ok, lag, behind](ngx_http_request_t *r,
                                                  const std::string *error) -> ngx_int_t {
                if (error != nullptr) health->memcached_up = health->store_up = false;
                if (!health->memcached_up && !health->memcached_error.empty()) {
                    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                                  "certgate: ready: memcached: %s",
                                  health->memcached_error.c_str());
                }
                if (!health->store_up && !health->store_error.empty()) {
                    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0, "certgate: ready: store: %s",
                                  health->store_error.c_str());
                }
                bool ready = certgate::ready(*health, feed_ok, ca_ok);
                std::string body = certgate::ready_json(*health, {feed_ok, lag, behind}, ca_ok);
                return ngx_certgate_send(r, ready ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "application/json", body, true);
            });
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: ready: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
