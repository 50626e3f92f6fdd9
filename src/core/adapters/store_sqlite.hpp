// Internal to the SQLite store (store_sqlite*.cpp): the connection, its
// prepared statements and the class behind the store port, so each concern
// (schema, users and lockout rows, certificates, events, outbox) has its file.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/base/utc_time.hpp"
#include "core/ports/store.hpp"

namespace certgate::sqlite_store {

// The store keeps serials as ca.hpp's serial_hex() prints them.
inline std::string serial_key(const std::string& text) {
    return normalize_serial_hex(text).value_or(std::string());
}

inline const char* const kUserColumns =
    "id, org_id, role, name, mail, password_hash, state, failure_streak, lock_count, "
    "locked_until, blocked, initial_password_at, created_at, last_login_at, language";
inline const char* const kCertColumns =
    "serial, user_id, not_before, not_after, status, issued_at, revoked_at, reason, notices";
inline const char* const kMailColumns =
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
    void set_language(const std::string& id, const std::string& language,
                      const std::string& actor) override;
    AuthStreak auth_streak(const std::string& id) override;
    AuthStreak lock_auth_streak(const std::string& id) override;
    void save_streak_failures(const std::string& id, bool known, int64_t epoch, int failures,
                              int64_t expires_at) override;
    void save_lock(const std::string& id, bool known, const LockState& lock, int64_t expires_at,
                   const std::string& actor) override;
    void prune_auth_streaks(int64_t now) override;
    BudgetTake take_budget(const std::string& key, int limit, int64_t window_s) override;
    BudgetTake peek_budget(const std::string& key, int limit, int64_t window_s) override;
    void record_login(const std::string& id, const std::string& actor,
                      const std::string& detail) override;
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

}  // namespace certgate::sqlite_store
