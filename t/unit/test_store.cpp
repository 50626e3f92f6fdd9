// The store interface on SQLite and PostgreSQL: opening (and the errors a
// sysadmin sees), schema checks, organisations, users and their lock/block
// states, certificates, the append-only event table and the mail outbox.
// The contract tests run against both backends (group "store_pg": a
// throw-away server from t/lib/pgtmp, one schema per test); the PostgreSQL
// group adds what only many writers on many connections show.
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/app/authentication.hpp"
#include "core/app/revocation_feed.hpp"
#include "core/ports/store.hpp"

// cmocka last: it needs the three C headers first and has no extern "C".
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;

namespace {

std::string dir;
int counter = 0;
int64_t fake_now = 1795680000;  // 2026-11-26T03:20:00Z

// The PostgreSQL group: pg_uri is the server's, with no schema chosen.
bool on_pg = false;
std::string pg_dir, pg_uri;

// A loopback port nobody listens on now (CERTGATE_PG_PORT if set), so that
// suites of several checkouts on one machine do not meet.
std::string free_pg_port() {
    if (const char* fixed = std::getenv("CERTGATE_PG_PORT")) return fixed;
    std::srand(static_cast<unsigned>(getpid()));
    for (int i = 0; i < 200; ++i) {
        int port = 20000 + std::rand() % 12000;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        close(fd);
        if (ok) return std::to_string(port);
    }
    return "55410";
}

// Runs sql on a connection of its own (as another node would); true if it worked.
bool pg_sql(const std::string& uri, const std::string& sql, std::string* first_value = nullptr) {
    PGconn* c = PQconnectdb(uri.c_str());
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult* r = PQexec(c, sql.c_str());
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok) print_message("pg_sql: %s\n", PQerrorMessage(c));
        if (ok && first_value && PQntuples(r) > 0) *first_value = PQgetvalue(r, 0, 0);
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

// The URI of a new, empty schema on the test server.
std::string pg_fresh_uri() {
    std::string schema = "t" + std::to_string(++counter);
    assert_true(pg_sql(pg_uri, "CREATE SCHEMA " + schema));
    return pg_uri + "&options=-csearch_path%3D" + schema;
}

// A fresh, migrated store (its own file or schema), with a fixed clock.
// path_out: what Store::open takes to open it again.
std::unique_ptr<Store> fresh_store(std::string* path_out = nullptr) {
    std::string path = on_pg ? pg_fresh_uri() : dir + "/s" + std::to_string(++counter) + ".db";
    auto s = Store::open(on_pg ? path : "sqlite:" + path, true);
    s->set_clock([] { return fake_now; });
    s->migrate();
    if (path_out) *path_out = path;
    return s;
}

// The message of the StoreError that f throws ("" if it throws none).
template <class E = StoreError, class F>
std::string error_of(F f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& hay, const char* needle) {
    return hay.find(needle) != std::string::npos;
}

void raw_sql(const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    assert_int_equal(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) print_message("raw_sql: %s\n", err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

User make_user(const std::string& id, const std::string& org, Role role) {
    User u;
    u.id = id;
    u.org = org;
    u.role = role;
    u.mail = id + "@example.com";
    u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    u.state = UserState::must_register;
    return u;
}

Certificate make_cert(const std::string& serial, const std::string& user, int64_t not_after) {
    Certificate c;
    c.serial = serial;
    c.user_id = user;
    c.not_before = fake_now;
    c.not_after = not_after;
    return c;
}

// ---- opening and the schema ----------------------------------------------------------

void open_missing_file_says_init(void**) {
    std::string msg = error_of([] { Store::open("sqlite:" + dir + "/nope.db"); });
    assert_true(contains(msg, "does not exist"));
    assert_true(contains(msg, "certgatectl init"));
    assert_int_equal(access((dir + "/nope.db").c_str(), F_OK), -1);  // nothing created
}

void open_missing_directory(void**) {
    std::string msg = error_of([] { Store::open(dir + "/no/such/dir.db", true); });
    assert_true(contains(msg, "directory"));
}

void open_not_sqlite(void**) {
    std::string path = dir + "/text.db";
    std::ofstream(path) << "this is not a database at all, just words, words and more words\n";
    std::string msg = error_of([&] {
        auto s = Store::open(path);
        s->schema_version();
    });
    assert_true(contains(msg, "not an SQLite database"));
}

void open_foreign_sqlite(void**) {
    std::string path = dir + "/foreign.db";
    raw_sql(path, "CREATE TABLE t (x INTEGER)");
    auto s = Store::open("sqlite:" + path);
    assert_int_equal(s->schema_version(), -1);
    assert_true(contains(error_of([&] { check_schema(*s); }), "not a certgate store"));
    assert_true(contains(error_of([&] { s->migrate(); }), "not a certgate store"));
}

void open_unreadable(void**) {
    if (geteuid() == 0) {
        print_message("running as root: permissions are not enforced, skipped\n");
        return;
    }
    std::string path;
    fresh_store(&path);
    chmod(path.c_str(), 0);
    assert_true(contains(error_of([&] { Store::open(path); }), "permission denied"));
}

void unknown_scheme(void**) {
    assert_true(contains(error_of([] { Store::open("mysql://x/y"); }), "unknown scheme"));
}

// Schema 4 -> 5: users.language, '' for the users already there; the port
// keeps ja, en or '' and refuses anything else.
void migrate_v4_language(void**) {
    std::string path;
    {
        auto s = fresh_store(&path);
        s->add_org({"ORG1", "One", 0}, "op");
        s->add_user(make_user("tanaka01", "ORG1", Role::master), "op");
    }
    raw_sql(path,
            "ALTER TABLE users DROP COLUMN language;"
            "UPDATE certgate_meta SET value = '4' WHERE key = 'schema_version'");
    auto s = Store::open(path);
    s->set_clock([] { return fake_now; });
    assert_int_equal(s->schema_version(), 4);
    s->migrate();
    assert_int_equal(s->schema_version(), 5);
    auto u = s->find_user("tanaka01");
    assert_true(u.has_value());
    assert_string_equal(u->language.c_str(), "");
    s->set_language("tanaka01", "en", "tanaka01");
    assert_string_equal(s->find_user("tanaka01")->language.c_str(), "en");
    auto last = s->events_since(s->last_event_id() - 1, 1);
    assert_string_equal(last[0].kind.c_str(), event_kind::kLanguageSet);
    assert_string_equal(last[0].detail.c_str(), "from=- to=en");
    assert_true(
        contains(error_of([&] { s->set_language("tanaka01", "fr", "x"); }), "not ja or en"));
    assert_true(contains(error_of<StoreNotFound>([&] { s->set_language("nobody1", "ja", "x"); }),
                         "does not exist"));
    s->set_language("tanaka01", "", "op");
    assert_string_equal(s->find_user("tanaka01")->language.c_str(), "");
}

void migrate_and_check(void**) {
    std::string path;
    auto s = fresh_store(&path);
    assert_int_equal(s->schema_version(), Store::kSchemaVersion);
    check_schema(*s);
    s->ping();
    s->migrate();  // again: nothing to do, no second init event
    auto events = s->events_since(0, 10);
    assert_int_equal(events.size(), 1);
    assert_string_equal(events[0].kind.c_str(), event_kind::kStoreInit);

    // A store from a newer certgate.
    raw_sql(path, "UPDATE certgate_meta SET value = '99' WHERE key = 'schema_version'");
    auto s2 = Store::open(path);
    std::string msg = error_of([&] { check_schema(*s2); });
    assert_true(contains(msg, "this certgate is older than the store"));
    assert_true(contains(error_of([&] { s2->migrate(); }), "older than the store"));

    // An empty file: not yet initialised.
    std::string empty = dir + "/empty.db";
    auto s3 = Store::open(empty, true);
    assert_int_equal(s3->schema_version(), 0);
    assert_true(contains(error_of([&] { check_schema(*s3); }), "certgatectl init"));
}

void wal_mode_is_on(void**) {
    std::string path;
    auto s = fresh_store(&path);
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

// ---- organisations and users -----------------------------------------------------------

void orgs_add_find_list(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "第一団体", 0}, "operator:test");
    s->add_org({"ORG2", "Second", 0}, "operator:test");
    auto o = s->find_org("ORG1");
    assert_true(o.has_value());
    assert_string_equal(o->name.c_str(), "第一団体");
    assert_int_equal(o->created_at, fake_now);
    assert_false(s->find_org("ORG3").has_value());
    assert_int_equal(s->list_orgs().size(), 2);
    assert_true(contains(error_of<StoreConflict>([&] {
                             s->add_org({"ORG1", "again", 0}, "operator:test");
                         }),
                         "already exists"));
}

void users_add_and_read(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    User m = make_user("master01", "ORG1", Role::master);
    m.name = "山田 太郎";
    s->add_user(m, "op", "initial password issued");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    auto u = s->find_user("master01");
    assert_true(u.has_value());
    assert_string_equal(u->org.c_str(), "ORG1");
    assert_int_equal(static_cast<int>(u->role), static_cast<int>(Role::master));
    assert_string_equal(u->name.c_str(), "山田 太郎");
    assert_string_equal(u->mail.c_str(), "master01@example.com");
    assert_int_equal(static_cast<int>(u->state), static_cast<int>(UserState::must_register));
    assert_int_equal(u->initial_password_at, fake_now);
    assert_false(u->blocked);
    // IDs are case-sensitive (R8).
    assert_false(s->find_user("MASTER01").has_value());
    assert_int_equal(s->list_users("ORG1").size(), 2);
    assert_int_equal(s->list_users().size(), 2);
    assert_int_equal(s->list_users("ORG2").size(), 0);
}

void users_bad_adds_change_nothing(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("master01", "ORG1", Role::master), "op");
    const int64_t before = s->last_event_id();
    assert_true(contains(error_of<StoreNotFound>([&] {
                             s->add_user(make_user("user0001", "NOORG", Role::general), "op");
                         }),
                         "organisation NOORG does not exist"));
    assert_true(contains(error_of<StoreConflict>([&] {
                             s->add_user(make_user("master01", "ORG1", Role::general), "op");
                         }),
                         "already exists"));
    // R16: one master per organisation.
    assert_true(contains(error_of<StoreConflict>([&] {
                             s->add_user(make_user("master02", "ORG1", Role::master), "op");
                         }),
                         "already has master user master01"));
    assert_int_equal(s->last_event_id(), before);
    assert_int_equal(s->list_users().size(), 1);
}

// Issue 13: the streak of a typed ID is the store's; the failure that
// reaches the limit locks in its own transaction, and the epoch moves on.
void streaks_of_real_and_unknown_ids(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    LockoutRule rule;
    rule.lock_time_s = 60;
    for (const char* id : {"general01", "nosuch01"}) {
        const bool known = std::string(id) == "general01";
        for (int lock = 1; lock <= 3; ++lock) {
            AuthStreak st = s->auth_streak(id);
            int locks = 0;
            StreakFailure f;
            for (int i = 0; i < 6; ++i) {
                f = record_wrong_password(*s, rule, id, known, st.epoch, fake_now, "wrong",
                                          [&](const StreakFailure&) { ++locks; });
                assert_true(f.counted);
                assert_int_equal(f.failures, i + 1);
                assert_int_equal(f.locked, i == 5);
            }
            assert_int_equal(locks, 1);
            assert_int_equal(f.blocked, lock == 3);
            AuthStreak after = s->auth_streak(id);
            assert_true(after.epoch > st.epoch);
            assert_int_equal(after.failures, 0);
            // A failure judged in the old epoch does not count any more.
            assert_false(
                record_wrong_password(*s, rule, id, known, st.epoch, fake_now, "late", nullptr)
                    .counted);
            if (known) {
                assert_int_equal(s->find_user(id)->blocked, lock == 3);
                if (lock < 3) s->unlock_user(id, "op");
            } else {
                assert_int_equal(after.blocked, lock == 3);
                assert_int_equal(after.lock_count, lock);
                assert_true(after.locked_until == fake_now + 60);
            }
        }
    }
}

void code_budget_per_window(void**) {
    auto s = fresh_store();
    for (int i = 1; i <= 3; ++i) {
        BudgetTake b = s->take_budget("code_try:u1", 3, 86400);
        assert_true(b.allowed);
        assert_int_equal(b.used, i);
        assert_int_equal(b.reached, i == 3);
        assert_true(b.resets_at == fake_now + 86400);
    }
    assert_false(s->take_budget("code_try:u1", 3, 86400).allowed);
    assert_false(s->peek_budget("code_try:u1", 3, 86400).allowed);
    assert_true(s->take_budget("code_try:u2", 3, 86400).allowed);
    const int64_t saved = fake_now;
    fake_now += 86400;
    assert_true(s->take_budget("code_try:u1", 3, 86400).allowed);
    fake_now = saved;
}

LockoutRule locks_rule(int locks) {
    LockoutRule rule;
    rule.locks = locks;
    return rule;
}

void lock_three_times_blocks(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    for (int i = 0; i < 5; ++i)
        record_wrong_password(*s, LockoutRule(), "general01", true,
                              s->auth_streak("general01").epoch, fake_now, "wrong password",
                              nullptr);
    assert_int_equal(s->find_user("general01")->failure_streak, 5);

    LockState r = lock_user(*s, locks_rule(3), "general01", fake_now + 3600, "certgate");
    assert_int_equal(r.lock_count, 1);
    assert_false(r.blocked);
    auto u = s->find_user("general01");
    assert_true(u->locked_at(fake_now));
    assert_false(u->locked_at(fake_now + 3600));  // the lock lifts by itself
    assert_int_equal(u->failure_streak, 0);

    s->unlock_user("general01", "master01");
    assert_false(s->find_user("general01")->locked_at(fake_now));
    assert_true(contains(error_of<StoreConflict>([&] { s->unlock_user("general01", "op"); }),
                         "not locked"));

    lock_user(*s, locks_rule(3), "general01", fake_now + 3600, "certgate");
    r = lock_user(*s, locks_rule(3), "general01", fake_now + 3600, "certgate");
    assert_int_equal(r.lock_count, 3);
    assert_true(r.blocked);
    assert_true(s->find_user("general01")->blocked);
    assert_true(contains(error_of<StoreConflict>([&] {
                             lock_user(*s, locks_rule(3), "general01", fake_now + 60, "certgate");
                         }),
                         "already blocked"));

    s->unblock_user("general01", "master01");
    u = s->find_user("general01");
    assert_false(u->blocked);
    assert_int_equal(u->lock_count, 0);
    assert_false(u->locked_at(fake_now));
    assert_true(contains(error_of<StoreConflict>([&] { s->unblock_user("general01", "op"); }),
                         "not blocked"));
}

void login_resets_the_lock_count(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    lock_user(*s, locks_rule(3), "general01", fake_now - 1, "certgate");
    lock_user(*s, locks_rule(3), "general01", fake_now - 1, "certgate");
    s->record_login("general01", "general01");
    auto u = s->find_user("general01");
    assert_int_equal(u->lock_count, 0);
    assert_int_equal(u->last_login_at, fake_now);
    // Three more locks are needed to block again (R10: without a success in between).
    lock_user(*s, locks_rule(3), "general01", fake_now - 1, "certgate");
    assert_false(lock_user(*s, locks_rule(3), "general01", fake_now - 1, "certgate").blocked);
}

void reset_registration_and_passwords(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("master01", "ORG1", Role::master), "op");
    s->complete_registration("master01", "$argon2id$new", "new@example.com", "master01");
    auto u = s->find_user("master01");
    assert_int_equal(static_cast<int>(u->state), static_cast<int>(UserState::active));
    assert_string_equal(u->mail.c_str(), "new@example.com");
    assert_int_equal(u->initial_password_at, 0);
    assert_true(contains(error_of<StoreConflict>(
                             [&] { s->complete_registration("master01", "x", "y@z", "master01"); }),
                         "not waiting for registration"));

    s->block_user("master01", "op");
    s->reset_user("master01", "$argon2id$initial", "operator:bank");
    u = s->find_user("master01");
    assert_int_equal(static_cast<int>(u->state), static_cast<int>(UserState::must_register));
    assert_string_equal(u->password_hash.c_str(), "$argon2id$initial");
    assert_false(u->blocked);
    assert_int_equal(u->initial_password_at, fake_now);

    s->set_password("master01", "$argon2id$chosen", "master01", "first registration");
    assert_int_equal(static_cast<int>(s->find_user("master01")->state),
                     static_cast<int>(UserState::active));
    assert_true(contains(error_of<StoreNotFound>([&] { s->reset_user("nobody1", "x", "op"); }),
                         "does not exist"));
}

// ---- certificates ----------------------------------------------------------------------

void certificates_issue_supersede_revoke(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    s->add_certificate(make_cert("0a1b2c3d", "general01", fake_now + 86400 * 10), false,
                       "general01");
    auto c = s->find_certificate("0A:1B:2C:3D");  // any spelling finds it
    assert_true(c.has_value());
    assert_string_equal(c->serial.c_str(), "0A1B2C3D");
    assert_int_equal(static_cast<int>(c->status), static_cast<int>(CertStatus::issued));
    assert_true(contains(error_of<StoreConflict>([&] {
                             s->add_certificate(make_cert("0A1B2C3D", "general01", fake_now), false,
                                                "x");
                         }),
                         "already recorded"));
    assert_true(contains(error_of<StoreNotFound>([&] {
                             s->add_certificate(make_cert("FF", "nobody1", fake_now), false, "x");
                         }),
                         "does not exist"));

    // Renewal supersedes the old one.
    s->add_certificate(make_cert("1234", "general01", fake_now + 86400 * 366), true, "general01");
    assert_int_equal(static_cast<int>(s->find_certificate("0A1B2C3D")->status),
                     static_cast<int>(CertStatus::superseded));
    assert_string_equal(s->current_certificate("general01")->serial.c_str(), "1234");

    s->revoke_certificate("1234", "keyCompromise", "operator:bank");
    c = s->find_certificate("1234");
    assert_int_equal(static_cast<int>(c->status), static_cast<int>(CertStatus::revoked));
    assert_string_equal(c->reason.c_str(), "keyCompromise");
    assert_int_equal(c->revoked_at, fake_now);
    assert_false(s->current_certificate("general01").has_value());
    assert_true(contains(
        error_of<StoreConflict>([&] { s->revoke_certificate("1234", "keyCompromise", "op"); }),
        "already revoked"));
    assert_true(contains(
        error_of<StoreNotFound>([&] { s->revoke_certificate("ABCDEF", "keyCompromise", "op"); }),
        "not in the store"));

    // By user: the superseded one (still valid) goes too.
    auto serials = s->revoke_user_certificates("general01", "cessationOfOperation", "op");
    assert_int_equal(serials.size(), 1);
    assert_string_equal(serials[0].c_str(), "0A1B2C3D");
    assert_int_equal(s->revoked_certificates().size(), 2);

    CertificateFilter f;
    f.status = CertStatus::revoked;
    assert_int_equal(s->list_certificates(f).size(), 2);
    f = {};
    f.not_after_before = fake_now + 86400 * 30;
    assert_int_equal(s->list_certificates(f).size(), 1);
}

// The revocation feed says how long each entry matters (issue 12): a revoked
// serial until its notAfter, a logout with its user.
void revocation_feed_carries_lifetimes(void**) {
    using K = RevocationUpdate::Kind;
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    s->add_certificate(make_cert("0A01", "general01", fake_now + 86400), false, "general01");
    s->add_certificate(make_cert("0A02", "general01", fake_now - 86400), false, "general01");
    s->revoke_certificate("0A01", "keyCompromise", "op");
    s->revoke_certificate("0A02", "keyCompromise", "op");
    s->append_event("general01", event_kind::kLogout, "general01", "session=abc client=::1");

    FeedBatch initial = initial_feed(*s, fake_now, 8 * 3600);
    int serials = 0;
    for (const auto& u : initial.updates) {
        if (u.kind != K::serial_revoked) continue;
        serials++;
        assert_string_equal(u.key.c_str(), "0A01");  // the expired one is left out
        assert_int_equal(u.not_after, fake_now + 86400);
    }
    assert_int_equal(serials, 1);

    FeedBatch since = feed_next(*s, FeedCursor{}, 100);
    bool logout = false, revoked = false;
    for (const auto& u : since.updates) {
        if (u.kind == K::session_ended) {
            logout = true;
            assert_string_equal(u.key.c_str(), "abc");
            assert_string_equal(u.user_id.c_str(), "general01");
            assert_true(u.event_id > 0);
        }
        if (u.kind == K::serial_revoked && u.key == "0A01") {
            revoked = true;
            assert_int_equal(u.not_after, fake_now + 86400);
        }
    }
    assert_true(logout);
    assert_true(revoked);
}

void notices_are_claimed_once(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    s->add_certificate(make_cert("AB", "general01", fake_now + 86400), false, "general01");
    assert_true(s->claim_notice("AB", kNoticeExpiring, "certgate"));
    assert_false(s->claim_notice("AB", kNoticeExpiring, "certgate"));
    assert_true(s->claim_notice("AB", kNoticeExpired, "certgate"));
    assert_false(s->claim_notice("AB", kNoticeExpired, "certgate"));
    assert_int_equal(s->find_certificate("AB")->notices, kNoticeExpiring | kNoticeExpired);
}

// ---- events ----------------------------------------------------------------------------

void events_are_numbered_in_order(void**) {
    auto s = fresh_store();
    s->add_org({"ORG1", "One", 0}, "operator:bank");
    s->add_user(make_user("master01", "ORG1", Role::master), "operator:bank");
    lock_user(*s, locks_rule(1), "master01", fake_now + 60,
              "certgate");  // locks and blocks: two events
    s->append_event("master01", "user.logout", "master01", "");
    auto ev = s->events_since(0, 100);
    const char* kinds[] = {event_kind::kStoreInit,   event_kind::kOrgAdded,
                           event_kind::kUserAdded,   event_kind::kUserLocked,
                           event_kind::kUserBlocked, "user.logout"};
    assert_int_equal(ev.size(), 6);
    for (size_t i = 0; i < ev.size(); ++i) {
        assert_int_equal(ev[i].id, static_cast<int64_t>(i + 1));
        assert_string_equal(ev[i].kind.c_str(), kinds[i]);
        assert_int_equal(ev[i].at, fake_now);
    }
    assert_string_equal(ev[2].actor.c_str(), "operator:bank");
    assert_string_equal(ev[2].subject.c_str(), "master01");
    assert_true(contains(ev[2].detail, "role=master"));
    assert_int_equal(s->last_event_id(), 6);
    // The feed pages from an id.
    auto tail = s->events_since(4, 1);
    assert_int_equal(tail.size(), 1);
    assert_int_equal(tail[0].id, 5);
    assert_int_equal(s->events_for_user("master01", 0, 100).size(), 4);
}

void events_are_append_only(void**) {
    std::string path;
    auto s = fresh_store(&path);
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    assert_int_not_equal(
        sqlite3_exec(db, "UPDATE events SET detail = 'x'", nullptr, nullptr, nullptr), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM events", nullptr, nullptr, nullptr),
                         SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(s->events_since(0, 10).size(), 1);
}

void failed_write_rolls_back(void**) {
    auto s = fresh_store();
    const int64_t before = s->last_event_id();
    bool thrown = false;
    try {
        s->write([&] {
            s->add_org({"ORG1", "One", 0}, "op");
            throw std::runtime_error("letter could not be written");
        });
    } catch (const std::runtime_error&) {
        thrown = true;
    }
    assert_true(thrown);
    assert_false(s->find_org("ORG1").has_value());
    assert_int_equal(s->last_event_id(), before);
    // And the store is usable afterwards.
    s->add_org({"ORG1", "One", 0}, "op");
    assert_true(s->find_org("ORG1").has_value());
}

// Several connections (as nginx workers and certgatectl) write at once:
// every write lands, event ids stay unique and gapless.
void concurrent_writers(void**) {
    std::string path;
    auto s = fresh_store(&path);
    s->add_org({"ORG1", "One", 0}, "op");
    const int threads = 4, per_thread = 50;
    std::atomic<int> failures{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            try {
                auto mine = Store::open(path);
                for (int i = 0; i < per_thread; ++i) {
                    std::string id = "u" + std::to_string(t) + "x" + std::to_string(i) + "abc";
                    mine->add_user(make_user(id, "ORG1", Role::general), "op");
                    mine->append_event("op", "test.ping", id, "");
                }
            } catch (const std::exception& e) {
                print_message("writer %d: %s\n", t, e.what());
                ++failures;
            }
        });
    for (auto& th : pool) th.join();
    assert_int_equal(failures.load(), 0);
    assert_int_equal(s->list_users().size(), threads * per_thread);
    auto ev = s->events_since(0, 10000);
    assert_int_equal(ev.size(), 2 + 2 * threads * per_thread);
    for (size_t i = 0; i < ev.size(); ++i) assert_int_equal(ev[i].id, static_cast<int64_t>(i + 1));
}

// ---- outbox ----------------------------------------------------------------------------

void outbox_claim_fail_retry_send(void**) {
    auto s = fresh_store();
    int64_t id = s->enqueue_mail("a@example.com", "認証コード", "123456", "certgate", "user01");
    assert_true(id > 0);
    auto due = s->claim_due_mails(10, 60);
    assert_int_equal(due.size(), 1);
    assert_int_equal(due[0].attempts, 1);
    assert_string_equal(due[0].subject.c_str(), "認証コード");
    // Leased: a second sender gets nothing until the lease ends.
    assert_int_equal(s->claim_due_mails(10, 60).size(), 0);
    fake_now += 61;
    assert_int_equal(s->claim_due_mails(10, 60).size(), 1);

    s->mark_mail_failed(id, "connection refused", fake_now + 300);
    assert_int_equal(s->claim_due_mails(10, 60).size(), 0);
    s->retry_mail(id, "operator:bank");
    due = s->claim_due_mails(10, 60);
    assert_int_equal(due.size(), 1);
    assert_int_equal(due[0].attempts, 3);
    s->mark_mail_sent(id);
    auto sent = s->list_mails(MailState::sent);
    assert_int_equal(sent.size(), 1);
    assert_int_equal(sent[0].sent_at, fake_now);
    assert_int_equal(s->claim_due_mails(10, 60).size(), 0);
    assert_true(contains(error_of<StoreNotFound>([&] { s->retry_mail(id, "op"); }), "not waiting"));
    assert_true(
        contains(error_of<StoreNotFound>([&] { s->mark_mail_sent(999); }), "not in the outbox"));
}

// ---- PostgreSQL only -------------------------------------------------------------------

std::string pgtmp(const std::string& what) {
    char exe[4096] = {0};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string root = n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string();
    // build-test/unit/test_store -> the source tree
    for (int i = 0; i < 3 && !root.empty(); ++i) root = root.substr(0, root.rfind('/'));
    const char* src = std::getenv("CERTGATE_SRC");
    if (src) root = src;
    return root + "/t/lib/pgtmp " + what + " '" + pg_dir + "'";
}

std::string run_output(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    if (pclose(p) != 0) return "";
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

void pg_migrate_and_check(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    assert_int_equal(s->schema_version(), Store::kSchemaVersion);
    check_schema(*s);
    s->ping();
    s->migrate();
    assert_int_equal(s->events_since(0, 10).size(), 1);
    // From a newer certgate.
    assert_true(pg_sql(uri, "UPDATE certgate_meta SET value = '99' WHERE key = 'schema_version'"));
    auto s2 = Store::open(uri);
    assert_true(contains(error_of([&] { check_schema(*s2); }), "older than the store"));
    // Empty: run init. Foreign tables: not a certgate store.
    std::string empty = pg_fresh_uri();
    auto s3 = Store::open(empty);
    assert_int_equal(s3->schema_version(), 0);
    assert_true(contains(error_of([&] { check_schema(*s3); }), "certgatectl init"));
    assert_true(pg_sql(empty, "CREATE TABLE other (x int)"));
    assert_int_equal(s3->schema_version(), -1);
    assert_true(contains(error_of([&] { s3->migrate(); }), "not a certgate store"));
}

void pg_events_are_append_only(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    assert_false(pg_sql(uri, "UPDATE events SET detail = 'x'"));
    assert_false(pg_sql(uri, "DELETE FROM events"));
    assert_false(pg_sql(uri, "TRUNCATE events"));
    assert_int_equal(s->events_since(0, 10).size(), 1);
}

void pg_uri_password_hidden_and_unreachable_named(void**) {
    auto s = Store::open("postgresql://certgate:s3cret@127.0.0.1:1/certgate?password=s3cret2");
    assert_false(contains(s->describe(), "s3cret"));
    assert_true(contains(s->describe(), "certgate@127.0.0.1:1/certgate"));
    assert_true(contains(s->permission_warning(), "password file"));
    assert_false(contains(s->permission_warning(), "s3cret"));
    assert_string_equal(Store::open(pg_uri)->permission_warning().c_str(), "");
    std::string msg = error_of([&] { s->ping(); });
    print_message("unreachable: %s\n", msg.c_str());
    assert_true(contains(msg, "cannot connect to PostgreSQL at host 127.0.0.1 port 1"));
    assert_false(contains(msg, "s3cret"));
    assert_true(contains(error_of([] { Store::open("postgresql://x/y?nosuchoption=1"); }),
                         "not a valid PostgreSQL URI"));
}

// T1 takes an event id and commits late; T2 takes a later id and commits
// first. The feed must hand out both, each once, T2's not before T1's end.
void pg_feed_never_skips_a_late_commit(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    FeedCursor cur = s->feed_start();
    PGconn* t1 = PQconnectdb(uri.c_str());
    assert_int_equal(PQstatus(t1), CONNECTION_OK);
    PQclear(PQexec(t1, "BEGIN"));
    PGresult* r = PQexec(t1,
                         "INSERT INTO events (at, actor, kind, subject) "
                         "VALUES (1, 't1', 'test.late', 'x') RETURNING id");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    const int64_t late = std::atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    const int64_t early = s->append_event("t2", "test.early", "y", "");
    assert_true(early > late);
    std::vector<int64_t> seen;
    FeedPage p = s->feed_after(cur, 100);
    for (const auto& e : p.events) seen.push_back(e.id);
    cur = p.next;
    // T1 still runs: T2's event waits (an id-only cursor would pass T1's by).
    for (int64_t id : seen) assert_true(id != early && id != late);
    PQclear(PQexec(t1, "COMMIT"));
    PQfinish(t1);
    p = s->feed_after(cur, 100);
    for (const auto& e : p.events) seen.push_back(e.id);
    cur = p.next;
    p = s->feed_after(cur, 100);  // and nothing twice
    for (const auto& e : p.events) seen.push_back(e.id);
    int n_late = 0, n_early = 0;
    for (int64_t id : seen) n_late += id == late, n_early += id == early;
    assert_int_equal(n_late, 1);
    assert_int_equal(n_early, 1);
    // Paging: a full page continues from its last row.
    FeedCursor from = s->feed_start();
    for (int i = 0; i < 5; ++i) s->append_event("op", "test.page", "z", "");
    int got = 0;
    for (int round = 0; round < 10 && got < 5; ++round) {
        FeedPage q = s->feed_after(from, 2);
        got += static_cast<int>(q.events.size());
        assert_true(q.events.size() <= 2);
        from = q.next;
    }
    assert_int_equal(got, 5);
    assert_int_equal(s->feed_after(from, 2).events.size(), 0);
}

// What the feed says it left behind, and a cursor from another cluster
// (restored, copied, a standby promoted before it replayed up to it).
void pg_feed_counts_what_is_behind_and_sees_a_gap(void**) {
    auto s = fresh_store();
    FeedCursor from = s->feed_start();
    for (int i = 0; i < 5; ++i) s->append_event("op", "test.behind", "z", "");
    FeedPage p = s->feed_after(from, 2);
    assert_int_equal(p.events.size(), 2);
    assert_false(p.gap);
    assert_int_equal(p.behind, 3);  // not the store's last id: its events
    p = s->feed_after(p.next, 100);
    assert_int_equal(p.events.size(), 3);
    assert_int_equal(p.behind, 0);
    p = s->feed_after(p.next, 100);  // read to the end: nothing is behind
    assert_int_equal(p.behind, 0);
    FeedCursor ahead = p.next;
    ahead.xid += 1000000;
    p = s->feed_after(ahead, 100);
    assert_true(p.gap);
    assert_int_equal(p.events.size(), 0);
}

// N threads (one store each, as pool threads or nodes) count failures of
// one ID through lock_auth_streak: none is lost.
void pg_streak_increments_are_exact(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    const int threads = 4, per_thread = 25;
    std::atomic<int> failures{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            try {
                auto mine = Store::open(uri);
                for (int i = 0; i < per_thread; ++i)
                    mine->write([&] {
                        AuthStreak st = mine->lock_auth_streak("general01");
                        mine->save_streak_failures("general01", true, st.epoch, st.failures + 1, 0);
                    });
            } catch (const std::exception& e) {
                print_message("counter: %s\n", e.what());
                ++failures;
            }
        });
    for (auto& th : pool) th.join();
    assert_int_equal(failures.load(), 0);
    assert_int_equal(s->auth_streak("general01").failures, threads * per_thread);
    assert_int_equal(s->find_user("general01")->failure_streak, threads * per_thread);
    // Budgets too.
    std::atomic<int> allowed{0};
    pool.clear();
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            auto mine = Store::open(uri);
            mine->set_clock([] { return fake_now; });
            for (int i = 0; i < 10; ++i)
                if (mine->take_budget("code_mail:general01", 17, 3600).allowed) ++allowed;
        });
    for (auto& th : pool) th.join();
    assert_int_equal(allowed.load(), 17);
}

// Three nodes sweep the outbox at once: every mail is handed out once.
void pg_mail_claims_never_overlap(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    const int mails = 60;
    for (int i = 0; i < mails; ++i)
        s->enqueue_mail("a@example.com", "s", "b" + std::to_string(i), "certgate", "u");
    std::mutex mu;
    std::vector<int64_t> claimed;
    std::vector<std::thread> pool;
    for (int t = 0; t < 3; ++t)
        pool.emplace_back([&] {
            auto mine = Store::open(uri);
            mine->set_clock([] { return fake_now; });
            for (;;) {
                auto got = mine->claim_due_mails(4, 600);
                if (got.empty()) break;
                std::lock_guard<std::mutex> g(mu);
                for (const auto& m : got) claimed.push_back(m.id);
            }
        });
    for (auto& th : pool) th.join();
    std::set<int64_t> unique(claimed.begin(), claimed.end());
    assert_int_equal(claimed.size(), mails);
    assert_int_equal(unique.size(), mails);
}

void pg_claims_and_master_checks_under_contention(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    s->add_org({"ORG1", "One", 0}, "op");
    s->add_user(make_user("general01", "ORG1", Role::general), "op");
    s->add_certificate(make_cert("AB01", "general01", fake_now + 86400), false, "general01");
    std::atomic<int> notices{0}, masters{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
        pool.emplace_back([&, t] {
            auto mine = Store::open(uri);
            if (mine->claim_notice("AB01", kNoticeExpiring, "certgate")) ++notices;
            try {
                mine->add_user(make_user("master0" + std::to_string(t), "ORG1", Role::master),
                               "op");
                ++masters;
            } catch (const StoreConflict&) {
            }
        });
    for (auto& th : pool) th.join();
    assert_int_equal(notices.load(), 1);
    assert_int_equal(masters.load(), 1);
    // The CRL's number only grows.
    StoredCrl crl;
    crl.number = 7;
    crl.der = {1, 2, 3};
    s->save_crl(crl);
    crl.number = 5;
    s->save_crl(crl);
    assert_int_equal(s->current_crl()->number, 7);
    assert_int_equal(s->current_crl()->der.size(), 3);
}

void pg_wait_for_feed_wakes_on_commit(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    assert_false(s->wait_for_feed(50));  // listens from now on; nothing came
    std::thread writer([&] {
        auto other = Store::open(uri);
        other->append_event("op", "test.wake", "x", "");
    });
    bool woke = false;
    for (int i = 0; i < 50 && !woke; ++i) woke = s->wait_for_feed(200);
    writer.join();
    assert_true(woke);
    assert_false(s->wait_for_feed(50));  // consumed
}

// The server is killed and comes back: meanwhile a StoreError that says
// so; afterwards the same Store object works again.
void pg_server_restart_reconnects(void**) {
    std::string uri;
    auto s = fresh_store(&uri);
    s->add_org({"ORG1", "One", 0}, "op");
    // pgtmp runs with synchronous_commit off: one synchronous commit writes
    // out the WAL before the kill.
    assert_true(pg_sql(uri,
                       "SET synchronous_commit = on; "
                       "INSERT INTO certgate_meta VALUES ('flushed', 'yes')"));
    assert_true(std::system(pgtmp("kill").c_str()) == 0);
    std::string msg = error_of([&] { s->find_org("ORG1"); });
    print_message("server down: %s\n", msg.c_str());
    assert_true(contains(msg, "127.0.0.1"));
    assert_true(contains(error_of([&] { s->add_org({"ORG2", "Two", 0}, "op"); }), "PostgreSQL"));
    assert_true(std::system(pgtmp("restart").c_str()) == 0);
    assert_true(s->find_org("ORG1").has_value());
    s->add_org({"ORG2", "Two", 0}, "op");
    assert_int_equal(s->list_orgs().size(), 2);
    assert_false(s->wait_for_feed(10));
}

int setup(void**) {
    char tmpl[] = "/tmp/certgate-test-store-XXXXXX";
    if (!mkdtemp(tmpl)) return -1;
    dir = tmpl;
    return 0;
}

int teardown(void**) {
    std::string cmd = "rm -rf '" + dir + "'";
    return std::system(cmd.c_str()) == 0 ? 0 : -1;
}

int pg_setup(void** state) {
    if (setup(state) != 0) return -1;
    char tmpl[] = "/tmp/certgate-test-store-pg-XXXXXX";
    if (!mkdtemp(tmpl)) return -1;
    chmod(tmpl, 0711);  // pgtmp runs the server as postgres when root
    pg_dir = std::string(tmpl) + "/pg";
    pg_uri = run_output(pgtmp("start") + " " + free_pg_port());
    if (pg_uri.empty()) {
        print_message("cannot start PostgreSQL with t/lib/pgtmp\n");
        return -1;
    }
    on_pg = true;
    return 0;
}

int pg_teardown(void** state) {
    on_pg = false;
    if (teardown(state) != 0) return -1;
    int rc = std::system(pgtmp("destroy").c_str());
    std::string cmd = "rm -rf '" + pg_dir.substr(0, pg_dir.rfind('/')) + "'";
    return rc == 0 && std::system(cmd.c_str()) == 0 ? 0 : -1;
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_missing_file_says_init),
        cmocka_unit_test(open_missing_directory),
        cmocka_unit_test(open_not_sqlite),
        cmocka_unit_test(open_foreign_sqlite),
        cmocka_unit_test(open_unreadable),
        cmocka_unit_test(unknown_scheme),
        cmocka_unit_test(migrate_and_check),
        cmocka_unit_test(migrate_v4_language),
        cmocka_unit_test(wal_mode_is_on),
        cmocka_unit_test(orgs_add_find_list),
        cmocka_unit_test(users_add_and_read),
        cmocka_unit_test(users_bad_adds_change_nothing),
        cmocka_unit_test(lock_three_times_blocks),
        cmocka_unit_test(login_resets_the_lock_count),
        cmocka_unit_test(reset_registration_and_passwords),
        cmocka_unit_test(certificates_issue_supersede_revoke),
        cmocka_unit_test(notices_are_claimed_once),
        cmocka_unit_test(events_are_numbered_in_order),
        cmocka_unit_test(revocation_feed_carries_lifetimes),
        cmocka_unit_test(events_are_append_only),
        cmocka_unit_test(failed_write_rolls_back),
        cmocka_unit_test(concurrent_writers),
        cmocka_unit_test(outbox_claim_fail_retry_send),
        cmocka_unit_test(streaks_of_real_and_unknown_ids),
        cmocka_unit_test(code_budget_per_window),
    };
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test(pg_migrate_and_check),
        cmocka_unit_test(pg_uri_password_hidden_and_unreachable_named),
        cmocka_unit_test(orgs_add_find_list),
        cmocka_unit_test(users_add_and_read),
        cmocka_unit_test(users_bad_adds_change_nothing),
        cmocka_unit_test(lock_three_times_blocks),
        cmocka_unit_test(login_resets_the_lock_count),
        cmocka_unit_test(reset_registration_and_passwords),
        cmocka_unit_test(certificates_issue_supersede_revoke),
        cmocka_unit_test(notices_are_claimed_once),
        cmocka_unit_test(events_are_numbered_in_order),
        cmocka_unit_test(revocation_feed_carries_lifetimes),
        cmocka_unit_test(pg_events_are_append_only),
        cmocka_unit_test(failed_write_rolls_back),
        cmocka_unit_test(concurrent_writers),
        cmocka_unit_test(outbox_claim_fail_retry_send),
        cmocka_unit_test(streaks_of_real_and_unknown_ids),
        cmocka_unit_test(code_budget_per_window),
        cmocka_unit_test(pg_feed_never_skips_a_late_commit),
        cmocka_unit_test(pg_feed_counts_what_is_behind_and_sees_a_gap),
        cmocka_unit_test(pg_streak_increments_are_exact),
        cmocka_unit_test(pg_mail_claims_never_overlap),
        cmocka_unit_test(pg_claims_and_master_checks_under_contention),
        cmocka_unit_test(pg_wait_for_feed_wakes_on_commit),
        cmocka_unit_test(pg_server_restart_reconnects),
    };
    int failed = cmocka_run_group_tests_name("store", tests, setup, teardown);
    failed += cmocka_run_group_tests_name("store_pg", pg_tests, pg_setup, pg_teardown);
    return failed;
}
