// Internal to the SQL stores (store_sql.cpp, store_sql_*.cpp, store_sqlite*.cpp,
// store_pg*.cpp): what SQLite and PostgreSQL do alike. SqlStore holds the
// store port's logic and SQL once (users and lockout rows, certificates,
// events, outbox, the schema's version and migration run), written against
// Statement and a few hooks; each adapter adds its connection, transactions,
// error mapping and what its database does otherwise (row locks, DDL, the
// feed). The SQL sticks to what both accept; a dialect difference is a hook.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/base/utc_time.hpp"
#include "core/ports/store.hpp"

namespace certgate::sql_store {

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

// One query as an adapter runs it, written with ? placeholders. Errors are
// thrown as the adapter's StoreError. Columns and parameters count from 0.
class Query {
  public:
    virtual ~Query() = default;
    virtual void bind(int i, const std::string& v) = 0;
    virtual void bind(int i, int64_t v) = 0;
    virtual bool step() = 0;  // true: a row is ready
    virtual void run() = 0;
    virtual int changes() = 0;     // runs it: rows changed by an INSERT, UPDATE or DELETE
    virtual int64_t insert() = 0;  // runs an INSERT of one row: the id it was given
    virtual bool null(int col) const = 0;
    virtual std::string text(int col) const = 0;
    virtual int64_t i64(int col) const = 0;
};

// The words of the shared migrations (store_sql_schema.cpp) that each
// database says its own way, put in for {id}, {status_check}, ...
struct Ddl {
    const char* id;              // a primary key the database numbers
    const char* status_check;    // before certificates.status's CHECK: its name, if any
    const char* event_columns;   // after events.detail: the database's own columns
    const char* event_rules;     // after events' indexes: what keeps it append-only
    const char* pending_status;  // migration 1 -> 2: 'pending' allowed in certificates.status
};

class SqlStore;

// One query of a store: `Statement s(*this, "SELECT ... WHERE id = ?")`.
class Statement {
  public:
    Statement(SqlStore& store, const std::string& sql);

    Statement& bind(int i, const std::string& v) {
        query_->bind(i, v);
        return *this;
    }
    Statement& bind(int i, int64_t v) {
        query_->bind(i, v);
        return *this;
    }
    Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }

    bool step() { return query_->step(); }  // true: a row is ready
    void run() { query_->run(); }
    int changes() { return query_->changes(); }
    int64_t insert() { return query_->insert(); }
    bool null(int col) const { return query_->null(col); }
    std::string text(int col) const { return query_->text(col); }
    int64_t i64(int col) const { return query_->i64(col); }
    int i32(int col) const { return static_cast<int>(query_->i64(col)); }

  private:
    std::unique_ptr<Query> query_;
};

class SqlStore : public Store {
  public:
    virtual std::unique_ptr<Query> prepare(const std::string& sql) = 0;

    int schema_version() override;
    void migrate() override;
    void ping() override;

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
    // --- where the adapters differ ------------------------------------------------------
    // Whether a check-then-write locks the rows it reads (SELECT ... FOR
    // UPDATE): a server store, inside a transaction, whose writers run at
    // once. SQLite's write transaction holds the whole file instead.
    virtual bool locks_rows() const = 0;
    // Ends a SELECT whose rows the transaction goes on to change: when rows
    // are locked, `order` (one lock order for every writer) and FOR UPDATE,
    // SKIP LOCKED to pass over rows another writer holds; else nothing.
    std::string for_update(const char* order = "", bool skip_locked = false) const;
    // Inside write(): budget `key`'s row (window_start, used) ready to step,
    // held until the transaction ends; then its new window written back.
    virtual Statement lock_budget(const std::string& key, int64_t t) = 0;
    virtual void save_budget(const std::string& key, int64_t window_start, int used) = 0;
    // Inside write(): an event row was inserted (PostgreSQL notifies at commit).
    virtual void event_appended() {}
    // Inside migrate()'s write(), first: against other processes migrating.
    virtual void lock_schema() {}
    // The words of the schema each database says its own way (see Ddl).
    virtual const Ddl& ddl() const = 0;
    virtual bool has_table(const std::string& name) = 0;
    virtual bool holds_no_tables() = 0;  // an empty database: schema version 0
    virtual void exec(const std::string& sql, const std::string& during) = 0;

    // --- shared by both -----------------------------------------------------------------
    std::string migration(int from) const;  // the DDL from version `from` to from + 1
    // Inside write(): the user's row (locked where rows are); StoreNotFound.
    User require_user(const std::string& id);
    void end_streak(const std::string& id);
    AuthStreak read_streak(const std::string& id, bool lock);
    static User read_user(const Statement& s);
    static Certificate read_cert(const Statement& s);
    static Mail read_mail(const Statement& s);
    static std::vector<Event> read_events(Statement& s);
    void supersede_live(const std::string& user_id, const std::string& by,
                        const std::string& actor);
    void abandon(const std::string& serial, const std::string& user_id, const std::string& why,
                 const std::string& actor);
};

}  // namespace certgate::sql_store
