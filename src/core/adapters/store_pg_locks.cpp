// The PostgreSQL store: the writes that differ from SQLite's because many
// nodes write at once. A row to be locked is made if missing, then locked
// (FOR UPDATE) before it is read, so that concurrent writers on any node
// count one after the other; the CRL kept is the one with the higher number.
#include "core/adapters/store_pg.hpp"

namespace certgate::pg_store {

// As Keycloak does. A made row is all zero, as a missing one reads, and goes
// at the next prune unless a save gives it a lifetime.
AuthStreak PgStore::lock_auth_streak(const std::string& id) {
    AuthStreak st;
    write([&] {
        Statement add(*this,
                      "INSERT INTO auth_streaks (user_id, epoch, failures, expires_at, updated_at) "
                      "VALUES (?, 0, 0, ?, ?) ON CONFLICT (user_id) DO NOTHING");
        add.bind(0, id).bind(1, now()).bind(2, now()).run();
        st = read_streak(id, true);
    });
    return st;
}

// Takes on every node count one by one.
Statement PgStore::lock_budget(const std::string& key, int64_t t) {
    Statement add(*this,
                  "INSERT INTO auth_budgets (budget, window_start, used) VALUES (?, ?, 0) "
                  "ON CONFLICT (budget) DO NOTHING");
    add.bind(0, key).bind(1, t).run();
    Statement s(*this, "SELECT window_start, used FROM auth_budgets WHERE budget = ? FOR UPDATE");
    s.bind(0, key);
    return s;
}

void PgStore::save_budget(const std::string& key, int64_t window_start, int used) {
    Statement u(*this, "UPDATE auth_budgets SET window_start = ?, used = ? WHERE budget = ?");
    u.bind(0, window_start).bind(1, used).bind(2, key).run();
}

// Two nodes signing at once: the higher number stays, so it only grows.
void PgStore::save_crl(const StoredCrl& crl) {
    const std::string v = crl_to_text(crl);
    write([&] {
        Statement s(*this,
                    "INSERT INTO certgate_meta (key, value) VALUES ('crl', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE "
                    "split_part(certgate_meta.value, ' ', 1)::bigint <= "
                    "split_part(excluded.value, ' ', 1)::bigint");
        s.bind(0, v).run();
    });
}

}  // namespace certgate::pg_store
