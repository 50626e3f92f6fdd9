// The SQL stores: the statement handle and the row-lock clause.
#include "core/adapters/store_sql.hpp"

namespace certgate::sql_store {

// The shared code reaches the adapter's query through Query's virtual calls,
// not a template: a call costs nothing next to the database's round trip or
// disk sync, and store_sql_*.cpp include neither sqlite3.h nor libpq-fe.h.
Statement::Statement(SqlStore& store, const std::string& sql) : query_(store.prepare(sql)) {}

std::string SqlStore::for_update(const char* order, bool skip_locked) const {
    if (!locks_rows()) return "";
    return std::string(order) + (skip_locked ? " FOR UPDATE SKIP LOCKED" : " FOR UPDATE");
}

}  // namespace certgate::sql_store
