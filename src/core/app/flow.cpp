#include "core/app/flow.hpp"

#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <vector>

#include "core/base/encoding.hpp"
#include "core/base/secrets.hpp"
#include "core/web/form.hpp"

namespace certgate {

const char *to_string(FlowKind k) {
    switch (k) {
        case FlowKind::issue:
            return "issue";
        case FlowKind::register_general:
            return "register_general";
        case FlowKind::register_master:
            return "register_master";
    }
    return "issue";
}

const char *to_string(FlowStep s) {
    switch (s) {
        case FlowStep::need_password:
            return "need_password";
        case FlowStep::code_sent:
            return "code_sent";
        case FlowStep::code_ok:
            return "code_ok";
        case FlowStep::issuing:
            return "issuing";
        case FlowStep::issued:
            return "issued";
    }
    return "code_sent";
}

namespace {

template <class E, size_t N>
bool parse_enum(const std::string &s, const E (&values)[N], E *out) {
    for (E v : values) {
        if (s == to_string(v)) {
            *out = v;
            return true;
        }
    }
    return false;
}

const FlowKind kKinds[] = {FlowKind::issue, FlowKind::register_general, FlowKind::register_master};
const FlowStep kSteps[] = {FlowStep::need_password, FlowStep::code_sent, FlowStep::code_ok,
                           FlowStep::issuing, FlowStep::issued};

constexpr const char kFlowMagic[] = "certgate-flow 1";

}  // namespace

// One "name value" per line; values base64url, so any byte is safe.
std::string serialize_flow(const Flow &f) {
    std::ostringstream out;
    out << kFlowMagic << "\n";
    auto put = [&](const char *name, const std::string &value) {
        out << name << ' ' << base64url_encode(value) << "\n";
    };
    put("id", f.id);
    put("kind", to_string(f.kind));
    put("step", to_string(f.step));
    put("user", f.user_id);
    put("lang", f.lang == Language::en ? "en" : "ja");
    put("created", std::to_string(f.created_at));
    put("expires", std::to_string(f.expires_at));
    put("code_hash", f.code_hash);
    put("code_expires", std::to_string(f.code_expires));
    put("mail_id", std::to_string(f.mail_id));
    put("mail", f.mail);
    put("sealed", f.sealed_password);
    put("replace", f.replace_serial);
    put("replace_until", std::to_string(f.replace_not_after));
    put("new_hash", f.new_password_hash);
    put("serial", f.serial);
    put("file", f.file_name);
    put("download", f.download_token);
    put("not_before", std::to_string(f.not_before));
    put("not_after", std::to_string(f.not_after));
    put("issuing_by", f.issuing_by);
    put("issuing_since", std::to_string(f.issuing_since));
    put("failure", f.failure);
    return out.str();
}

bool parse_flow(const std::string &text, Flow *flow) {
    std::istringstream in(text);
    std::string line;
    if (!std::getline(in, line) || line != kFlowMagic) return false;
    std::map<std::string, std::string> v;
    while (std::getline(in, line)) {
        auto sp = line.find(' ');
        if (sp == std::string::npos) return false;
        std::string raw;
        if (!base64url_decode(line.substr(sp + 1), &raw)) return false;
        v[line.substr(0, sp)] = raw;
    }
    Flow f;
    f.id = v["id"];
    f.user_id = v["user"];
    f.lang = v["lang"] == "en" ? Language::en : Language::ja;
    f.code_hash = v["code_hash"];
    f.mail = v["mail"];
    f.sealed_password = v["sealed"];
    f.replace_serial = v["replace"];
    f.new_password_hash = v["new_hash"];
    f.serial = v["serial"];
    f.file_name = v["file"];
    f.download_token = v["download"];
    f.issuing_by = v["issuing_by"];
    f.failure = v["failure"];
    // Flows written before these fields existed have none.
    if (v.count("issuing_since") && !parse_decimal(v["issuing_since"], &f.issuing_since)) {
        return false;
    }
    if (v.count("replace_until") && !parse_decimal(v["replace_until"], &f.replace_not_after)) {
        return false;
    }
    if (f.id.empty() || f.user_id.empty() || !parse_enum(v["kind"], kKinds, &f.kind) ||
        !parse_enum(v["step"], kSteps, &f.step) || !parse_decimal(v["created"], &f.created_at) ||
        !parse_decimal(v["expires"], &f.expires_at) ||
        !parse_decimal(v["code_expires"], &f.code_expires) ||
        !parse_decimal(v["mail_id"], &f.mail_id) ||
        !parse_decimal(v["not_before"], &f.not_before) ||
        !parse_decimal(v["not_after"], &f.not_after)) {
        return false;
    }
    *flow = std::move(f);
    return true;
}

FlowCookie new_flow_cookie(int64_t expires_at) {
    FlowCookie c;
    c.id = base64url_encode(random_bytes(16));
    c.key = random_bytes(32);
    c.expires_at = expires_at;
    return c;
}

namespace {
std::string be64(int64_t v) {
    std::string out(8, '\0');
    for (int i = 7; i >= 0; --i) {
        out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
        v >>= 8;
    }
    return out;
}
int64_t from_be64(const std::string &s, size_t off) {
    int64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[off + i]);
    return v;
}
std::string cookie_mac(const std::string &secret, const std::string &purpose,
                       const std::string &payload) {
    return hmac_sha256(secret, purpose + "|" + payload).substr(0, 20);
}
}  // namespace

std::string encode_flow_cookie(const std::string &secret, const FlowCookie &c) {
    std::string id_raw;
    base64url_decode(c.id, &id_raw);
    std::string payload = id_raw + c.key + be64(c.expires_at);
    return base64url_encode(payload) + "." + base64url_encode(cookie_mac(secret, "flow", payload));
}

std::optional<FlowCookie> decode_flow_cookie(const std::string &secret, const std::string &value,
                                             int64_t now) {
    auto dot = value.find('.');
    if (dot == std::string::npos || value.size() > 256) return std::nullopt;
    std::string payload, mac;
    if (!base64url_decode(value.substr(0, dot), &payload) ||
        !base64url_decode(value.substr(dot + 1), &mac) || payload.size() != 16 + 32 + 8) {
        return std::nullopt;
    }
    if (!equal_secrets(mac, cookie_mac(secret, "flow", payload))) return std::nullopt;
    FlowCookie c;
    c.id = base64url_encode(payload.substr(0, 16));
    c.key = payload.substr(16, 32);
    c.expires_at = from_be64(payload, 48);
    if (c.expires_at <= now) return std::nullopt;
    return c;
}

std::string flow_key(const std::string &flow_id) { return "cg:flow:" + flow_id; }
std::string flow_code_tries_key(const std::string &flow_id) {
    return "cg:flow:" + flow_id + ":tries";
}
std::string flow_claim_key(const std::string &flow_id, const char *what) {
    return "cg:flow:" + flow_id + ":" + what;
}

std::string flow_p12_keys_key(const std::string &flow_id) {
    return "cg:flow:" + flow_id + ":p12keys";
}

namespace {
constexpr const char *kP12KeysVersion = "p12keys1";
std::string p12_keys_binding(const std::string &cookie_key, const std::string &sealed_password) {
    return base64url_encode(hmac_sha256(cookie_key, "p12keys|" + sealed_password));
}
}  // namespace

std::string seal_p12_keys(const std::string &cookie_key, const std::string &sealed_password,
                          const P12Keys &keys) {
    std::string text = std::string(kP12KeysVersion) + "\n" + std::to_string(keys.iterations) +
                       "\n" + p12_keys_binding(cookie_key, sealed_password) + "\n" +
                       base64url_encode(keys.bag_salt) + "\n" + base64url_encode(keys.bag_key) +
                       "\n" + base64url_encode(keys.mac_salt) + "\n" +
                       base64url_encode(keys.mac_key);
    std::string box = seal(cookie_key, text);
    wipe(text);
    return box;
}

std::optional<P12Keys> unseal_p12_keys(const std::string &cookie_key,
                                       const std::string &sealed_password, const std::string &box) {
    std::string text;
    if (!unseal(cookie_key, box, &text)) return std::nullopt;
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
        size_t nl = text.find('\n', start);
        parts.push_back(text.substr(start, nl == std::string::npos ? nl : nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    wipe(text);
    std::optional<P12Keys> out;
    P12Keys k;
    char *end = nullptr;
    if (parts.size() == 7 && parts[0] == kP12KeysVersion &&
        equal_secrets(parts[2], p12_keys_binding(cookie_key, sealed_password)) &&
        base64url_decode(parts[3], &k.bag_salt) && base64url_decode(parts[4], &k.bag_key) &&
        base64url_decode(parts[5], &k.mac_salt) && base64url_decode(parts[6], &k.mac_key)) {
        long n = std::strtol(parts[1].c_str(), &end, 10);
        if (end != parts[1].c_str() && *end == '\0' && n > 0 && n <= kMaxP12Iterations) {
            k.iterations = static_cast<int>(n);
            out = k;
        }
    }
    for (auto &p : parts) wipe(p);
    return out;
}

std::string code_hash(const std::string &secret, const std::string &flow_id,
                      const std::string &code) {
    return hmac_sha256(secret, "code|" + flow_id + "|" + code);
}

std::string new_csrf_seed() { return base64url_encode(random_bytes(18)); }

std::string csrf_token(const std::string &secret, const std::string &seed) {
    return base64url_encode(hmac_sha256(secret, "csrf|" + seed).substr(0, 18));
}

bool csrf_valid(const std::string &secret, const std::string &seed, const std::string &token) {
    if (seed.size() != 24 || token.empty()) return false;
    return equal_secrets(csrf_token(secret, seed), token);
}

std::optional<Flow> load_flow(Kv &mc, const std::string &flow_id) {
    auto text = mc.get(flow_key(flow_id));
    if (!text) return std::nullopt;
    Flow f;
    if (!parse_flow(*text, &f) || f.id != flow_id) return std::nullopt;
    return f;
}

void save_flow(Kv &mc, const Flow &flow, int64_t now) {
    long ttl = static_cast<long>(flow.expires_at - now);
    if (ttl < 1) ttl = 1;
    mc.set(flow_key(flow.id), serialize_flow(flow), ttl);
}

void end_flow(Kv &mc, const std::string &flow_id) {
    mc.remove(flow_key(flow_id));
    mc.remove(flow_code_tries_key(flow_id));
    mc.remove(flow_p12_keys_key(flow_id));
}

}  // namespace certgate
