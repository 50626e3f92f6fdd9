#include "core/authentication.hpp"

#include <exception>

#include "core/mail.hpp"
#include "core/password.hpp"

namespace certgate {

const char *to_string(AuthStatus s) {
    switch (s) {
    case AuthStatus::ok: return "ok";
    case AuthStatus::bad_credentials: return "bad_credentials";
    case AuthStatus::locked: return "locked";
    case AuthStatus::blocked: return "blocked";
    case AuthStatus::already_issued: return "already_issued";
    case AuthStatus::initial_password_expired: return "initial_password_expired";
    case AuthStatus::unavailable: return "unavailable";
    }
    return "unavailable";
}

namespace {
std::string streak_key(const std::string &user_id) { return "cg:streak:" + user_id; }
const long kStreakTtl = 30L * 86400;  // memcached's longest relative expiry
}  // namespace

std::string failure_counter_key(Memcache &mc, const std::string &user_id) {
    auto streak = mc.get(streak_key(user_id));
    return "cg:fail:" + user_id + ":" + (streak ? *streak : std::string("0"));
}

void start_new_streak(Memcache &mc, const std::string &user_id) {
    mc.incr_or_create(streak_key(user_id), 1, kStreakTtl);
}

namespace {

// A hash with the production parameters, so that checking a password for an
// unknown user costs what checking a real one costs.
const std::string &dummy_hash() {
    static const std::string hash = hash_password("certgate-dummy-password");
    return hash;
}


// R10 notices. A failure to queue is logged by the caller through `error`,
// never turns the lock into a pass.
void queue_lock_mail(const Settings &s, Store &store, const User &user, bool blocked,
                     int64_t until, AuthResult *result) {
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
        // The user's language is not known here (the failing tries may not
        // be theirs): the http-level certgate_language decides, as for the
        // expiry notices.
        const MailKind kind = blocked ? MailKind::blocked : MailKind::locked;
        MailMessage m = s.mail_bilingual ? compose_bilingual_mail(kind, f)
                                         : compose_mail(kind, s.mail_language, f);
        std::string why;
        if (!send_mail_now(store, mail_settings(s), m, "certgate", user.id, store.now(), nullptr,
                           &why)) {
            result->error = "lock mail queued, not sent yet: " + why;
        }
    } catch (const std::exception &e) {
        result->error = std::string("lock mail: ") + e.what();
    }
}

}  // namespace

AuthResult authenticate(const Settings &s, Store &store, Memcache &mc, const AuthRequest &req) {
    AuthResult result;
    std::optional<User> user;
    uint64_t attempt = 0;
    try {
        // The streak is read before the user's state: a lock is written
        // before its streak ends, so an attempt that sees the new streak also
        // sees the lock.
        std::string key = failure_counter_key(mc, req.user_id);
        user = store.find_user(req.user_id);
        if (user && user->state == UserState::disabled) user.reset();

        if (user && user->blocked) {
            result.status = AuthStatus::blocked;
            return result;
        }
        if (user && user->locked_at(req.now)) {
            result.status = AuthStatus::locked;
            result.locked_until = user->locked_until;
            return result;
        }

        // An unknown user ID locks like a real one (in memcached only), so
        // neither the answers nor their timing tell which IDs exist.
        std::string ghost_lock = "cg:ghostlock:" + req.user_id;
        if (!user && mc.get(ghost_lock)) {
            result.status = AuthStatus::locked;
            return result;
        }

        // Take the failure slot before the hash is checked.
        attempt = mc.incr_or_create(key, 1, 7 * 86400);
        if (attempt > static_cast<uint64_t>(s.lockout_failures)) {
            // Parallel attempts beyond the limit: the one that reached it locks.
            result.status = AuthStatus::locked;
            result.locked_until = req.now + s.lockout_time_s;
            return result;
        }

        bool right = verify_password(req.password, user ? user->password_hash : dummy_hash());
        if (!user) {
            // The same store write as a real failure, so timing says nothing.
            store.append_event("certgate", event_kind::kAuthFailed, "(unknown)",
                               "user_id=" + req.user_id + " client=" + req.client);
            result.status = AuthStatus::bad_credentials;
            if (attempt == static_cast<uint64_t>(s.lockout_failures)) {
                mc.set(ghost_lock, "1", s.lockout_time_s);
                start_new_streak(mc, req.user_id);
                result.status = AuthStatus::locked;
                result.locked_until = req.now + s.lockout_time_s;
            }
            return result;
        }
        if (!right) {
            store.record_auth_failure(user->id, user->id,
                                      "attempt=" + std::to_string(attempt) + " client=" +
                                          req.client + " purpose=" +
                                          (req.purpose == AuthPurpose::login ? "login"
                                                                             : "issuance"));
            result.status = AuthStatus::bad_credentials;
            if (attempt == static_cast<uint64_t>(s.lockout_failures)) {
                int64_t until = req.now + s.lockout_time_s;
                LockResult lr = store.lock_user(user->id, until, s.lockout_locks, "certgate");
                // Attempts still in flight count on the old streak (and are
                // refused); after the lock the user starts from zero.
                start_new_streak(mc, user->id);
                result.status = lr.blocked ? AuthStatus::blocked : AuthStatus::locked;
                result.locked_until = until;
                queue_lock_mail(s, store, *user, lr.blocked, until, &result);
            }
            return result;
        }

        // The right password: the streak ends here.
        start_new_streak(mc, user->id);
        mc.remove(key);
        if (user->state == UserState::must_register) {
            if (user->initial_password_at != 0 &&
                user->initial_password_at + kInitialPasswordLifetime < req.now) {
                result.status = AuthStatus::initial_password_expired;
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
