#include "core/app/health.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "core/app/runtime.hpp"
#include "core/base/json.hpp"

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
        thread_kv(settings).version();
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

namespace {
// The reason a probe failed goes to the error log, not to the page: it
// names internal hosts and files.
Json probe(bool up) { return Json{{"up", up}}; }
}  // namespace

std::string health_json(const Health &health, long tasks_alive) {
    Json j{{"status", health.ok() ? "ok" : "unavailable"},
           {"memcached", probe(health.memcached_up)},
           {"store", probe(health.store_up)}};
    if (tasks_alive >= 0) j["tasks_alive"] = tasks_alive;
    return json_body(j);
}

std::string live_json(long pid) { return json_body(Json{{"status", "ok"}, {"pid", pid}}); }

bool ready(const Health &health, bool feed_fresh, bool ca_up) {
    return health.ok() && feed_fresh && ca_up;
}

std::string ready_json(const Health &health, const FeedHealth &feed, bool ca_up) {
    return json_body(Json{{"status", ready(health, feed.fresh, ca_up) ? "ready" : "unavailable"},
                          {"memcached", probe(health.memcached_up)},
                          {"store", probe(health.store_up)},
                          {"feed",
                           {{"fresh", feed.fresh},
                            {"lag_seconds", feed.lag_seconds},
                            {"behind_events", feed.behind_events}}},
                          {"ca_key", probe(ca_up)}});
}

}  // namespace certgate
