// The PostgreSQL store: one database shared by every node of a fleet and by
// certgatectl. Its queries are mostly SqlStore's (store_sql_*.cpp), shared
// with the SQLite store. This file: the connection (made lazily, remade
// after the server went away), the write transaction and the error mapping.
#include "core/adapters/store_pg.hpp"

#include <cstdlib>
#include <cstring>
#include <memory>

namespace certgate::pg_store {

namespace {

// The ? placeholders of sql as $1..$n (not inside quoted literals).
std::string numbered(const std::string& sql) {
    std::string out;
    out.reserve(sql.size() + 16);
    int n = 0;
    bool quoted = false;
    for (char c : sql) {
        if (c == '\'') quoted = !quoted;
        if (c == '?' && !quoted) {
            out += '$' + std::to_string(++n);
            continue;
        }
        out += c;
    }
    return out;
}

// libpq's messages end in a newline and may hold several lines.
std::string one_line(const char* msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (char& c : s)
        if (c == '\n' || c == '\t') c = ' ';
    return s;
}

struct ConninfoDeleter {
    void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using Conninfo = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;

Conninfo parse_conninfo(const std::string& uri, const std::string& shown) {
    char* err = nullptr;
    Conninfo opts(PQconninfoParse(uri.c_str(), &err));
    if (!opts) {
        std::string msg = one_line(err);
        PQfreemem(err);
        throw StoreError("store " + shown + ": not a valid PostgreSQL URI: " + msg);
    }
    return opts;
}

std::string option(const Conninfo& opts, const char* key) {
    for (PQconninfoOption* o = opts.get(); o->keyword; ++o)
        if (std::strcmp(o->keyword, key) == 0 && o->val) return o->val;
    return "";
}

void quiet_notices(void*, const char*) {}

}  // namespace

std::string redact_uri(const std::string& uri) {
    std::string out = uri;
    const size_t scheme = out.find("://");
    if (scheme != std::string::npos) {
        const size_t start = scheme + 3;
        const size_t end = out.find_first_of("/?", start);
        const size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
        if (at != std::string::npos && at >= start) {
            const size_t colon = out.find(':', start);
            if (colon != std::string::npos && colon < at) out.erase(colon, at - colon);
        }
    }
    // password=... among the query parameters
    for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p)) {
        const bool param = p > 0 && (out[p - 1] == '?' || out[p - 1] == '&');
        if (!param) {
            p += 9;
            continue;
        }
        size_t end = out.find('&', p);
        size_t from = out[p - 1] == '&' ? p - 1 : p;
        size_t to = end == std::string::npos ? out.size() : (out[p - 1] == '&' ? end : end + 1);
        out.erase(from, to - from);
        p = from;
    }
    if (!out.empty() && (out.back() == '?' || out.back() == '&')) out.pop_back();
    return out;
}

// --- queries -------------------------------------------------------------------------

namespace {

// One query: written with ? placeholders (as SqlStore's are), sent as $1..$n
// with text parameters. Runs at the first step(), run(), changes() or insert().
class PgQuery final : public sql_store::Query {
  public:
    PgQuery(PgStore& store, const std::string& sql) : store_(store), sql_(numbered(sql)) {}
    ~PgQuery() override { PQclear(res_); }
    PgQuery(const PgQuery&) = delete;
    PgQuery& operator=(const PgQuery&) = delete;

    void bind(int i, const std::string& v) override {
        if (params_.size() <= static_cast<size_t>(i)) params_.resize(static_cast<size_t>(i) + 1);
        params_[static_cast<size_t>(i)] = v;
    }
    void bind(int i, int64_t v) override { bind(i, std::to_string(v)); }

    bool step() override {
        run();
        ++row_;
        return row_ < PQntuples(res_);
    }
    void run() override {
        if (!res_) res_ = store_.execute(sql_, params_, "running a query");
    }
    int changes() override {
        run();
        return std::atoi(PQcmdTuples(res_));
    }
    int64_t insert() override {
        sql_ += " RETURNING id";
        step();
        return i64(0);
    }
    bool null(int col) const override { return PQgetisnull(res_, row_, col) != 0; }
    std::string text(int col) const override {
        return std::string(PQgetvalue(res_, row_, col),
                           static_cast<size_t>(PQgetlength(res_, row_, col)));
    }
    int64_t i64(int col) const override {
        return std::strtoll(PQgetvalue(res_, row_, col), nullptr, 10);
    }

  private:
    PgStore& store_;
    std::string sql_;
    std::vector<std::string> params_;
    PGresult* res_ = nullptr;
    int row_ = -1;
};

}  // namespace

std::unique_ptr<sql_store::Query> PgStore::prepare(const std::string& sql) {
    return std::make_unique<PgQuery>(*this, sql);
}

// --- the connection -------------------------------------------------------------------

PgStore::PgStore(const std::string& uri) : shown_uri_(redact_uri(uri)) {
    Conninfo opts = parse_conninfo(uri, shown_uri_);
    std::string add;
    auto def = [&](const char* key, const char* value) {
        if (option(opts, key).empty())
            add += std::string(add.empty() ? "" : "&") + key + "=" + value;
    };
    def("connect_timeout", "5");
    def("keepalives", "1");
    def("application_name", "certgate");
    conninfo_ = uri;
    if (!add.empty()) conninfo_ += (uri.find('?') == std::string::npos ? "?" : "&") + add;
}

PgStore::~PgStore() { drop_connection(); }

// nginx -t warns: nginx.conf is no place for the database password.
std::string PgStore::permission_warning() const {
    if (redact_uri(conninfo_) == conninfo_) return "";
    return describe() +
           ": the URI holds a password; put it in a password file (passfile= or PGPASSFILE, "
           "mode 0600) instead";
}

void PgStore::drop_connection() noexcept {
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
    in_tx_ = false;
    listening_ = false;
}

std::string PgStore::server() const {
    if (conn_ && PQhost(conn_) && *PQhost(conn_))
        return std::string("host ") + PQhost(conn_) + " port " + PQport(conn_);
    try {
        Conninfo opts = parse_conninfo(conninfo_, shown_uri_);
        std::string host = option(opts, "host");
        if (host.empty()) host = option(opts, "hostaddr");
        std::string port = option(opts, "port");
        return "host " + (host.empty() ? std::string("(local socket)") : host) + " port " +
               (port.empty() ? std::string("5432") : port);
    } catch (const StoreError&) {
        return "the server";
    }
}

PGconn* PgStore::connection() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return conn_;
    drop_connection();
    conn_ = PQconnectdb(conninfo_.c_str());
    if (!conn_) throw StoreError(describe() + ": out of memory connecting");
    if (PQstatus(conn_) != CONNECTION_OK) {
        std::string msg = one_line(PQerrorMessage(conn_));
        std::string where = server();
        drop_connection();
        throw StoreError(describe() + ": cannot connect to PostgreSQL at " + where + ": " + msg);
    }
    PQsetNoticeProcessor(conn_, quiet_notices, nullptr);
    // A query or a lock that hangs must not hold a pool thread (the module
    // answers 503 instead); a crashed client must not hold its locks.
    const char* setup =
        "SET statement_timeout = '5s'; SET lock_timeout = '4s'; "
        "SET idle_in_transaction_session_timeout = '30s'; SET client_min_messages = warning";
    PGresult* res = PQexec(conn_, setup);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) fail(res, "setting up the connection");
    PQclear(res);
    return conn_;
}

PGresult* PgStore::execute(const std::string& sql, const std::vector<std::string>& params,
                           const std::string& during) {
    for (int attempt = 0;; ++attempt) {
        PGconn* c = connection();
        PGresult* res;
        if (params.empty()) {
            res = PQexec(c, sql.c_str());
        } else {
            std::vector<const char*> values;
            values.reserve(params.size());
            for (const auto& p : params) values.push_back(p.c_str());
            res = PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
        }
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return res;
        // The server went away while this connection was idle (a restart, a
        // failover): outside a transaction nothing is lost by asking again
        // on a new connection, once.
        if (PQstatus(c) == CONNECTION_BAD && !in_tx_ && attempt == 0) {
            PQclear(res);
            drop_connection();
            continue;
        }
        fail(res, during);
    }
}

void PgStore::fail(PGresult* res, const std::string& during) {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    const std::string code = state ? state : "";
    std::string msg = res ? one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) : "";
    if (msg.empty()) msg = one_line(conn_ ? PQerrorMessage(conn_) : "no connection");
    PQclear(res);
    const std::string where = describe();
    const bool lost = !conn_ || PQstatus(conn_) == CONNECTION_BAD || code.rfind("08", 0) == 0 ||
                      code == "57P01" || code == "57P02" || code == "57P03";
    if (lost) {
        const std::string at = server();
        drop_connection();
        throw StoreError(where + ": lost the connection to PostgreSQL at " + at + " while " +
                         during + ": " + msg + " (certgate connects again at the next request)");
    }
    if (code == "40P01" || code == "40001" || code == "55P03")
        throw StoreBusy(where + ": busy: " + msg + " (" + during + ")");
    if (code == "57014")
        throw StoreError(where + ": the server took longer than statement_timeout (5 s) while " +
                         during + ": " + msg);
    if (code.rfind("23", 0) == 0) throw StoreConflict(where + ": refused by the schema: " + msg);
    if (code == "42P01" || code == "42703")
        throw StoreError(where + ": " + msg +
                         ": the schema is not what this certgate expects (certgatectl migrate?)");
    if (code == "42501") throw StoreError(where + ": permission denied: " + msg);
    throw StoreError(where + ": error while " + during + ": " + msg +
                     (code.empty() ? "" : " (SQLSTATE " + code + ")"));
}

void PgStore::exec(const std::string& sql, const std::string& during) {
    PQclear(execute(sql, {}, during));
}

// --- transactions -----------------------------------------------------------------------

void PgStore::begin_write() {
    exec("BEGIN ISOLATION LEVEL READ COMMITTED", "starting a write");
    in_tx_ = true;
    notify_ = false;
}

void PgStore::commit() {
    // Wakes every node's revocation feed (wait_for_feed); sent at COMMIT.
    if (notify_) exec("SELECT pg_notify('certgate_feed', '')", "committing");
    exec("COMMIT", "committing");
    in_tx_ = false;
    notify_ = false;
}

void PgStore::rollback() noexcept {
    if (conn_ && in_tx_) PQclear(PQexec(conn_, "ROLLBACK"));
    in_tx_ = false;
    notify_ = false;
}

}  // namespace certgate::pg_store

namespace certgate {

std::unique_ptr<Store> open_pg_store(const std::string& uri) {
    return std::make_unique<pg_store::PgStore>(uri);
}

}  // namespace certgate
