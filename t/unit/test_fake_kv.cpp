// The in-memory Kv that the use-case tests share: it must behave like
// memcached where the use cases depend on it.

#include <string>

#include "fake_kv.hpp"

// cmocka last: its macros (fail, ...) clash with the C++ library.
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;

static void answers_like_memcached(void **) {
    FakeKv kv;
    assert_false(kv.get("a").has_value());
    kv.set("a", std::string("x\r\n\0y", 5), 60);
    assert_int_equal(kv.get("a")->size(), 5);
    assert_false(kv.add("a", "other", 60));
    assert_true(kv.add("b", "1", 60));
    assert_true(kv.remove("b"));
    assert_false(kv.remove("b"));
    assert_false(kv.touch("b", 60));
    assert_false(kv.incr("n", 1).has_value());
    assert_int_equal(kv.incr_or_create("n", 2, 60), 2);
    assert_int_equal(kv.incr_or_create("n", 2, 60), 4);
    assert_int_equal(*kv.incr("n", 1), 5);
    bool thrown = false;
    try {
        kv.incr("a", 1);  // not a number
    } catch (const KvError &) {
        thrown = true;
    }
    assert_true(thrown);
}

static void keys_expire_on_the_injected_clock(void **) {
    FakeKv kv;
    kv.set("short", "v", 10);
    kv.set("forever", "v", 0);
    kv.set("absolute", "v", static_cast<long>(kv.now + 100));  // > 30 days: a Unix time
    kv.incr_or_create("counter", 1, 10);
    kv.advance(9);
    assert_true(kv.get("short").has_value());
    assert_true(kv.touch("short", 10));  // a new lifetime from now
    kv.advance(5);
    assert_true(kv.get("short").has_value());
    assert_false(kv.get("counter").has_value());
    assert_int_equal(kv.incr_or_create("counter", 1, 10), 1);  // counts again from the start
    kv.advance(100);
    assert_false(kv.get("short").has_value());
    assert_false(kv.get("absolute").has_value());
    assert_true(kv.get("forever").has_value());
    assert_int_equal(kv.size(), 1);

    int64_t mine = 5000;
    FakeKv other;
    other.clock = [&] { return mine; };
    other.set("k", "v", 5);
    mine += 5;
    assert_false(other.get("k").has_value());
}

static void down_throws_for_every_call_or_some_keys(void **) {
    FakeKv kv;
    kv.set("kept", "v", 60);
    kv.down = true;
    for (int op = 0; op < 4; ++op) {
        bool thrown = false;
        try {
            if (op == 0) kv.get("kept");
            if (op == 1) kv.incr_or_create("n", 1, 60);
            if (op == 2) kv.add("x", "v", 60);
            if (op == 3) kv.version();
        } catch (const KvError &) {
            thrown = true;
        }
        assert_true(thrown);
    }
    kv.down = false;
    assert_true(kv.get("kept").has_value());  // back, with what it held

    kv.down_for = [](const std::string &key) { return key.rfind("b:", 0) == 0; };
    assert_true(kv.add("a:1", "v", 60));
    bool thrown = false;
    try {
        kv.add("b:1", "v", 60);
    } catch (const KvError &) {
        thrown = true;
    }
    assert_true(thrown);
    assert_false(kv.get("a:2").has_value());
    assert_string_equal(kv.version().c_str(), "fake");
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answers_like_memcached),
        cmocka_unit_test(keys_expire_on_the_injected_clock),
        cmocka_unit_test(down_throws_for_every_call_or_some_keys),
    };
    return cmocka_run_group_tests_name("fake_kv", tests, nullptr, nullptr);
}
