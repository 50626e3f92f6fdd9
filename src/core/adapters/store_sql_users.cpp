// The SQL stores: organisations, users, and the rows of the lockout (R10,
// R21, R22): failure streaks and budgets. The rules that decide on them are
// the app's (policy/lockout.hpp); here they are only read and written. On
// PostgreSQL every check-then-write locks the row it checks first (FOR
// UPDATE), so writers on other nodes wait for it.

#include "core/adapters/store_sql.hpp"

namespace certgate::sql_store {

// --- organisations ---------------------------------------------------------------

void SqlStore::add_org(const Organisation& org, const std::string& actor) {
    write([&] {
        if (find_org(org.id)) throw StoreConflict("organisation " + org.id + " already exists");
        Statement s(*this, "INSERT INTO organisations (id, name, created_at) VALUES (?, ?, ?)");
        s.bind(0, org.id).bind(1, org.name).bind(2, now()).run();
        append_event(actor, event_kind::kOrgAdded, org.id, "name=" + org.name);
    });
}

std::optional<Organisation> SqlStore::find_org(const std::string& id) {
    Statement s(*this, "SELECT id, name, created_at FROM organisations WHERE id = ?");
    s.bind(0, id);
    if (!s.step()) return std::nullopt;
    return Organisation{s.text(0), s.text(1), s.i64(2)};
}

std::vector<Organisation> SqlStore::list_orgs() {
    Statement s(*this, "SELECT id, name, created_at FROM organisations ORDER BY id");
    std::vector<Organisation> out;
    while (s.step()) out.push_back(Organisation{s.text(0), s.text(1), s.i64(2)});
    return out;
}

// --- users -------------------------------------------------------------------------

User SqlStore::read_user(const Statement& s) {
    User u;
    u.id = s.text(0);
    u.org = s.text(1);
    u.role = parse_role(s.text(2)).value_or(Role::general);
    u.name = s.text(3);
    u.mail = s.text(4);
    u.password_hash = s.text(5);
    u.state = parse_user_state(s.text(6)).value_or(UserState::disabled);
    u.failure_streak = s.i32(7);
    u.lock_count = s.i32(8);
    u.locked_until = s.i64(9);
    u.blocked = s.i32(10) != 0;
    u.initial_password_at = s.i64(11);
    u.created_at = s.i64(12);
    u.last_login_at = s.i64(13);
    u.language = s.text(14);
    return u;
}

std::optional<User> SqlStore::find_user(const std::string& id) {
    std::string sql = std::string("SELECT ") + kUserColumns + " FROM users WHERE id = ?";
    Statement s(*this, sql);
    s.bind(0, id);
    if (!s.step()) return std::nullopt;
    return read_user(s);
}

// Inside write(): the user's row, locked against other writers (where rows
// are) until the transaction ends.
User SqlStore::require_user(const std::string& id) {
    std::string sql =
        std::string("SELECT ") + kUserColumns + " FROM users WHERE id = ?" + for_update();
    Statement s(*this, sql);
    s.bind(0, id);
    if (!s.step()) throw StoreNotFound("user " + id + " does not exist");
    return read_user(s);
}

std::vector<User> SqlStore::list_users(const std::string& org) {
    std::string sql = std::string("SELECT ") + kUserColumns + " FROM users" +
                      (org.empty() ? "" : " WHERE org_id = ?") + " ORDER BY org_id, role DESC, id";
    Statement s(*this, sql);
    if (!org.empty()) s.bind(0, org);
    std::vector<User> out;
    while (s.step()) out.push_back(read_user(s));
    return out;
}

void SqlStore::add_user(const User& u, const std::string& actor, const std::string& detail) {
    write([&] {
        // The organisation's row, locked: two masters added at once on two
        // nodes are checked one after the other (R16).
        Statement org(*this, "SELECT id FROM organisations WHERE id = ?" + for_update());
        org.bind(0, u.org);
        if (!org.step()) throw StoreNotFound("organisation " + u.org + " does not exist");
        if (find_user(u.id)) throw StoreConflict("user " + u.id + " already exists");
        if (u.role == Role::master) {
            Statement m(*this,
                        "SELECT id FROM users WHERE org_id = ? AND role = 'master' "
                        "AND state <> 'disabled'");
            m.bind(0, u.org);
            if (m.step())
                throw StoreConflict("organisation " + u.org + " already has master user " +
                                    m.text(0));
        }
        const int64_t t = now();
        std::string sql = std::string("INSERT INTO users (") + kUserColumns +
                          ") VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, ?, 0, '')";
        Statement s(*this, sql);
        s.bind(0, u.id).bind(1, u.org).bind(2, std::string(to_string(u.role)));
        s.bind(3, u.name).bind(4, u.mail).bind(5, u.password_hash);
        s.bind(6, std::string(to_string(u.state)));
        s.bind(7, u.state == UserState::must_register ? t : int64_t{0}).bind(8, t).run();
        std::string d = std::string("org=") + u.org + " role=" + to_string(u.role) +
                        " mail=" + u.mail + " state=" + to_string(u.state);
        if (!detail.empty()) d += " " + detail;
        // Failures typed for this ID before it existed are not its own.
        end_streak(u.id);
        append_event(actor, event_kind::kUserAdded, u.id, d);
    });
}

void SqlStore::reset_user(const std::string& id, const std::string& initial_hash,
                          const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.state == UserState::disabled) throw StoreConflict("user " + id + " is disabled");
        Statement s(*this,
                    "UPDATE users SET password_hash = ?, state = 'must_register', "
                    "failure_streak = 0, lock_count = 0, locked_until = 0, blocked = 0, "
                    "initial_password_at = ? WHERE id = ?");
        s.bind(0, initial_hash).bind(1, now()).bind(2, id).run();
        end_streak(id);
        append_event(actor, event_kind::kUserReset, id,
                     "new initial password; must register again; sessions end");
    });
}

void SqlStore::set_password(const std::string& id, const std::string& hash,
                            const std::string& actor, const std::string& detail) {
    write([&] {
        User u = require_user(id);
        if (u.state == UserState::disabled) throw StoreConflict("user " + id + " is disabled");
        Statement s(*this,
                    "UPDATE users SET password_hash = ?, state = 'active', "
                    "initial_password_at = 0 WHERE id = ?");
        s.bind(0, hash).bind(1, id).run();
        append_event(actor, event_kind::kPasswordSet, id, detail);
    });
}

void SqlStore::complete_registration(const std::string& id, const std::string& hash,
                                     const std::string& mail, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.state != UserState::must_register)
            throw StoreConflict("user " + id + " is " + to_string(u.state) +
                                ", not waiting for registration");
        Statement s(*this,
                    "UPDATE users SET password_hash = ?, mail = ?, state = 'active', "
                    "initial_password_at = 0 WHERE id = ?");
        s.bind(0, hash).bind(1, mail).bind(2, id).run();
        append_event(actor, event_kind::kUserRegistered, id, "mail=" + mail);
    });
}

void SqlStore::set_mail(const std::string& id, const std::string& mail, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        Statement s(*this, "UPDATE users SET mail = ? WHERE id = ?");
        s.bind(0, mail).bind(1, id).run();
        append_event(actor, event_kind::kMailChanged, id, "from=" + u.mail + " to=" + mail);
    });
}

void SqlStore::set_language(const std::string& id, const std::string& language,
                            const std::string& actor) {
    if (!language.empty() && language != "ja" && language != "en")
        throw StoreError("language '" + language + "' is not ja or en");
    write([&] {
        User u = require_user(id);
        Statement s(*this, "UPDATE users SET language = ? WHERE id = ?");
        s.bind(0, language).bind(1, id).run();
        append_event(actor, event_kind::kLanguageSet, id,
                     "from=" + (u.language.empty() ? std::string("-") : u.language) +
                         " to=" + (language.empty() ? std::string("-") : language));
    });
}

// --- authentication streaks and budgets (R10, R21, R22) -----------------------------

// Ends the ID's current streak: the next attempt counts from zero under a new
// epoch, so memcached's reservations of the old one no longer count.
void SqlStore::end_streak(const std::string& id) {
    Statement s(*this,
                "INSERT INTO auth_streaks (user_id, epoch, failures, updated_at) "
                "VALUES (?, 1, 0, ?) ON CONFLICT (user_id) DO UPDATE SET "
                "epoch = auth_streaks.epoch + 1, failures = 0, updated_at = excluded.updated_at");
    s.bind(0, id).bind(1, now()).run();
}

// lock: held against other writers (where rows are locked), inside write().
AuthStreak SqlStore::read_streak(const std::string& id, bool lock) {
    AuthStreak st;
    Statement s(*this, std::string("SELECT epoch, failures, lock_count, locked_until, blocked "
                                   "FROM auth_streaks WHERE user_id = ?") +
                           (lock ? for_update() : ""));
    s.bind(0, id);
    if (s.step()) {
        st.epoch = s.i64(0);
        st.failures = s.i32(1);
        st.lock_count = s.i32(2);
        st.locked_until = s.i64(3);
        st.blocked = s.i32(4) != 0;
    }
    return st;
}

AuthStreak SqlStore::auth_streak(const std::string& id) { return read_streak(id, false); }

void SqlStore::prune_auth_streaks(int64_t now) {
    Statement prune(*this,
                    "DELETE FROM auth_streaks WHERE expires_at > 0 AND expires_at < ? "
                    "AND blocked = 0");
    prune.bind(0, now).run();
}

void SqlStore::save_streak_failures(const std::string& id, bool known, int64_t epoch, int failures,
                                    int64_t expires_at) {
    write([&] {
        if (known) {
            Statement m(*this, "UPDATE users SET failure_streak = ? WHERE id = ?");
            m.bind(0, failures).bind(1, id).run();
        }
        Statement u(*this,
                    "INSERT INTO auth_streaks (user_id, epoch, failures, expires_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                    "failures = excluded.failures, expires_at = excluded.expires_at, "
                    "updated_at = excluded.updated_at");
        u.bind(0, id).bind(1, epoch).bind(2, failures).bind(3, expires_at).bind(4, now()).run();
    });
}

void SqlStore::save_lock(const std::string& id, bool known, const LockState& lock,
                         int64_t expires_at, const std::string& actor) {
    write([&] {
        if (known) {
            require_user(id);
            Statement s(*this,
                        "UPDATE users SET lock_count = ?, locked_until = ?, failure_streak = 0, "
                        "blocked = ? WHERE id = ?");
            s.bind(0, lock.lock_count).bind(1, lock.until).bind(2, lock.blocked ? 1 : 0);
            s.bind(3, id).run();
            end_streak(id);
            append_event(
                actor, event_kind::kUserLocked, id,
                "until=" + utc_time(lock.until) + " lock_count=" + std::to_string(lock.lock_count));
            if (lock.blocked)
                append_event(actor, event_kind::kUserBlocked, id,
                             "after " + std::to_string(lock.lock_count) + " locks");
            return;
        }
        Statement u(*this,
                    "INSERT INTO auth_streaks (user_id, epoch, failures, lock_count, locked_until, "
                    "blocked, expires_at, updated_at) VALUES (?, 1, 0, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET epoch = auth_streaks.epoch + 1, "
                    "failures = 0, lock_count = excluded.lock_count, "
                    "locked_until = excluded.locked_until, blocked = excluded.blocked, "
                    "expires_at = excluded.expires_at, updated_at = excluded.updated_at");
        u.bind(0, id).bind(1, lock.lock_count).bind(2, lock.until);
        u.bind(3, lock.blocked ? 1 : 0).bind(4, lock.blocked ? int64_t{0} : expires_at);
        u.bind(5, now()).run();
        append_event(actor, "auth.unknown_locked", "(unknown)",
                     "user_id=" + id + " until=" + utc_time(lock.until) + " lock_count=" +
                         std::to_string(lock.lock_count) + (lock.blocked ? " blocked" : ""));
    });
}

BudgetTake SqlStore::peek_budget(const std::string& key, int limit, int64_t window_s) {
    BudgetTake b;
    int64_t t = now();
    Statement s(*this, "SELECT window_start, used FROM auth_budgets WHERE budget = ?");
    s.bind(0, key);
    int64_t start = t;
    if (s.step() && s.i64(0) + window_s > t) {
        start = s.i64(0);
        b.used = s.i32(1);
    }
    b.resets_at = start + window_s;
    b.allowed = b.used < limit;
    return b;
}

BudgetTake SqlStore::take_budget(const std::string& key, int limit, int64_t window_s) {
    BudgetTake b;
    write([&] {
        b = BudgetTake{};
        int64_t t = now();
        Statement s = lock_budget(key, t);
        int64_t start = t;
        int used = 0;
        if (s.step() && s.i64(0) + window_s > t) {
            start = s.i64(0);
            used = s.i32(1);
        }
        b.resets_at = start + window_s;
        b.allowed = used < limit;
        if (!b.allowed) {
            b.used = used;
            return;
        }
        b.used = used + 1;
        b.reached = b.used == limit;
        save_budget(key, start, b.used);
    });
    return b;
}

void SqlStore::record_login(const std::string& id, const std::string& actor,
                            const std::string& detail) {
    write([&] {
        require_user(id);
        Statement s(*this,
                    "UPDATE users SET failure_streak = 0, lock_count = 0, last_login_at = ? "
                    "WHERE id = ?");
        s.bind(0, now()).bind(1, id).run();
        end_streak(id);
        append_event(actor, event_kind::kLogin, id, detail);
    });
}

void SqlStore::unlock_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (!u.locked_at(now()) && u.failure_streak == 0)
            throw StoreConflict("user " + id + " is not locked");
        Statement s(*this, "UPDATE users SET locked_until = 0, failure_streak = 0 WHERE id = ?");
        s.bind(0, id).run();
        end_streak(id);
        append_event(actor, event_kind::kUserUnlocked, id, "");
    });
}

void SqlStore::block_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.blocked) throw StoreConflict("user " + id + " is already blocked");
        Statement s(*this, "UPDATE users SET blocked = 1 WHERE id = ?");
        s.bind(0, id).run();
        append_event(actor, event_kind::kUserBlocked, id, "by " + actor);
    });
}

void SqlStore::unblock_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (!u.blocked) throw StoreConflict("user " + id + " is not blocked");
        Statement s(*this,
                    "UPDATE users SET blocked = 0, lock_count = 0, locked_until = 0, "
                    "failure_streak = 0 WHERE id = ?");
        s.bind(0, id).run();
        end_streak(id);
        append_event(actor, event_kind::kUserUnblocked, id, "");
    });
}

void SqlStore::disable_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.state == UserState::disabled)
            throw StoreConflict("user " + id + " is already disabled");
        Statement s(*this, "UPDATE users SET state = 'disabled' WHERE id = ?");
        s.bind(0, id).run();
        append_event(actor, event_kind::kUserDisabled, id, "");
    });
}

}  // namespace certgate::sql_store
