// The SQLite store's schema: its migrations (run by SqlStore::migrate) and
// how it finds its tables.
#include "core/adapters/store_sqlite.hpp"

namespace certgate::sqlite_store {

namespace {

// Schema migrations: entry i takes the store from version i to i + 1.
// SQLite-only here: AUTOINCREMENT (PostgreSQL: BIGSERIAL) and the triggers.
const char* const kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE certgate_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE organisations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organisations(id),
    role                TEXT NOT NULL CHECK (role IN ('master', 'general')),
    name                TEXT NOT NULL DEFAULT '',
    mail                TEXT NOT NULL DEFAULT '',
    password_hash       TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('must_register', 'active', 'disabled')),
    failure_streak      INTEGER NOT NULL DEFAULT 0,
    lock_count          INTEGER NOT NULL DEFAULT 0,
    locked_until        BIGINT NOT NULL DEFAULT 0,
    blocked             INTEGER NOT NULL DEFAULT 0,
    initial_password_at BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    last_login_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX users_org ON users(org_id);
-- R16: one master user per organisation (a disabled one may stay as history).
CREATE UNIQUE INDEX users_one_master ON users(org_id) WHERE role = 'master' AND state <> 'disabled';
CREATE TABLE certificates (
    serial     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    not_before BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('issued', 'revoked', 'superseded', 'expired')),
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0,
    reason     TEXT NOT NULL DEFAULT '',
    notices    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX certificates_user ON certificates(user_id);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_subject ON events(subject);
CREATE INDEX events_actor ON events(actor);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'certgate events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'certgate events are append-only'); END;
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    sent_at         BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
)sql",
    // 1 -> 2: a certificate recorded at ⑥ stays 'pending' until its .p12 is
    // handed over (SQLite cannot alter a CHECK: the table is rebuilt).
    R"sql(
CREATE TABLE certificates_v2 (
    serial     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    not_before BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'revoked', 'superseded', 'expired')),
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0,
    reason     TEXT NOT NULL DEFAULT '',
    notices    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO certificates_v2 (serial, user_id, not_before, not_after, status, issued_at,
                             revoked_at, reason, notices)
    SELECT serial, user_id, not_before, not_after, status, issued_at, revoked_at, reason, notices
    FROM certificates;
DROP TABLE certificates;
ALTER TABLE certificates_v2 RENAME TO certificates;
CREATE INDEX certificates_user ON certificates(user_id);
CREATE INDEX certificates_not_after ON certificates(not_after);
)sql",
    // 2 -> 3: a mail may expire (an auth code past its lifetime is not sent,
    // and its body is wiped).
    R"sql(
ALTER TABLE outbox ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
)sql",
    // 3 -> 4: the authoritative failure streak of every typed user
    // ID, real or unknown, and the per-user budgets of code tries and mails.
    R"sql(
CREATE TABLE auth_streaks (
    user_id      TEXT PRIMARY KEY,
    epoch        BIGINT NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    lock_count   INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    blocked      INTEGER NOT NULL DEFAULT 0,
    expires_at   BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_streaks_expiry ON auth_streaks(expires_at);
CREATE TABLE auth_budgets (
    budget       TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0
);
)sql",
    // 4 -> 5: the page language each user last chose, for their own mails
    // (expiry, lock, block, code); '' = never chose, certgate_language decides.
    R"sql(
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT '' CHECK (language IN ('', 'ja', 'en'));
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == Store::kSchemaVersion,
              "one migration per schema version");

}  // namespace

const char* SqliteStore::migration(int from) const { return kMigrations[from]; }

bool SqliteStore::has_table(const std::string& name) {
    Statement s(*this, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    s.bind(0, name);
    return s.step();
}

bool SqliteStore::holds_no_tables() {
    Statement any(*this, "SELECT count(*) FROM sqlite_master");
    any.step();
    return any.i64(0) == 0;
}

}  // namespace certgate::sqlite_store
