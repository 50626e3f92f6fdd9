// The SQL stores' schema: the migrations, the same tables, columns and
// versions on both databases (a new version is added here, with any word
// of its own in both adapters), the version check and the migration run.
#include <cstdlib>
#include <utility>

#include "core/adapters/store_sql.hpp"

namespace certgate::sql_store {

namespace {

// Schema migrations: entry i takes the store from version i to i + 1. A
// word in braces is each database's own (SqlStore::Ddl, store_sqlite_schema.cpp
// and store_pg_schema.cpp): ids it numbers, the append-only rules of events,
// PostgreSQL's events.xid for the exact feed, and the 1 -> 2 change of a CHECK.
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
    status     TEXT NOT NULL {status_check}CHECK (status IN ('issued', 'revoked', 'superseded', 'expired')),
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0,
    reason     TEXT NOT NULL DEFAULT '',
    notices    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX certificates_user ON certificates(user_id);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE events (
    id      {id},
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''{event_columns}
);
CREATE INDEX events_subject ON events(subject);
CREATE INDEX events_actor ON events(actor);
{event_rules}
CREATE TABLE outbox (
    id              {id},
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
    // handed over.
    "{pending_status}",
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

// kMigrations[from] in the adapter's words.
std::string SqlStore::migration(int from) const {
    const Ddl& d = ddl();
    const std::pair<std::string, const char*> words[] = {
        {"{id}", d.id},
        {"{status_check}", d.status_check},
        {"{event_columns}", d.event_columns},
        {"{event_rules}", d.event_rules},
        {"{pending_status}", d.pending_status},
    };
    std::string sql = kMigrations[from];
    for (const auto& [word, text] : words) {
        const std::string with = text;
        for (size_t at = sql.find(word); at != std::string::npos;
             at = sql.find(word, at + with.size()))
            sql.replace(at, word.size(), with);
    }
    return sql;
}

int SqlStore::schema_version() {
    if (!has_table("certgate_meta")) return holds_no_tables() ? 0 : -1;
    Statement s(*this, "SELECT value FROM certgate_meta WHERE key = 'schema_version'");
    if (!s.step()) return -1;
    return std::atoi(s.text(0).c_str());
}

void SqlStore::migrate() {
    write([&] {
        lock_schema();
        int from = schema_version();
        if (from < 0)
            throw StoreError(describe() +
                             " holds other tables but no certgate schema: not a certgate store");
        if (from > kSchemaVersion) check_schema(*this);
        if (from == kSchemaVersion) return;
        for (int v = from; v < kSchemaVersion; ++v) exec(migration(v), "migrating the schema");
        Statement s(*this,
                    "INSERT INTO certgate_meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
        s.bind(0, std::to_string(kSchemaVersion)).run();
        if (from == 0)
            append_event("certgate", event_kind::kStoreInit, "store",
                         "schema=" + std::to_string(kSchemaVersion));
        else
            append_event("certgate", event_kind::kStoreMigrated, "store",
                         "from=" + std::to_string(from) + " to=" + std::to_string(kSchemaVersion));
    });
}

void SqlStore::ping() {
    Statement s(*this, "SELECT 1 FROM certgate_meta LIMIT 1");
    s.step();
}

}  // namespace certgate::sql_store
