#include "core/adapters/memcache.hpp"
#include "core/app/runtime.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>

namespace certgate {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

void wait_for(int fd, short events, Clock::time_point deadline, const char *what) {
    for (;;) {
        pollfd p{fd, events, 0};
        int rc = ::poll(&p, 1, remaining_ms(deadline));
        if (rc > 0) return;
        if (rc == 0) throw KvError(std::string("memcached did not answer in time (") + what + ")");
        if (errno != EINTR) throw KvError(std::string("poll: ") + std::strerror(errno));
    }
}

}  // namespace

bool valid_kv_key(const std::string &key) {
    if (key.empty() || key.size() > 250) return false;
    for (unsigned char c : key) {
        if (c <= 32 || c == 127) return false;
    }
    return true;
}

Memcache::Memcache(std::string host, int port, int timeout_ms)
    : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms) {}

Memcache::~Memcache() { drop(); }

void Memcache::drop() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
}

void Memcache::connect() {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *res = nullptr;
    std::string port = std::to_string(port_);
    int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
        throw KvError("memcached " + host_ + ":" + port + ": " + gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo *)> guard(res, freeaddrinfo);
    std::string last = "no address";
    for (addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          ai->ai_protocol);
        if (fd < 0) {
            last = std::strerror(errno);
            continue;
        }
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            try {
                wait_for(fd, POLLOUT, deadline, "connect");
                int err = 0;
                socklen_t len = sizeof(err);
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err == 0) {
                    int one = 1;
                    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    fd_ = fd;
                    return;
                }
                last = std::strerror(err);
            } catch (const KvError &e) {
                last = e.what();
            }
        } else {
            last = std::strerror(errno);
        }
        ::close(fd);
    }
    throw KvError("cannot connect to memcached " + host_ + ":" + port + ": " + last);
}

void Memcache::send_all(const std::string &data) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            wait_for(fd_, POLLOUT, deadline, "write");
            continue;
        }
        throw KvError(std::string("memcached write: ") + std::strerror(errno));
    }
}

std::string Memcache::read_line() {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    for (;;) {
        auto pos = buffer_.find("\r\n");
        if (pos != std::string::npos) {
            std::string line = buffer_.substr(0, pos);
            buffer_.erase(0, pos + 2);
            return line;
        }
        if (buffer_.size() > 1024 * 1024) throw KvError("memcached reply line too long");
        char chunk[4096];
        ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
        if (n > 0) {
            buffer_.append(chunk, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) throw KvError("memcached closed the connection");
        if (errno == EAGAIN || errno == EINTR) {
            wait_for(fd_, POLLIN, deadline, "read");
            continue;
        }
        throw KvError(std::string("memcached read: ") + std::strerror(errno));
    }
}

std::string Memcache::read_exact(size_t n) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    while (buffer_.size() < n) {
        char chunk[4096];
        ssize_t got = ::recv(fd_, chunk, sizeof(chunk), 0);
        if (got > 0) {
            buffer_.append(chunk, static_cast<size_t>(got));
            continue;
        }
        if (got == 0) throw KvError("memcached closed the connection");
        if (errno == EAGAIN || errno == EINTR) {
            wait_for(fd_, POLLIN, deadline, "read");
            continue;
        }
        throw KvError(std::string("memcached read: ") + std::strerror(errno));
    }
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
}

std::string Memcache::command(const std::string &request) {
    // A kept connection may have been closed by a memcached restart: the
    // first failure on it is retried once on a fresh connection. A fresh
    // connection that fails is final.
    bool reused = fd_ >= 0;
    for (int attempt = 0;; ++attempt) {
        try {
            if (fd_ < 0) connect();
            send_all(request);
            return read_line();
        } catch (const KvError &) {
            drop();
            if (!reused || attempt > 0) throw;
        }
    }
}

std::string Memcache::version() {
    std::string line = command("version\r\n");
    if (line.rfind("VERSION ", 0) != 0) {
        drop();
        throw KvError("memcached answered \"" + line.substr(0, 80) + "\" to version");
    }
    return line.substr(8);
}

std::optional<std::string> Memcache::get(const std::string &key) {
    if (!valid_kv_key(key)) throw KvError("invalid memcached key");
    std::string line = command("get " + key + "\r\n");
    if (line == "END") return std::nullopt;
    // VALUE <key> <flags> <bytes>
    char k[251];
    unsigned flags = 0;
    unsigned long bytes = 0;
    if (std::sscanf(line.c_str(), "VALUE %250s %u %lu", k, &flags, &bytes) != 3 || key != k ||
        bytes > 1024 * 1024) {
        drop();
        throw KvError("unexpected memcached reply to get");
    }
    std::string value = read_exact(bytes + 2);
    value.resize(bytes);
    if (read_line() != "END") {
        drop();
        throw KvError("unexpected memcached reply to get");
    }
    return value;
}

namespace {
std::string storage_command(const char *verb, const std::string &key, const std::string &value,
                            long ttl_s) {
    if (!valid_kv_key(key)) throw KvError("invalid memcached key");
    return std::string(verb) + " " + key + " 0 " + std::to_string(ttl_s) + " " +
           std::to_string(value.size()) + "\r\n" + value + "\r\n";
}
}  // namespace

void Memcache::set(const std::string &key, const std::string &value, long ttl_s) {
    std::string line = command(storage_command("set", key, value, ttl_s));
    if (line != "STORED") {
        drop();
        throw KvError("memcached refused set: " + line.substr(0, 80));
    }
}

bool Memcache::add(const std::string &key, const std::string &value, long ttl_s) {
    std::string line = command(storage_command("add", key, value, ttl_s));
    if (line == "STORED") return true;
    if (line == "NOT_STORED") return false;
    drop();
    throw KvError("memcached refused add: " + line.substr(0, 80));
}

bool Memcache::remove(const std::string &key) {
    if (!valid_kv_key(key)) throw KvError("invalid memcached key");
    std::string line = command("delete " + key + "\r\n");
    if (line == "DELETED") return true;
    if (line == "NOT_FOUND") return false;
    drop();
    throw KvError("memcached refused delete: " + line.substr(0, 80));
}

bool Memcache::touch(const std::string &key, long ttl_s) {
    if (!valid_kv_key(key)) throw KvError("invalid memcached key");
    std::string line = command("touch " + key + " " + std::to_string(ttl_s) + "\r\n");
    if (line == "TOUCHED") return true;
    if (line == "NOT_FOUND") return false;
    drop();
    throw KvError("memcached refused touch: " + line.substr(0, 80));
}

std::optional<uint64_t> Memcache::incr(const std::string &key, uint64_t delta) {
    if (!valid_kv_key(key)) throw KvError("invalid memcached key");
    std::string line = command("incr " + key + " " + std::to_string(delta) + "\r\n");
    if (line == "NOT_FOUND") return std::nullopt;
    char *end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(line.c_str(), &end, 10);
    if (line.empty() || errno != 0 || *end != '\0') {
        drop();
        throw KvError("memcached refused incr: " + line.substr(0, 80));
    }
    return static_cast<uint64_t>(v);
}

uint64_t Memcache::incr_or_create(const std::string &key, uint64_t delta, long ttl_s) {
    // incr, else add; if another client added in between, incr again.
    for (int i = 0; i < 3; ++i) {
        if (auto v = incr(key, delta)) return *v;
        if (add(key, std::to_string(delta), ttl_s)) return delta;
    }
    throw KvError("memcached counter " + key + " could not be created");
}

Kv &thread_kv(const Settings &s) {
    thread_local std::map<std::string, std::unique_ptr<Memcache>> clients;
    const std::string &host = s.memcached_host;
    int port = s.memcached_port, timeout_ms = s.memcached_timeout_ms;
    std::string id = host + ":" + std::to_string(port) + "/" + std::to_string(timeout_ms);
    auto &slot = clients[id];
    if (!slot) slot = std::make_unique<Memcache>(host, port, timeout_ms);
    return *slot;
}

}  // namespace certgate
