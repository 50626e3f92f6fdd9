// The revocation feed over the store port (issue 15): pages read from a
// cursor, the gap that a replaced or restored store leaves, and when a poll
// loads the whole set again instead of continuing.
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/app/feed_listener.hpp"
#include "core/app/revocation_feed.hpp"
#include "fakes.hpp"

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
using certgate::fakes::FakeClock;
using certgate::fakes::FakeStore;

namespace {

using K = RevocationUpdate::Kind;

void logouts(Store &store, int n, const std::string &tag) {
    for (int i = 0; i < n; ++i) {
        store.append_event("u1", event_kind::kLogout, "u1",
                           "session=" + tag + std::to_string(i) + " client=::1");
    }
}

int count(const FeedBatch &b, K kind) {
    int n = 0;
    for (const auto &u : b.updates) n += u.kind == kind;
    return n;
}

// A full page says so; the next page starts where it ended, and together
// they carry every event once, the last page without `more`.
void pages_continue_until_the_end(void **) {
    FakeClock clock;
    FakeStore store{clock};
    FeedBatch first = initial_feed(store, clock.now(), 3600);
    logouts(store, 25, "s");
    FeedCursor at = first.cursor;
    std::vector<int> sizes;
    bool more = true;
    int total = 0;
    while (more) {
        FeedBatch page = feed_next(store, at, 10);
        assert_false(page.gap);
        sizes.push_back(count(page, K::session_ended));
        total += count(page, K::session_ended);
        more = page.more;
        if (more) assert_true(page.behind > 0);
        assert_true(page.cursor.id > at.id || !more);
        at = page.cursor;
    }
    assert_int_equal(total, 25);
    assert_int_equal(sizes.size(), 3);
    assert_int_equal(sizes[0], 10);
    assert_int_equal(sizes[2], 5);
    FeedBatch idle = feed_next(store, at, 10);
    assert_false(idle.more);
    assert_int_equal(idle.updates.size(), 0);
    assert_int_equal(idle.behind, 0);
    assert_int_equal(idle.cursor.id, at.id);
}

// The load takes its cursor before it reads, so a logout, block or
// revocation written after it is what the first page brings.
void the_load_is_continued_by_the_next_page(void **) {
    FakeClock clock;
    FakeStore store{clock};
    store.add_org({"ORG1", "One", 0}, "op");
    User u;
    u.id = "u1";
    u.org = "ORG1";
    u.role = Role::general;
    store.add_user(u, "op", "");
    FeedBatch load = initial_feed(store, clock.now(), 3600);
    assert_int_equal(load.cursor.id, store.last_event_id());
    store.block_user("u1", "op");
    logouts(store, 1, "x");
    FeedBatch next = feed_next(store, load.cursor, 1000);
    assert_int_equal(count(next, K::user_blocked), 1);
    assert_int_equal(count(next, K::user_invalidated), 1);  // the block ends older sessions
    assert_int_equal(count(next, K::session_ended), 1);
    assert_false(next.more);
}

// A cursor past the store's last event: the store is not the one the cursor
// came from (replaced, or restored from a backup). Nothing is applied.
void a_cursor_ahead_of_the_store_is_a_gap(void **) {
    FakeClock clock;
    FakeStore store{clock};
    logouts(store, 3, "s");
    const int64_t last = store.last_event_id();
    FeedCursor ahead;
    ahead.id = last + 5;
    FeedBatch b = feed_next(store, ahead, 100);
    assert_true(b.gap);
    assert_int_equal(b.updates.size(), 0);
    // The cursor at the store's end is no gap.
    FeedCursor end;
    end.id = last;
    assert_false(feed_next(store, end, 100).gap);
}

// A store that is down throws; the poll counts it as a failure.
void a_store_down_throws(void **) {
    FakeClock clock;
    FakeStore store{clock};
    store.down = true;
    bool threw = false;
    try {
        feed_next(store, FeedCursor{}, 100);
    } catch (const StoreError &) {
        threw = true;
    }
    assert_true(threw);
}

void the_reload_decision(void **) {
    FeedState s;
    assert_true(feed_reload(s, 10000) == FeedReload::first);
    s.loaded = true;
    s.ok_age_ms = 900;
    assert_true(feed_reload(s, 10000) == FeedReload::none);
    s.full = true;
    assert_true(feed_reload(s, 10000) == FeedReload::full);
    s.gap = true;  // the gap comes first: its log line says what happened
    assert_true(feed_reload(s, 10000) == FeedReload::gap);
    s.full = s.gap = false;
    s.ok_age_ms = 10000;
    assert_true(feed_reload(s, 10000) == FeedReload::none);  // at the limit: still continues
    s.ok_age_ms = 10001;
    assert_true(feed_reload(s, 10000) == FeedReload::outage);
    // certgate_sync_max_lag off: an outage still reloads, after the built-in limit.
    s.ok_age_ms = kFeedOutageReloadMs;
    assert_true(feed_reload(s, 0) == FeedReload::none);
    s.ok_age_ms = kFeedOutageReloadMs + 1;
    assert_true(feed_reload(s, 0) == FeedReload::outage);
}

void staleness(void **) {
    assert_false(feed_stale(0, 10000));
    assert_false(feed_stale(10000, 10000));
    assert_true(feed_stale(10001, 10000));
    assert_false(feed_stale(1000000, 0));  // off
}

double seconds_to_stop(FeedListener &l) {
    auto t0 = std::chrono::steady_clock::now();
    l.stop();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A store that cannot notify (SQLite: wait_for_feed sleeps): no wake-up, no
// failure, and stop() returns within one wait.
void the_listener_stops_within_one_wait(void **) {
    std::string path = "/tmp/certgate-unit-listener-" + std::to_string(getpid()) + ".db";
    {
        auto s = Store::open("sqlite:" + path, true);
        s->migrate();
        assert_false(s->has_feed_notifications());
    }
    FeedListener l("sqlite:" + path, 300);
    l.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    assert_false(l.take_wake());
    assert_string_equal(l.failure().c_str(), "");
    assert_true(seconds_to_stop(l) < 0.5);
    for (const char *suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
}

// A store out of reach: the listener says why and backs off (no spin); it
// stops at once from its pause, however long the backoff.
void the_listener_backs_off_from_a_store_out_of_reach(void **) {
    FeedListener l("sqlite:/nonexistent-certgate-dir/x.db", 300, std::chrono::seconds(30));
    l.start();
    std::string failure;
    for (int i = 0; i < 50 && failure.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        failure = l.failure();
    }
    assert_true(failure.find("nonexistent-certgate-dir") != std::string::npos);
    assert_int_equal(l.recoveries(), 0);
    assert_true(seconds_to_stop(l) < 0.2);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pages_continue_until_the_end),
        cmocka_unit_test(the_load_is_continued_by_the_next_page),
        cmocka_unit_test(a_cursor_ahead_of_the_store_is_a_gap),
        cmocka_unit_test(a_store_down_throws),
        cmocka_unit_test(the_reload_decision),
        cmocka_unit_test(staleness),
        cmocka_unit_test(the_listener_stops_within_one_wait),
        cmocka_unit_test(the_listener_backs_off_from_a_store_out_of_reach),
    };
    return cmocka_run_group_tests_name("revocation_feed", tests, nullptr, nullptr);
}
