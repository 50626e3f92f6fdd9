#include "core/app/health.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <exception>

#include "core/app/runtime.hpp"

namespace certgate {

namespace {
// The path of a SQLite store URI, or "" for another kind.
std::string sqlite_path(const std::string &uri) {
    if (uri.rfind("sqlite:", 0) == 0) return uri.substr(7);
    if (uri.find(':') == std::string::npos || uri[0] == '/') return uri;
    return "";
}
}  // namespace

Health check_health(const Settings &settings, bool check_file) {
    Health h;
    try {
        thread_kv(settings)
            .version();
        h.memcached_up = true;
    } catch (const std::exception &e) {
        h.memcached_error = e.what();
    }
    try {
        std::string path = check_file ? sqlite_path(settings.store_uri) : "";
        if (!path.empty() && access(path.c_str(), R_OK | W_OK) != 0) {
            throw std::runtime_error("store " + path + ": " + std::strerror(errno));
        }
        thread_store(settings.store_uri).ping();
        h.store_up = true;
    } catch (const std::exception &e) {
        drop_thread_store(settings.store_uri);
        h.store_error = e.what();
    }
    return h;
}

std::string json_escape(const std::string &s) {
    std::string out;
    out.reserve(s.size() + 2);
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '<': out += "\\u003c"; break;
        case '>': out += "\\u003e"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out;
}

namespace {
// The reason a probe failed goes to the error log, not to the page: it
// names internal hosts and files.
std::string probe_json(bool up) { return std::string("{\"up\":") + (up ? "true" : "false") + "}"; }
}  // namespace

std::string health_json(const Health &health, long tasks_alive) {
    std::string out = std::string("{\"status\":\"") + (health.ok() ? "ok" : "unavailable") + "\"";
    out += ",\"memcached\":" + probe_json(health.memcached_up);
    out += ",\"store\":" + probe_json(health.store_up);
    if (tasks_alive >= 0) out += ",\"tasks_alive\":" + std::to_string(tasks_alive);
    return out + "}\n";
}

}  // namespace certgate
