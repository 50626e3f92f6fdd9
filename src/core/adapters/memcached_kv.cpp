#include "core/adapters/memcached_kv.hpp"

#include <libmemcached/memcached.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/app/runtime.hpp"
#include "core/config/memcached_servers.hpp"

namespace certgate {

namespace {

using Clock = std::chrono::steady_clock;

// A connection idle this long may have been closed by a memcached restart.
constexpr auto kFreshFor = std::chrono::seconds(1);

// The connection broke (as a restarted memcached's does), as opposed to a
// timeout or an answer: only these are worth one more try, and only for
// calls that do the same thing twice.
bool connection_broke(memcached_return_t rc) {
    switch (rc) {
        case MEMCACHED_CONNECTION_FAILURE:
        case MEMCACHED_WRITE_FAILURE:
        case MEMCACHED_READ_FAILURE:
        case MEMCACHED_UNKNOWN_READ_FAILURE:
        case MEMCACHED_ERRNO:
            return true;
        default:
            return false;
    }
}

std::string instance_name(const memcached_instance_st *inst) {
    if (inst == nullptr) return "(no server)";
    MemcachedServer s;
    s.host = memcached_server_name(inst);
    s.port = memcached_server_port(inst);
    if (!s.host.empty() && s.host[0] == '/') s.port = 0;
    return memcached_server_name(s);
}

void check_key(const std::string &key) {
    if (!valid_kv_key(key)) throw KvError("invalid memcached key");
}

time_t expiration(long ttl_s) { return static_cast<time_t>(ttl_s < 0 ? 0 : ttl_s); }

}  // namespace

MemcachedKv::MemcachedKv(const std::vector<MemcachedServer> &servers, int timeout_ms) {
    if (servers.empty()) throw KvError("no memcached server configured");
    mc_ = memcached_create(nullptr);
    if (mc_ == nullptr) throw KvError("memcached: out of memory");
    std::unique_ptr<memcached_st, void (*)(memcached_st *)> guard(mc_, memcached_free);
    const uint64_t ms = static_cast<uint64_t>(timeout_ms);
    const struct {
        memcached_behavior_t behavior;
        uint64_t value;
    } behaviors[] = {
        {MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1},  // increment with an initial value and ttl
        {MEMCACHED_BEHAVIOR_KETAMA, 1},           // a server change moves few keys
        {MEMCACHED_BEHAVIOR_TCP_NODELAY, 1},
        {MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms},
        {MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms},
        {MEMCACHED_BEHAVIOR_SND_TIMEOUT, ms * 1000},  // microseconds
        {MEMCACHED_BEHAVIOR_RCV_TIMEOUT, ms * 1000},
        // Fail closed: a failed server stays in the ring (its keys fail, none
        // moves to a server where its counter would be fresh), and is tried
        // again 1-2 s after it failed, so one that comes back is used again.
        {MEMCACHED_BEHAVIOR_AUTO_EJECT_HOSTS, 0},
        {MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, 0},
        {MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS, 0},
        {MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1},
        {MEMCACHED_BEHAVIOR_NOREPLY, 0},
        {MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0},
    };
    for (const auto &b : behaviors) {
        memcached_return_t rc = memcached_behavior_set(mc_, b.behavior, b.value);
        if (memcached_failed(rc)) {
            throw KvError(std::string("memcached: cannot set ") +
                          libmemcached_string_behavior(b.behavior) + ": " +
                          memcached_strerror(mc_, rc));
        }
    }
    for (const auto &s : servers) {
        memcached_return_t rc =
            s.port == 0 ? memcached_server_add_unix_socket(mc_, s.host.c_str())
                        : memcached_server_add(mc_, s.host.c_str(), static_cast<in_port_t>(s.port));
        if (memcached_failed(rc)) {
            throw KvError("memcached " + memcached_server_name(s) + ": " +
                          memcached_strerror(mc_, rc));
        }
    }
    (void)guard.release();  // mc_ is ours now (freed in the destructor)
}

MemcachedKv::~MemcachedKv() { memcached_free(mc_); }

const memcached_instance_st *MemcachedKv::server_of(const std::string &key) {
    memcached_return_t rc;
    return memcached_server_by_key(mc_, key.data(), key.size(), &rc);
}

void MemcachedKv::note_used(const std::string &key) { last_answer_[server_of(key)] = Clock::now(); }

void MemcachedKv::fail(const char *op, const std::string &key, int code) {
    auto rc = static_cast<memcached_return_t>(code);
    std::string msg = "memcached " + instance_name(server_of(key)) + ": " + op + ": " +
                      memcached_strerror(mc_, rc);
    int err = memcached_last_error_errno(mc_);
    if (err != 0 && rc == MEMCACHED_ERRNO) msg += std::string(" (") + std::strerror(err) + ")";
    throw KvError(msg);
}

// A non-idempotent call (incr, add, delete) is never sent twice: when its
// server's connection has been idle, a get on the same key proves the
// connection first (and replaces it once if a restart broke it).
void MemcachedKv::ensure_live(const std::string &key) {
    auto it = last_answer_.find(server_of(key));
    if (it != last_answer_.end() && Clock::now() - it->second < kFreshFor) return;
    get(key);
}

std::optional<std::string> MemcachedKv::get(const std::string &key) {
    check_key(key);
    for (int attempt = 0;; ++attempt) {
        size_t len = 0;
        uint32_t flags = 0;
        memcached_return_t rc;
        char *value = memcached_get(mc_, key.data(), key.size(), &len, &flags, &rc);
        std::unique_ptr<char, void (*)(void *)> guard(value, std::free);
        if (rc == MEMCACHED_SUCCESS) {
            note_used(key);
            return std::string(value != nullptr ? value : "", len);
        }
        if (rc == MEMCACHED_NOTFOUND) {
            note_used(key);
            return std::nullopt;
        }
        if (attempt > 0 || !connection_broke(rc)) fail("get", key, rc);
    }
}

void MemcachedKv::set(const std::string &key, const std::string &value, long ttl_s) {
    check_key(key);
    for (int attempt = 0;; ++attempt) {
        memcached_return_t rc = memcached_set(mc_, key.data(), key.size(), value.data(),
                                              value.size(), expiration(ttl_s), 0);
        if (rc == MEMCACHED_SUCCESS) {
            note_used(key);
            return;
        }
        if (attempt > 0 || !connection_broke(rc)) fail("set", key, rc);
    }
}

bool MemcachedKv::add(const std::string &key, const std::string &value, long ttl_s) {
    check_key(key);
    ensure_live(key);
    memcached_return_t rc = memcached_add(mc_, key.data(), key.size(), value.data(), value.size(),
                                          expiration(ttl_s), 0);
    if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTSTORED || rc == MEMCACHED_DATA_EXISTS) {
        note_used(key);
        return rc == MEMCACHED_SUCCESS;
    }
    fail("add", key, rc);
}

bool MemcachedKv::remove(const std::string &key) {
    check_key(key);
    ensure_live(key);
    memcached_return_t rc = memcached_delete(mc_, key.data(), key.size(), 0);
    if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND) {
        note_used(key);
        return rc == MEMCACHED_SUCCESS;
    }
    fail("delete", key, rc);
}

bool MemcachedKv::touch(const std::string &key, long ttl_s) {
    check_key(key);
    for (int attempt = 0;; ++attempt) {
        memcached_return_t rc = memcached_touch(mc_, key.data(), key.size(), expiration(ttl_s));
        if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND) {
            note_used(key);
            return rc == MEMCACHED_SUCCESS;
        }
        if (attempt > 0 || !connection_broke(rc)) fail("touch", key, rc);
    }
}

std::optional<uint64_t> MemcachedKv::incr(const std::string &key, uint64_t delta) {
    check_key(key);
    // libmemcached's plain increment takes a 32-bit delta.
    if (delta > UINT32_MAX) throw KvError("memcached increment too large");
    ensure_live(key);
    uint64_t value = 0;
    memcached_return_t rc =
        memcached_increment(mc_, key.data(), key.size(), static_cast<uint32_t>(delta), &value);
    if (rc == MEMCACHED_SUCCESS) {
        note_used(key);
        return value;
    }
    if (rc == MEMCACHED_NOTFOUND) {
        note_used(key);
        return std::nullopt;
    }
    fail("incr", key, rc);
}

uint64_t MemcachedKv::incr_or_create(const std::string &key, uint64_t delta, long ttl_s) {
    check_key(key);
    ensure_live(key);
    uint64_t value = 0;
    // One binary-protocol call: no window between "absent" and "created".
    memcached_return_t rc = memcached_increment_with_initial(mc_, key.data(), key.size(), delta,
                                                             delta, expiration(ttl_s), &value);
    if (rc == MEMCACHED_SUCCESS) {
        note_used(key);
        return value;
    }
    fail("incr", key, rc);
}

std::string MemcachedKv::version() {
    // A connection a restart broke fails once: each failed server gets one
    // more try before it is reported.
    std::string versions, down;
    for (int attempt = 0; attempt < 2; ++attempt) {
        memcached_return_t rc;
        memcached_stat_st *stats = memcached_stat(mc_, nullptr, &rc);
        if (stats == nullptr)
            throw KvError(std::string("memcached: ") + memcached_strerror(mc_, rc));
        versions.clear();
        down.clear();
        uint32_t n = memcached_server_count(mc_);
        for (uint32_t i = 0; i < n; ++i) {
            const memcached_instance_st *inst = memcached_server_instance_by_position(mc_, i);
            if (stats[i].pid > 0 && stats[i].version[0] != '\0') {
                last_answer_[inst] = Clock::now();
                versions += (versions.empty() ? "" : " ") + std::string(stats[i].version);
                continue;
            }
            // libmemcached's message ends with its source position: drop it.
            std::string why = memcached_server_error(inst) ? memcached_server_error(inst) : "";
            why = why.substr(0, why.find(" -> "));
            down += (down.empty() ? "" : "; ") + instance_name(inst) + ": " +
                    (why.empty() ? "no answer" : why);
        }
        memcached_stat_free(mc_, stats);
        if (down.empty()) return versions;
    }
    throw KvError("memcached " + down);
}

Kv &thread_kv(const Settings &s) {
    // One handle per pool thread, no lock: each thread keeps one connection
    // per server. Keyed by the server list, so a reload with other servers
    // gets its own handle.
    thread_local std::map<std::string, std::unique_ptr<MemcachedKv>> handles;
    std::string id = std::to_string(s.memcached_timeout_ms);
    for (const auto &server : s.memcached_servers) id += " " + memcached_server_name(server);
    auto &slot = handles[id];
    if (!slot) slot = std::make_unique<MemcachedKv>(s.memcached_servers, s.memcached_timeout_ms);
    return *slot;
}

}  // namespace certgate
