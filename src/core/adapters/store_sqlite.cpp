// The SQLite store: one file in WAL mode shared by every nginx worker and
// certgatectl. Its queries are SqlStore's (store_sql_*.cpp), shared with the
// PostgreSQL store; its DDL words are in store_sqlite_schema.cpp. This file:
// opening the file, its checks, the error mapping, and the few writes that
// differ from PostgreSQL's (no row locks: BEGIN IMMEDIATE holds the file).
#include "core/adapters/store_sqlite.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace certgate::sqlite_store {

namespace {

// One prepared statement.
class SqliteQuery final : public sql_store::Query {
  public:
    SqliteQuery(SqliteStore& store, const std::string& sql) : store_(store) {
        int rc = sqlite3_prepare_v2(store.db(), sql.c_str(), -1, &stmt_, nullptr);
        if (rc != SQLITE_OK) store.fail(rc, "preparing a query");
    }
    ~SqliteQuery() override { sqlite3_finalize(stmt_); }
    SqliteQuery(const SqliteQuery&) = delete;
    SqliteQuery& operator=(const SqliteQuery&) = delete;

    void bind(int i, const std::string& v) override {
        check(sqlite3_bind_text(stmt_, i + 1, v.data(), static_cast<int>(v.size()),
                                SQLITE_TRANSIENT));
    }
    void bind(int i, int64_t v) override { check(sqlite3_bind_int64(stmt_, i + 1, v)); }

    bool step() override {
        int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        store_.fail(rc, "running a query");
    }
    void run() override {
        while (step()) {
        }
    }
    int changes() override {
        run();
        return sqlite3_changes(store_.db());
    }
    int64_t insert() override {
        run();
        return sqlite3_last_insert_rowid(store_.db());
    }
    bool null(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
    std::string text(int col) const override {
        auto p = sqlite3_column_text(stmt_, col);
        return p ? std::string(reinterpret_cast<const char*>(p),
                               static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
                 : std::string();
    }
    int64_t i64(int col) const override { return sqlite3_column_int64(stmt_, col); }

  private:
    void check(int rc) {
        if (rc != SQLITE_OK) store_.fail(rc, "binding a value");
    }
    SqliteStore& store_;
    sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

std::unique_ptr<sql_store::Query> SqliteStore::prepare(const std::string& sql) {
    return std::make_unique<SqliteQuery>(*this, sql);
}

std::string parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

SqliteStore::SqliteStore(const std::string& path, bool create) : path_(path) {
    if (path.empty()) throw StoreError("store sqlite: no file name given");
    const std::string where = "store sqlite:" + path;
    const std::string dir = parent_dir(path);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOTDIR)
            throw StoreError(where + ": directory " + dir +
                             " does not exist (a part of the path is not a directory)");
        if (errno != ENOENT) throw StoreError(where + ": " + std::strerror(errno));
        if (!create)
            throw StoreError(where +
                             ": the file does not exist; create it with certgatectl init "
                             "or correct certgate_store");
        struct stat dst;
        if (stat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode))
            throw StoreError(where + ": directory " + dir + " does not exist");
        if (access(dir.c_str(), W_OK | X_OK) != 0)
            throw StoreError(where + ": cannot create the file: directory " + dir +
                             " is not writable (" + std::strerror(errno) + ")");
    } else {
        if (S_ISDIR(st.st_mode)) throw StoreError(where + " is a directory, not a store file");
        if (access(path.c_str(), R_OK | W_OK) != 0)
            throw StoreError(where +
                             ": permission denied: the nginx worker user and "
                             "certgatectl need read and write access to it");
        // WAL keeps -wal and -shm files next to the store.
        if (access(dir.c_str(), W_OK | X_OK) != 0)
            throw StoreError(where + ": directory " + dir +
                             " is not writable; SQLite needs to create its -wal and -shm "
                             "files there");
    }

    if (create && stat(path.c_str(), &st) != 0) {
        // 0600 whatever the umask: SQLite gives the -wal and -shm files the
        // mode of the database file, so they follow.
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            throw StoreError(where + ": cannot create the file: " + std::strerror(errno));
        if (fd >= 0) {
            if (fchmod(fd, 0600) != 0) {
                int err = errno;
                ::close(fd);
                throw StoreError(where + ": cannot set mode 0600: " + std::strerror(err));
            }
            ::close(fd);
        }
    }

    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw StoreError(where + ": cannot open: " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    try {
        // The first statements read the header: a file that is not SQLite fails here.
        exec("PRAGMA foreign_keys = ON", "opening");
        Statement wal(*this, "PRAGMA journal_mode = WAL");
        if (wal.step() && wal.text(0) != "wal")
            throw StoreError(where + ": cannot switch to WAL mode (journal mode is " + wal.text(0) +
                             ")");
        // What may not be lost is flushed at every commit.
        exec("PRAGMA synchronous = FULL", "opening");
    } catch (...) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw;
    }
}

std::string SqliteStore::permission_warning() const {
    std::string out;
    for (const char* suffix : {"", "-wal", "-shm"}) {
        struct stat st;
        std::string file = path_ + suffix;
        if (stat(file.c_str(), &st) != 0 || !(st.st_mode & (S_IROTH | S_IWOTH))) continue;
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        if (!out.empty()) out += "; ";
        out += file + " has mode " + mode;
    }
    if (out.empty()) return out;
    return "store sqlite:" + path_ + ": readable by other users (" + out +
           "): it holds password hashes and the audit trail; chmod 0600 (or 0640 to the "
           "nginx group) the file and its -wal and -shm files";
}

void SqliteStore::fail(int rc, const std::string& during) const {
    const std::string where = describe();
    const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            throw StoreBusy(where + ": busy: another process held the store for too long (" +
                            during + ")");
        case SQLITE_NOTADB:
            throw StoreError(where + " is not an SQLite database: check certgate_store");
        case SQLITE_CORRUPT:
            throw StoreError(where + " is corrupt (" + msg +
                             "): stop writers and restore it from a backup");
        case SQLITE_READONLY:
            throw StoreError(where + " is read-only (" + msg +
                             "): check the permissions of the file and its directory");
        case SQLITE_CANTOPEN:
            throw StoreError(where + ": cannot open (" + msg +
                             "): check the file, its directory and their permissions");
        case SQLITE_FULL:
            throw StoreError(where + ": the disk is full");
        case SQLITE_IOERR:
            throw StoreError(where + ": I/O error while " + during + " (" + msg + ")");
        case SQLITE_CONSTRAINT:
            throw StoreConflict(where + ": refused by the schema: " + msg);
        default:
            throw StoreError(where + ": error while " + during + ": " + msg);
    }
}

void SqliteStore::exec(const std::string& sql, const std::string& during) {
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, during);
}

// --- where SQLite writes otherwise ---------------------------------------------------

// SQLite's write transaction (BEGIN IMMEDIATE) already holds the whole file.
AuthStreak SqliteStore::lock_auth_streak(const std::string& id) { return auth_streak(id); }

Statement SqliteStore::lock_budget(const std::string& key, int64_t) {
    Statement s(*this, "SELECT window_start, used FROM auth_budgets WHERE budget = ?");
    s.bind(0, key);
    return s;
}

void SqliteStore::save_budget(const std::string& key, int64_t window_start, int used) {
    Statement u(*this,
                "INSERT INTO auth_budgets (budget, window_start, used) VALUES (?, ?, ?) "
                "ON CONFLICT (budget) DO UPDATE SET window_start = excluded.window_start, "
                "used = excluded.used");
    u.bind(0, key).bind(1, window_start).bind(2, used).run();
}

void SqliteStore::save_crl(const StoredCrl& crl) {
    const std::string v = crl_to_text(crl);
    write([&] {
        Statement s(*this,
                    "INSERT INTO certgate_meta (key, value) VALUES ('crl', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
        s.bind(0, v).run();
    });
}

}  // namespace certgate::sqlite_store

namespace certgate {

std::unique_ptr<Store> open_sqlite_store(const std::string& path, bool create) {
    return std::make_unique<sqlite_store::SqliteStore>(path, create);
}

}  // namespace certgate
