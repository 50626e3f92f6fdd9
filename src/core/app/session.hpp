// Login sessions: an HMAC-signed cookie bound to the client certificate's
// serial, with idle and absolute timeouts. Decoding and checking it is pure
// computation (microseconds), so the protected path can do it inline; what
// may have ended a session since (logout, revocation, block, reset) is in the
// shared-memory revocation set the glue consults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/ports/store.hpp"

namespace certgate {

struct Session {
    std::string id;  // 22 base64url characters
    std::string user_id;
    std::string org;
    Role role = Role::general;
    std::string serial;  // the client certificate it is bound to
    int64_t started_at = 0;
    int64_t last_seen = 0;
    int64_t cert_not_after = 0;  // for $certgate_cert_days_left
    // The store's event id of this login: a reset or block with a later
    // event id ends the session (event ids order exactly; seconds do not).
    int64_t epoch = 0;
};

// A fresh session for a user who just logged in with certificate `serial`.
Session new_session(const User &user, const std::string &serial, int64_t cert_not_after,
                    int64_t now);

std::string encode_session(const std::string &secret, const Session &session);

// Nullopt when the value was not made with this secret or is malformed.
std::optional<Session> decode_session(const std::string &secret, const std::string &value);

enum class SessionCheck { ok, expired, wrong_certificate };

// Idle and absolute timeouts, and the binding to the presented certificate.
SessionCheck check_session(const Session &session, const std::string &presented_serial, int64_t now,
                           long idle_s, long absolute_s);

// Whether the cookie should be sent again with last_seen = now: often enough
// for the idle timeout, rarely enough not to cost a Set-Cookie per request.
bool session_needs_refresh(const Session &session, int64_t now, long idle_s);

// The first second at which check_session or session_needs_refresh can
// answer otherwise than they do now for this session: until then a request
// with the same cookie on the same certificate gets the same answers (the
// protected path's per-connection pass relies on it).
int64_t session_recheck_at(const Session &session, long idle_s, long absolute_s);

}  // namespace certgate
