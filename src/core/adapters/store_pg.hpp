// Internal to the PostgreSQL store (store_pg*.cpp): the class behind the
// store port. What it shares with SQLite is SqlStore's (store_sql.hpp); here
// are the connection (made lazily, remade after the server went away), its
// error mapping, the DDL, the revocation feed and what many nodes sharing
// one database need: every check-then-write locks the rows it reads
// (SELECT ... FOR UPDATE) at READ COMMITTED.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/adapters/store_sql.hpp"

namespace certgate::pg_store {

using sql_store::Statement;

class PgStore final : public sql_store::SqlStore {
  public:
    explicit PgStore(const std::string& uri);
    ~PgStore() override;

    // Runs sql with text parameters on the connection (made or remade as
    // needed); throws the StoreError that says what went wrong.
    PGresult* execute(const std::string& sql, const std::vector<std::string>& params,
                      const std::string& during);
    [[noreturn]] void fail(PGresult* res, const std::string& during);
    std::unique_ptr<sql_store::Query> prepare(const std::string& sql) override;

    std::string describe() const override { return "store " + shown_uri_; }
    std::string permission_warning() const override;

    AuthStreak lock_auth_streak(const std::string& id) override;
    void save_crl(const StoredCrl& crl) override;

    FeedCursor feed_start() override;
    FeedPage feed_after(const FeedCursor& cursor, int limit) override;
    bool wait_for_feed(int timeout_ms) override;
    bool has_feed_notifications() const override { return true; }

  protected:
    void begin_write() override;
    void commit() override;
    void rollback() noexcept override;

    // Outside a transaction a row lock would end with its statement.
    bool locks_rows() const override { return in_tx_; }
    Statement lock_budget(const std::string& key, int64_t t) override;
    void save_budget(const std::string& key, int64_t window_start, int used) override;
    void event_appended() override { notify_ = true; }
    void lock_schema() override;
    const sql_store::Ddl& ddl() const override;
    bool has_table(const std::string& name) override;
    bool holds_no_tables() override;
    void exec(const std::string& sql, const std::string& during) override;

  private:
    PGconn* connection();
    void drop_connection() noexcept;
    std::string server() const;  // "host 127.0.0.1 port 5432" for messages

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
