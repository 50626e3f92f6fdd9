#include "core/web/portal.hpp"

#include <cstdio>
#include <exception>

#include "core/adapters/ca.hpp"
#include "core/app/runtime.hpp"
#include "core/base/json.hpp"
#include "core/base/observe.hpp"
#include "core/web/form.hpp"
#include "core/web/portal_screens.hpp"

namespace certgate {

// An unknown user and a wrong password share
// bad_credentials, so they share the status too.
int status_of(ErrorCode code) {
    switch (code) {
        case ErrorCode::invalid_user_id:
        case ErrorCode::invalid_password:
        case ErrorCode::password_mismatch:
        case ErrorCode::mail_mismatch:
            return 400;
        case ErrorCode::bad_credentials:
        case ErrorCode::bad_code:
        case ErrorCode::no_certificate:
        case ErrorCode::certificate_mismatch:
        case ErrorCode::certificate_expired:
        case ErrorCode::certificate_revoked:
            return 401;
        case ErrorCode::csrf:
        case ErrorCode::blocked:
        case ErrorCode::forbidden:
        case ErrorCode::must_register:
        case ErrorCode::initial_password_expired:
            return 403;
        case ErrorCode::not_found:
            return 404;
        case ErrorCode::already_issued:
            return 409;
        case ErrorCode::code_expired:
        case ErrorCode::flow_expired:
        case ErrorCode::already_downloaded:
            return 410;
        case ErrorCode::locked:
            return 423;
        case ErrorCode::unavailable:
        case ErrorCode::mail_not_sent:
            return 503;
        case ErrorCode::login_required:
            return 401;
        case ErrorCode::too_many_requests:
            return 429;
    }
    return 400;
}

static std::string two(int v) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%02d", v);
    return buf;
}

// A moment as a clerk reads it, in the configured time zone.
std::string local_date_time(int64_t t, const std::string &tz, Language lang) {
    LocalTime lt = to_local_time(static_cast<time_t>(t), tz);
    if (lang == Language::en) {
        return std::to_string(lt.year) + "-" + two(lt.month) + "-" + two(lt.day) + " " +
               two(lt.hour) + ":" + two(lt.minute);
    }
    return std::to_string(lt.year) + "年" + std::to_string(lt.month) + "月" +
           std::to_string(lt.day) + "日 " + two(lt.hour) + ":" + two(lt.minute);
}

std::string local_date(int64_t t, const std::string &tz, Language lang) {
    LocalTime lt = to_local_time(static_cast<time_t>(t), tz);
    if (lang == Language::en) {
        return std::to_string(lt.year) + "-" + two(lt.month) + "-" + two(lt.day);
    }
    return std::to_string(lt.year) + "年" + std::to_string(lt.month) + "月" +
           std::to_string(lt.day) + "日";
}

std::string cookie(const char *name, const std::string &value, long max_age) {
    return set_cookie_value(name, value, max_age);
}

std::string set_cookie_value(const char *name, const std::string &value, long max_age) {
    return std::string(name) + "=" + value + "; Path=/; Secure; HttpOnly; SameSite=Strict" +
           (max_age >= 0 ? "; Max-Age=" + std::to_string(max_age) : "");
}

std::optional<Language> parse_page_language(const std::string &value) {
    if (value == "ja") return Language::ja;
    if (value == "en") return Language::en;
    return std::nullopt;
}

const char *language_name(Language lang) { return lang == Language::en ? "en" : "ja"; }

std::string language_cookie_value(Language lang) {
    return std::string(kLangCookie) + "=" + language_name(lang) +
           "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000";
}

std::string field(const PortalRequest &req, const char *name) {
    auto it = req.form.find(name);
    return it == req.form.end() ? std::string() : it->second;
}

std::string credential_refusal(const Runtime &rt, const Portal::Context &c, const char *field,
                               const std::string &value) {
    const Policy &policy = rt.pages->policy();
    auto rule = c.req.rules.find(field);
    const bool patterns_ok = rule == c.req.rules.end() || rule->second.ok;
    const bool user_id = std::string(field) == "user_id";
    RuleViolation v = user_id ? policy.check_user_id(value, patterns_ok)
                              : policy.check_password(value, patterns_ok);
    if (v == RuleViolation::none) return "";
    return rt.pages->rule_message(user_id, v, value, c.lang);
}

void add_steps(PageData &data, int current, Language lang) {
    static const char *ja[] = {"URLアクセス",  "電子証明書選択", "電子証明書発行選択",
                               "ユーザー認証", "認証コード入力", "発行",
                               "発行中",       "発行結果",       "インポート"};
    static const char *en[] = {"Open the URL",
                               "Select certificate",
                               "Choose issuance",
                               "User authentication",
                               "Authentication code",
                               "Issue",
                               "Issuing",
                               "Result",
                               "Import"};
    static const char *marks[] = {"①", "②", "③", "④", "⑤", "⑥", "⑦", "⑧", "⑨"};
    PageData steps{PageData::type::list};
    for (int i = 0; i < 9; ++i) {
        PageData step{PageData::type::object};
        step.set("mark", marks[i]);
        step.set("label", lang == Language::en ? en[i] : ja[i]);
        if (i + 1 == current) step.set("current", true);
        if (i + 1 < current) step.set("done", true);
        steps.push_back(step);
    }
    data.set("steps", steps);
}

std::string refusal_json(ErrorCode code, const std::string &message) {
    return json_body(Json{{"ok", false}, {"error", error_name(code)}, {"message", message}});
}

// Renders a screen, or its JSON form.
PortalResponse render_page(const Runtime &rt, Portal::Context &c, const std::string &name,
                           const std::string &title, PageData data, int status,
                           const std::string &message, ErrorCode *error) {
    PortalResponse &res = c.res;
    res.status = status;
    if (error) {
        res.outcome.result = PortalOutcome::Result::refused;
        res.outcome.error = *error;
    }
    if (c.req.json) {
        res.content_type = "application/json";
        res.body = error ? refusal_json(*error, message)
                         : json_body(Json{{"ok", true}, {"csrf_token", c.csrf()}});
        return res;
    }
    data.set("title", title);
    data.set("csrf_token", c.csrf());
    add_frame(data, c);
    if (!message.empty()) data.set("message", message);
    if (!c.notice.empty()) data.set("notice", c.notice);
    if (error) data.set("error", error_name(*error));
    res.body = rt.pages->render(name, c.lang, data, c.url(c.req.path));
    return res;
}

void add_frame(PageData &data, Portal::Context &c) {
    if (!c.req.session) return;
    const Session &session = *c.req.session;
    PageData frame{PageData::type::object};
    frame.set("user_id", session.user_id);
    frame.set("org", session.org);
    frame.set("logout_url", c.url("logout"));
    frame.set("home_url", c.s.home);
    if (session.role == Role::master) frame.set("admin_url", c.url("admin/users"));
    data.set("frame", frame);
}

// A POST that passed: 303 to the next screen, or {"ok":true,"next":...}.
PortalResponse go_next(Portal::Context &c, const std::string &next) {
    PortalResponse &res = c.res;
    if (res.outcome.result == PortalOutcome::Result::none)
        res.outcome.result = PortalOutcome::Result::ok;
    if (c.req.json) {
        res.status = 200;
        res.content_type = "application/json";
        res.body = json_body(Json{{"ok", true}, {"next", next}});
    } else {
        res.status = 303;
        res.location = next;
        res.body.clear();
    }
    return res;
}

// A refusal on the error screen (the flow is gone, so the form is no help).
PortalResponse refusal(const Runtime &rt, Portal::Context &c, ErrorCode code,
                       const std::string &message) {
    PageData data{PageData::type::object};
    std::string msg = message.empty() ? error_message(code, c.lang) : message;
    return render_page(rt, c, "error", page_words(c.lang).at("error_title"), std::move(data),
                       status_of(code), msg, &code);
}

ErrorCode auth_refusal(const Portal::Context &c, const AuthResult &ar, std::string *message) {
    ErrorCode code = ErrorCode::unavailable;
    switch (ar.status) {
        case AuthStatus::ok:
        case AuthStatus::already_issued:  // the callers word it
        case AuthStatus::unavailable:
            code = ErrorCode::unavailable;
            break;
        case AuthStatus::bad_credentials:
            code = ErrorCode::bad_credentials;
            break;
        case AuthStatus::locked:
            code = ErrorCode::locked;
            break;
        case AuthStatus::blocked:
            code = ErrorCode::blocked;
            break;
        case AuthStatus::initial_password_expired:
            code = ErrorCode::initial_password_expired;
            break;
    }
    // Locked and blocked answer an unknown ID too (R22): no role there.
    *message = ar.user ? error_message(code, c.lang, ar.user->role == Role::master)
                       : error_message(code, c.lang);
    if (code == ErrorCode::locked && ar.locked_until) {
        const bool en = c.lang == Language::en;
        *message += (en ? " The lock lifts at " : "ロック解除日時：") +
                    local_date_time(ar.locked_until, c.s.timezone, c.lang) + (en ? "." : "");
    }
    return code;
}

std::string must_register_message(const Portal::Context &c, const User &user) {
    return error_message(ErrorCode::must_register, c.lang, user.role == Role::master);
}

void remember_language(Portal::Context &c, Store &store, const User &user) {
    if (c.req.lang_choice == LangChoice::none) return;
    const char *lang = language_name(c.lang);
    if (user.language == lang) return;
    try {
        store.set_language(user.id, lang, user.id);
    } catch (const std::exception &e) {
        // The pages go on in the chosen language; only the mails miss it.
        c.res.log_error = std::string("language not saved: ") + e.what();
    }
}

AuthResult authenticate_form(Portal::Context &c, const std::string &user_id,
                             const std::string &password, AuthPurpose purpose) {
    const Settings &s = c.s;
    AuthRequest areq;
    areq.user_id = user_id;
    areq.password = password;
    areq.purpose = purpose;
    areq.now = c.req.now;
    areq.client = c.req.client;
    AuthResult ar = authenticate(s, thread_store(s.store_uri), thread_kv(s), areq);
    if (!ar.error.empty()) c.res.log_error = ar.error;
    // Counted against the client address by the glue's per-source throttle.
    if (ar.status == AuthStatus::bad_credentials || ar.status == AuthStatus::locked ||
        ar.status == AuthStatus::blocked)
        c.res.auth_failure = true;
    if (ar.status == AuthStatus::unavailable) drop_thread_store(s.store_uri);
    if (ar.user) remember_language(c, thread_store(s.store_uri), *ar.user);
    return ar;
}

std::optional<Flow> current_flow(Portal::Context &c, Kv &mc, FlowCookie *cookie_out) {
    auto fc = decode_flow_cookie(c.s.secret, c.cookie_value(kFlowCookie), c.req.now);
    if (!fc) return std::nullopt;
    auto flow = load_flow(mc, fc->id);
    if (flow && cookie_out) *cookie_out = *fc;
    return flow;
}

bool Portal::routes(const std::string &path) {
    return login_routes(path) || issue_routes(path) || account_routes(path);
}

bool Portal::crypto_bound(const std::string &method, const std::string &path) {
    if (method != "POST") return false;
    // login and ④ verify a password (a dummy one for an unknown ID, R22);
    // the registrations and the master's add and reset hash one; ⑥ issues.
    if (path == "login" || path == "issue" || path == "issue/confirm" ||
        path == "register/master" || path == "register/password" || path == "admin/users")
        return true;
    static const std::string users = "admin/users/", reset = "/reset";
    return path.rfind(users, 0) == 0 && path.size() > users.size() + reset.size() &&
           path.compare(path.size() - reset.size(), reset.size(), reset) == 0;
}

PortalResponse Portal::handle(const PortalRequest &req) const {
    Context c(req, rt_.settings);
    // ?lang= is kept for the following pages of this browser.
    if (req.lang_choice == LangChoice::query &&
        parse_page_language(c.cookie_value(kLangCookie)) != req.lang)
        c.res.set_cookies.push_back(language_cookie_value(req.lang));
    try {
        if (login_routes(req.path)) return login_screens(rt_, c);
        if (issue_routes(req.path)) return issue_screens(rt_, c);
        if (account_routes(req.path)) return account_screens(rt_, c);
        PortalResponse res;
        res.status = 404;
        return res;
    } catch (const std::exception &e) {
        // Nothing half-done leaks out: the user sees "unavailable", the
        // sysadmin reads why. A store that failed is opened afresh next time.
        if (dynamic_cast<const StoreError *>(&e)) drop_thread_store(rt_.settings.store_uri);
        PortalResponse res;
        res.status = status_of(ErrorCode::unavailable);
        res.log_error = e.what();
        res.outcome.result = PortalOutcome::Result::refused;
        if (dynamic_cast<const StoreError *>(&e)) note_dependency_error(Dependency::store);
        PageData data{PageData::type::object};
        data.set("title", page_words(c.lang).at("error_title"));
        data.set("message", error_message(ErrorCode::unavailable, c.lang));
        data.set("error", error_name(ErrorCode::unavailable));
        if (req.json) {
            res.content_type = "application/json";
            res.body =
                refusal_json(ErrorCode::unavailable, error_message(ErrorCode::unavailable, c.lang));
        } else {
            res.body =
                rt_.pages->render("error", c.lang, data, rt_.settings.portal_prefix + req.path);
        }
        return res;
    }
}

}  // namespace certgate
