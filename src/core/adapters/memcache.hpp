// A memcached client for the text protocol, for the thread pool: blocking
// calls with a deadline on every read and write, so a memcached that hangs
// or is gone costs a task at most the timeout, never the event loop.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/config/settings.hpp"
#include "core/ports/kv.hpp"

namespace certgate {

class Memcache final : public Kv {
public:
    Memcache(std::string host, int port, int timeout_ms);
    ~Memcache();
    Memcache(const Memcache &) = delete;
    Memcache &operator=(const Memcache &) = delete;

    // Every call throws KvError when memcached does not answer in time
    // or answers what the protocol does not allow; the connection is dropped
    // then and made again on the next call.
    std::string version() override;
    std::optional<std::string> get(const std::string &key) override;
    void set(const std::string &key, const std::string &value, long ttl_s) override;
    bool add(const std::string &key, const std::string &value, long ttl_s) override;
    bool remove(const std::string &key) override;
    bool touch(const std::string &key, long ttl_s) override;
    std::optional<uint64_t> incr(const std::string &key, uint64_t delta) override;
    uint64_t incr_or_create(const std::string &key, uint64_t delta, long ttl_s) override;

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



}  // namespace certgate
