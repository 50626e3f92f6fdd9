// A memcached client for the text protocol, for the thread pool: blocking
// calls with a deadline on every read and write, so a memcached that hangs
// or is gone costs a task at most the timeout, never the event loop.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/base/observe.hpp"

namespace certgate {

// Counted as a memcached failure where it is made (metrics).
struct MemcacheError : std::runtime_error {
    explicit MemcacheError(const std::string &what) : std::runtime_error(what) {
        note_dependency_error(Dependency::memcached);
    }
};

class Memcache {
public:
    Memcache(std::string host, int port, int timeout_ms);
    ~Memcache();
    Memcache(const Memcache &) = delete;
    Memcache &operator=(const Memcache &) = delete;

    // Every call throws MemcacheError when memcached does not answer in time
    // or answers what the protocol does not allow; the connection is dropped
    // then and made again on the next call.
    std::string version();
    std::optional<std::string> get(const std::string &key);
    void set(const std::string &key, const std::string &value, long ttl_s);
    bool add(const std::string &key, const std::string &value, long ttl_s);  // false: exists
    bool remove(const std::string &key);                                     // false: absent
    bool touch(const std::string &key, long ttl_s);                          // false: absent
    // Atomic increment; std::nullopt when the key does not exist.
    std::optional<uint64_t> incr(const std::string &key, uint64_t delta);
    // Atomic increment that creates the counter at `delta` (with ttl) when absent.
    uint64_t incr_or_create(const std::string &key, uint64_t delta, long ttl_s);

private:
    void connect();
    void drop() noexcept;
    void send_all(const std::string &data);
    std::string read_line();
    std::string read_exact(size_t n);
    std::string command(const std::string &request);  // one-line reply, one reconnect

    std::string host_;
    int port_;
    int timeout_ms_;
    int fd_ = -1;
    std::string buffer_;
};

// One connection per pool thread and endpoint, reused across tasks.
Memcache &thread_memcache(const std::string &host, int port, int timeout_ms);

// Keys must be short and free of spaces and control characters.
bool valid_memcache_key(const std::string &key);

}  // namespace certgate
