// Internal to the PostgreSQL store (store_pg*.cpp): the connection, the
// query helper and the class behind the store port, split by concern like
// the SQLite store (schema, users and lockout rows, certificates, events,
// outbox). Many nodes share one database: every check-then-write locks the
// rows it reads (SELECT ... FOR UPDATE) at READ COMMITTED.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/base/utc_time.hpp"
#include "core/ports/store.hpp"

namespace certgate::pg_store {

inline std::string serial_key(const std::string& text) {
    return normalize_serial_hex(text).value_or(std::string());
}

inline const char* const kUserColumns =
    "id, org_id, role, name, mail, password_hash, state, failure_streak, lock_count, "
    "locked_until, blocked, initial_password_at, created_at, last_login_at";
inline const char* const kCertColumns =
    "serial, user_id, not_before, not_after, status, issued_at, revoked_at, reason, notices";
inline const char* const kMailColumns =
    "id, recipient, subject, body, state, attempts, next_attempt_at, sent_at, created_at, "
    "last_error, expires_at";

class PgStore;

// One query: written with ? placeholders (as the SQLite store's), sent as
// $1..$n with text parameters. Runs at the first step() or run(); columns
// and parameters are numbered from 0.
class Statement {
  public:
    Statement(PgStore& store, const std::string& sql);
    ~Statement() { PQclear(res_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int i, const std::string& v);
    Statement& bind(int i, int64_t v) { return bind(i, std::to_string(v)); }
    Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }

    bool step();  // true: a row is ready
    void run();
    int changes();  // rows changed by an INSERT, UPDATE or DELETE
    bool null(int col) const { return PQgetisnull(res_, row_, col) != 0; }
    std::string text(int col) const {
        return std::string(PQgetvalue(res_, row_, col),
                           static_cast<size_t>(PQgetlength(res_, row_, col)));
    }
    int64_t i64(int col) const { return std::strtoll(PQgetvalue(res_, row_, col), nullptr, 10); }
    int i32(int col) const { return static_cast<int>(i64(col)); }

  private:
    PgStore& store_;
    std::string sql_;
    std::vector<std::string> params_;
    PGresult* res_ = nullptr;
    int row_ = -1;
};

class PgStore final : public Store {
  public:
    explicit PgStore(const std::string& uri);
    ~PgStore() override;

    // Runs sql with text parameters on the connection (made or remade as
    // needed); throws the StoreError that says what went wrong.
    PGresult* execute(const std::string& sql, const std::vector<std::string>& params,
                      const std::string& during);
    [[noreturn]] void fail(PGresult* res, const std::string& during);

    int schema_version() override;
    void migrate() override;
    void ping() override;
    std::string describe() const override { return "store " + shown_uri_; }
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
    FeedCursor feed_start() override;
    FeedPage feed_after(const FeedCursor& cursor, int limit) override;
    bool wait_for_feed(int timeout_ms) override;

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
    void begin_write() override;
    void commit() override;
    void rollback() noexcept override;

  private:
    PGconn* connection();
    void drop_connection() noexcept;
    std::string server() const;  // "host 127.0.0.1 port 5432" for messages
    void exec(const std::string& sql, const std::string& during);
    bool has_table(const std::string& name);
    User require_user(const std::string& id, bool lock = true);
    void end_streak(const std::string& id);
    AuthStreak read_streak(const std::string& id, bool for_update);
    static User read_user(const Statement& s);
    static Certificate read_cert(const Statement& s);
    static Mail read_mail(const Statement& s);
    std::vector<Event> read_events(Statement& s);
    void supersede_live(const std::string& user_id, const std::string& by,
                        const std::string& actor);
    void abandon(const std::string& serial, const std::string& user_id, const std::string& why,
                 const std::string& actor);

    std::string conninfo_;   // the URI with certgate's defaults added
    std::string shown_uri_;  // the URI without its password
    PGconn* conn_ = nullptr;
    bool in_tx_ = false;
    bool notify_ = false;     // this transaction appended an event
    bool listening_ = false;  // LISTEN certgate_feed done on conn_
};

// The URI without a password (in the user part or as password=).
std::string redact_uri(const std::string& uri);

}  // namespace certgate::pg_store
