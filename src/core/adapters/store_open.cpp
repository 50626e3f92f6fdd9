// Which adapter a certgate_store URI names.
#include "core/ports/store.hpp"

namespace certgate {

std::unique_ptr<Store> open_sqlite_store(const std::string& path, bool create);
std::unique_ptr<Store> open_pg_store(const std::string& uri);

std::unique_ptr<Store> Store::open(const std::string& uri, bool create) {
    const std::string sqlite_prefix = "sqlite:";
    if (uri.compare(0, sqlite_prefix.size(), sqlite_prefix) == 0)
        return open_sqlite_store(uri.substr(sqlite_prefix.size()), create);
    // The database must exist (createdb); create is for SQLite's file.
    if (uri.rfind("postgres://", 0) == 0 || uri.rfind("postgresql://", 0) == 0)
        return open_pg_store(uri);
    if (uri.empty()) throw StoreError("no store given: set certgate_store or --store");
    auto colon = uri.find(':');
    auto slash = uri.find('/');
    if (colon != std::string::npos && (slash == std::string::npos || colon < slash))
        throw StoreError(
            "store " + uri +
            ": unknown scheme (use sqlite:/path/to/file.db or postgresql://user@host/db)");
    return open_sqlite_store(uri, create);
}

}  // namespace certgate
