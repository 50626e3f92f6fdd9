// Key pairs made ahead of time, so ⑥ costs one signature and the PKCS#12
// instead of an RSA prime search. Per worker process, in its memory only:
// never on disk or in shared memory, each key handed out once, freed (and
// with it wiped: OpenSSL clears private numbers on free) at exit.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "core/adapters/ca.hpp"

namespace certgate {

struct KeyPoolStats {
    size_t ready = 0;        // keys waiting now
    uint64_t taken = 0;      // issuances served from the pool
    uint64_t missed = 0;     // issuances that found it empty (made their key inline)
    uint64_t generated = 0;  // keys the refill made
};

class KeyPool {
  public:
    // Up to `capacity` keys of `type`; after each key the refill pauses
    // `pause` (a bound on its rate whatever the machine's idleness).
    KeyPool(KeyType type, size_t capacity, std::chrono::milliseconds pause);
    ~KeyPool();  // stop()
    KeyPool(const KeyPool &) = delete;
    KeyPool &operator=(const KeyPool &) = delete;

    // The refill thread, at SCHED_IDLE: it runs only when nothing else on
    // the machine wants the core, so the event loop and the pool threads
    // never wait for it. stop() cancels a generation under way and joins.
    void start();
    void stop() noexcept;

    // A key of `type`, never handed out before; nullopt when the pool is
    // empty or holds another type.
    std::optional<PKey> take(const KeyType &type);
    KeyPoolStats stats() const;

  private:
    void refill() noexcept;

    const KeyType type_;
    const size_t capacity_;
    const std::chrono::milliseconds pause_;
    mutable std::mutex mu_;
    std::condition_variable wake_;
    std::deque<PKey> keys_;
    std::atomic<bool> stopping_{false};
    uint64_t taken_ = 0, missed_ = 0, generated_ = 0;
    std::thread thread_;
};

// The worker's pool (nullptr: none, certgate_key_pool off or not a worker).
void set_key_pool(KeyPool *pool) noexcept;
KeyPool *key_pool() noexcept;

// The issuance's key: from the worker's pool when it has one of this type,
// made now otherwise.
PKey pooled_or_new_key(const KeyType &type);

}  // namespace certgate
