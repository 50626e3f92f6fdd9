#include "core/adapters/audit_export.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "core/base/json.hpp"
#include "core/base/utc_time.hpp"

namespace certgate {

namespace {

int facility_number(const std::string &name) {
    static const char *names[] = {"kern", "user", "mail", "daemon", "auth",     "syslog",
                                  "lpr",  "news", "uucp", "cron",   "authpriv", "ftp"};
    for (int i = 0; i < 12; ++i)
        if (name == names[i]) return i;
    if (name.size() == 6 && name.compare(0, 5, "local") == 0 && name[5] >= '0' && name[5] <= '7')
        return 16 + (name[5] - '0');
    return -1;
}

bool secret_key(const std::string &key) {
    static const char *words[] = {"password", "code", "token", "cookie", "secret", "key", "pin"};
    std::string k;
    for (char c : key) k += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char *w : words)
        if (k.find(w) != std::string::npos) return true;
    return false;
}

// key=value words with a secret-sounding key lose their value; other text stays.
std::string scrub(const std::string &detail) {
    std::string out;
    size_t i = 0;
    while (i < detail.size()) {
        size_t end = detail.find(' ', i);
        if (end == std::string::npos) end = detail.size();
        std::string word = detail.substr(i, end - i);
        size_t eq = word.find('=');
        if (eq != std::string::npos && eq > 0 && secret_key(word.substr(0, eq)))
            word = word.substr(0, eq + 1) + "[redacted]";
        out += word;
        if (end < detail.size()) out += ' ';
        i = end + 1;
    }
    return out;
}

std::string hostname() {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) return "localhost";
    return host;
}

}  // namespace

AuditTarget parse_audit_target(const std::string &spec) {
    AuditTarget t;
    if (spec.rfind("file:", 0) == 0) {
        t.kind = AuditTarget::Kind::file;
        t.path = spec.substr(5);
        if (t.path.empty() || t.path[0] != '/')
            throw std::invalid_argument("\"" + spec + "\": file: needs an absolute path");
        return t;
    }
    if (spec.rfind("syslog:", 0) != 0)
        throw std::invalid_argument("\"" + spec +
                                    "\" is neither file:/path nor syslog:server=host:port");
    t.kind = AuditTarget::Kind::syslog;
    std::string rest = spec.substr(7);
    bool server = false;
    size_t i = 0;
    while (i <= rest.size()) {
        size_t end = rest.find(',', i);
        if (end == std::string::npos) end = rest.size();
        std::string item = rest.substr(i, end - i);
        size_t eq = item.find('=');
        std::string k = item.substr(0, eq), v = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (eq == std::string::npos || v.empty())
            throw std::invalid_argument("\"" + spec + "\": \"" + item + "\" is not name=value");
        if (k == "server") {
            std::string host = v, port = "514";
            if (!v.empty() && v[0] == '[') {
                size_t close = v.find(']');
                if (close == std::string::npos)
                    throw std::invalid_argument("\"" + spec + "\": unclosed [ in server");
                host = v.substr(1, close - 1);
                if (close + 1 < v.size()) {
                    if (v[close + 1] != ':')
                        throw std::invalid_argument("\"" + spec + "\": bad server address");
                    port = v.substr(close + 2);
                }
            } else if (v.find(':') != std::string::npos) {
                host = v.substr(0, v.find(':'));
                port = v.substr(v.find(':') + 1);
            }
            unsigned char buf[16];
            if (inet_pton(AF_INET, host.c_str(), buf) != 1 &&
                inet_pton(AF_INET6, host.c_str(), buf) != 1)
                throw std::invalid_argument("\"" + spec + "\": server \"" + host +
                                            "\" is not an IP address");
            char *endp = nullptr;
            long p = std::strtol(port.c_str(), &endp, 10);
            if (port.empty() || *endp != '\0' || p < 1 || p > 65535)
                throw std::invalid_argument("\"" + spec + "\": invalid port \"" + port + "\"");
            t.host = host;
            t.port = static_cast<int>(p);
            server = true;
        } else if (k == "facility") {
            t.facility = facility_number(v);
            if (t.facility < 0)
                throw std::invalid_argument("\"" + spec + "\": unknown facility \"" + v + "\"");
        } else if (k == "tag") {
            if (v.size() > 48) throw std::invalid_argument("\"" + spec + "\": tag is too long");
            for (char c : v)
                if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' &&
                    c != '.')
                    throw std::invalid_argument("\"" + spec +
                                                "\": tag may hold letters, digits, - _ . only");
            t.tag = v;
        } else {
            throw std::invalid_argument("\"" + spec + "\": unknown parameter \"" + k + "\"");
        }
        i = end + 1;
    }
    if (!server) throw std::invalid_argument("\"" + spec + "\": server=host:port is missing");
    return t;
}

std::string audit_json(const Event &e, const std::string &node) {
    return json_line(Json{{"time", utc_time(e.at)},
                          {"id", e.id},
                          {"kind", e.kind},
                          {"actor", e.actor},
                          {"subject", e.subject},
                          {"detail", scrub(e.detail)},
                          {"node", node}});
}

std::string syslog_message(const AuditTarget &t, const std::string &node, int64_t at,
                           const std::string &json) {
    // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG; severity info.
    int pri = t.facility * 8 + 6;
    return "<" + std::to_string(pri) + ">1 " + utc_time(at) + " " + (node.empty() ? "-" : node) +
           " " + t.tag + " " + std::to_string(getpid()) + " audit - " + json;
}

AuditExport::AuditExport(AuditTarget target, size_t capacity)
    : target_(std::move(target)), capacity_(capacity), node_(hostname()) {}

AuditExport::~AuditExport() { stop(); }

void AuditExport::start() {
    if (writer_.joinable()) return;
    node_ = hostname();
    stopping_ = false;
    writer_ = std::thread([this] { run(); });
}

void AuditExport::stop() noexcept {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
}

void AuditExport::offer(const Event &e) noexcept {
    try {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (queue_.size() >= capacity_ || stopping_) {
                if (dropped) dropped->fetch_add(1);
                return;
            }
            queue_.push_back(e);
        }
        wake_.notify_one();
    } catch (...) {
        if (dropped) dropped->fetch_add(1);
    }
}

bool AuditExport::write_line(const std::string &line, int64_t at) noexcept {
    if (target_.kind == AuditTarget::Kind::file) {
        // Opened at the first line, anew after a failed write, and anew when
        // the path names another file (logrotate moved this one away).
        struct stat at_path, open_file;
        if (fd_ >= 0 &&
            (stat(target_.path.c_str(), &at_path) != 0 || fstat(fd_, &open_file) != 0 ||
             at_path.st_ino != open_file.st_ino || at_path.st_dev != open_file.st_dev)) {
            close(fd_);
            fd_ = -1;
        }
        if (fd_ < 0)
            fd_ = open(target_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd_ < 0) return false;
        std::string l = line + "\n";
        ssize_t n = ::write(fd_, l.data(), l.size());  // O_APPEND: one write, one line
        if (n != static_cast<ssize_t>(l.size())) {
            close(fd_);
            fd_ = -1;
            return false;
        }
        return true;
    }
    if (fd_ < 0) {
        struct addrinfo hints, *ai = nullptr;
        std::memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_DGRAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
        if (getaddrinfo(target_.host.c_str(), std::to_string(target_.port).c_str(), &hints, &ai) !=
            0)
            return false;
        fd_ = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd_ >= 0 && connect(fd_, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd_);
            fd_ = -1;
        }
        freeaddrinfo(ai);
        if (fd_ < 0) return false;
    }
    std::string msg = syslog_message(target_, node_, at, line);
    ssize_t n = send(fd_, msg.data(), msg.size(), 0);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        close(fd_);  // e.g. ECONNREFUSED from an earlier datagram: try afresh next time
        fd_ = -1;
        n = -1;
    }
    return n == static_cast<ssize_t>(msg.size());
}

void AuditExport::run() noexcept {
    for (;;) {
        Event e;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, all sent
            e = std::move(queue_.front());
            queue_.pop_front();
        }
        try {
            bool ok = write_line(audit_json(e, node_), e.at);
            if (!ok && target_.kind == AuditTarget::Kind::syslog)
                ok = write_line(audit_json(e, node_), e.at);
            std::atomic<uint64_t> *c = ok ? exported : failed;
            if (c) c->fetch_add(1);
        } catch (...) {
            if (failed) failed->fetch_add(1);
        }
    }
}

}  // namespace certgate
