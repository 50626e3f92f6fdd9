// The SQLite store's schema: its words in the shared migrations (run by
// SqlStore::migrate) and how it finds its tables.
#include "core/adapters/store_sqlite.hpp"

namespace certgate::sqlite_store {

namespace {

// SQLite's words in the shared migrations (store_sql_schema.cpp):
// AUTOINCREMENT ids, triggers that refuse an UPDATE or DELETE of an event,
// and at 1 -> 2 the rebuilt certificates table (SQLite cannot alter a CHECK).
const sql_store::Ddl kDdl = {
    // id
    "INTEGER PRIMARY KEY AUTOINCREMENT",
    // status_check
    "",
    // event_columns
    "",
    // event_rules
    R"sql(CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'certgate events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'certgate events are append-only'); END;)sql",
    // pending_status
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
};

}  // namespace

const sql_store::Ddl& SqliteStore::ddl() const { return kDdl; }

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
