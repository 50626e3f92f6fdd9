// The key pool: keys made ahead, each handed out once, of the configured
// type only, refilled after a take, and a stop that cancels a generation.
#include <openssl/x509.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "core/adapters/key_pool.hpp"

// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;
using namespace std::chrono_literals;

static std::string public_der(const PKey &key) {
    unsigned char *der = nullptr;
    int n = i2d_PUBKEY(key.get(), &der);
    std::string out(reinterpret_cast<char *>(der), n > 0 ? n : 0);
    OPENSSL_free(der);
    return out;
}

// Waits (bounded) until the pool holds `n` keys.
static bool wait_ready(KeyPool &pool, size_t n) {
    for (int i = 0; i < 3000; i++) {
        if (pool.stats().ready >= n) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

static void keys_are_handed_out_once(void **) {
    KeyType ec = *parse_key_type("ec:P-256");
    KeyPool pool(ec, 4, 0ms);
    pool.start();
    assert_true(wait_ready(pool, 4));
    std::set<std::string> seen;
    for (int i = 0; i < 4; i++) {
        auto key = pool.take(ec);
        assert_true(key.has_value());
        assert_true(seen.insert(public_der(*key)).second);
    }
    // Refilled after the takes, with new keys.
    assert_true(wait_ready(pool, 4));
    for (int i = 0; i < 4; i++) assert_true(seen.insert(public_der(*pool.take(ec))).second);
    KeyPoolStats st = pool.stats();
    assert_int_equal(st.taken, 8);
    assert_true(st.generated >= 8);
    pool.stop();
    assert_int_equal(pool.stats().ready, 0);  // freed at stop
}

static void empty_pool_or_other_type_falls_back(void **) {
    KeyType ec = *parse_key_type("ec:P-256");
    KeyType rsa = *parse_key_type("rsa:2048");
    KeyPool pool(ec, 2, 0ms);  // not started: empty
    assert_false(pool.take(ec).has_value());
    pool.start();
    assert_true(wait_ready(pool, 2));
    assert_false(pool.take(rsa).has_value());  // never a key of another type
    assert_int_equal(pool.stats().missed, 2);

    set_key_pool(&pool);
    PKey k = pooled_or_new_key(rsa);  // made inline
    assert_int_equal(EVP_PKEY_get_base_id(k.get()), EVP_PKEY_RSA);
    PKey e = pooled_or_new_key(ec);  // from the pool
    assert_int_equal(EVP_PKEY_get_base_id(e.get()), EVP_PKEY_EC);
    assert_int_equal(pool.stats().taken, 1);
    set_key_pool(nullptr);
}

static void stop_cancels_a_generation(void **) {
    // RSA-3072 prime search takes long enough to be under way when stopped;
    // stop() must return (the keygen callback aborts), leaving no key.
    KeyType rsa = *parse_key_type("rsa:3072");
    KeyPool pool(rsa, 1, 0ms);
    pool.start();
    std::this_thread::sleep_for(20ms);
    pool.stop();
    assert_int_equal(pool.stats().ready, 0);
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_are_handed_out_once),
        cmocka_unit_test(empty_pool_or_other_type_falls_back),
        cmocka_unit_test(stop_cancels_a_generation),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
