// The portal's internals shared by its screen files (portal_*.cpp): one
// request's working state and the answers every screen gives in the same
// shapes. Not for the glue.
#pragma once

#include <optional>
#include <string>

#include "core/app/authentication.hpp"
#include "core/app/flow.hpp"
#include "core/app/session.hpp"
#include "core/policy/password.hpp"
#include "core/web/form.hpp"
#include "core/web/portal.hpp"

namespace certgate {

// HTTP status of each refusal.
int status_of(ErrorCode code);

// A moment (date and time, or the date) as a clerk reads it, in `tz`.
std::string local_date_time(int64_t t, const std::string &tz, Language lang);
std::string local_date(int64_t t, const std::string &tz, Language lang);

// A Set-Cookie value: Path=/, Secure, HttpOnly, SameSite=Strict; max_age < 0
// for a browser-session cookie, 0 to delete it.
std::string cookie(const char *name, const std::string &value, long max_age);

// A form field, empty when absent.
std::string field(const PortalRequest &req, const char *name);

// Why `value` of form field `field` (user_id, password, new_password) breaks
// the Policy's rule for it (the glue ran the patterns), or "" when it passes.
// Checked before any password is: a refusal here never counts as a failure.
std::string credential_refusal(const Runtime &rt, const Portal::Context &c, const char *field,
                               const std::string &value);

// The step bar ①…⑨ of the issuance screens, `current` highlighted.
void add_steps(PageData &data, int current, Language lang);

// A screen: HTML, or for JSON clients {"ok":true,"csrf_token":...} (or the
// error when `error` is set).
PortalResponse render_page(const Runtime &rt, Portal::Context &c, const std::string &name,
                           const std::string &title, PageData data, int status,
                           const std::string &message, ErrorCode *error);

// The logged-in frame of every page with a session: who, the organisation,
// ログアウト (a POST with the CSRF token) and, for a master, 一般ユーザー管理.
void add_frame(PageData &data, Portal::Context &c);

// A POST that passed: 303 to the next screen, or {"ok":true,"next":...}.
PortalResponse go_next(Portal::Context &c, const std::string &next);

// A refusal on the error screen, for when the form would be no help.
PortalResponse refusal(const Runtime &rt, Portal::Context &c, ErrorCode code,
                       const std::string &message = "");

// One request's working state: the answer being built, the CSRF seed, the
// language.
struct Portal::Context {
    const PortalRequest &req;
    const Settings &s;
    PortalResponse res;
    std::string csrf_seed;
    Language lang;
    std::string notice;  // a result the screen reports (role=status, not an error)

    Context(const PortalRequest &r, const Settings &settings) : req(r), s(settings), lang(r.lang) {}

    std::string cookie_value(const char *name) const { return find_cookie(req.cookies, name); }

    // The CSRF seed of this browser, made (and set) on first use.
    const std::string &seed() {
        if (csrf_seed.empty()) {
            csrf_seed = cookie_value(kCsrfCookie);
            if (csrf_seed.size() != 24) {
                csrf_seed = new_csrf_seed();
                res.set_cookies.push_back(cookie(kCsrfCookie, csrf_seed, -1));
            }
        }
        return csrf_seed;
    }
    std::string csrf() { return csrf_token(s.secret, seed()); }
    bool csrf_ok() const {
        return csrf_valid(s.secret, cookie_value(kCsrfCookie), field(req, "csrf_token"));
    }
    std::string url(const std::string &path) const { return s.portal_prefix + path; }
};

// The refusal of an authentication that did not pass (login, ④, a first
// registration) and its words: when the lock lifts; for a user whose
// password was right, the advice of its role. already_issued is the
// caller's to word.
ErrorCode auth_refusal(const Portal::Context &c, const AuthResult &ar, std::string *message);
// must_register for that user: a master's letter, a general user's master.
std::string must_register_message(const Portal::Context &c, const User &user);

// The language chosen on the pages (?lang= or its cookie) becomes the
// user's own, for their mails (users.language), once they proved who they are.
void remember_language(Portal::Context &c, Store &store, const User &user);

// A password check of a form (login, ④, a first registration) with the
// lockout of R10: the store and memcached of this thread, the reason of an
// `unavailable` kept for the error log, a failed store dropped.
AuthResult authenticate_form(Portal::Context &c, const std::string &user_id,
                             const std::string &password, AuthPurpose purpose);

// The flow this browser is in, per its signed cookie (whose key goes to
// *cookie_out); nullopt when there is none. KvError when memcached
// does not answer.
std::optional<Flow> current_flow(Portal::Context &c, Kv &mc, FlowCookie *cookie_out);

// The screens, by area. Each *_routes says whether a path is its own.
bool issue_routes(const std::string &path);
PortalResponse issue_screens(const Runtime &rt, Portal::Context &c);  // portal_issue.cpp
bool login_routes(const std::string &path);
PortalResponse login_screens(const Runtime &rt, Portal::Context &c);  // portal_login.cpp
bool account_routes(const std::string &path);
PortalResponse account_screens(const Runtime &rt, Portal::Context &c);  // portal_account.cpp

// ⑤ accepted the code of a registration flow (portal_account.cpp): the account
// becomes active with the new password (and a master's confirmed address).
// True for an issuance flow too; false, with `error`, when the store refused
// (registered meanwhile by another flow, reset or disabled).
bool complete_registration_flow(Store &store, const Flow &flow, std::string *error);

// ⑤'s code for `flow`: drawn, kept hashed in the flow (saved here), mailed to
// flow.mail through the outbox. False when the relay did not take it now (the
// outbox retries it); the reason goes to the error log.
bool mail_flow_code(Portal::Context &c, Store &store, Kv &mc, Flow &flow);
// Once the flow holds `password` (sealed) for ⑥: its .p12 keys derived
// after the answer (c.res.after), so ⑥ need not (P12Keys).
void derive_p12_keys_after(const Runtime &rt, Portal::Context &c, const FlowCookie &fc,
                           const Flow &flow, const std::string &password);
// ⑥: the keys derived ahead for this flow and password, taken (removed);
// nullopt when there are none yet, or memcached does not answer.
std::optional<P12Keys> take_p12_keys(Kv &mc, const FlowCookie &fc, const Flow &flow);
// R21: before a code is mailed, the user's budget of code tries and code
// mails for the window (certgate_code_budget); a 429 refusal when spent.
std::optional<PortalResponse> code_mail_refusal(const Runtime &rt, Portal::Context &c, Store &store,
                                                const std::string &user_id);

}  // namespace certgate
