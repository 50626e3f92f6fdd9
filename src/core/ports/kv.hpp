// The counters and disposable state port (R10 reservations, flows, codes,
// download tokens): memcached in production, an in-memory fake in unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/base/observe.hpp"

namespace certgate {

// The store behind the port did not answer, or answered nonsense: callers
// fail closed (AuthStatus::unavailable, 503 `unavailable`).
struct KvError : std::runtime_error {
    explicit KvError(const std::string &what) : std::runtime_error(what) {
        note_dependency_error(Dependency::memcached);
    }
};

class Kv {
  public:
    virtual ~Kv() = default;
    // Every call throws KvError when the server does not answer in time.
    virtual std::string version() = 0;
    virtual std::optional<std::string> get(const std::string &key) = 0;
    virtual void set(const std::string &key, const std::string &value, long ttl_s) = 0;
    virtual bool add(const std::string &key, const std::string &value,
                     long ttl_s) = 0;                            // false: exists
    virtual bool remove(const std::string &key) = 0;             // false: absent
    virtual bool touch(const std::string &key, long ttl_s) = 0;  // false: absent
    // Atomic increment; std::nullopt when the key does not exist.
    virtual std::optional<uint64_t> incr(const std::string &key, uint64_t delta) = 0;
    // Atomic increment that creates the counter at `delta` (with ttl) when absent.
    virtual uint64_t incr_or_create(const std::string &key, uint64_t delta, long ttl_s) = 0;
};

// Keys must be short and free of spaces and control characters.
bool valid_kv_key(const std::string &key);

}  // namespace certgate
