// Operations: counters in a small shared-memory zone of their own, which
// every worker bumps with atomics (no lock, no I/O), the Prometheus answer
// of certgate_metrics, <portal>/health/live and /health/ready, and the
// certgate_audit export (ngx_certgate_metrics.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "core/web/portal.hpp"
#include "nginx/ngx_certgate.hpp"

// Configuration: adds the zone (init_main_conf).
ngx_int_t ngx_certgate_metrics_zone(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;

// Worker start and exit: the observer of events and failures, the audit writer.
ngx_int_t ngx_certgate_metrics_start(ngx_cycle_t *cycle, ngx_certgate_main_conf_t *cmcf) noexcept;
void ngx_certgate_metrics_stop() noexcept;

// Directives.
char *ngx_certgate_set_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_audit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;

// A portal POST answered (event loop): path below the prefix, what the core
// decided, how long the core took.
void ngx_certgate_metrics_portal(ngx_certgate_main_conf_t *cmcf, const std::string &path,
                                 const certgate::PortalOutcome &outcome, double seconds) noexcept;

// Thread-pool tasks: queued (+1 at post), running (+1 when a thread takes it).
void ngx_certgate_metrics_tasks(int queued, int running) noexcept;

// The revocation feed polled the store: ok, and what it brought (nullptr:
// the initial load, whose revocations are not new).
namespace certgate {
struct FeedBatch;
}
void ngx_certgate_metrics_feed(bool ok, const certgate::FeedBatch *batch) noexcept;
// The revocation set went stale; it was loaded again after a gap or an outage.
void ngx_certgate_metrics_feed_stale() noexcept;
void ngx_certgate_metrics_feed_reload() noexcept;
// The mail sweep counted the outbox (mails waiting or being sent).
void ngx_certgate_metrics_outbox(long mails) noexcept;

// <portal>/health/live and <portal>/health/ready.
ngx_int_t ngx_certgate_health_live(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_certgate_health_ready(ngx_http_request_t *r) noexcept;
