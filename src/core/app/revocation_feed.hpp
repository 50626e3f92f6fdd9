// What ends access without a reload (R5): revoked certificates, blocked and
// disabled users, resets, logouts. The module keeps these in a shared-memory
// set that the protected path reads; this is the part that reads the store
// (in the thread pool) and says what to put in the set.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ports/store.hpp"

namespace certgate {

struct RevocationUpdate {
    enum class Kind {
        serial_revoked,    // key: serial
        user_blocked,      // key: user ID; at: when (sessions before it end)
        user_unblocked,    // key: user ID
        user_invalidated,  // key: user ID; at: sessions started before it end (reset)
        session_ended,     // key: session id; at: when (logout)
    };
    Kind kind;
    std::string key;
    int64_t at = 0;                 // when (session_ended: the logout's time)
    int64_t event_id = 0;           // the event's id, which orders it against logins
    int64_t not_after = INT64_MAX;  // serial_revoked: the certificate's notAfter (0: unknown)
    std::string user_id;            // session_ended: whose session it was
};

struct FeedBatch {
    std::vector<RevocationUpdate> updates;
    FeedCursor cursor;         // where the next read starts
    bool more = false;         // the page was full: read again at once
    bool revocations = false;  // a certificate was revoked: the CRL changed
    // The store's events do not continue from the cursor read after (it is
    // ahead of the store's last event: the store was replaced or restored
    // from a backup). Nothing else is set: the set is to be loaded again.
    bool gap = false;
    int64_t last_event_id = 0;  // initial_feed: the store's last event when loaded
    int64_t behind = 0;         // events in the store after `cursor` when read
};

// Everything in force now: revoked certificates not yet expired, blocked and
// disabled users, and resets and logouts recent enough to matter for live
// sessions; the cursor is taken first, so what commits meanwhile is read
// again by feed_next (applying an update twice changes nothing).
FeedBatch initial_feed(Store &store, int64_t now, long session_absolute_s);

// What happened after `after`, at most `limit` events (one page; `more`
// when there is another); a revocation carries its certificate's notAfter,
// read from the store. Sets `gap` instead when the store's last event is
// before the cursor.
FeedBatch feed_next(Store &store, const FeedCursor &after, int limit);

// What a poll must do: continue from the cursor, or load the whole set.
enum class FeedReload {
    none,
    first,   // never loaded in this zone
    full,    // an entry did not fit: what was lost is read again
    gap,     // the store no longer continues the cursor
    outage,  // no good read for longer than the limit: the cursor is not trusted
};
struct FeedState {
    bool loaded = false;
    bool full = false;
    bool gap = false;
    int64_t ok_age_ms = 0;  // since the last good read (or the load)
};
// reload_after_ms: certgate_sync_max_lag (0: off, then kFeedOutageReloadMs).
FeedReload feed_reload(const FeedState &state, long reload_after_ms);
constexpr long kFeedOutageReloadMs = 10000;

// Whether the set is too old to decide on: no good read for longer than
// max_lag_ms (certgate_sync_max_lag; 0: never). Inline: every protected
// request asks.
inline bool feed_stale(int64_t ok_age_ms, long max_lag_ms) {
    return max_lag_ms > 0 && ok_age_ms > max_lag_ms;
}

// One event's effect on the set, if any.
bool interpret_event(const Event &event, RevocationUpdate *update);

}  // namespace certgate
