// The issuance and registration flows between screens (R6: ④ → ⑤ → ⑥ → ⑧):
// their state kept in memcached under a random flow id, the signed cookie
// that names it, and the CSRF tokens of every form.
//
// The login password is needed again at ⑥ to protect the .p12. It is kept
// split: sealed (AES-256-GCM) in the memcached state, the key only in the
// flow cookie; neither side alone can read it, and both die with the flow.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/config/settings.hpp"
#include "core/ports/kv.hpp"
#include "core/ports/signer.hpp"

namespace certgate {

enum class FlowKind { issue, register_general, register_master };
enum class FlowStep {
    need_password,  // ④ passed with an initial password: a new one first
    code_sent,      // ⑤: waiting for the mailed code
    code_ok,        // ⑥: ready to issue
    issuing,        // ⑦: the certificate is being made
    issued,         // ⑧: done; the result can be shown again
};

const char *to_string(FlowKind);
const char *to_string(FlowStep);

struct Flow {
    std::string id;  // 22 base64url characters (16 random bytes)
    FlowKind kind = FlowKind::issue;
    FlowStep step = FlowStep::code_sent;
    std::string user_id;
    Language lang = Language::ja;
    int64_t created_at = 0;
    int64_t expires_at = 0;

    std::string code_hash;  // HMAC of the code, bound to the flow id
    int64_t code_expires = 0;
    int64_t mail_id = 0;  // the outbox row of the code mail
    std::string mail;     // where the code went (register_master: the new address)

    std::string sealed_password;  // seal(cookie key, login password)
    // R20: the live certificate that ⑥ revokes before it issues the new one
    // (④ found it; certgate_self_revoke on). Cleared once revoked.
    std::string replace_serial;
    int64_t replace_not_after = 0;
    std::string new_password_hash;  // registration: set when the code is confirmed

    // ⑧, so a reload shows the result instead of issuing again.
    std::string serial;
    std::string file_name;
    std::string download_token;
    int64_t not_before = 0;
    int64_t not_after = 0;

    // ⑦: who makes the certificate ("<host> <pid>") and since when, so a
    // worker that died there is noticed; and why the last ⑥ failed (shown
    // on ⑥ again, where 発行 may be pressed once more).
    std::string issuing_by;
    int64_t issuing_since = 0;
    std::string failure;
};

std::string serialize_flow(const Flow &flow);
// False for anything that is not a flow this code wrote.
bool parse_flow(const std::string &text, Flow *flow);

// What the flow cookie carries: the flow id and the password key.
struct FlowCookie {
    std::string id;   // as in Flow::id
    std::string key;  // 32 raw bytes
    int64_t expires_at = 0;
};

// A fresh flow id and password key, valid until expires_at.
FlowCookie new_flow_cookie(int64_t expires_at);
// "<payload>.<mac>", all base64url.
std::string encode_flow_cookie(const std::string &secret, const FlowCookie &cookie);
// Nullopt when the value was not made with this secret, or has expired.
std::optional<FlowCookie> decode_flow_cookie(const std::string &secret, const std::string &value,
                                             int64_t now);

// The memcached keys of a flow.
std::string flow_key(const std::string &flow_id);
std::string flow_code_tries_key(const std::string &flow_id);
std::string flow_claim_key(const std::string &flow_id, const char *what);

// The .p12's keys derived ahead from the flow's password (P12Keys), kept
// beside the flow under flow_p12_keys_key: sealed with the flow cookie's
// key like the password, and bound to the sealed password they came from,
// so keys of a password the flow has since replaced (the registration's
// initial one) are never used. Nullopt for anything else.
std::string flow_p12_keys_key(const std::string &flow_id);
std::string seal_p12_keys(const std::string &cookie_key, const std::string &sealed_password,
                          const P12Keys &keys);
std::optional<P12Keys> unseal_p12_keys(const std::string &cookie_key,
                                       const std::string &sealed_password, const std::string &box);

// The auth code's hash, bound to the flow so a code is good for its flow only.
std::string code_hash(const std::string &secret, const std::string &flow_id,
                      const std::string &code);

// CSRF: a random seed in a cookie, and forms carry HMAC(secret, seed).
std::string new_csrf_seed();
std::string csrf_token(const std::string &secret, const std::string &seed);
bool csrf_valid(const std::string &secret, const std::string &seed, const std::string &token);

// Flow state in memcached. load returns nullopt when there is none (expired
// or ended); KvError when memcached does not answer.
std::optional<Flow> load_flow(Kv &mc, const std::string &flow_id);
void save_flow(Kv &mc, const Flow &flow, int64_t now);
// Removes the flow, its code tries and its .p12 keys.
void end_flow(Kv &mc, const std::string &flow_id);

}  // namespace certgate
