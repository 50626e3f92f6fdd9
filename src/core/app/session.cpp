#include "core/app/session.hpp"

#include <algorithm>
#include <vector>

#include "core/base/encoding.hpp"
#include "core/base/secrets.hpp"
#include "core/web/form.hpp"

namespace certgate {

Session new_session(const User &user, const std::string &serial, int64_t cert_not_after,
                    int64_t now) {
    Session s;
    s.id = base64url_encode(random_bytes(16));
    s.user_id = user.id;
    s.org = user.org;
    s.role = user.role;
    s.serial = serial;
    s.started_at = now;
    s.last_seen = now;
    s.cert_not_after = cert_not_after;
    return s;
}

namespace {
std::string mac_of(const std::string &secret, const std::string &payload) {
    return hmac_sha256(secret, "session|" + payload).substr(0, 20);
}

}  // namespace

// Fields joined by '|', each base64url: no separator can appear inside one.
std::string encode_session(const std::string &secret, const Session &s) {
    std::string payload = "2|" + s.id + "|" + base64url_encode(s.user_id) + "|" +
                          base64url_encode(s.org) + "|" + to_string(s.role) + "|" + s.serial + "|" +
                          std::to_string(s.started_at) + "|" + std::to_string(s.last_seen) + "|" +
                          std::to_string(s.cert_not_after) + "|" + std::to_string(s.epoch);
    return base64url_encode(payload) + "." + base64url_encode(mac_of(secret, payload));
}

std::optional<Session> decode_session(const std::string &secret, const std::string &value) {
    auto dot = value.find('.');
    if (dot == std::string::npos || value.size() > 1024) return std::nullopt;
    std::string payload, mac;
    if (!base64url_decode(value.substr(0, dot), &payload) ||
        !base64url_decode(value.substr(dot + 1), &mac)) {
        return std::nullopt;
    }
    if (!equal_secrets(mac, mac_of(secret, payload))) return std::nullopt;
    // Ten fields split at '|' (none can hold one: they are base64url or digits).
    std::vector<std::string> f;
    f.reserve(10);
    size_t start = 0;
    for (;;) {
        size_t bar = payload.find('|', start);
        f.emplace_back(payload, start, bar == std::string::npos ? std::string::npos : bar - start);
        if (bar == std::string::npos || f.size() > 10) break;
        start = bar + 1;
    }
    if (f.size() != 10 || f[0] != "2") return std::nullopt;
    Session s;
    s.id = f[1];
    auto role = parse_role(f[4]);
    if (!base64url_decode(f[2], &s.user_id) || !base64url_decode(f[3], &s.org) || !role ||
        !parse_decimal(f[6], &s.started_at) || !parse_decimal(f[7], &s.last_seen) ||
        !parse_decimal(f[8], &s.cert_not_after) || !parse_decimal(f[9], &s.epoch) ||
        s.id.size() != 22 || f[5].empty()) {
        return std::nullopt;
    }
    s.role = *role;
    s.serial = f[5];
    return s;
}

SessionCheck check_session(const Session &s, const std::string &presented_serial, int64_t now,
                           long idle_s, long absolute_s) {
    if (presented_serial.empty() || !equal_secrets(s.serial, presented_serial)) {
        return SessionCheck::wrong_certificate;
    }
    if (now - s.last_seen > idle_s || now - s.started_at > absolute_s || now < s.started_at) {
        return SessionCheck::expired;
    }
    return SessionCheck::ok;
}

static long refresh_step(long idle_s) {
    long step = idle_s / 10;
    if (step < 1) step = 1;
    if (step > 60) step = 60;
    return step;
}

bool session_needs_refresh(const Session &s, int64_t now, long idle_s) {
    return now - s.last_seen >= refresh_step(idle_s);
}

int64_t session_recheck_at(const Session &s, long idle_s, long absolute_s) {
    int64_t at = s.last_seen + refresh_step(idle_s);       // a refresh is due
    at = std::min<int64_t>(at, s.last_seen + idle_s + 1);  // idle timeout
    at = std::min<int64_t>(at, s.started_at + absolute_s + 1);
    return at;
}

}  // namespace certgate
