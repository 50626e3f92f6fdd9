// The SQLite store: one file in WAL mode shared by every nginx worker and
// certgatectl. The SQL sticks to what PostgreSQL also accepts (except the DDL
// details marked below) so the fleet backend can reuse it.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/adapters/ca.hpp"
#include "core/ports/store.hpp"

namespace certgate {

namespace {

// The store keeps serials as ca.hpp's serial_hex() prints them.
std::string serial_key(const std::string& text) {
    return normalize_serial_hex(text).value_or(std::string());
}


// Schema migrations: entry i takes the store from version i to i + 1.
// SQLite-only here: AUTOINCREMENT (PostgreSQL: BIGSERIAL) and the triggers.
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
    status     TEXT NOT NULL CHECK (status IN ('issued', 'revoked', 'superseded', 'expired')),
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0,
    reason     TEXT NOT NULL DEFAULT '',
    notices    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX certificates_user ON certificates(user_id);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_subject ON events(subject);
CREATE INDEX events_actor ON events(actor);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'certgate events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'certgate events are append-only'); END;
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
    // handed over (SQLite cannot alter a CHECK: the table is rebuilt).
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
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == Store::kSchemaVersion,
              "one migration per schema version");

const char* const kUserColumns =
    "id, org_id, role, name, mail, password_hash, state, failure_streak, lock_count, "
    "locked_until, blocked, initial_password_at, created_at, last_login_at";
const char* const kCertColumns =
    "serial, user_id, not_before, not_after, status, issued_at, revoked_at, reason, notices";
const char* const kMailColumns =
    "id, recipient, subject, body, state, attempts, next_attempt_at, sent_at, created_at, "
    "last_error, expires_at";

class SqliteStore;

// One prepared statement; columns and parameters are numbered from 0.
class Statement {
  public:
    Statement(SqliteStore& store, const char* sql);
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int i, const std::string& v) {
        check(sqlite3_bind_text(stmt_, i + 1, v.data(), static_cast<int>(v.size()),
                                SQLITE_TRANSIENT));
        return *this;
    }
    Statement& bind(int i, int64_t v) {
        check(sqlite3_bind_int64(stmt_, i + 1, v));
        return *this;
    }
    Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }

    bool step();  // true: a row is ready
    void run() {
        while (step()) {
        }
    }
    std::string text(int col) const {
        auto p = sqlite3_column_text(stmt_, col);
        return p ? std::string(reinterpret_cast<const char*>(p),
                               static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
                 : std::string();
    }
    int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
    int i32(int col) const { return sqlite3_column_int(stmt_, col); }

  private:
    void check(int rc);
    SqliteStore& store_;
    sqlite3_stmt* stmt_ = nullptr;
};

class SqliteStore final : public Store {
  public:
    SqliteStore(const std::string& path, bool create);
    ~SqliteStore() override { sqlite3_close_v2(db_); }

    [[noreturn]] void fail(int rc, const std::string& during) const;
    sqlite3* db() const { return db_; }

    int schema_version() override;
    void migrate() override;
    void ping() override;
    std::string describe() const override { return "store sqlite:" + path_; }
    std::string permission_warning() const override;

    void add_org(const Organisation& org, const std::string& actor) override;
    std::optional<Organisation> find_org(const std::string& id) override;
    std::vector<Organisation> list_orgs() override;

    void add_user(const User& user, const std::string& actor, const std::string& detail) override;
    std::optional<User> find_user(const std::string& id) override;
    std::vector<User> list_users(const std::string& org) override;
    void reset_user(const std::string& id, const std::string& initial_hash,
                    const std::string& actor) override;
    void set_password(const std::string& id, const std::string& hash, const std::string& actor,
                      const std::string& detail) override;
    void complete_registration(const std::string& id, const std::string& hash,
                               const std::string& mail, const std::string& actor) override;
    void set_mail(const std::string& id, const std::string& mail,
                  const std::string& actor) override;
    AuthStreak auth_streak(const std::string& id) override;
    StreakFailure record_streak_failure(const std::string& id, bool known, int64_t epoch,
                                        int limit, int64_t until, int block_after_locks,
                                        int64_t ghost_expires, const std::string& detail,
                                        const std::function<void(const StreakFailure&)>& on_lock)
        override;
    BudgetTake take_budget(const std::string& key, int limit, int64_t window_s) override;
    BudgetTake peek_budget(const std::string& key, int limit, int64_t window_s) override;
    void record_auth_failure(const std::string& id, const std::string& actor,
                             const std::string& detail) override;
    void record_login(const std::string& id, const std::string& actor,
                      const std::string& detail) override;
    LockResult lock_user(const std::string& id, int64_t until, int block_after_locks,
                         const std::string& actor) override;
    void unlock_user(const std::string& id, const std::string& actor) override;
    void block_user(const std::string& id, const std::string& actor) override;
    void unblock_user(const std::string& id, const std::string& actor) override;
    void disable_user(const std::string& id, const std::string& actor) override;

    void add_certificate(const Certificate& cert, bool supersede,
                         const std::string& actor) override;
    void activate_certificate(const std::string& serial, const std::string& actor) override;
    std::vector<std::string> abandon_pending_certificates(const std::string& user_id,
                                                          int64_t issued_before,
                                                          const std::string& why,
                                                          const std::string& actor) override;
    std::optional<Certificate> find_certificate(const std::string& serial) override;
    std::vector<Certificate> list_certificates(const CertificateFilter& filter) override;
    std::optional<Certificate> current_certificate(const std::string& user_id) override;
    void revoke_certificate(const std::string& serial, const std::string& reason,
                            const std::string& actor) override;
    std::vector<std::string> revoke_user_certificates(const std::string& user_id,
                                                      const std::string& reason,
                                                      const std::string& actor) override;
    std::vector<Certificate> revoked_certificates() override;
    bool claim_notice(const std::string& serial, CertNotice notice,
                      const std::string& actor) override;
    std::optional<StoredCrl> current_crl() override;
    void save_crl(const StoredCrl& crl) override;
    bool revoked_since(int64_t event_id) override;

    int64_t append_event(const std::string& actor, const std::string& kind,
                         const std::string& subject, const std::string& detail) override;
    std::vector<Event> events_since(int64_t after_id, int limit) override;
    std::vector<Event> events_for_user(const std::string& user_id, int64_t after_id,
                                       int limit) override;
    int64_t last_event_id() override;
    int64_t first_event_since(int64_t at) override;

    int64_t enqueue_mail(const std::string& to, const std::string& subject, const std::string& body,
                         const std::string& actor, const std::string& about,
                         int64_t expires_at) override;
    Mail enqueue_claimed_mail(const std::string& to, const std::string& subject,
                              const std::string& body, const std::string& actor,
                              const std::string& about, int lease_seconds,
                              int64_t expires_at) override;
    std::vector<Mail> claim_due_mails(int limit, int lease_seconds) override;
    void mark_mail_sent(int64_t id) override;
    void mark_mail_failed(int64_t id, const std::string& error, int64_t retry_at) override;
    std::vector<Mail> list_mails(std::optional<MailState> state) override;
    std::optional<Mail> find_mail(int64_t id) override;
    void retry_mail(int64_t id, const std::string& actor) override;

  protected:
    void begin_write() override { exec("BEGIN IMMEDIATE", "starting a write"); }
    void commit() override { exec("COMMIT", "committing"); }
    void rollback() noexcept override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

  private:
    void exec(const char* sql, const std::string& during);
    bool has_table(const std::string& name);
    User require_user(const std::string& id);
    void end_streak(const std::string& id);
    static User read_user(const Statement& s);
    static Certificate read_cert(const Statement& s);
    static Mail read_mail(const Statement& s);
    std::vector<Event> read_events(Statement& s);
    void supersede_live(const std::string& user_id, const std::string& by,
                        const std::string& actor);
    void abandon(const std::string& serial, const std::string& user_id, const std::string& why,
                 const std::string& actor);

    std::string path_;
    sqlite3* db_ = nullptr;
};

Statement::Statement(SqliteStore& store, const char* sql) : store_(store) {
    int rc = sqlite3_prepare_v2(store.db(), sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) store.fail(rc, "preparing a query");
}

void Statement::check(int rc) {
    if (rc != SQLITE_OK) store_.fail(rc, "binding a value");
}

bool Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    store_.fail(rc, "running a query");
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

void SqliteStore::exec(const char* sql, const std::string& during) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, during);
}

bool SqliteStore::has_table(const std::string& name) {
    Statement s(*this, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    s.bind(0, name);
    return s.step();
}

int SqliteStore::schema_version() {
    if (!has_table("certgate_meta")) {
        Statement any(*this, "SELECT count(*) FROM sqlite_master");
        any.step();
        return any.i64(0) == 0 ? 0 : -1;
    }
    Statement s(*this, "SELECT value FROM certgate_meta WHERE key = 'schema_version'");
    if (!s.step()) return -1;
    return std::atoi(s.text(0).c_str());
}

void SqliteStore::migrate() {
    write([&] {
        int from = schema_version();
        if (from < 0)
            throw StoreError(describe() +
                             " holds other tables but no certgate schema: not a certgate store");
        if (from > kSchemaVersion) check_schema(*this);
        if (from == kSchemaVersion) return;
        for (int v = from; v < kSchemaVersion; ++v) exec(kMigrations[v], "migrating the schema");
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

void SqliteStore::ping() {
    Statement s(*this, "SELECT 1 FROM certgate_meta LIMIT 1");
    s.step();
}

// --- organisations ---------------------------------------------------------------

void SqliteStore::add_org(const Organisation& org, const std::string& actor) {
    write([&] {
        if (find_org(org.id)) throw StoreConflict("organisation " + org.id + " already exists");
        Statement s(*this, "INSERT INTO organisations (id, name, created_at) VALUES (?, ?, ?)");
        s.bind(0, org.id).bind(1, org.name).bind(2, now()).run();
        append_event(actor, event_kind::kOrgAdded, org.id, "name=" + org.name);
    });
}

std::optional<Organisation> SqliteStore::find_org(const std::string& id) {
    Statement s(*this, "SELECT id, name, created_at FROM organisations WHERE id = ?");
    s.bind(0, id);
    if (!s.step()) return std::nullopt;
    return Organisation{s.text(0), s.text(1), s.i64(2)};
}

std::vector<Organisation> SqliteStore::list_orgs() {
    Statement s(*this, "SELECT id, name, created_at FROM organisations ORDER BY id");
    std::vector<Organisation> out;
    while (s.step()) out.push_back(Organisation{s.text(0), s.text(1), s.i64(2)});
    return out;
}

// --- users -------------------------------------------------------------------------

User SqliteStore::read_user(const Statement& s) {
    User u;
    u.id = s.text(0);
    u.org = s.text(1);
    u.role = parse_role(s.text(2)).value_or(Role::general);
    u.name = s.text(3);
    u.mail = s.text(4);
    u.password_hash = s.text(5);
    u.state = parse_user_state(s.text(6)).value_or(UserState::disabled);
    u.failure_streak = s.i32(7);
    u.lock_count = s.i32(8);
    u.locked_until = s.i64(9);
    u.blocked = s.i32(10) != 0;
    u.initial_password_at = s.i64(11);
    u.created_at = s.i64(12);
    u.last_login_at = s.i64(13);
    return u;
}

std::optional<User> SqliteStore::find_user(const std::string& id) {
    std::string sql = std::string("SELECT ") + kUserColumns + " FROM users WHERE id = ?";
    Statement s(*this, sql.c_str());
    s.bind(0, id);
    if (!s.step()) return std::nullopt;
    return read_user(s);
}

User SqliteStore::require_user(const std::string& id) {
    auto u = find_user(id);
    if (!u) throw StoreNotFound("user " + id + " does not exist");
    return *u;
}

std::vector<User> SqliteStore::list_users(const std::string& org) {
    std::string sql = std::string("SELECT ") + kUserColumns + " FROM users" +
                      (org.empty() ? "" : " WHERE org_id = ?") + " ORDER BY org_id, role DESC, id";
    Statement s(*this, sql.c_str());
    if (!org.empty()) s.bind(0, org);
    std::vector<User> out;
    while (s.step()) out.push_back(read_user(s));
    return out;
}

void SqliteStore::add_user(const User& u, const std::string& actor, const std::string& detail) {
    write([&] {
        if (!find_org(u.org)) throw StoreNotFound("organisation " + u.org + " does not exist");
        if (find_user(u.id)) throw StoreConflict("user " + u.id + " already exists");
        if (u.role == Role::master) {
            Statement m(*this,
                        "SELECT id FROM users WHERE org_id = ? AND role = 'master' "
                        "AND state <> 'disabled'");
            m.bind(0, u.org);
            if (m.step())
                throw StoreConflict("organisation " + u.org + " already has master user " +
                                    m.text(0));
        }
        const int64_t t = now();
        std::string sql = std::string("INSERT INTO users (") + kUserColumns +
                          ") VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, ?, 0)";
        Statement s(*this, sql.c_str());
        s.bind(0, u.id).bind(1, u.org).bind(2, std::string(to_string(u.role)));
        s.bind(3, u.name).bind(4, u.mail).bind(5, u.password_hash);
        s.bind(6, std::string(to_string(u.state)));
        s.bind(7, u.state == UserState::must_register ? t : int64_t{0}).bind(8, t).run();
        std::string d = std::string("org=") + u.org + " role=" + to_string(u.role) +
                        " mail=" + u.mail + " state=" + to_string(u.state);
        if (!detail.empty()) d += " " + detail;
        // Failures typed for this ID before it existed are not its own.
        end_streak(u.id);
        append_event(actor, event_kind::kUserAdded, u.id, d);
    });
}

void SqliteStore::reset_user(const std::string& id, const std::string& initial_hash,
                             const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.state == UserState::disabled) throw StoreConflict("user " + id + " is disabled");
        Statement s(*this,
                    "UPDATE users SET password_hash = ?, state = 'must_register', "
                    "failure_streak = 0, lock_count = 0, locked_until = 0, blocked = 0, "
                    "initial_password_at = ? WHERE id = ?");
        s.bind(0, initial_hash).bind(1, now()).bind(2, id).run();
        end_streak(id);
        append_event(actor, event_kind::kUserReset, id,
                     "new initial password; must register again; sessions end");
    });
}

void SqliteStore::set_password(const std::string& id, const std::string& hash,
                               const std::string& actor, const std::string& detail) {
    write([&] {
        User u = require_user(id);
        if (u.state == UserState::disabled) throw StoreConflict("user " + id + " is disabled");
        Statement s(*this,
                    "UPDATE users SET password_hash = ?, state = 'active', "
                    "initial_password_at = 0 WHERE id = ?");
        s.bind(0, hash).bind(1, id).run();
        append_event(actor, event_kind::kPasswordSet, id, detail);
    });
}

void SqliteStore::complete_registration(const std::string& id, const std::string& hash,
                                        const std::string& mail, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.state != UserState::must_register)
            throw StoreConflict("user " + id + " is " + to_string(u.state) +
                                ", not waiting for registration");
        Statement s(*this,
                    "UPDATE users SET password_hash = ?, mail = ?, state = 'active', "
                    "initial_password_at = 0 WHERE id = ?");
        s.bind(0, hash).bind(1, mail).bind(2, id).run();
        append_event(actor, event_kind::kUserRegistered, id, "mail=" + mail);
    });
}

void SqliteStore::set_mail(const std::string& id, const std::string& mail,
                           const std::string& actor) {
    write([&] {
        User u = require_user(id);
        Statement s(*this, "UPDATE users SET mail = ? WHERE id = ?");
        s.bind(0, mail).bind(1, id).run();
        append_event(actor, event_kind::kMailChanged, id, "from=" + u.mail + " to=" + mail);
    });
}

// --- authentication streaks and budgets (R10, R21, R22) -----------------------------

// Ends the ID's current streak: the next attempt counts from zero under a new
// epoch, so memcached's reservations of the old one no longer count.
void SqliteStore::end_streak(const std::string& id) {
    Statement s(*this,
                "INSERT INTO auth_streaks (user_id, epoch, failures, updated_at) "
                "VALUES (?, 1, 0, ?) ON CONFLICT (user_id) DO UPDATE SET "
                "epoch = auth_streaks.epoch + 1, failures = 0, updated_at = excluded.updated_at");
    s.bind(0, id).bind(1, now()).run();
}

AuthStreak SqliteStore::auth_streak(const std::string& id) {
    AuthStreak st;
    Statement s(*this,
                "SELECT epoch, failures, lock_count, locked_until, blocked FROM auth_streaks "
                "WHERE user_id = ?");
    s.bind(0, id);
    if (s.step()) {
        st.epoch = s.i64(0);
        st.failures = s.i32(1);
        st.lock_count = s.i32(2);
        st.locked_until = s.i64(3);
        st.blocked = s.i32(4) != 0;
    }
    return st;
}

StreakFailure SqliteStore::record_streak_failure(const std::string& id, bool known, int64_t epoch,
                                                 int limit, int64_t until, int block_after_locks,
                                                 int64_t ghost_expires, const std::string& detail,
                                                 const std::function<void(const StreakFailure&)>&
                                                     on_lock) {
    StreakFailure r;
    write([&] {
        int64_t t = now();
        // Ghost rows of unknown IDs go once their window has passed; a
        // blocked ghost stays, as a blocked user does.
        Statement prune(*this,
                        "DELETE FROM auth_streaks WHERE expires_at > 0 AND expires_at < ? "
                        "AND blocked = 0");
        prune.bind(0, t).run();

        AuthStreak st = auth_streak(id);
        append_event(known ? id : std::string("certgate"), event_kind::kAuthFailed,
                     known ? id : std::string("(unknown)"),
                     (known ? std::string() : "user_id=" + id + " ") + detail);
        if (st.epoch != epoch) return;  // the streak ended while this try was checked
        r.counted = true;
        r.failures = st.failures + 1;
        if (known) {
            Statement m(*this,
                        "UPDATE users SET failure_streak = failure_streak + 1 WHERE id = ?");
            m.bind(0, id).run();
        }
        int64_t expires = known ? 0 : ghost_expires;
        if (r.failures < limit) {
            Statement u(*this,
                        "INSERT INTO auth_streaks (user_id, epoch, failures, expires_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                        "failures = excluded.failures, expires_at = excluded.expires_at, "
                        "updated_at = excluded.updated_at");
            u.bind(0, id).bind(1, epoch).bind(2, r.failures).bind(3, expires).bind(4, t).run();
            return;
        }
        r.locked = true;
        r.until = until;
        if (known) {
            LockResult lr = lock_user(id, until, block_after_locks, "certgate");  // ends the streak
            r.blocked = lr.blocked;
            r.lock_count = lr.lock_count;
            if (on_lock) on_lock(r);
            return;
        }
        r.lock_count = st.lock_count + 1;
        r.blocked = block_after_locks > 0 && r.lock_count >= block_after_locks;
        Statement u(*this,
                    "INSERT INTO auth_streaks (user_id, epoch, failures, lock_count, locked_until, "
                    "blocked, expires_at, updated_at) VALUES (?, ?, 0, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, failures = 0, "
                    "lock_count = excluded.lock_count, locked_until = excluded.locked_until, "
                    "blocked = excluded.blocked, expires_at = excluded.expires_at, "
                    "updated_at = excluded.updated_at");
        u.bind(0, id).bind(1, epoch + 1).bind(2, r.lock_count).bind(3, until);
        u.bind(4, r.blocked ? 1 : 0).bind(5, r.blocked ? int64_t{0} : std::max(expires, until));
        u.bind(6, t).run();
        append_event("certgate", "auth.unknown_locked", "(unknown)",
                     "user_id=" + id + " until=" + utc_time(until) +
                         " lock_count=" + std::to_string(r.lock_count) +
                         (r.blocked ? " blocked" : ""));
        if (on_lock) on_lock(r);
    });
    return r;
}

BudgetTake SqliteStore::peek_budget(const std::string& key, int limit, int64_t window_s) {
    BudgetTake b;
    int64_t t = now();
    Statement s(*this, "SELECT window_start, used FROM auth_budgets WHERE budget = ?");
    s.bind(0, key);
    int64_t start = t;
    if (s.step() && s.i64(0) + window_s > t) {
        start = s.i64(0);
        b.used = s.i32(1);
    }
    b.resets_at = start + window_s;
    b.allowed = b.used < limit;
    return b;
}

BudgetTake SqliteStore::take_budget(const std::string& key, int limit, int64_t window_s) {
    BudgetTake b;
    write([&] {
        int64_t t = now();
        Statement s(*this, "SELECT window_start, used FROM auth_budgets WHERE budget = ?");
        s.bind(0, key);
        int64_t start = t;
        int used = 0;
        if (s.step() && s.i64(0) + window_s > t) {
            start = s.i64(0);
            used = s.i32(1);
        }
        b.resets_at = start + window_s;
        b.allowed = used < limit;
        if (!b.allowed) {
            b.used = used;
            return;
        }
        b.used = used + 1;
        b.reached = b.used == limit;
        Statement u(*this,
                    "INSERT INTO auth_budgets (budget, window_start, used) VALUES (?, ?, ?) "
                    "ON CONFLICT (budget) DO UPDATE SET window_start = excluded.window_start, "
                    "used = excluded.used");
        u.bind(0, key).bind(1, start).bind(2, b.used).run();
    });
    return b;
}

void SqliteStore::record_auth_failure(const std::string& id, const std::string& actor,
                                      const std::string& detail) {
    write([&] {
        require_user(id);
        Statement s(*this, "UPDATE users SET failure_streak = failure_streak + 1 WHERE id = ?");
        s.bind(0, id).run();
        append_event(actor, event_kind::kAuthFailed, id, detail);
    });
}

void SqliteStore::record_login(const std::string& id, const std::string& actor,
                               const std::string& detail) {
    write([&] {
        require_user(id);
        Statement s(*this,
                    "UPDATE users SET failure_streak = 0, lock_count = 0, last_login_at = ? "
                    "WHERE id = ?");
        s.bind(0, now()).bind(1, id).run();
        end_streak(id);
        append_event(actor, event_kind::kLogin, id, detail);
    });
}

LockResult SqliteStore::lock_user(const std::string& id, int64_t until, int block_after_locks,
                                  const std::string& actor) {
    LockResult result;
    write([&] {
        User u = require_user(id);
        if (u.blocked) throw StoreConflict("user " + id + " is already blocked");
        result.lock_count = u.lock_count + 1;
        result.blocked = block_after_locks > 0 && result.lock_count >= block_after_locks;
        Statement s(*this,
                    "UPDATE users SET lock_count = ?, locked_until = ?, failure_streak = 0, "
                    "blocked = ? WHERE id = ?");
        s.bind(0, result.lock_count).bind(1, until).bind(2, result.blocked ? 1 : 0).bind(3, id);
        s.run();
        end_streak(id);
        append_event(
            actor, event_kind::kUserLocked, id,
            "until=" + utc_time(until) + " lock_count=" + std::to_string(result.lock_count));
        if (result.blocked)
            append_event(actor, event_kind::kUserBlocked, id,
                         "after " + std::to_string(result.lock_count) + " locks");
    });
    return result;
}

void SqliteStore::unlock_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (!u.locked_at(now()) && u.failure_streak == 0)
            throw StoreConflict("user " + id + " is not locked");
        Statement s(*this, "UPDATE users SET locked_until = 0, failure_streak = 0 WHERE id = ?");
        s.bind(0, id).run();
        end_streak(id);
        append_event(actor, event_kind::kUserUnlocked, id, "");
    });
}

void SqliteStore::block_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.blocked) throw StoreConflict("user " + id + " is already blocked");
        Statement s(*this, "UPDATE users SET blocked = 1 WHERE id = ?");
        s.bind(0, id).run();
        append_event(actor, event_kind::kUserBlocked, id, "by " + actor);
    });
}

void SqliteStore::unblock_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (!u.blocked) throw StoreConflict("user " + id + " is not blocked");
        Statement s(*this,
                    "UPDATE users SET blocked = 0, lock_count = 0, locked_until = 0, "
                    "failure_streak = 0 WHERE id = ?");
        s.bind(0, id).run();
        end_streak(id);
        append_event(actor, event_kind::kUserUnblocked, id, "");
    });
}

void SqliteStore::disable_user(const std::string& id, const std::string& actor) {
    write([&] {
        User u = require_user(id);
        if (u.state == UserState::disabled)
            throw StoreConflict("user " + id + " is already disabled");
        Statement s(*this, "UPDATE users SET state = 'disabled' WHERE id = ?");
        s.bind(0, id).run();
        append_event(actor, event_kind::kUserDisabled, id, "");
    });
}

// --- certificates ------------------------------------------------------------------

Certificate SqliteStore::read_cert(const Statement& s) {
    Certificate c;
    c.serial = s.text(0);
    c.user_id = s.text(1);
    c.not_before = s.i64(2);
    c.not_after = s.i64(3);
    c.status = parse_cert_status(s.text(4)).value_or(CertStatus::revoked);
    c.issued_at = s.i64(5);
    c.revoked_at = s.i64(6);
    c.reason = s.text(7);
    c.notices = s.i32(8);
    return c;
}

void SqliteStore::add_certificate(const Certificate& cert, bool supersede,
                                  const std::string& actor) {
    const std::string serial = serial_key(cert.serial);
    if (serial.empty()) throw StoreError("certificate serial '" + cert.serial + "' is not hex");
    write([&] {
        require_user(cert.user_id);
        if (find_certificate(serial))
            throw StoreConflict("certificate " + serial + " is already recorded");
        const bool pending = cert.status == CertStatus::pending;
        if (supersede && !pending) supersede_live(cert.user_id, serial, actor);
        std::string sql = std::string("INSERT INTO certificates (") + kCertColumns +
                          ") VALUES (?, ?, ?, ?, ?, ?, 0, '', 0)";
        Statement s(*this, sql.c_str());
        s.bind(0, serial).bind(1, cert.user_id).bind(2, cert.not_before).bind(3, cert.not_after);
        s.bind(4, std::string(pending ? "pending" : "issued"));
        s.bind(5, cert.issued_at ? cert.issued_at : now()).run();
        append_event(actor, pending ? event_kind::kCertPending : event_kind::kCertIssued, serial,
                     "user=" + cert.user_id + " not_before=" + utc_time(cert.not_before) +
                         " not_after=" + utc_time(cert.not_after));
    });
}

// Renewal: the user's live certificates give way to `by` (the event feed ends
// their sessions, like a revocation).
void SqliteStore::supersede_live(const std::string& user_id, const std::string& by,
                                 const std::string& actor) {
    Statement old(*this,
                  "SELECT serial FROM certificates WHERE user_id = ? AND status = 'issued' "
                  "AND serial <> ?");
    old.bind(0, user_id).bind(1, by);
    std::vector<std::string> serials;
    while (old.step()) serials.push_back(old.text(0));
    for (const auto& s : serials) {
        Statement up(*this, "UPDATE certificates SET status = 'superseded' WHERE serial = ?");
        up.bind(0, s).run();
        append_event(actor, event_kind::kCertSuperseded, s, "user=" + user_id + " by=" + by);
    }
}

void SqliteStore::activate_certificate(const std::string& serial_text, const std::string& actor) {
    const std::string serial = serial_key(serial_text);
    write([&] {
        auto c = find_certificate(serial);
        if (!c) throw StoreNotFound("certificate " + serial_text + " is not in the store");
        if (c->status != CertStatus::pending)
            throw StoreConflict("certificate " + serial + " is " + to_string(c->status) +
                                ", not pending: it cannot go live");
        // At most one live certificate per user: another pending one (a
        // parallel flow) will never be handed over now.
        Statement others(*this,
                         "SELECT serial FROM certificates WHERE user_id = ? AND status = 'pending' "
                         "AND serial <> ?");
        others.bind(0, c->user_id).bind(1, serial);
        std::vector<std::string> pending;
        while (others.step()) pending.push_back(others.text(0));
        for (const auto& p : pending)
            abandon(p, c->user_id, "another certificate went live", actor);
        supersede_live(c->user_id, serial, actor);
        Statement up(*this, "UPDATE certificates SET status = 'issued' WHERE serial = ?");
        up.bind(0, serial).run();
        append_event(actor, event_kind::kCertIssued, serial,
                     "user=" + c->user_id + " not_before=" + utc_time(c->not_before) +
                         " not_after=" + utc_time(c->not_after) + " handed_over=yes");
    });
}

void SqliteStore::abandon(const std::string& serial, const std::string& user_id,
                          const std::string& why, const std::string& actor) {
    const std::string reason = "cessationOfOperation";
    Statement s(*this,
                "UPDATE certificates SET status = 'revoked', revoked_at = ?, reason = ? "
                "WHERE serial = ? AND status = 'pending'");
    s.bind(0, now()).bind(1, reason).bind(2, serial).run();
    if (sqlite3_changes(db_) != 1) return;
    append_event(actor, event_kind::kCertRevoked, serial, "user=" + user_id + " reason=" + reason);
    append_event(actor, event_kind::kCertAbandoned, serial, "user=" + user_id + " why=" + why);
}

std::vector<std::string> SqliteStore::abandon_pending_certificates(const std::string& user_id,
                                                                   int64_t issued_before,
                                                                   const std::string& why,
                                                                   const std::string& actor) {
    std::vector<std::string> serials;
    write([&] {
        serials.clear();
        std::string sql = "SELECT serial, user_id FROM certificates WHERE status = 'pending'";
        if (!user_id.empty()) sql += " AND user_id = ?";
        if (issued_before) sql += " AND issued_at < ?";
        Statement s(*this, sql.c_str());
        int i = 0;
        if (!user_id.empty()) s.bind(i++, user_id);
        if (issued_before) s.bind(i++, issued_before);
        std::vector<std::pair<std::string, std::string>> rows;
        while (s.step()) rows.emplace_back(s.text(0), s.text(1));
        for (const auto& [serial, user] : rows) {
            abandon(serial, user, why, actor);
            serials.push_back(serial);
        }
    });
    return serials;
}

std::optional<Certificate> SqliteStore::find_certificate(const std::string& serial) {
    std::string sql = std::string("SELECT ") + kCertColumns + " FROM certificates WHERE serial = ?";
    Statement s(*this, sql.c_str());
    s.bind(0, serial_key(serial));
    if (!s.step()) return std::nullopt;
    return read_cert(s);
}

std::vector<Certificate> SqliteStore::list_certificates(const CertificateFilter& f) {
    std::string sql = std::string("SELECT ") + kCertColumns + " FROM certificates WHERE 1 = 1";
    if (!f.user_id.empty()) sql += " AND user_id = ?";
    if (f.status) sql += " AND status = ?";
    if (f.not_after_before) sql += " AND not_after < ?";
    if (f.not_after_from) sql += " AND not_after >= ?";
    sql += " ORDER BY issued_at DESC, serial";
    Statement s(*this, sql.c_str());
    int i = 0;
    if (!f.user_id.empty()) s.bind(i++, f.user_id);
    if (f.status) s.bind(i++, std::string(to_string(*f.status)));
    if (f.not_after_before) s.bind(i++, f.not_after_before);
    if (f.not_after_from) s.bind(i++, f.not_after_from);
    std::vector<Certificate> out;
    while (s.step()) out.push_back(read_cert(s));
    return out;
}

std::optional<Certificate> SqliteStore::current_certificate(const std::string& user_id) {
    std::string sql = std::string("SELECT ") + kCertColumns +
                      " FROM certificates WHERE user_id = ? AND status = 'issued' "
                      "ORDER BY not_after DESC LIMIT 1";
    Statement s(*this, sql.c_str());
    s.bind(0, user_id);
    if (!s.step()) return std::nullopt;
    return read_cert(s);
}

void SqliteStore::revoke_certificate(const std::string& serial, const std::string& reason,
                                     const std::string& actor) {
    write([&] {
        auto c = find_certificate(serial);
        if (!c) throw StoreNotFound("certificate " + serial + " is not in the store");
        if (c->status == CertStatus::revoked)
            throw StoreConflict("certificate " + c->serial + " is already revoked");
        Statement s(*this,
                    "UPDATE certificates SET status = 'revoked', revoked_at = ?, reason = ? "
                    "WHERE serial = ?");
        s.bind(0, now()).bind(1, reason).bind(2, c->serial).run();
        append_event(actor, event_kind::kCertRevoked, c->serial,
                     "user=" + c->user_id + " reason=" + reason);
    });
}

std::vector<std::string> SqliteStore::revoke_user_certificates(const std::string& user_id,
                                                               const std::string& reason,
                                                               const std::string& actor) {
    std::vector<std::string> serials;
    write([&] {
        serials.clear();
        require_user(user_id);
        Statement s(*this,
                    "SELECT serial FROM certificates WHERE user_id = ? "
                    "AND status IN ('issued', 'pending', 'superseded') AND not_after >= ?");
        s.bind(0, user_id).bind(1, now());
        while (s.step()) serials.push_back(s.text(0));
        for (const auto& serial : serials) revoke_certificate(serial, reason, actor);
    });
    return serials;
}

std::vector<Certificate> SqliteStore::revoked_certificates() {
    std::string sql = std::string("SELECT ") + kCertColumns +
                      " FROM certificates WHERE status = 'revoked' ORDER BY revoked_at, serial";
    Statement s(*this, sql.c_str());
    std::vector<Certificate> out;
    while (s.step()) out.push_back(read_cert(s));
    return out;
}

bool SqliteStore::claim_notice(const std::string& serial, CertNotice notice,
                               const std::string& actor) {
    bool claimed = false;
    write([&] {
        Statement s(*this,
                    "UPDATE certificates SET notices = notices | ? "
                    "WHERE serial = ? AND (notices & ?) = 0");
        s.bind(0, static_cast<int>(notice)).bind(1, serial_key(serial));
        s.bind(2, static_cast<int>(notice)).run();
        claimed = sqlite3_changes(db_) == 1;
        if (claimed)
            append_event(actor, event_kind::kCertNotice, serial_key(serial),
                         notice == kNoticeExpiring ? "expiring" : "expired");
    });
    return claimed;
}

// --- events ------------------------------------------------------------------------

int64_t SqliteStore::append_event(const std::string& actor, const std::string& kind,
                                  const std::string& subject, const std::string& detail) {
    int64_t id = 0;
    int64_t at = now();
    write([&] {
        Statement s(*this,
                    "INSERT INTO events (at, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?)");
        s.bind(0, at).bind(1, actor).bind(2, kind).bind(3, subject).bind(4, detail).run();
        id = sqlite3_last_insert_rowid(db_);
    });
    event_written(Event{id, at, actor, kind, subject, detail});
    return id;
}

std::vector<Event> SqliteStore::read_events(Statement& s) {
    std::vector<Event> out;
    while (s.step())
        out.push_back(Event{s.i64(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.text(5)});
    return out;
}

std::vector<Event> SqliteStore::events_since(int64_t after_id, int limit) {
    Statement s(*this,
                "SELECT id, at, actor, kind, subject, detail FROM events WHERE id > ? "
                "ORDER BY id LIMIT ?");
    s.bind(0, after_id).bind(1, limit);
    return read_events(s);
}

std::vector<Event> SqliteStore::events_for_user(const std::string& user_id, int64_t after_id,
                                                int limit) {
    // Certificate events name the serial as subject and the user in detail.
    Statement s(*this,
                "SELECT id, at, actor, kind, subject, detail FROM events WHERE id > ? "
                "AND (subject = ? OR actor = ? OR subject IN "
                "(SELECT serial FROM certificates WHERE user_id = ?)) ORDER BY id LIMIT ?");
    s.bind(0, after_id).bind(1, user_id).bind(2, user_id).bind(3, user_id).bind(4, limit);
    return read_events(s);
}

int64_t SqliteStore::first_event_since(int64_t at) {
    Statement s(*this, "SELECT coalesce(min(id), 0) FROM events WHERE at >= ?");
    s.bind(0, at);
    s.step();
    int64_t id = s.i64(0);
    return id ? id : last_event_id() + 1;
}

// The CRL is a row of certgate_meta (key 'crl'): "<number> <thisUpdate>
// <nextUpdate> <DER in hex>"; no schema change needed.
std::optional<StoredCrl> SqliteStore::current_crl() {
    Statement s(*this, "SELECT value FROM certgate_meta WHERE key = 'crl'");
    if (!s.step()) return std::nullopt;
    const std::string v = s.text(0);
    StoredCrl crl;
    long long number = 0, this_update = 0, next_update = 0;
    int used = 0;
    if (std::sscanf(v.c_str(), "%lld %lld %lld %n", &number, &this_update, &next_update, &used) !=
            3 ||
        (v.size() - static_cast<size_t>(used)) % 2 != 0)
        return std::nullopt;  // unreadable: signed again
    crl.number = number;
    crl.this_update = this_update;
    crl.next_update = next_update;
    auto nibble = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    for (size_t i = static_cast<size_t>(used); i + 1 < v.size(); i += 2) {
        int hi = nibble(v[i]), lo = nibble(v[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        crl.der.push_back(static_cast<uint8_t>(hi << 4 | lo));
    }
    return crl;
}

void SqliteStore::save_crl(const StoredCrl& crl) {
    static const char hex[] = "0123456789abcdef";
    std::string v = std::to_string(crl.number) + " " + std::to_string(crl.this_update) + " " +
                    std::to_string(crl.next_update) + " ";
    v.reserve(v.size() + crl.der.size() * 2);
    for (uint8_t b : crl.der) v += hex[b >> 4], v += hex[b & 15];
    write([&] {
        Statement s(*this,
                    "INSERT INTO certgate_meta (key, value) VALUES ('crl', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
        s.bind(0, v).run();
    });
}

bool SqliteStore::revoked_since(int64_t event_id) {
    Statement s(*this, "SELECT 1 FROM events WHERE id > ? AND kind = ? LIMIT 1");
    s.bind(0, event_id).bind(1, std::string(event_kind::kCertRevoked));
    return s.step();
}

int64_t SqliteStore::last_event_id() {
    Statement s(*this, "SELECT coalesce(max(id), 0) FROM events");
    s.step();
    return s.i64(0);
}

// --- outbox ------------------------------------------------------------------------

Mail SqliteStore::read_mail(const Statement& s) {
    Mail m;
    m.id = s.i64(0);
    m.to = s.text(1);
    m.subject = s.text(2);
    m.body = s.text(3);
    m.state = parse_mail_state(s.text(4)).value_or(MailState::failed);
    m.attempts = s.i32(5);
    m.next_attempt_at = s.i64(6);
    m.sent_at = s.i64(7);
    m.created_at = s.i64(8);
    m.last_error = s.text(9);
    m.expires_at = s.i64(10);
    return m;
}

int64_t SqliteStore::enqueue_mail(const std::string& to, const std::string& subject,
                                  const std::string& body, const std::string& actor,
                                  const std::string& about, int64_t expires_at) {
    int64_t id = 0;
    write([&] {
        const int64_t t = now();
        Statement s(*this,
                    "INSERT INTO outbox (recipient, subject, body, state, next_attempt_at, "
                    "created_at, expires_at) VALUES (?, ?, ?, 'queued', ?, ?, ?)");
        s.bind(0, to).bind(1, subject).bind(2, body).bind(3, t).bind(4, t).bind(5, expires_at);
        s.run();
        id = sqlite3_last_insert_rowid(db_);
        append_event(actor, event_kind::kMailQueued, about,
                     "mail=" + std::to_string(id) + " to=" + to);
    });
    return id;
}

Mail SqliteStore::enqueue_claimed_mail(const std::string& to, const std::string& subject,
                                       const std::string& body, const std::string& actor,
                                       const std::string& about, int lease_seconds,
                                       int64_t expires_at) {
    Mail m;
    write([&] {
        const int64_t t = now();
        Statement s(
            *this,
            "INSERT INTO outbox (recipient, subject, body, state, attempts, "
            "next_attempt_at, created_at, expires_at) VALUES (?, ?, ?, 'sending', 1, ?, ?, ?)");
        s.bind(0, to).bind(1, subject).bind(2, body).bind(3, t + lease_seconds).bind(4, t);
        s.bind(5, expires_at).run();
        m = Mail{};
        m.id = sqlite3_last_insert_rowid(db_);
        m.to = to;
        m.subject = subject;
        m.body = body;
        m.state = MailState::sending;
        m.attempts = 1;
        m.next_attempt_at = t + lease_seconds;
        m.created_at = t;
        m.expires_at = expires_at;
        append_event(actor, event_kind::kMailQueued, about,
                     "mail=" + std::to_string(m.id) + " to=" + to);
    });
    return m;
}

std::vector<Mail> SqliteStore::claim_due_mails(int limit, int lease_seconds) {
    std::vector<Mail> out;
    write([&] {
        out.clear();
        const int64_t t = now();
        // Past its use (an auth code after its lifetime): never sent, the
        // secret wiped; the row and its events stay for the audit.
        Statement gone(*this,
                       "SELECT id FROM outbox WHERE expires_at > 0 AND expires_at <= ? "
                       "AND (state IN ('queued', 'sending') AND next_attempt_at <= ? "
                       "OR state = 'failed' AND body <> '')");
        gone.bind(0, t).bind(1, t);
        std::vector<int64_t> expired;
        while (gone.step()) expired.push_back(gone.i64(0));
        for (int64_t id : expired) {
            Statement up(*this,
                         "UPDATE outbox SET body = '', last_error = CASE WHEN state = 'failed' "
                         "THEN last_error ELSE 'expired before delivery' END, state = 'failed' "
                         "WHERE id = ?");
            up.bind(0, id).run();
            append_event("certgate", event_kind::kMailFailed, "mail:" + std::to_string(id),
                         "expired: body wiped");
        }
        std::string sql = std::string("SELECT ") + kMailColumns +
                          " FROM outbox WHERE state IN ('queued', 'sending') "
                          "AND next_attempt_at <= ? ORDER BY id LIMIT ?";
        Statement s(*this, sql.c_str());
        s.bind(0, t).bind(1, limit);
        while (s.step()) out.push_back(read_mail(s));
        for (auto& m : out) {
            Statement up(*this,
                         "UPDATE outbox SET state = 'sending', attempts = attempts + 1, "
                         "next_attempt_at = ? WHERE id = ?");
            up.bind(0, t + lease_seconds).bind(1, m.id).run();
            m.state = MailState::sending;
            m.attempts += 1;
            m.next_attempt_at = t + lease_seconds;
        }
    });
    return out;
}

void SqliteStore::mark_mail_sent(int64_t id) {
    write([&] {
        Statement s(*this,
                    "UPDATE outbox SET state = 'sent', sent_at = ?, last_error = '', body = '' "
                    "WHERE id = ?");
        s.bind(0, now()).bind(1, id).run();
        if (sqlite3_changes(db_) != 1)
            throw StoreNotFound("mail " + std::to_string(id) + " is not in the outbox");
        append_event("certgate", event_kind::kMailSent, "mail:" + std::to_string(id), "");
    });
}

void SqliteStore::mark_mail_failed(int64_t id, const std::string& error, int64_t retry_at) {
    write([&] {
        Statement s(*this,
                    "UPDATE outbox SET state = ?, next_attempt_at = ?, last_error = ? "
                    "WHERE id = ?");
        s.bind(0, std::string(retry_at ? "queued" : "failed")).bind(1, retry_at);
        s.bind(2, error).bind(3, id).run();
        if (sqlite3_changes(db_) != 1)
            throw StoreNotFound("mail " + std::to_string(id) + " is not in the outbox");
        append_event("certgate", event_kind::kMailFailed, "mail:" + std::to_string(id),
                     (retry_at ? "retry_at=" + utc_time(retry_at) + " " : "gave up ") + error);
    });
}

std::vector<Mail> SqliteStore::list_mails(std::optional<MailState> state) {
    std::string sql = std::string("SELECT ") + kMailColumns + " FROM outbox" +
                      (state ? " WHERE state = ?" : "") + " ORDER BY id";
    Statement s(*this, sql.c_str());
    if (state) s.bind(0, std::string(to_string(*state)));
    std::vector<Mail> out;
    while (s.step()) out.push_back(read_mail(s));
    return out;
}

std::optional<Mail> SqliteStore::find_mail(int64_t id) {
    std::string sql = std::string("SELECT ") + kMailColumns + " FROM outbox WHERE id = ?";
    Statement s(*this, sql.c_str());
    s.bind(0, id);
    if (!s.step()) return std::nullopt;
    return read_mail(s);
}

void SqliteStore::retry_mail(int64_t id, const std::string& actor) {
    write([&] {
        Statement s(*this,
                    "UPDATE outbox SET state = 'queued', next_attempt_at = ? "
                    "WHERE id = ? AND state IN ('queued', 'failed')");
        s.bind(0, now()).bind(1, id).run();
        if (sqlite3_changes(db_) != 1)
            throw StoreNotFound("mail " + std::to_string(id) +
                                " is not waiting in the outbox (unknown, sending or sent)");
        append_event(actor, "mail.retry", "mail:" + std::to_string(id), "");
    });
}

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path, bool create) {
    return std::make_unique<SqliteStore>(path, create);
}

}  // namespace certgate
