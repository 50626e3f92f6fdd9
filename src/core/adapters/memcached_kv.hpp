// The counters/kv port on libmemcached: one or more memcached servers, keys
// spread by ketama, binary protocol, every connect/send/receive bounded by
// certgate_memcached's timeout, for the thread pool (blocking calls).
//
// Fail closed: a server that is down is a KvError for the keys that hash to
// it. It is never ejected and its keys never move to another server, where a
// lockout counter would start again from zero.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config/settings.hpp"
#include "core/ports/kv.hpp"

struct memcached_st;
struct memcached_instance_st;

namespace certgate {

class MemcachedKv final : public Kv {
  public:
    MemcachedKv(const std::vector<MemcachedServer> &servers, int timeout_ms);
    ~MemcachedKv() override;
    MemcachedKv(const MemcachedKv &) = delete;
    MemcachedKv &operator=(const MemcachedKv &) = delete;

    // Asks every server; KvError names each one that did not answer.
    std::string version() override;
    std::optional<std::string> get(const std::string &key) override;
    void set(const std::string &key, const std::string &value, long ttl_s) override;
    bool add(const std::string &key, const std::string &value, long ttl_s) override;
    bool remove(const std::string &key) override;
    bool touch(const std::string &key, long ttl_s) override;
    std::optional<uint64_t> incr(const std::string &key, uint64_t delta) override;
    uint64_t incr_or_create(const std::string &key, uint64_t delta, long ttl_s) override;

  private:
    const memcached_instance_st *server_of(const std::string &key);
    void ensure_live(const std::string &key);
    void note_used(const std::string &key);
    [[noreturn]] void fail(const char *op, const std::string &key, int rc);

    memcached_st *mc_;
    // When each server last answered through this handle: a non-idempotent
    // call on a connection idle longer than this is preceded by a get.
    std::map<const memcached_instance_st *, std::chrono::steady_clock::time_point> last_answer_;
};

}  // namespace certgate
