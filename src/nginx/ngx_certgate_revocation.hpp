// The shared-memory revocation set (ngx_certgate_revocation.cpp).
#pragma once

#include <string>

#include "core/app/revocation_feed.hpp"
#include "nginx/ngx_certgate.hpp"

enum ngx_certgate_set_state_e {
    NGX_CERTGATE_SET_READY,
    NGX_CERTGATE_SET_NOT_READY,  // not loaded from the store yet
    NGX_CERTGATE_SET_FULL,       // an entry did not fit: fail closed
    NGX_CERTGATE_SET_STALE,      // no good poll for certgate_sync_max_lag: fail closed
};

// Configuration: adds the zone (init_main_conf).
ngx_int_t ngx_certgate_revocation_zone(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;

// Worker start: the timer that feeds the set from the store.
ngx_int_t ngx_certgate_revocation_start(ngx_cycle_t *cycle,
                                        ngx_certgate_main_conf_t *cmcf) noexcept;
// Worker exit: stops the feed listener's thread (within about a second).
void ngx_certgate_revocation_stop() noexcept;

// The feed's freshness, for health and metrics.
struct ngx_certgate_feed_info_t {
    bool loaded;
    bool stale;             // see ngx_certgate_feed_stale
    ngx_msec_int_t age_ms;  // since the start of the last good poll; -1: never
    int64_t behind;         // events after the cursor at the last poll
};
ngx_certgate_feed_info_t ngx_certgate_feed_info(ngx_certgate_main_conf_t *cmcf) noexcept;

// The protected path's questions; microseconds, no I/O.
ngx_certgate_set_state_e ngx_certgate_revocation_state(ngx_certgate_main_conf_t *cmcf) noexcept;
// No good poll for longer than certgate_sync_max_lag (a loaded set only): a
// few word reads, no lock, so even a connection whose verdict is kept asks.
bool ngx_certgate_feed_stale(ngx_certgate_main_conf_t *cmcf) noexcept;
bool ngx_certgate_serial_revoked(ngx_certgate_main_conf_t *cmcf,
                                 const std::string &serial) noexcept;
// A session ends with a logout of its own, or a reset, block or disable of
// its user recorded after its login (event ids, which order exactly).
bool ngx_certgate_session_ended(ngx_certgate_main_conf_t *cmcf, const std::string &session_id,
                                const std::string &user_id, int64_t epoch) noexcept;

// Work one worker of all does per interval: true for the worker whose turn
// it is (and marks the turn taken).
enum ngx_certgate_turn_e {
    NGX_CERTGATE_TURN_OUTBOX,
    NGX_CERTGATE_TURN_NOTICES,
    NGX_CERTGATE_TURNS
};
bool ngx_certgate_take_turn(ngx_certgate_main_conf_t *cmcf, ngx_certgate_turn_e turn,
                            ngx_msec_t interval) noexcept;

// Worker start: the mail timer (ngx_certgate_sweep.cpp): the outbox every
// 30 s, the expiry notices every certgate_notify_interval.
ngx_int_t ngx_certgate_sweep_start(ngx_cycle_t *cycle, ngx_certgate_main_conf_t *cmcf) noexcept;

// The head of the set's zone: what every protected request reads, on one
// cache line, through the pointer the main conf keeps (revocation_sh).
struct ngx_certgate_set_head_t {
    // Bumped (under the zone's mutex) by every batch that changes anything
    // and by the initial load; read without the lock by the protected path,
    // whose per-connection verdict holds while this stays the same. 0: not
    // loaded.
    ngx_atomic_t changes;
    // ngx_current_msec at the start of the last good poll: the set is as
    // fresh as that (see ngx_certgate_feed_stale).
    ngx_msec_t last_ok;
    ngx_uint_t loaded;  // the initial load is done
};

// Milliseconds since `then`, a reading of ngx_current_msec in any worker
// (never negative: another worker's reading may be newer than ours).
inline ngx_msec_int_t ngx_certgate_msec_since(ngx_msec_t then) {
    auto d = static_cast<ngx_msec_int_t>(ngx_current_msec - then);
    return d > 0 ? d : 0;
}

// The set's change count: a count that changes whenever the set does (any
// revocation, logout, reset, block, unblock, disable, the initial load); 0
// before the initial load. The protected path keeps its verdict for a
// connection while the count stays the same, so a keep-alive client costs
// no lock. With it, whether the set is stale (ngx_certgate_feed_stale), as
// every protected request asks both: one atomic read and one cache line of
// the zone, inline.
inline ngx_atomic_uint_t ngx_certgate_set_now(const ngx_certgate_main_conf_t *cmcf, bool *stale) {
    const ngx_certgate_set_head_t *head = cmcf->revocation_sh;
    if (head == nullptr) {
        *stale = false;
        return 0;
    }
    // An acquire read: what this request reads of the set after it is at
    // least as new as the count (the writer bumps it after the entries).
    // Not ngx_memory_barrier(), a full fence (lock or) with nginx's GCC
    // atomics; on x86 an acquire read is a plain load.
    ngx_atomic_uint_t changes = __atomic_load_n(&head->changes, __ATOMIC_ACQUIRE);
    // not loaded: not stale, refused for that (as ngx_certgate_feed_stale)
    *stale = head->loaded && certgate::feed_stale(ngx_certgate_msec_since(head->last_ok),
                                                  static_cast<long>(cmcf->sync_max_lag));
    return changes;
}
