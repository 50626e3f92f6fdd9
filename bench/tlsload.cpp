// bench/tlsload: a closed-loop HTTP/1.1 or HTTP/2 load generator over TLS
// that presents a client certificate, which wrk, h2load and hey cannot. Each
// connection does its handshake once and then sends GETs back to back on
// keep-alive (HTTP/2: one stream after the other on one connection);
// connections are spread over threads, each thread driving its share with
// non-blocking OpenSSL on one epoll loop.
//
//   tlsload --port 8443 --cert alice.crt --key alice.key --path /app/index.html
//           [--connections 16] [--threads 2] [--duration 10] [--warmup 1] [--http2]
//           [--tls 1.3|1.2] [--header 'Cookie: __Host-certgate=...'] [--expect 200]
//
// Prints one human line and one `RESULT tlsload key=value ...` line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string servername = "localhost";
    std::string path = "/";
    std::string cert, key, cacert;
    std::vector<std::string> headers;
    int connections = 16;
    int threads = 2;
    double duration = 10;
    double warmup = 1;
    int tls = 13;  // 12 or 13
    int expect = 200;
    bool h2 = false;  // HTTP/2 (ALPN h2) instead of HTTP/1.1
};

[[noreturn]] void usage(const std::string& msg) {
    std::fprintf(stderr,
                 "tlsload: %s\n"
                 "usage: tlsload --port P --cert F --key F [--host 127.0.0.1] [--path /]\n"
                 "               [--servername localhost] [--cacert F] [--header 'K: V']...\n"
                 "               [--connections 16] [--threads 2] [--duration 10] [--warmup 1]\n"
                 "               [--tls 1.3|1.2] [--expect 200] [--http2]\n",
                 msg.c_str());
    std::exit(2);
}

double parse_double(const std::string& v, const std::string& name, double lo, double hi) {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || !(d >= lo && d <= hi)) usage("bad value for " + name + ": " + v);
    return d;
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage("missing value for " + a);
            return argv[++i];
        };
        if (a == "--host")
            o.host = value();
        else if (a == "--port")
            o.port = static_cast<int>(parse_double(value(), a, 1, 65535));
        else if (a == "--servername")
            o.servername = value();
        else if (a == "--path")
            o.path = value();
        else if (a == "--cert")
            o.cert = value();
        else if (a == "--key")
            o.key = value();
        else if (a == "--cacert")
            o.cacert = value();
        else if (a == "--header")
            o.headers.push_back(value());
        else if (a == "--connections")
            o.connections = static_cast<int>(parse_double(value(), a, 1, 10000));
        else if (a == "--threads")
            o.threads = static_cast<int>(parse_double(value(), a, 1, 64));
        else if (a == "--duration")
            o.duration = parse_double(value(), a, 0.1, 3600);
        else if (a == "--warmup")
            o.warmup = parse_double(value(), a, 0, 600);
        else if (a == "--expect")
            o.expect = static_cast<int>(parse_double(value(), a, 100, 599));
        else if (a == "--http2")
            o.h2 = true;
        else if (a == "--tls") {
            std::string v = value();
            if (v == "1.3")
                o.tls = 13;
            else if (v == "1.2")
                o.tls = 12;
            else
                usage("--tls is 1.2 or 1.3");
        } else
            usage("unknown argument " + a);
    }
    if (!o.port) usage("--port is required");
    if (o.cert.empty() != o.key.empty()) usage("--cert and --key go together");
    if (o.threads > o.connections) o.threads = o.connections;
    for (const auto& h : o.headers)
        if (h.find(':') == std::string::npos || h.find_first_of("\r\n") != std::string::npos)
            usage("a header is 'Name: value' on one line: " + h);
    return o;
}

// The 9 bytes before an HTTP/2 frame's payload.
std::string h2_frame_header(size_t len, unsigned type, unsigned flags, uint32_t stream) {
    std::string h(9, '\0');
    h[0] = static_cast<char>(len >> 16);
    h[1] = static_cast<char>(len >> 8);
    h[2] = static_cast<char>(len);
    h[3] = static_cast<char>(type);
    h[4] = static_cast<char>(flags);
    for (int k = 0; k < 4; ++k) h[5 + k] = static_cast<char>(stream >> (24 - 8 * k));
    return h;
}

// ---- per-thread state ---------------------------------------------------------------

struct Counters {
    uint64_t requests = 0;  // completed with the expected status, in the measured window
    uint64_t handshakes = 0;
    uint64_t err_connect = 0, err_tls = 0, err_closed = 0, err_status = 0, err_parse = 0;
    std::vector<uint32_t> latency_us;  // one per counted request
    int last_bad_status = 0;
    std::string first_error;  // what went wrong first, for the report
};

enum class State { idle, connecting, handshaking, writing, reading };

struct Conn {
    int fd = -1;
    SSL* ssl = nullptr;
    State state = State::idle;
    size_t out_off = 0;
    std::string in;
    Clock::time_point sent;
    Clock::time_point retry_at;
    uint32_t interest = 0;
    // HTTP/2: what goes out next (preface, control frames, HEADERS), the
    // stream of the request in flight, and its status once its HEADERS came.
    std::string out;
    std::string pending;  // SETTINGS and PING acknowledgements, sent with the next request
    uint32_t stream = 0;
    int status = 0;
};

struct Shared {
    const Options* o;
    SSL_CTX* ctx;
    std::string request;
    std::string h2_preface;  // connection preface, SETTINGS and a WINDOW_UPDATE
    std::string h2_block;    // the request's header block (HPACK)
    sockaddr_in addr;
    Clock::time_point measure_from, until;
};

class Worker {
  public:
    Worker(const Shared& s, int nconn) : s_(s), conns_(static_cast<size_t>(nconn)) {}

    void run() {
        ep_ = epoll_create1(0);
        if (ep_ < 0) {
            std::perror("epoll_create1");
            return;
        }
        counters.latency_us.reserve(1 << 18);
        for (size_t i = 0; i < conns_.size(); ++i) start_connect(i);
        epoll_event events[256];
        while (true) {
            auto now = Clock::now();
            if (now >= s_.until) break;
            int timeout = static_cast<int>(
                std::chrono::duration_cast<std::chrono::milliseconds>(s_.until - now).count());
            int n = epoll_wait(ep_, events, 256, std::min(timeout + 1, 10));
            if (n < 0 && errno != EINTR) {
                std::perror("epoll_wait");
                break;
            }
            for (int k = 0; k < n; ++k) drive(events[k].data.u32, events[k].events);
            // Connections that failed wait a little before trying again, so a
            // server that refuses does not turn this into a busy loop.
            now = Clock::now();
            for (size_t i = 0; i < conns_.size(); ++i)
                if (conns_[i].state == State::idle && now >= conns_[i].retry_at) start_connect(i);
        }
        for (size_t i = 0; i < conns_.size(); ++i) close_conn(i);
        close(ep_);
    }

    Counters counters;

  private:
    void watch(size_t i, uint32_t what) {
        Conn& c = conns_[i];
        if (c.interest == what) return;
        epoll_event ev{};
        ev.events = what;
        ev.data.u32 = static_cast<uint32_t>(i);
        epoll_ctl(ep_, c.interest ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev);
        c.interest = what;
    }

    void close_conn(size_t i) {
        Conn& c = conns_[i];
        if (c.ssl) SSL_free(c.ssl);
        if (c.fd >= 0) close(c.fd);
        c = Conn{};
    }

    void fail(size_t i, uint64_t& counter, const char* what) {
        if (Clock::now() < s_.until) ++counter;
        if (counters.first_error.empty()) {
            unsigned long e = ERR_peek_error();
            char buf[256] = "";
            if (e) ERR_error_string_n(e, buf, sizeof buf);
            counters.first_error = std::string(what) + (e ? std::string(": ") + buf : "") +
                                   (!e && errno ? std::string(": ") + std::strerror(errno) : "");
        }
        close_conn(i);
        conns_[i].retry_at = Clock::now() + std::chrono::milliseconds(10);
        ERR_clear_error();
    }

    void start_connect(size_t i) {
        Conn& c = conns_[i];
        c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0) return fail(i, counters.err_connect, "connect");
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        errno = 0;
        int rc = connect(c.fd, reinterpret_cast<const sockaddr*>(&s_.addr), sizeof s_.addr);
        if (rc < 0 && errno != EINPROGRESS) return fail(i, counters.err_connect, "connect");
        c.state = State::connecting;
        watch(i, EPOLLOUT);
    }

    // Moves one connection as far as it goes without blocking.
    void drive(size_t i, uint32_t events) {
        Conn& c = conns_[i];
        if (c.state == State::connecting) {
            int err = 0;
            socklen_t len = sizeof err;
            if ((events & (EPOLLERR | EPOLLHUP)) ||
                getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
                return fail(i, counters.err_connect, "connect");
            c.ssl = SSL_new(s_.ctx);
            if (!c.ssl) return fail(i, counters.err_tls, "SSL_new");
            SSL_set_fd(c.ssl, c.fd);
            SSL_set_tlsext_host_name(c.ssl, s_.o->servername.c_str());
            SSL_set_connect_state(c.ssl);
            c.state = State::handshaking;
        }
        while (true) {
            switch (c.state) {
                case State::handshaking: {
                    int r = SSL_do_handshake(c.ssl);
                    if (r == 1) {
                        ++counters.handshakes;
                        if (s_.o->h2) {
                            const unsigned char* alpn = nullptr;
                            unsigned len = 0;
                            SSL_get0_alpn_selected(c.ssl, &alpn, &len);
                            if (len != 2 || std::memcmp(alpn, "h2", 2) != 0)
                                return fail(i, counters.err_tls, "the server did not choose h2");
                        }
                        begin_request(c);
                        break;
                    }
                    if (!wait_for(i, r)) return fail(i, counters.err_tls, "TLS handshake");
                    return;
                }
                case State::writing: {
                    const std::string& req = s_.o->h2 ? c.out : s_.request;
                    int r = SSL_write(c.ssl, req.data() + c.out_off,
                                      static_cast<int>(req.size() - c.out_off));
                    if (r > 0) {
                        c.out_off += static_cast<size_t>(r);
                        if (c.out_off == req.size()) {
                            c.state = State::reading;
                            c.in.clear();
                        }
                        break;
                    }
                    if (!wait_for(i, r)) return fail(i, counters.err_closed, "write");
                    return;
                }
                case State::reading: {
                    char buf[16384];
                    int r = SSL_read(c.ssl, buf, sizeof buf);
                    if (r > 0) {
                        c.in.append(buf, static_cast<size_t>(r));
                        int done = s_.o->h2 ? h2_frames(i) : response_complete(i);
                        if (done < 0) return;  // the connection was closed
                        break;
                    }
                    if (!wait_for(i, r)) return fail(i, counters.err_closed, "read");
                    return;
                }
                default:
                    return;
            }
        }
    }

    // After SSL_* returned r <= 0: watch the socket for what OpenSSL wants;
    // false when the connection is broken.
    bool wait_for(size_t i, int r) {
        switch (SSL_get_error(conns_[i].ssl, r)) {
            case SSL_ERROR_WANT_READ:
                watch(i, EPOLLIN);
                return true;
            case SSL_ERROR_WANT_WRITE:
                watch(i, EPOLLOUT);
                return true;
            default:
                return false;
        }
    }

    void begin_request(Conn& c) {
        c.state = State::writing;
        c.out_off = 0;
        c.sent = Clock::now();
        if (!s_.o->h2) return;
        c.out.clear();
        if (c.stream == 0) c.out = s_.h2_preface;
        c.out += c.pending;
        c.pending.clear();
        c.stream = c.stream == 0 ? 1 : c.stream + 2;
        c.status = 0;
        // HEADERS with END_STREAM | END_HEADERS: a GET has no body.
        c.out += h2_frame_header(s_.h2_block.size(), 1, 0x5, c.stream) + s_.h2_block;
    }

    // Takes the whole frames in c.in; when the stream in flight has ended,
    // records its answer and starts the next request. Returns as
    // response_complete() does.
    int h2_frames(size_t i) {
        Conn& c = conns_[i];
        size_t off = 0;
        bool ended = false;
        while (c.in.size() - off >= 9) {
            auto b = reinterpret_cast<const unsigned char*>(c.in.data() + off);
            size_t len = (size_t{b[0]} << 16) | (size_t{b[1]} << 8) | b[2];
            if (c.in.size() - off < 9 + len) break;
            unsigned type = b[3], flags = b[4];
            uint32_t sid = ((uint32_t{b[5]} & 0x7f) << 24) | (uint32_t{b[6]} << 16) |
                           (uint32_t{b[7]} << 8) | b[8];
            const unsigned char* payload = b + 9;
            off += 9 + len;
            if (type == 4 && !(flags & 0x1)) {  // SETTINGS: acknowledged
                c.pending += h2_frame_header(0, 4, 0x1, 0);
            } else if (type == 6 && !(flags & 0x1) && len == 8) {  // PING: answered
                c.pending += h2_frame_header(8, 6, 0x1, 0);
                c.pending.append(reinterpret_cast<const char*>(payload), 8);
            } else if (type == 7) {  // GOAWAY: the server ends the connection
                close_conn(i);
                conns_[i].retry_at = Clock::now();
                return -1;
            } else if (type == 3 && sid == c.stream) {
                fail(i, counters.err_closed, "RST_STREAM");
                return -1;
            } else if (type == 1 && sid == c.stream) {
                size_t skip = 0;
                if (flags & 0x8) skip += 1 + (len ? payload[0] : 0);  // PADDED
                if (flags & 0x20) skip += 5;                          // PRIORITY
                c.status = skip < len ? h2_status(payload + skip, len - skip) : 0;
                if (c.status < 100) {
                    fail(i, counters.err_parse, "no :status first in HEADERS");
                    return -1;
                }
                if (flags & 0x1) ended = true;
            } else if (type == 0 && sid == c.stream && (flags & 0x1)) {
                ended = true;
            }
        }
        c.in.erase(0, off);
        if (!ended) return 0;
        auto now = Clock::now();
        bool counted = now >= s_.measure_from && now < s_.until;
        if (c.status != s_.o->expect) {
            if (counted) ++counters.err_status;
            counters.last_bad_status = c.status;
        } else if (counted) {
            ++counters.requests;
            counters.latency_us.push_back(static_cast<uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent).count()));
        }
        begin_request(c);
        return 1;
    }

    // The :status nginx puts first: an entry of HPACK's static table (200,
    // 204, 206, 304, 400, 404, 500) or a literal with that name and 3 digits.
    static int h2_status(const unsigned char* p, size_t len) {
        static const int indexed[] = {200, 204, 206, 304, 400, 404, 500};
        if (p[0] >= 0x88 && p[0] <= 0x8e) return indexed[p[0] - 0x88];
        if ((p[0] == 0x48 || p[0] == 0x08) && len >= 5 && p[1] == 3)
            return (p[2] - '0') * 100 + (p[3] - '0') * 10 + (p[4] - '0');
        return 0;
    }

    // Checks whether c.in holds a whole response; if so records it and starts
    // the next request. Returns 1 when a response was taken, 0 when more bytes
    // are needed, -1 when the connection was closed.
    int response_complete(size_t i) {
        Conn& c = conns_[i];
        size_t head_end = c.in.find("\r\n\r\n");
        if (head_end == std::string::npos) return 0;
        int status = 0;
        if (c.in.compare(0, 9, "HTTP/1.1 ") == 0 || c.in.compare(0, 9, "HTTP/1.0 ") == 0)
            status = std::atoi(c.in.c_str() + 9);
        if (status < 100) {
            fail(i, counters.err_parse, "no HTTP status line");
            return -1;
        }
        long length = -1;
        bool chunked = false, close_after = false;
        size_t pos = c.in.find("\r\n") + 2;
        while (pos < head_end) {
            size_t eol = c.in.find("\r\n", pos);
            std::string line = c.in.substr(pos, eol - pos);
            pos = eol + 2;
            std::string lower = line;
            for (auto& ch : lower)
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (lower.compare(0, 15, "content-length:") == 0)
                length = std::atol(line.c_str() + 15);
            else if (lower.compare(0, 18, "transfer-encoding:") == 0 &&
                     lower.find("chunked") != std::string::npos)
                chunked = true;
            else if (lower.compare(0, 11, "connection:") == 0 &&
                     lower.find("close") != std::string::npos)
                close_after = true;
        }
        size_t body = head_end + 4;
        size_t total;
        if (chunked) {
            // Enough for nginx's own error pages; bodies here are small.
            size_t end = c.in.find("0\r\n\r\n", body);
            if (end == std::string::npos) return 0;
            total = end + 5;
        } else if (length >= 0) {
            total = body + static_cast<size_t>(length);
            if (c.in.size() < total) return 0;
        } else {
            fail(i, counters.err_parse,
                 "response without length");  // no length: HTTP/1.1 keep-alive cannot go on
            return -1;
        }
        auto now = Clock::now();
        bool counted = now >= s_.measure_from && now < s_.until;
        if (status != s_.o->expect) {
            if (counted) ++counters.err_status;
            counters.last_bad_status = status;
        } else if (counted) {
            ++counters.requests;
            counters.latency_us.push_back(static_cast<uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent).count()));
        }
        if (close_after || c.in.size() != total) {
            // The server ends keep-alive, or sent more than one answer.
            if (close_after) {
                close_conn(i);
                conns_[i].retry_at = now;
            } else {
                fail(i, counters.err_parse, "extra bytes after a response");
            }
            return -1;
        }
        begin_request(c);
        return 1;
    }

    const Shared& s_;
    std::vector<Conn> conns_;
    int ep_ = -1;
};

// HPACK: an integer with an N-bit prefix, after `first` (the bits above it).
void hpack_int(std::string& out, unsigned first, unsigned bits, size_t v) {
    size_t max = (size_t{1} << bits) - 1;
    if (v < max) {
        out += static_cast<char>(first | v);
        return;
    }
    out += static_cast<char>(first | max);
    for (v -= max; v >= 128; v /= 128) out += static_cast<char>(0x80 | (v % 128));
    out += static_cast<char>(v);
}

void hpack_string(std::string& out, const std::string& s) {
    hpack_int(out, 0, 7, s.size());  // no Huffman
    out += s;
}

// GET path: :method GET and :scheme https from the static table, the rest
// literals without indexing (so the block is the same for every request).
std::string hpack_request(const Options& o) {
    std::string b;
    b += static_cast<char>(0x82);  // :method GET
    b += static_cast<char>(0x87);  // :scheme https
    hpack_int(b, 0, 4, 4);         // :path, name of entry 4
    hpack_string(b, o.path);
    hpack_int(b, 0, 4, 1);  // :authority
    hpack_string(b, o.servername);
    std::vector<std::pair<std::string, std::string>> fields = {{"user-agent", "certgate-tlsload"}};
    for (const auto& h : o.headers) {
        size_t colon = h.find(':');
        std::string name = h.substr(0, colon), value = h.substr(colon + 1);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        value.erase(0, value.find_first_not_of(' '));
        fields.emplace_back(name, value);
    }
    for (const auto& f : fields) {
        b += '\0';
        hpack_string(b, f.first);
        hpack_string(b, f.second);
    }
    return b;
}

uint32_t percentile(const std::vector<uint32_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    size_t k = static_cast<size_t>(p * static_cast<double>(sorted.size()) + 0.999999);
    return sorted[std::min(sorted.size(), std::max<size_t>(k, 1)) - 1];
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);

    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) usage("SSL_CTX_new failed");
    int version = o.tls == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    // One handshake per connection, as a browser on keep-alive; no resumption.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (!o.cert.empty() &&
        (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1)) {
        ERR_print_errors_fp(stderr);
        usage("cannot load the client certificate " + o.cert + " / " + o.key);
    }
    if (!o.cacert.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, o.cacert.c_str(), nullptr) != 1) {
            ERR_print_errors_fp(stderr);
            usage("cannot load " + o.cacert);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    }

    Shared s{};
    s.o = &o;
    s.ctx = ctx;
    s.request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.servername +
                "\r\nUser-Agent: certgate-tlsload\r\n";
    for (const auto& h : o.headers) s.request += h + "\r\n";
    s.request += "\r\n";
    if (o.h2) {
        static const unsigned char alpn[] = {2, 'h', '2'};
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
        // The client's windows as large as HTTP/2 allows: this client reads
        // everything at once and never needs to slow the server down.
        std::string settings;
        for (auto [id, value] : {std::pair<unsigned, uint32_t>{2, 0}, {4, 0x7fffffff}}) {
            settings += static_cast<char>(id >> 8);
            settings += static_cast<char>(id);
            for (int k = 0; k < 4; ++k) settings += static_cast<char>(value >> (24 - 8 * k));
        }
        uint32_t more = 0x7fffffff - 65535;
        std::string update;
        for (int k = 0; k < 4; ++k) update += static_cast<char>(more >> (24 - 8 * k));
        s.h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                       h2_frame_header(settings.size(), 4, 0, 0) + settings +
                       h2_frame_header(4, 8, 0, 0) + update;
        s.h2_block = hpack_request(o);
    }
    s.addr.sin_family = AF_INET;
    s.addr.sin_port = htons(static_cast<uint16_t>(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &s.addr.sin_addr) != 1)
        usage("--host is an IPv4 address: " + o.host);
    auto start = Clock::now();
    s.measure_from = start + std::chrono::microseconds(static_cast<int64_t>(o.warmup * 1e6));
    s.until = s.measure_from + std::chrono::microseconds(static_cast<int64_t>(o.duration * 1e6));

    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < o.threads; ++t) {
        int share = o.connections / o.threads + (t < o.connections % o.threads ? 1 : 0);
        workers.push_back(std::make_unique<Worker>(s, share));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
    for (auto& t : threads) t.join();

    Counters total;
    std::vector<uint32_t> lat;
    for (auto& w : workers) {
        const Counters& c = w->counters;
        total.requests += c.requests;
        total.handshakes += c.handshakes;
        total.err_connect += c.err_connect;
        total.err_tls += c.err_tls;
        total.err_closed += c.err_closed;
        total.err_status += c.err_status;
        total.err_parse += c.err_parse;
        if (c.last_bad_status) total.last_bad_status = c.last_bad_status;
        if (total.first_error.empty()) total.first_error = c.first_error;
        lat.insert(lat.end(), c.latency_us.begin(), c.latency_us.end());
    }
    std::sort(lat.begin(), lat.end());
    uint64_t errors =
        total.err_connect + total.err_tls + total.err_closed + total.err_status + total.err_parse;
    double rps = static_cast<double>(total.requests) / o.duration;
    uint32_t p50 = percentile(lat, 0.50), p90 = percentile(lat, 0.90), p99 = percentile(lat, 0.99),
             mx = lat.empty() ? 0 : lat.back();

    std::printf(
        "tlsload: %d connections, %d threads, TLS 1.%d, %s, %.1f s (+%.1f s warm-up), GET %s\n"
        "  %llu requests, %.0f req/s, latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f "
        "ms\n"
        "  handshakes %llu, errors %llu (connect %llu, tls %llu, closed %llu, status %llu%s, "
        "parse %llu)\n",
        o.connections, o.threads, o.tls % 10, o.h2 ? "HTTP/2" : "HTTP/1.1", o.duration, o.warmup,
        o.path.c_str(), static_cast<unsigned long long>(total.requests), rps, p50 / 1000.0,
        p90 / 1000.0, p99 / 1000.0, mx / 1000.0, static_cast<unsigned long long>(total.handshakes),
        static_cast<unsigned long long>(errors), static_cast<unsigned long long>(total.err_connect),
        static_cast<unsigned long long>(total.err_tls),
        static_cast<unsigned long long>(total.err_closed),
        static_cast<unsigned long long>(total.err_status),
        total.last_bad_status ? (" last " + std::to_string(total.last_bad_status)).c_str() : "",
        static_cast<unsigned long long>(total.err_parse));
    if (!total.first_error.empty()) std::printf("  first error: %s\n", total.first_error.c_str());
    std::printf(
        "RESULT tlsload requests=%llu rps=%.1f p50_us=%u p90_us=%u p99_us=%u max_us=%u "
        "errors=%llu handshakes=%llu\n",
        static_cast<unsigned long long>(total.requests), rps, p50, p90, p99, mx,
        static_cast<unsigned long long>(errors), static_cast<unsigned long long>(total.handshakes));
    SSL_CTX_free(ctx);
    return total.requests > 0 && errors == 0 ? 0 : 1;
}
