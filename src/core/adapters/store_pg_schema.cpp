// The PostgreSQL store's schema: its migrations (run by SqlStore::migrate),
// the same tables, columns and versions as the SQLite store's
// (store_sqlite_schema.cpp) in PostgreSQL's words, a new version added to
// both; how it finds its tables; the lock against concurrent migrations.
#include "core/adapters/store_pg.hpp"

namespace certgate::pg_store {

namespace {

// Schema migrations: entry i takes the store from version i to i + 1.
// PostgreSQL-only: BIGSERIAL ids, the append-only trigger function, and
// events.xid (the writing transaction, for the exact feed; see feed_after).
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
CREATE UNIQUE INDEX users_one_master ON users(org_id) WHERE role = 'master' AND state <> 'disabled';
CREATE TABLE certificates (
    serial     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    not_before BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    status     TEXT NOT NULL CONSTRAINT certificates_status_check
               CHECK (status IN ('issued', 'revoked', 'superseded', 'expired')),
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0,
    reason     TEXT NOT NULL DEFAULT '',
    notices    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX certificates_user ON certificates(user_id);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE events (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '',
    xid     xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX events_subject ON events(subject);
CREATE INDEX events_actor ON events(actor);
CREATE INDEX events_feed ON events(xid, id);
CREATE FUNCTION certgate_events_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'certgate events are append-only'; END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION certgate_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION certgate_events_append_only();
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
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
    // 1 -> 2: a certificate recorded at ⑥ stays 'pending' until its .p12 is handed over.
    R"sql(
ALTER TABLE certificates DROP CONSTRAINT certificates_status_check,
    ADD CONSTRAINT certificates_status_check
    CHECK (status IN ('pending', 'issued', 'revoked', 'superseded', 'expired'));
)sql",
    // 2 -> 3: a mail may expire.
    R"sql(
ALTER TABLE outbox ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
)sql",
    // 3 -> 4: the failure streaks of typed user IDs and the per-user budgets.
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

// In the connection's current schema (search_path), as every query is.
bool PgStore::has_table(const std::string& name) {
    Statement s(*this, "SELECT to_regclass(?) IS NOT NULL");
    s.bind(0, name);
    return s.step() && s.text(0) == "t";
}

bool PgStore::holds_no_tables() {
    Statement any(*this,
                  "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                  "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                  "AND c.relkind IN ('r', 'p', 'v')");
    any.step();
    return any.i64(0) == 0;
}

const char* PgStore::migration(int from) const { return kMigrations[from]; }

// Two nodes (or certgatectl runs) migrating at once: one waits.
void PgStore::lock_schema() {
    exec("SELECT pg_advisory_xact_lock(hashtext('certgate.migrate'))", "migrating the schema");
}

}  // namespace certgate::pg_store
