// The memcached adapter (libmemcached) against real memcached servers on
// free loopback ports: the Kv semantics, two servers with one killed (fail
// closed, no rehash), recovery without a new handle, and bounded timeouts.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/adapters/memcached_kv.hpp"
#include "core/app/runtime.hpp"
#include "core/config/memcached_servers.hpp"

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
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    int port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

std::vector<MemcachedServer> local(std::initializer_list<int> ports) {
    std::vector<MemcachedServer> out;
    for (int p : ports) out.push_back(MemcachedServer{"127.0.0.1", p});
    return out;
}

// Servers still running when a test fails are stopped by the group teardown.
std::vector<pid_t> running;

pid_t start_memcached(int port) {
    pid_t pid = fork();
    if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        ::dup2(null, 2);
        std::string p = std::to_string(port);
        if (geteuid() == 0) {
            execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", p.c_str(), "-U", "0", "-u",
                   "root", (char *)nullptr);
        } else {
            execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", p.c_str(), "-U", "0",
                   (char *)nullptr);
        }
        _exit(127);
    }
    running.push_back(pid);
    for (int i = 0; i < 100; ++i) {
        try {
            MemcachedKv probe(local({port}), 200);
            probe.version();
            return pid;
        } catch (const KvError &) {
            std::this_thread::sleep_for(milliseconds(50));
        }
    }
    return pid;
}

void stop_memcached(pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    running.erase(std::remove(running.begin(), running.end(), pid), running.end());
}

int stop_all(void **) {
    while (!running.empty()) stop_memcached(running.back());
    return 0;
}

template <class F>
bool throws_kv_error(F f, std::string *what = nullptr) {
    try {
        f();
    } catch (const KvError &e) {
        if (what) *what = e.what();
        return true;
    }
    return false;
}

}  // namespace

static void server_addresses_parse_as_written(void **) {
    MemcachedServer s;
    std::string why;
    assert_true(parse_memcached_server("127.0.0.1:11212", &s, &why));
    assert_string_equal(s.host.c_str(), "127.0.0.1");
    assert_int_equal(s.port, 11212);
    assert_true(parse_memcached_server("mc1.example.jp", &s, &why));
    assert_int_equal(s.port, 11211);
    assert_true(parse_memcached_server("[::1]:11213", &s, &why));
    assert_string_equal(s.host.c_str(), "::1");
    assert_int_equal(s.port, 11213);
    assert_string_equal(memcached_server_name(s).c_str(), "[::1]:11213");
    assert_true(parse_memcached_server("unix:/run/memcached/mc.sock", &s, &why));
    assert_string_equal(s.host.c_str(), "/run/memcached/mc.sock");
    assert_int_equal(s.port, 0);
    assert_string_equal(memcached_server_name(s).c_str(), "unix:/run/memcached/mc.sock");

    for (const char *bad :
         {"", "::1", "[::1", "[zz]:1", "[::1]x", "host:0", "host:65536", "host:", "host:12a",
          "ho st:1", "unix:", "unix:relative.sock", "unix:/run/my mc.sock", "http://host:1"}) {
        why.clear();
        assert_false(parse_memcached_server(bad, &s, &why));
        assert_false(why.empty());
    }
}

static void answers_as_the_kv_port_says(void **) {
    int port = free_port();
    pid_t pid = start_memcached(port);
    MemcachedKv mc(local({port}), 500);
    assert_false(mc.version().empty());
    assert_false(mc.get("certgate-test:none").has_value());
    mc.set("certgate-test:k", std::string("va\r\nlue\0x", 9), 60);
    auto v = mc.get("certgate-test:k");
    assert_true(v.has_value());
    assert_int_equal(v->size(), 9);
    assert_true(*v == std::string("va\r\nlue\0x", 9));
    assert_false(mc.add("certgate-test:k", "other", 60));
    assert_true(mc.add("certgate-test:fresh", "v", 60));
    assert_true(mc.remove("certgate-test:k"));
    assert_false(mc.remove("certgate-test:k"));
    assert_false(mc.incr("certgate-test:n", 1).has_value());
    assert_int_equal(mc.incr_or_create("certgate-test:n", 1, 60), 1);
    assert_int_equal(mc.incr_or_create("certgate-test:n", 1, 60), 2);
    assert_int_equal(*mc.incr("certgate-test:n", 3), 5);
    assert_string_equal(mc.get("certgate-test:n")->c_str(), "5");
    assert_true(mc.touch("certgate-test:n", 60));
    assert_false(mc.touch("certgate-test:absent", 60));
    // A counter made by incr_or_create carries its ttl.
    assert_int_equal(mc.incr_or_create("certgate-test:short", 1, 1), 1);
    std::this_thread::sleep_for(milliseconds(2100));
    assert_false(mc.get("certgate-test:short").has_value());

    // Increments from many threads at once are counted exactly once each.
    std::vector<std::thread> threads;
    std::atomic<int> errors{0};
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            MemcachedKv own(local({port}), 1000);
            for (int i = 0; i < 50; ++i) {
                try {
                    own.incr_or_create("certgate-test:race", 1, 60);
                } catch (...) {
                    errors++;
                }
            }
        });
    }
    for (auto &th : threads) th.join();
    assert_int_equal(errors.load(), 0);
    assert_string_equal(mc.get("certgate-test:race")->c_str(), "400");

    // Bad keys never reach the wire.
    assert_true(throws_kv_error([&] { mc.get("has space"); }));
    assert_true(throws_kv_error([&] { mc.set(std::string(251, 'k'), "v", 60); }));

    // memcached gone: an error within the timeout, then back after a restart
    // on the same handle, and the restart costs no failed increment (the
    // kept connection is proven before a non-idempotent call goes out).
    stop_memcached(pid);
    auto start = steady_clock::now();
    std::string what;
    assert_true(throws_kv_error([&] { mc.version(); }, &what));
    assert_true(contains(what, "127.0.0.1:" + std::to_string(port)));
    assert_true(steady_clock::now() - start < std::chrono::seconds(1));
    assert_true(throws_kv_error([&] { mc.incr_or_create("certgate-test:n", 1, 60); }));
    pid = start_memcached(port);
    std::this_thread::sleep_for(milliseconds(2100));  // past the retry timeout
    assert_false(mc.version().empty());

    MemcachedKv idle(local({port}), 500);
    assert_int_equal(idle.incr_or_create("certgate-test:after", 1, 60), 1);
    stop_memcached(pid);
    pid = start_memcached(port);
    std::this_thread::sleep_for(milliseconds(1100));  // the kept connection is idle now
    assert_int_equal(idle.incr_or_create("certgate-test:after", 1, 60), 1);
    assert_true(idle.add("certgate-test:claimed", "v", 60));
    stop_memcached(pid);
}

static void two_servers_fail_closed_without_rehash(void **) {
    int pa = free_port(), pb = free_port();
    pid_t a = start_memcached(pa), b = start_memcached(pb);
    MemcachedKv both(local({pa, pb}), 300);
    MemcachedKv only_a(local({pa}), 300), only_b(local({pb}), 300);
    std::vector<std::string> keys;
    for (int i = 0; i < 40; ++i) keys.push_back("certgate-test:spread:" + std::to_string(i));
    for (const auto &k : keys) assert_int_equal(both.incr_or_create(k, 1, 60), 1);
    std::vector<std::string> on_a, on_b;
    for (const auto &k : keys) {
        bool in_a = only_a.get(k).has_value(), in_b = only_b.get(k).has_value();
        assert_true(in_a != in_b);  // each key on exactly one server
        (in_a ? on_a : on_b).push_back(k);
    }
    assert_true(on_a.size() >= 5 && on_b.size() >= 5);  // ketama spreads them
    std::string versions = both.version();
    assert_true(contains(versions, " "));  // one version per server

    stop_memcached(b);
    for (const auto &k : on_b) {
        std::string what;
        assert_true(throws_kv_error([&] { both.incr_or_create(k, 1, 60); }, &what));
        assert_true(contains(what, "127.0.0.1:" + std::to_string(pb)));
        assert_true(throws_kv_error([&] { both.set(k, "v", 60); }));
        assert_true(throws_kv_error([&] { both.get(k); }));
        assert_false(only_a.get(k).has_value());  // never moved to the live server
    }
    for (const auto &k : on_a) assert_int_equal(both.incr_or_create(k, 1, 60), 2);
    std::string what;
    assert_true(throws_kv_error([&] { both.version(); }, &what));
    assert_true(contains(what, "127.0.0.1:" + std::to_string(pb)));
    assert_false(contains(what, "127.0.0.1:" + std::to_string(pa)));

    // More failed connects than libmemcached's failure limit (5): without
    // auto-eject the server still stays in the ring and is retried.
    for (int i = 0; i < 7; ++i) {
        assert_true(throws_kv_error([&] { both.get(on_b.front()); }));
        std::this_thread::sleep_for(milliseconds(1100));
    }

    // Back on the same port: used again by the same handle within seconds.
    b = start_memcached(pb);
    auto deadline = steady_clock::now() + std::chrono::seconds(5);
    bool back = false;
    while (!back && steady_clock::now() < deadline) {
        back = !throws_kv_error([&] { both.version(); });
        if (!back) std::this_thread::sleep_for(milliseconds(200));
    }
    assert_true(back);
    for (const auto &k : on_b) assert_int_equal(both.incr_or_create(k, 1, 60), 1);
    stop_memcached(a);
    stop_memcached(b);
}

static void a_silent_server_times_out(void **) {
    // A listener that accepts and never answers.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
    ::listen(fd, 4);
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    MemcachedKv mc(local({ntohs(a.sin_port)}), 200);
    for (int op = 0; op < 3; ++op) {
        auto start = steady_clock::now();
        std::string what;
        assert_true(throws_kv_error(
            [&] {
                if (op == 0) mc.get("certgate-test:k");
                if (op == 1) mc.incr_or_create("certgate-test:k", 1, 60);
                if (op == 2) mc.version();
            },
            &what));
        assert_true(contains(what, "127.0.0.1:" + std::to_string(ntohs(a.sin_port))));
        assert_true(steady_clock::now() - start < milliseconds(1000));
    }
    ::close(fd);
}

static void nobody_listening_is_an_error_at_once(void **) {
    MemcachedKv mc(local({free_port()}), 500);
    auto start = steady_clock::now();
    std::string what;
    assert_true(throws_kv_error([&] { mc.incr_or_create("certgate-test:k", 1, 60); }, &what));
    assert_true(throws_kv_error([&] { mc.add("certgate-test:k", "v", 60); }));
    assert_true(throws_kv_error([&] { mc.remove("certgate-test:k"); }));
    assert_true(throws_kv_error([&] { mc.touch("certgate-test:k", 60); }));
    assert_true(steady_clock::now() - start < milliseconds(1000));
}

static void one_handle_per_thread_and_server_list(void **) {
    Settings s;
    s.memcached_servers = local({free_port()});
    Kv *first = &thread_kv(s);
    assert_ptr_equal(first, &thread_kv(s));
    Settings other = s;
    other.memcached_servers.push_back(MemcachedServer{"127.0.0.1", free_port()});
    assert_ptr_not_equal(first, &thread_kv(other));
    Kv *elsewhere = nullptr;
    std::thread([&] { elsewhere = &thread_kv(s); }).join();
    assert_ptr_not_equal(first, elsewhere);
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_addresses_parse_as_written),
        cmocka_unit_test(answers_as_the_kv_port_says),
        cmocka_unit_test(two_servers_fail_closed_without_rehash),
        cmocka_unit_test(a_silent_server_times_out),
        cmocka_unit_test(nobody_listening_is_an_error_at_once),
        cmocka_unit_test(one_handle_per_thread_and_server_list),
    };
    return cmocka_run_group_tests_name("memcached_kv", tests, nullptr, stop_all);
}
