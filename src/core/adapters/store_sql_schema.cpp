// The SQL stores' schema version and migration run; the migrations
// themselves are each adapter's (store_sqlite_schema.cpp, store_pg_schema.cpp),
// the same tables, columns and versions in each database's words.
#include <cstdlib>

#include "core/adapters/store_sql.hpp"

namespace certgate::sql_store {

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
