// Internal to the SQLite store (store_sqlite*.cpp): the class behind the
// store port. What it shares with PostgreSQL is SqlStore's (store_sql.hpp);
// here are the file, its checks and error mapping, the write transaction
// (BEGIN IMMEDIATE holds the whole file, so no row is locked) and the DDL.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/adapters/store_sql.hpp"

namespace certgate::sqlite_store {

using sql_store::Statement;

class SqliteStore final : public sql_store::SqlStore {
  public:
    SqliteStore(const std::string& path, bool create);
    ~SqliteStore() override { sqlite3_close_v2(db_); }

    [[noreturn]] void fail(int rc, const std::string& during) const;
    sqlite3* db() const { return db_; }
    std::unique_ptr<sql_store::Query> prepare(const std::string& sql) override;

    std::string describe() const override { return "store sqlite:" + path_; }
    std::string permission_warning() const override;

    AuthStreak lock_auth_streak(const std::string& id) override;
    void save_crl(const StoredCrl& crl) override;

  protected:
    void begin_write() override { exec("BEGIN IMMEDIATE", "starting a write"); }
    void commit() override { exec("COMMIT", "committing"); }
    void rollback() noexcept override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

    bool locks_rows() const override { return false; }
    Statement lock_budget(const std::string& key, int64_t t) override;
    void save_budget(const std::string& key, int64_t window_start, int used) override;
    const sql_store::Ddl& ddl() const override;
    bool has_table(const std::string& name) override;
    bool holds_no_tables() override;
    void exec(const std::string& sql, const std::string& during) override;

  private:
    std::string path_;
    sqlite3* db_ = nullptr;
};

}  // namespace certgate::sqlite_store
