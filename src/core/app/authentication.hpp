// Password authentication with the lockout of R10, shared by login (R13) and
// issuance user authentication (④). Runs in a thread-pool thread.
//
// Counting is race-free: each attempt first takes its failure slot with an
// atomic memcached increment, and only attempts within the limit reach the
// password hash. So a thousand parallel guesses still get at most
// `lockout_failures` checks, and exactly one of them locks the user. The
// streak itself (its epoch and judged failures) is the store's: memcached's
// counter is seeded from it, so losing memcached gives no extra guesses.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/config/settings.hpp"
#include "core/policy/lockout.hpp"
#include "core/ports/kv.hpp"
#include "core/ports/store.hpp"

namespace certgate {

enum class AuthStatus {
    ok,
    bad_credentials,  // wrong password, unknown or disabled user: one answer
    locked,           // R10: until locked_until
    blocked,          // R10: 閉塞
    already_issued,   // R2: a valid certificate, renewal not open yet
    initial_password_expired,
    unavailable,  // memcached or the store did not answer: fail closed
};

enum class AuthPurpose { login, issuance };

struct AuthRequest {
    std::string user_id;
    std::string password;
    AuthPurpose purpose = AuthPurpose::issuance;
    int64_t now = 0;
    std::string client;  // for the audit trail: the client address
};

struct AuthResult {
    AuthStatus status = AuthStatus::unavailable;
    std::optional<User> user;  // set when the password was right (ok, already_issued,
                               // initial_password_expired)
    std::optional<Certificate> live_certificate;  // already_issued: the one in force
    bool initial_password = false;                // the user has not registered yet (must_register)
    int64_t locked_until = 0;                     // locked
    int64_t renewal_opens = 0;   // already_issued: first moment renewal is possible
    int64_t cert_not_after = 0;  // already_issued
    std::string error;           // unavailable: why (for the error log)
};

// How long an initial password is good for (issue 7: default 30 days).
inline constexpr int64_t kInitialPasswordLifetime = 30 * 86400;

// Decides one attempt. Never throws for memcached or store trouble: that is
// AuthStatus::unavailable, and nothing was checked or counted as passed.
// Lock and block mails are queued to the outbox here; the sweep sends them.
AuthResult authenticate(const Settings &settings, Store &store, Kv &mc, const AuthRequest &request);

// The memcached key of the reservation counter of an ID's streak `epoch`.
// The epoch lives in the store and changes with every lock, success, unlock
// and reset, so a new streak never meets an old counter.
std::string failure_counter_key(const std::string &user_id, int64_t epoch);

// How long the store keeps the streak of an unknown ID after its last
// failure (a blocked one stays, like a blocked user).
inline constexpr int64_t kGhostLifetime = 30L * 86400;

// What one judged wrong password did to its streak.
struct StreakFailure {
    bool counted = false;  // false: the streak had ended meanwhile (a success, a lock)
    int failures = 0;
    bool locked = false;   // this failure locked the ID
    bool blocked = false;  // and this lock blocked it
    int64_t until = 0;
    int lock_count = 0;
};

// One judged wrong password of streak `epoch` of a typed ID, in one store
// transaction that holds the streak's row: the rule (policy/lockout.hpp)
// decides on the counts read there, the store writes the outcome. known: a
// real, enabled user; otherwise an unknown ID, whose row the store keeps like
// a user's (R22). detail goes to the auth.failed event. on_lock runs inside
// the same transaction when this failure locks (the lock mail is queued
// there: one commit either way).
StreakFailure record_wrong_password(Store &store, const LockoutRule &rule,
                                    const std::string &user_id, bool known, int64_t epoch,
                                    int64_t now, const std::string &detail,
                                    const std::function<void(const StreakFailure &)> &on_lock);

// R10 by hand (certgatectl user lock): locks a user until `until`; the lock
// that reaches the rule's lock count also blocks. StoreNotFound for an
// unknown user, StoreConflict for one already blocked.
LockState lock_user(Store &store, const LockoutRule &rule, const std::string &user_id,
                    int64_t until, const std::string &actor);

}  // namespace certgate
