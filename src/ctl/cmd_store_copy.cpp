// certgatectl store copy --from URI --to URI: a single node's SQLite store
// into an empty PostgreSQL store (the move to a fleet), ids kept, then
// checked: the rows and a checksum of every table on both sides.
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

// Every table of the schema, its key (the copy and the checksum go in key
// order; text keys in byte order on both sides) and whether its id comes
// from a sequence on PostgreSQL.
struct Table {
    const char* name;
    const char* key;
    bool serial;
};
const Table kTables[] = {
    {"certgate_meta", "key", false},
    {"organisations", "id", false},
    {"users", "id", false},
    {"certificates", "serial", false},
    {"events", "id", true},
    {"outbox", "id", true},
    {"auth_streaks", "user_id", false},
    {"auth_budgets", "budget", false},
};

std::string sqlite_path(const std::string& uri) {
    if (uri.rfind("sqlite:", 0) == 0) return uri.substr(7);
    if (!uri.empty() && uri.find("://") == std::string::npos) return uri;
    throw UsageError("--from must be an SQLite store (sqlite:/path/file.db), not " + uri);
}

// Row by row, as text: the same bytes from either side for the same data.
class Checksum {
  public:
    Checksum() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
    ~Checksum() { EVP_MD_CTX_free(ctx_); }
    Checksum(const Checksum&) = delete;
    Checksum& operator=(const Checksum&) = delete;
    void field(const std::string& v) {
        const std::string len = std::to_string(v.size()) + ":";
        EVP_DigestUpdate(ctx_, len.data(), len.size());
        EVP_DigestUpdate(ctx_, v.data(), v.size());
    }
    void end_row() { EVP_DigestUpdate(ctx_, "\n", 1); }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx_, md, &n);
        std::string out;
        char b[3];
        for (unsigned int i = 0; i < n; ++i) {
            std::snprintf(b, sizeof b, "%02x", md[i]);
            out += b;
        }
        return out;
    }

  private:
    EVP_MD_CTX* ctx_;
};

struct Sum {
    int64_t rows = 0;
    std::string checksum;
};

class Sqlite {
  public:
    explicit Sqlite(const std::string& path) {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
            throw StoreError("store sqlite:" + path + ": cannot open: " + sqlite3_errmsg(db_));
    }
    ~Sqlite() { sqlite3_close_v2(db_); }
    Sqlite(const Sqlite&) = delete;
    Sqlite& operator=(const Sqlite&) = delete;

    std::vector<std::string> columns(const char* table) {
        std::vector<std::string> out;
        each(std::string("SELECT name FROM pragma_table_info('") + table + "') ORDER BY cid",
             [&](const std::vector<std::string>& row) { out.push_back(row[0]); });
        return out;
    }
    template <class F>
    void each(const std::string& sql, F f) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
            throw StoreError(std::string("source store: ") + sqlite3_errmsg(db_));
        std::vector<std::string> row;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            row.clear();
            for (int i = 0; i < sqlite3_column_count(st); ++i) {
                auto p = sqlite3_column_text(st, i);
                row.emplace_back(p ? reinterpret_cast<const char*>(p) : "",
                                 static_cast<size_t>(sqlite3_column_bytes(st, i)));
            }
            f(row);
        }
        std::string err = sqlite3_errmsg(db_);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) throw StoreError("source store: " + err);
    }

  private:
    sqlite3* db_ = nullptr;
};

class Pg {
  public:
    Pg(const std::string& uri, std::string shown) : shown_(std::move(shown)) {
        conn_ = PQconnectdb(uri.c_str());
        if (PQstatus(conn_) != CONNECTION_OK)
            throw StoreError(shown_ + ": cannot connect: " + message());
    }
    ~Pg() { PQfinish(conn_); }
    Pg(const Pg&) = delete;
    Pg& operator=(const Pg&) = delete;

    // Runs sql; f gets each row as text.
    template <class F>
    void each(const std::string& sql, const std::vector<std::string>& params, F f) {
        std::vector<const char*> values;
        for (const auto& p : params) values.push_back(p.c_str());
        PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                   values.data(), nullptr, nullptr, 0);
        const auto st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            std::string msg = PQresultErrorMessage(r);
            PQclear(r);
            while (!msg.empty() && msg.back() == '\n') msg.pop_back();
            throw StoreError(shown_ + ": " + msg);
        }
        std::vector<std::string> row;
        for (int i = 0; i < PQntuples(r); ++i) {
            row.clear();
            for (int c = 0; c < PQnfields(r); ++c)
                row.emplace_back(PQgetvalue(r, i, c), static_cast<size_t>(PQgetlength(r, i, c)));
            f(row);
        }
        PQclear(r);
    }
    void exec(const std::string& sql, const std::vector<std::string>& params = {}) {
        each(sql, params, [](const std::vector<std::string>&) {});
    }
    std::string value(const std::string& sql) {
        std::string v;
        each(sql, {}, [&](const std::vector<std::string>& row) { v = row.at(0); });
        return v;
    }

  private:
    std::string message() const {
        std::string m = PQerrorMessage(conn_);
        while (!m.empty() && m.back() == '\n') m.pop_back();
        for (char& c : m)
            if (c == '\n') c = ' ';
        return m;
    }
    PGconn* conn_;
    std::string shown_;
};

std::string column_list(const std::vector<std::string>& cols) {
    std::string s;
    for (const auto& c : cols) s += (s.empty() ? "" : ", ") + c;
    return s;
}

// An empty target: no table yet, or only what `certgatectl init` writes.
void require_empty(Store& target, Pg& pg) {
    const int v = target.schema_version();
    if (v == 0) return;
    const std::string where = target.describe();
    if (v != Store::kSchemaVersion) {
        check_schema(target);  // says what is wrong with it
        throw StoreError(where + " is not an empty certgate store");
    }
    int64_t rows = 0;
    for (const Table& t : kTables)
        rows += std::stoll(pg.value(std::string("SELECT count(*) FROM ") + t.name));
    const std::string inits = pg.value("SELECT count(*) FROM events WHERE kind = 'store.init'");
    // certgate_meta's schema_version and the one store.init event.
    if (rows != 2 || inits != "1")
        throw StoreError(where + " is not empty (" + std::to_string(rows) +
                         " rows): store copy writes only into an empty store; give it a new "
                         "database (or schema) and do not use it before the copy");
}

}  // namespace

int cmd_store_copy(Context& ctx) {
    const std::string from = ctx.args.value("--from");
    const std::string to = ctx.args.value("--to");
    if (from.empty() || to.empty()) throw UsageError("store copy needs --from URI and --to URI");
    if (to.rfind("postgresql://", 0) != 0 && to.rfind("postgres://", 0) != 0)
        throw UsageError("--to must be a PostgreSQL store (postgresql://...), not " + to);
    const std::string path = sqlite_path(from);
    auto source_store = Store::open(from);
    check_schema(*source_store);
    auto target = Store::open(to);
    const std::string shown = target->describe();
    Pg pg(to, shown);
    require_empty(*target, pg);
    target->migrate();  // nothing to do if it was init'ed already

    Sqlite src(path);
    // One transaction: a failed copy leaves the target as it was (migrated).
    pg.exec("BEGIN");
    pg.exec("LOCK TABLE certgate_meta IN EXCLUSIVE MODE");
    pg.exec("DELETE FROM certgate_meta");
    // The target's own store.init event gives way to the source's history.
    pg.exec("ALTER TABLE events DISABLE TRIGGER events_no_update");
    pg.exec("DELETE FROM events");
    pg.exec("ALTER TABLE events ENABLE TRIGGER events_no_update");
    std::vector<std::vector<std::string>> cols_of;
    for (const Table& t : kTables) {
        auto cols = src.columns(t.name);
        if (cols.empty()) throw StoreError("source store has no table " + std::string(t.name));
        cols_of.push_back(cols);
        std::string marks;
        for (size_t i = 0; i < cols.size(); ++i) marks += (i ? ", $" : "$") + std::to_string(i + 1);
        const std::string insert = std::string("INSERT INTO ") + t.name + " (" + column_list(cols) +
                                   ") VALUES (" + marks + ")";
        src.each(
            std::string("SELECT ") + column_list(cols) + " FROM " + t.name + " ORDER BY " + t.key,
            [&](const std::vector<std::string>& row) { pg.exec(insert, row); });
        if (t.serial)
            pg.exec(std::string("SELECT setval(pg_get_serial_sequence('") + t.name + "', '" +
                    t.key + "'), coalesce((SELECT max(" + t.key + ") FROM " + t.name +
                    "), 0) + 1, false)");
    }
    pg.exec("COMMIT");

    // Both sides read again, in the same order, as text.
    bool same = true;
    Json tables = Json::array();
    if (!ctx.json)
        std::cout << "copied " << source_store->describe() << " to " << shown << "\n"
                  << "  table          rows (from / to)   sha256 (from / to)\n";
    for (size_t i = 0; i < std::size(kTables); ++i) {
        const Table& t = kTables[i];
        const std::string cols = column_list(cols_of[i]);
        Sum a, b;
        Checksum ca, cb;
        auto add = [](Sum& s, Checksum& c, const std::vector<std::string>& row) {
            ++s.rows;
            for (const auto& v : row) c.field(v);
            c.end_row();
        };
        src.each(std::string("SELECT ") + cols + " FROM " + t.name + " ORDER BY " + t.key,
                 [&](const std::vector<std::string>& row) { add(a, ca, row); });
        const std::string order = t.serial ? t.key : std::string(t.key) + " COLLATE \"C\"";
        pg.each(std::string("SELECT ") + cols + " FROM " + t.name + " ORDER BY " + order, {},
                [&](const std::vector<std::string>& row) { add(b, cb, row); });
        a.checksum = ca.hex();
        b.checksum = cb.hex();
        const bool ok = a.rows == b.rows && a.checksum == b.checksum;
        same = same && ok;
        if (ctx.json) {
            tables.push_back(Json{{"table", t.name},
                                  {"rows_from", a.rows},
                                  {"rows_to", b.rows},
                                  {"sha256_from", a.checksum},
                                  {"sha256_to", b.checksum},
                                  {"same", ok}});
        } else {
            char line[256];
            std::snprintf(line, sizeof line, "  %-14s %7lld / %-7lld   %.16s / %.16s %s\n", t.name,
                          static_cast<long long>(a.rows), static_cast<long long>(b.rows),
                          a.checksum.c_str(), b.checksum.c_str(), ok ? "ok" : "DIFFERENT");
            std::cout << line;
        }
    }
    if (ctx.json)
        print_json(Json{
            {"from", source_store->describe()}, {"to", shown}, {"tables", tables}, {"same", same}});
    if (!same)
        throw StoreError("store copy: the copy differs from " + source_store->describe() +
                         " (see the table above); do not use " + shown);
    if (!ctx.json) std::cout << "every table has the same rows and checksum on both sides\n";
    return kOk;
}

}  // namespace certgate::ctl
