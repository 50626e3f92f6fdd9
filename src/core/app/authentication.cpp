#include "core/app/authentication.hpp"

#include <algorithm>
#include <exception>

#include "core/app/outbox.hpp"
#include "core/policy/password.hpp"

namespace certgate {

std::string failure_counter_key(const std::string &user_id, int64_t epoch) {
    return "cg:fail:" + user_id + ":" + std::to_string(epoch);
}

namespace {

// memcached's reservation counter lives one lock time (at least a minute);
// the store's streak seeds it again when it is gone. So a slot reserved by an
// attempt that then failed (store down) blocks the ID no longer than a lock.
long counter_ttl(const Settings &s) { return std::max(60L, s.lockout_time_s); }

// A hash with the production parameters, so that checking a password for an
// unknown user costs what checking a real one costs.
const std::string &dummy_hash() {
    static const std::string hash = hash_password("certgate-dummy-password");
    return hash;
}

// R10 notices, queued to the outbox inside the lock's transaction (the sweep
// timer sends them), so the locking request takes no longer than any other.
// A failure to queue is logged by the caller through `error`, never turns the
// lock into a pass.
void queue_lock_mail(const Settings &s, Store &store, const User &user, bool blocked, int64_t until,
                     AuthResult *result) {
    if (user.mail.empty() || s.mail.empty()) return;
    try {
        MailFields f;
        f.to = user.mail;
        f.user_id = user.id;
        f.until = static_cast<time_t>(until);
        f.failures = s.lockout_failures;
        f.role = user.role;
        f.timezone = s.timezone;
        f.helpdesk = s.helpdesk;
        // The failing tries may not be the user's: the language is the one
        // the user last chose (users.language), not that of the tries' pages.
        const MailKind kind = blocked ? MailKind::blocked : MailKind::locked;
        MailMessage m =
            compose_user_mail(kind, user.language, s.mail_language, s.mail_bilingual, f);
        queue_mail(store, m, "certgate", user.id);
    } catch (const std::exception &e) {
        result->error = std::string("lock mail: ") + e.what();
    }
}

}  // namespace

StreakFailure record_wrong_password(Store &store, const LockoutRule &rule, const std::string &id,
                                    bool known, int64_t epoch, int64_t now,
                                    const std::string &detail,
                                    const std::function<void(const StreakFailure &)> &on_lock) {
    StreakFailure r;
    store.write([&] {
        r = StreakFailure();
        store.prune_auth_streaks(store.now());
        const AuthStreak st = store.lock_auth_streak(id);
        store.append_event(known ? id : std::string("certgate"), event_kind::kAuthFailed,
                           known ? id : std::string("(unknown)"),
                           (known ? std::string() : "user_id=" + id + " ") + detail);
        if (st.epoch != epoch) return;  // the streak ended while this try was checked
        r.counted = true;
        r.failures = st.failures + 1;
        const int64_t ghost_expires = now + std::max<int64_t>(kGhostLifetime, rule.lock_time_s);
        if (!rule.locks_at(r.failures)) {
            store.save_streak_failures(id, known, epoch, r.failures, known ? 0 : ghost_expires);
            return;
        }
        // A real user's lock count is its row's; an unknown ID's its streak's.
        int previous_locks = st.lock_count;
        if (known) {
            std::optional<User> u = store.find_user(id);
            if (!u) throw StoreNotFound("user " + id + " does not exist");
            if (u->blocked) throw StoreConflict("user " + id + " is already blocked");
            previous_locks = u->lock_count;
        }
        const int64_t until = now + rule.lock_time_s;
        const LockState lock = rule.next_lock(previous_locks, until);
        store.save_lock(id, known, lock, known ? 0 : std::max(ghost_expires, until), "certgate");
        r.locked = true;
        r.until = lock.until;
        r.blocked = lock.blocked;
        r.lock_count = lock.lock_count;
        if (on_lock) on_lock(r);
    });
    return r;
}

LockState lock_user(Store &store, const LockoutRule &rule, const std::string &id, int64_t until,
                    const std::string &actor) {
    LockState lock;
    store.write([&] {
        store.lock_auth_streak(id);
        std::optional<User> u = store.find_user(id);
        if (!u) throw StoreNotFound("user " + id + " does not exist");
        if (u->blocked) throw StoreConflict("user " + id + " is already blocked");
        lock = rule.next_lock(u->lock_count, until);
        store.save_lock(id, true, lock, 0, actor);
    });
    return lock;
}

AuthResult authenticate(const Settings &s, Store &store, Kv &mc, const AuthRequest &req) {
    AuthResult result;
    std::optional<User> user;
    try {
        // The streak is read before the user: a lock ends its streak in the
        // same transaction, so an attempt that sees the new epoch also sees
        // the lock.
        AuthStreak streak = store.auth_streak(req.user_id);
        user = store.find_user(req.user_id);
        if (user && user->state == UserState::disabled) user.reset();
        const bool known = user.has_value();

        // An unknown ID keeps the same state in the store as a real one
        // (R22): its lock, lock count and block answer like a user's.
        auto refused = [&](bool blocked, int64_t until) {
            if (blocked) {
                result.status = AuthStatus::blocked;
                return true;
            }
            if (until > req.now) {
                result.status = AuthStatus::locked;
                result.locked_until = until;
                return true;
            }
            return false;
        };
        if (known ? refused(user->blocked, user->locked_until)
                  : refused(streak.blocked, streak.locked_until)) {
            return result;
        }

        // Take the failure slot before the hash is checked. A counter that
        // memcached lost (restart, eviction) starts again from the store's
        // streak, not from zero.
        const std::string key = failure_counter_key(req.user_id, streak.epoch);
        std::optional<uint64_t> slot = mc.incr(key, 1);
        if (slot) {
            // Each reservation keeps the counter alive one lock time more, so
            // it cannot expire while attempts of its streak are still being
            // judged (a counter seeded again then would not count them).
            mc.touch(key, counter_ttl(s));
        } else {
            mc.add(key, std::to_string(streak.failures), counter_ttl(s));
            slot = mc.incr(key, 1);
            if (!slot) throw KvError("memcached lost the failure counter just created");
        }
        const uint64_t attempt = *slot;
        const auto limit = static_cast<uint64_t>(s.lockout_failures);
        if (attempt > limit) {
            // Parallel attempts beyond the limit: the one that reached it
            // locks; these answer what the store says by now.
            AuthStreak now_streak = store.auth_streak(req.user_id);
            std::optional<User> now_user = known ? store.find_user(req.user_id) : std::nullopt;
            bool blocked = known ? now_user && now_user->blocked : now_streak.blocked;
            int64_t until =
                known ? (now_user ? now_user->locked_until : 0) : now_streak.locked_until;
            if (!refused(blocked, until)) {
                result.status = AuthStatus::locked;
                result.locked_until = req.now + s.lockout_time_s;
            }
            return result;
        }

        bool right = verify_password(req.password, known ? user->password_hash : dummy_hash());
        if (!known || !right) {
            // The same store work for a real and an unknown ID, so neither
            // the answer nor its timing tells which IDs exist.
            std::string detail =
                "attempt=" + std::to_string(attempt) + " client=" + req.client +
                " purpose=" + (req.purpose == AuthPurpose::login ? "login" : "issuance");
            StreakFailure sf = record_wrong_password(
                store, LockoutRule::from(s), req.user_id, known, streak.epoch, req.now, detail,
                [&](const StreakFailure &f) {
                    if (known) queue_lock_mail(s, store, *user, f.blocked, f.until, &result);
                });
            result.status = AuthStatus::bad_credentials;
            if (sf.locked) {
                result.status = sf.blocked ? AuthStatus::blocked : AuthStatus::locked;
                result.locked_until = sf.until;
            }
            return result;
        }

        // The right password: record_login ends the streak.
        if (user->state == UserState::must_register) {
            if (user->initial_password_at != 0 &&
                user->initial_password_at + kInitialPasswordLifetime < req.now) {
                result.status = AuthStatus::initial_password_expired;
                result.user = user;  // the password was right: its role picks the advice
                return result;
            }
            result.initial_password = true;
        }
        store.record_login(user->id, user->id,
                           std::string("purpose=") +
                               (req.purpose == AuthPurpose::login ? "login" : "issuance") +
                               " client=" + req.client);

        if (req.purpose == AuthPurpose::issuance && !result.initial_password) {
            // R2: a valid certificate far from expiry cannot be issued again.
            auto cert = store.current_certificate(user->id);
            int64_t window = static_cast<int64_t>(s.renew_before_days) * 86400;
            if (cert && cert->status == CertStatus::issued && cert->not_after > req.now &&
                cert->not_after - req.now > window) {
                result.status = AuthStatus::already_issued;
                result.cert_not_after = cert->not_after;
                result.renewal_opens = cert->not_after - window;
                result.user = user;  // R20 may still let it replace the certificate
                result.live_certificate = cert;
                return result;
            }
        }
        result.status = AuthStatus::ok;
        result.user = user;
        return result;
    } catch (const std::exception &e) {
        result = AuthResult();
        result.status = AuthStatus::unavailable;
        result.error = e.what();
        return result;
    }
}

}  // namespace certgate
