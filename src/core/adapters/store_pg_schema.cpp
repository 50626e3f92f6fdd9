// The PostgreSQL store's schema: its words in the shared migrations (run by
// SqlStore::migrate), how it finds its tables, and the lock against
// concurrent migrations.
#include "core/adapters/store_pg.hpp"

namespace certgate::pg_store {

namespace {

// PostgreSQL's words in the shared migrations (store_sql_schema.cpp):
// BIGSERIAL ids, events.xid (the writing transaction, for the exact feed;
// see feed_after) with its index, the append-only trigger function, and at
// 1 -> 2 the named status CHECK replaced.
const sql_store::Ddl kDdl = {
    // id
    "BIGSERIAL PRIMARY KEY",
    // status_check
    "CONSTRAINT certificates_status_check\n               ",
    // event_columns
    ",\n    xid     xid8 NOT NULL DEFAULT pg_current_xact_id()",
    // event_rules
    R"sql(CREATE INDEX events_feed ON events(xid, id);
CREATE FUNCTION certgate_events_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'certgate events are append-only'; END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION certgate_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION certgate_events_append_only();)sql",
    // pending_status
    R"sql(
ALTER TABLE certificates DROP CONSTRAINT certificates_status_check,
    ADD CONSTRAINT certificates_status_check
    CHECK (status IN ('pending', 'issued', 'revoked', 'superseded', 'expired'));
)sql",
};

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

const sql_store::Ddl& PgStore::ddl() const { return kDdl; }

// Two nodes (or certgatectl runs) migrating at once: one waits.
void PgStore::lock_schema() {
    exec("SELECT pg_advisory_xact_lock(hashtext('certgate.migrate'))", "migrating the schema");
}

}  // namespace certgate::pg_store
