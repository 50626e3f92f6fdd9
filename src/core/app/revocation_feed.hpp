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
    int64_t last_event_id = 0;  // where the next poll starts
    bool revocations = false;   // a certificate was revoked: the CRL changed
};

// Everything in force now: revoked certificates not yet expired, blocked and
// disabled users, and resets and logouts recent enough to matter for live
// sessions.
FeedBatch initial_feed(Store &store, int64_t now, long session_absolute_s);

// What happened after event `after_id`, at most `limit` events; a
// revocation carries its certificate's notAfter, read from the store.
FeedBatch feed_since(Store &store, int64_t after_id, int limit);

// One event's effect on the set, if any.
bool interpret_event(const Event &event, RevocationUpdate *update);

}  // namespace certgate
