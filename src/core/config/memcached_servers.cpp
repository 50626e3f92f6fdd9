#include "core/config/memcached_servers.hpp"

#include <arpa/inet.h>

#include <cctype>

namespace certgate {

namespace {

bool parse_port(const std::string &text, int *port) {
    if (text.empty() || text.size() > 5) return false;
    int p = 0;
    for (unsigned char c : text) {
        if (!std::isdigit(c)) return false;
        p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) return false;
    *port = p;
    return true;
}

// A DNS name or an IPv4 address: letters, digits, dots, hyphens, underscores.
bool valid_host_name(const std::string &host) {
    if (host.empty() || host.size() > 253) return false;
    for (unsigned char c : host) {
        if (!std::isalnum(c) && c != '.' && c != '-' && c != '_') return false;
    }
    return true;
}

}  // namespace

bool parse_memcached_server(const std::string &text, MemcachedServer *out, std::string *error) {
    MemcachedServer s;
    static const std::string unix_prefix = "unix:";
    if (text.compare(0, unix_prefix.size(), unix_prefix) == 0) {
        s.host = text.substr(unix_prefix.size());
        s.port = 0;
        // libmemcached takes a name that starts with '/' for a socket path.
        if (s.host.empty() || s.host[0] != '/') {
            *error = "a unix socket needs an absolute path: unix:/path/to/memcached.sock";
            return false;
        }
        for (unsigned char c : s.host) {
            if (c <= ' ' || c == 127) {
                *error = "a unix socket path with a space or a control character";
                return false;
            }
        }
        *out = s;
        return true;
    }
    std::string port = "11211";
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) {
            *error = "missing \"]\" after the IPv6 address";
            return false;
        }
        s.host = text.substr(1, close - 1);
        in6_addr a6;
        if (inet_pton(AF_INET6, s.host.c_str(), &a6) != 1) {
            *error = "invalid IPv6 address";
            return false;
        }
        std::string rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') {
                *error = "expected \":port\" after \"]\"";
                return false;
            }
            port = rest.substr(1);
        }
    } else {
        auto colon = text.find(':');
        if (colon != std::string::npos && text.find(':', colon + 1) != std::string::npos) {
            *error = "an IPv6 address needs brackets: [::1]:11211";
            return false;
        }
        s.host = text.substr(0, colon);
        if (colon != std::string::npos) port = text.substr(colon + 1);
        if (!valid_host_name(s.host)) {
            *error = "invalid host";
            return false;
        }
    }
    if (!parse_port(port, &s.port)) {
        *error = "invalid port";
        return false;
    }
    *out = s;
    return true;
}

std::string memcached_server_name(const MemcachedServer &server) {
    if (server.port == 0) return "unix:" + server.host;
    if (server.host.find(':') != std::string::npos) {
        return "[" + server.host + "]:" + std::to_string(server.port);
    }
    return server.host + ":" + std::to_string(server.port);
}

}  // namespace certgate
