// The portal's screens and endpoints as plain C++: a request described by the
// nginx glue goes in, a complete response comes out. handle() runs in a
// thread-pool thread (it talks to memcached, the store, the mail relay and
// the CA); the glue only translates.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/app/runtime.hpp"
#include "core/app/session.hpp"
#include "core/web/errors.hpp"

namespace certgate {

// What a configured rule (certgate_userid_rule, certgate_password_rule) said
// of a field; the glue runs the patterns with nginx's regex API.
struct RuleCheck {
    bool ok = true;
    size_t failed_pattern = 0;  // index of the first pattern that did not match
};

// The client certificate the TLS handshake gave (login, issue 6).
struct PresentedCertificate {
    bool present = false;
    bool ours = false;     // signed by our CA
    bool expired = false;  // outside its validity now
    bool revoked = false;  // in the revocation set (revoked or replaced)
    std::string serial;
    std::string user_id;  // CN
    std::string org;      // O
    int64_t not_after = 0;
};

// Where the request's language came from: ?lang= now, the language cookie
// (a choice made before), or neither (certgate_language).
enum class LangChoice { none, cookie, query };

// "ja" or "en" as a page language; nullopt for anything else.
std::optional<Language> parse_page_language(const std::string &value);
const char *language_name(Language lang);

struct PortalRequest {
    std::string method;  // GET, HEAD, POST
    std::string path;    // below the portal prefix: "", "issue", "issue/code", ...
    std::map<std::string, std::string> query;
    std::map<std::string, std::string> form;
    bool form_malformed = false;
    std::string cookies;  // every Cookie header, joined with "; "
    bool json = false;
    Language lang = Language::ja;
    LangChoice lang_choice = LangChoice::none;
    std::string client;  // the client address, for the audit trail
    int64_t now = 0;
    std::map<std::string, RuleCheck> rules;  // by field: user_id, password, new_password
    PresentedCertificate cert;
    // The login session, when its cookie is valid, bound to the presented
    // certificate and not ended (the glue checks the revocation set).
    std::optional<Session> session;
};

// What a screen decided, in fixed values only (no user ID), for the glue's
// metrics: the result of a POST, whether a code was mailed or a certificate
// issued.
struct PortalOutcome {
    enum class Result { none, ok, refused };
    Result result = Result::none;
    ErrorCode error = ErrorCode::unavailable;  // when refused
    bool code_sent = false;
    bool issued = false;          // a certificate was made (key type: certgate_key_type)
    bool p12_keys_ahead = false;  // ... with the .p12 keys derived ahead (P12Keys)
};

struct PortalResponse {
    PortalOutcome outcome;
    int status = 200;
    std::string content_type = "text/html; charset=utf-8";
    std::string body;
    std::string location;                  // redirects
    std::vector<std::string> set_cookies;  // complete Set-Cookie values
    bool no_store = true;
    std::string attachment;  // Content-Disposition file name (the .p12)
    std::string log_error;   // for the error log; never shown
    long retry_after = 0;    // > 0: a Retry-After header (429)
    // An authentication failure (wrong password or code, locked, blocked):
    // the glue counts it against the client address (per-source throttle).
    bool auth_failure = false;
    // Work for the crypto pool once the answer is on its way (the .p12
    // keys derived ahead); it must capture copies, never the request.
    std::function<void()> after;
};

// Cookie names. __Host- makes browsers insist on Secure, Path=/ and no Domain.
inline constexpr const char *kCsrfCookie = "__Host-certgate_csrf";
inline constexpr const char *kFlowCookie = "__Host-certgate_flow";
inline constexpr const char *kSessionCookie = "__Host-certgate_session";
// The language chosen with ?lang=, for every following page of this browser.
inline constexpr const char *kLangCookie = "__Host-certgate_lang";

// Set-Cookie for the language cookie: a year, Secure, HttpOnly (no script
// reads it), SameSite=Lax so that a link from a mail opens in that language.
std::string language_cookie_value(Language lang);

// A Set-Cookie value: Path=/, Secure, HttpOnly, SameSite=Strict; max_age < 0
// for a browser-session cookie, 0 to delete it.
std::string set_cookie_value(const char *name, const std::string &value, long max_age);

// {"ok":false,"error":"<code>","message":"..."}: a refusal as JSON, for the
// screens and for certgate_require's refusals alike.
std::string refusal_json(ErrorCode code, const std::string &message);

class Portal {
  public:
    explicit Portal(const Runtime &runtime) : rt_(runtime) {}

    // Whether `path` is one of the portal's own routes handled here.
    static bool routes(const std::string &path);

    // Whether answering `method` on `path` does seconds of CPU work (argon2
    // of a password, key generation and signing, the PKCS#12's PBKDF2): such
    // requests go to the crypto thread pool, the rest (memcached, the store)
    // to the I/O one, so that they never queue behind each other.
    static bool crypto_bound(const std::string &method, const std::string &path);

    PortalResponse handle(const PortalRequest &req) const;

    struct Context;  // one request's working state (portal_screens.hpp)

  private:
    const Runtime &rt_;
};

}  // namespace certgate
