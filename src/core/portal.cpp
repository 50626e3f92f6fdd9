#include "core/portal.hpp"

#include <cstdio>
#include <exception>

#include "core/authentication.hpp"
#include "core/flow.hpp"
#include "core/form.hpp"
#include "core/health.hpp"
#include "core/mail.hpp"
#include "core/password.hpp"
#include "core/secrets.hpp"

namespace certgate {

namespace {

// HTTP status of each refusal. An unknown user and a wrong password share
// bad_credentials, so they share the status too.
int status_of(ErrorCode code) {
    switch (code) {
    case ErrorCode::invalid_user_id:
    case ErrorCode::invalid_password:
    case ErrorCode::password_mismatch:
    case ErrorCode::mail_mismatch: return 400;
    case ErrorCode::bad_credentials:
    case ErrorCode::bad_code:
    case ErrorCode::no_certificate:
    case ErrorCode::certificate_mismatch:
    case ErrorCode::certificate_expired:
    case ErrorCode::certificate_revoked: return 401;
    case ErrorCode::csrf:
    case ErrorCode::blocked:
    case ErrorCode::forbidden:
    case ErrorCode::must_register:
    case ErrorCode::initial_password_expired: return 403;
    case ErrorCode::not_found: return 404;
    case ErrorCode::already_issued: return 409;
    case ErrorCode::code_expired:
    case ErrorCode::flow_expired: return 410;
    case ErrorCode::locked: return 423;
    case ErrorCode::unavailable:
    case ErrorCode::mail_not_sent: return 503;
    }
    return 400;
}

std::string two(int v) {
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
    return std::string(name) + "=" + value + "; Path=/; Secure; HttpOnly; SameSite=Strict" +
           (max_age >= 0 ? "; Max-Age=" + std::to_string(max_age) : "");
}

std::string field(const PortalRequest &req, const char *name) {
    auto it = req.form.find(name);
    return it == req.form.end() ? std::string() : it->second;
}

// The words of the R8/R9 violation, when the default rules are in force and
// the violation can be named; the rule's general words otherwise.
std::string rule_message(ErrorCode code, RuleViolation v, Language lang) {
    const std::string &general = error_message(code, lang);
    bool ja = lang == Language::ja;
    switch (v) {
    case RuleViolation::too_short:
        return (ja ? "文字数が足りません。" : "Too short. ") + general;
    case RuleViolation::too_long:
        return (ja ? "文字数が多すぎます。" : "Too long. ") + general;
    case RuleViolation::bad_character:
        return (ja ? "使えない文字が含まれています。" : "It contains a character that is not allowed. ") +
               general;
    case RuleViolation::missing_letter:
        return (ja ? "英字が含まれていません。" : "It has no letter. ") + general;
    case RuleViolation::missing_digit:
        return (ja ? "数字が含まれていません。" : "It has no digit. ") + general;
    case RuleViolation::missing_upper:
        return (ja ? "英大文字が含まれていません。" : "It has no upper-case letter. ") + general;
    case RuleViolation::missing_lower:
        return (ja ? "英小文字が含まれていません。" : "It has no lower-case letter. ") + general;
    case RuleViolation::missing_symbol:
        return (ja ? "記号が含まれていません。" : "It has no symbol. ") + general;
    default: return general;
    }
}

}  // namespace

// One request's working state: the answer being built, the CSRF seed, the
// language.
struct Portal::Context {
    const PortalRequest &req;
    const Settings &s;
    PortalResponse res;
    std::string csrf_seed;
    Language lang;

    Context(const PortalRequest &r, const Settings &settings)
        : req(r), s(settings), lang(r.lang) {}

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

bool Portal::routes(const std::string &path) {
    return path.empty() || path == "issue" || path == "issue/code" || path == "issue/cancel";
}

PortalResponse Portal::handle(const PortalRequest &req) const {
    Context c(req, rt_.settings);
    try {
        if (req.path.empty()) return login_screen(c);
        if (req.path == "issue") return issue_auth(c);
        if (req.path == "issue/code") return issue_code(c);
        if (req.path == "issue/cancel") return issue_cancel(c);
        PortalResponse res;
        res.status = 404;
        return res;
    } catch (const std::exception &e) {
        // Nothing half-done leaks out: the user sees "unavailable", the
        // sysadmin reads why.
        PortalResponse res;
        res.status = status_of(ErrorCode::unavailable);
        res.log_error = e.what();
        PageData data{PageData::type::object};
        data.set("title", page_words(c.lang).at("error_title"));
        data.set("message", error_message(ErrorCode::unavailable, c.lang));
        data.set("error", error_name(ErrorCode::unavailable));
        if (req.json) {
            res.content_type = "application/json";
            res.body = std::string("{\"ok\":false,\"error\":\"unavailable\",\"message\":\"") +
                       json_escape(error_message(ErrorCode::unavailable, c.lang)) + "\"}\n";
        } else {
            res.body = rt_.pages->render("error", c.lang, data, rt_.settings.portal_prefix + req.path);
        }
        return res;
    }
}

namespace {
void add_steps(PageData &data, int current, Language lang) {
    static const char *ja[] = {"URLアクセス", "電子証明書選択", "電子証明書発行選択", "ユーザー認証",
                               "認証コード入力", "発行", "発行中", "発行結果", "インポート"};
    static const char *en[] = {"Open the URL", "Select certificate", "Choose issuance",
                               "User authentication", "Authentication code", "Issue",
                               "Issuing", "Result", "Import"};
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
}  // namespace

// Renders a screen, or its JSON form.
static PortalResponse render_page(const Runtime &rt, Portal::Context &c, const std::string &name,
                                  const std::string &title, PageData data, int status,
                                  const std::string &message, ErrorCode *error) {
    PortalResponse &res = c.res;
    res.status = status;
    if (c.req.json) {
        res.content_type = "application/json";
        if (error) {
            res.body = std::string("{\"ok\":false,\"error\":\"") + error_name(*error) +
                       "\",\"message\":\"" + json_escape(message) + "\"}\n";
        } else {
            res.body = "{\"ok\":true,\"csrf_token\":\"" + c.csrf() + "\"}\n";
        }
        return res;
    }
    data.set("title", title);
    data.set("csrf_token", c.csrf());
    if (!message.empty()) data.set("message", message);
    if (error) data.set("error", error_name(*error));
    res.body = rt.pages->render(name, c.lang, data, c.url(c.req.path));
    return res;
}

// A POST that passed: 303 to the next screen, or {"ok":true,"next":...}.
static PortalResponse go_next(Portal::Context &c, const std::string &next) {
    PortalResponse &res = c.res;
    if (c.req.json) {
        res.status = 200;
        res.content_type = "application/json";
        res.body = "{\"ok\":true,\"next\":\"" + json_escape(next) + "\"}\n";
    } else {
        res.status = 303;
        res.location = next;
        res.body.clear();
    }
    return res;
}

PortalResponse Portal::login_screen(Context &c) const {
    PageData data{PageData::type::object};
    std::string message;
    auto it = c.req.query.find("error");
    ErrorCode code;
    if (it != c.req.query.end() && parse_error_code(it->second, &code)) {
        message = error_message(code, c.lang);
    }
    if (c.req.method == "POST") {
        c.res.status = 405;
        return c.res;
    }
    return render_page(rt_, c, "login", page_words(c.lang).at("login_title"), std::move(data), 200,
                       message, nullptr);
}

namespace {

// The ④ screen, fresh or with a refusal.
PortalResponse auth_screen(const Runtime &rt, Portal::Context &c, ErrorCode *error,
                           const std::string &message) {
    PageData data{PageData::type::object};
    add_steps(data, 4, c.lang);
    data.set("user_id", field(c.req, "user_id"));
    if (c.req.query.count("first")) data.set("first", true);
    int status = error ? status_of(*error) : 200;
    return render_page(rt, c, "issue_auth", page_words(c.lang).at("issue_auth_title"),
                       std::move(data), status, message, error);
}

PortalResponse code_screen(const Runtime &rt, Portal::Context &c, ErrorCode *error,
                           const std::string &message, int status_override = 0) {
    PageData data{PageData::type::object};
    add_steps(data, 5, c.lang);
    data.set("code_digits", std::to_string(c.s.code_digits));
    int status = status_override ? status_override : (error ? status_of(*error) : 200);
    return render_page(rt, c, "issue_code", page_words(c.lang).at("issue_code_title"),
                       std::move(data), status, message, error);
}

// A refusal on the error screen (the flow is gone, so the form is no help).
PortalResponse refusal(const Runtime &rt, Portal::Context &c, ErrorCode code,
                       const std::string &message = "") {
    PageData data{PageData::type::object};
    std::string msg = message.empty() ? error_message(code, c.lang) : message;
    return render_page(rt, c, "error", page_words(c.lang).at("error_title"), std::move(data),
                       status_of(code), msg, &code);
}


}  // namespace

// ④ ユーザー認証: user ID and password, then the code goes by mail.
PortalResponse Portal::issue_auth(Context &c) const {
    const Settings &s = c.s;
    if (c.req.method != "POST") return auth_screen(rt_, c, nullptr, "");

    ErrorCode code;
    if (c.req.form_malformed) {
        code = ErrorCode::invalid_user_id;
        return auth_screen(rt_, c, &code, error_message(code, c.lang));
    }
    if (!c.csrf_ok()) {
        code = ErrorCode::csrf;
        return auth_screen(rt_, c, &code, error_message(code, c.lang));
    }
    std::string user_id = field(c.req, "user_id");
    std::string password = field(c.req, "password");

    auto rule = c.req.rules.find("user_id");
    if (user_id.empty() || (rule != c.req.rules.end() && !rule->second.ok)) {
        code = ErrorCode::invalid_user_id;
        RuleViolation v = c.req.default_userid_rule ? check_user_id(user_id) : RuleViolation::pattern;
        return auth_screen(rt_, c, &code, rule_message(code, v, c.lang));
    }
    rule = c.req.rules.find("password");
    if (password.empty() || (rule != c.req.rules.end() && !rule->second.ok)) {
        code = ErrorCode::invalid_password;
        RuleViolation v =
            c.req.default_password_rule ? check_password(password) : RuleViolation::pattern;
        return auth_screen(rt_, c, &code, rule_message(code, v, c.lang));
    }

    Store &store = thread_store(s.store_uri);
    Memcache &mc = thread_memcache(s.memcached_host, s.memcached_port, s.memcached_timeout_ms);

    AuthRequest areq;
    areq.user_id = user_id;
    areq.password = password;
    areq.purpose = AuthPurpose::issuance;
    areq.now = c.req.now;
    areq.client = c.req.client;
    AuthResult ar = authenticate(s, store, mc, areq);
    if (!ar.error.empty()) c.res.log_error = ar.error;

    switch (ar.status) {
    case AuthStatus::ok: break;
    case AuthStatus::unavailable:
        drop_thread_store(s.store_uri);
        code = ErrorCode::unavailable;
        return auth_screen(rt_, c, &code, error_message(code, c.lang));
    case AuthStatus::bad_credentials:
        code = ErrorCode::bad_credentials;
        return auth_screen(rt_, c, &code, error_message(code, c.lang));
    case AuthStatus::locked: {
        code = ErrorCode::locked;
        std::string msg = error_message(code, c.lang);
        if (ar.locked_until) {
            msg += (c.lang == Language::en ? " The lock lifts at " : "ロック解除日時：") +
                   local_date_time(ar.locked_until, s.timezone, c.lang) +
                   (c.lang == Language::en ? "." : "");
        }
        return auth_screen(rt_, c, &code, msg);
    }
    case AuthStatus::blocked:
        code = ErrorCode::blocked;
        return auth_screen(rt_, c, &code, error_message(code, c.lang));
    case AuthStatus::already_issued: {
        code = ErrorCode::already_issued;
        std::string msg =
            c.lang == Language::en
                ? "A certificate has already been issued (valid through " +
                      local_date(ar.cert_not_after, s.timezone, c.lang) +
                      "). Renewal opens on " + local_date(ar.renewal_opens, s.timezone, c.lang) + "."
                : "電子証明書は発行済みです（有効期限：" +
                      local_date(ar.cert_not_after, s.timezone, c.lang) + "）。" +
                      local_date(ar.renewal_opens, s.timezone, c.lang) + "から更新できます。";
        return auth_screen(rt_, c, &code, msg);
    }
    case AuthStatus::initial_password_expired:
        code = ErrorCode::initial_password_expired;
        return auth_screen(rt_, c, &code, error_message(code, c.lang));
    }

    const User &user = *ar.user;
    if (ar.initial_password && user.role == Role::master) {
        code = ErrorCode::must_register;
        return auth_screen(rt_, c, &code, error_message(code, c.lang));
    }

    // A new flow: its cookie holds the key of the sealed password.
    int64_t lifetime = s.code_lifetime_s + 30 * 60;
    FlowCookie fc = new_flow_cookie(c.req.now + lifetime);
    Flow flow;
    flow.id = fc.id;
    flow.kind = ar.initial_password ? FlowKind::register_general : FlowKind::issue;
    flow.user_id = user.id;
    flow.lang = c.lang;
    flow.created_at = c.req.now;
    flow.expires_at = fc.expires_at;
    flow.sealed_password = seal(fc.key, password);
    flow.mail = user.mail;
    c.res.set_cookies.push_back(
        cookie(kFlowCookie, encode_flow_cookie(s.secret, fc), static_cast<long>(lifetime)));

    if (flow.kind == FlowKind::register_general) {
        // 一般ユーザーの初期登録: a new password before the code is mailed.
        flow.step = FlowStep::need_password;
        save_flow(mc, flow, c.req.now);
        return go_next(c, c.url("register/password"));
    }

    // ⑤: the code, drawn from the CSPRNG, kept only as a hash bound to the flow.
    std::string auth_code = random_digits(static_cast<size_t>(s.code_digits));
    flow.step = FlowStep::code_sent;
    flow.code_hash = code_hash(s.secret, flow.id, auth_code);
    flow.code_expires = c.req.now + s.code_lifetime_s;

    MailFields f;
    f.to = user.mail;
    f.user_id = user.id;
    f.code = auth_code;
    f.minutes = (s.code_lifetime_s + 59) / 60;
    f.timezone = s.timezone;
    f.helpdesk = s.helpdesk;
    MailMessage m = compose_mail(MailKind::auth_code, c.lang, f);
    wipe(auth_code);
    flow.mail_id = queue_mail(store, m, user.id, user.id);
    save_flow(mc, flow, c.req.now);

    // Sent now if the relay takes it; the outbox keeps it otherwise.
    std::string why;
    bool sent = deliver_mail(store, mail_settings(s), flow.mail_id, c.req.now, &why);
    if (!sent) c.res.log_error = "auth code mail not sent: " + why;
    if (!sent) {
        code = ErrorCode::mail_not_sent;
        return code_screen(rt_, c, &code, error_message(code, c.lang));
    }
    return go_next(c, c.url("issue/code"));
}

// ⑤ 認証コード入力.
PortalResponse Portal::issue_code(Context &c) const {
    const Settings &s = c.s;
    ErrorCode code;
    auto fc = decode_flow_cookie(s.secret, c.cookie_value(kFlowCookie), c.req.now);
    Memcache &mc = thread_memcache(s.memcached_host, s.memcached_port, s.memcached_timeout_ms);
    std::optional<Flow> flow;
    try {
        if (fc) flow = load_flow(mc, fc->id);
    } catch (const MemcacheError &e) {
        c.res.log_error = e.what();
        return refusal(rt_, c, ErrorCode::unavailable);
    }
    if (!flow) return refusal(rt_, c, ErrorCode::flow_expired);

    if (c.req.method != "POST") {
        if (flow->step != FlowStep::code_sent) return refusal(rt_, c, ErrorCode::flow_expired);
        return code_screen(rt_, c, nullptr, "");
    }
    if (c.req.form_malformed || !c.csrf_ok()) {
        code = ErrorCode::csrf;
        return code_screen(rt_, c, &code, error_message(code, c.lang));
    }
    if (flow->step != FlowStep::code_sent || flow->code_hash.empty()) {
        // The code was used already: it is good once.
        return refusal(rt_, c, ErrorCode::bad_code);
    }

    // Take the try before comparing, so parallel guesses are counted too.
    uint64_t tries;
    try {
        tries = mc.incr_or_create(flow_code_tries_key(flow->id), 1,
                                  static_cast<long>(flow->expires_at - c.req.now + 1));
    } catch (const MemcacheError &e) {
        c.res.log_error = e.what();
        return refusal(rt_, c, ErrorCode::unavailable);
    }
    if (c.req.now > flow->code_expires) {
        end_flow(mc, flow->id);
        c.res.set_cookies.push_back(cookie(kFlowCookie, "", 0));
        return refusal(rt_, c, ErrorCode::code_expired);
    }
    std::string given = field(c.req, "code");
    bool right = given.size() == static_cast<size_t>(s.code_digits) &&
                 equal_secrets(code_hash(s.secret, flow->id, given), flow->code_hash);
    if (!right || tries > static_cast<uint64_t>(s.code_attempts) + 1) {
        Store &store = thread_store(s.store_uri);
        store.append_event(flow->user_id, "code.failed", flow->user_id,
                           "try=" + std::to_string(tries) + " client=" + c.req.client);
        if (tries > static_cast<uint64_t>(s.code_attempts)) {
            // Past the allowed tries: the flow ends; start again at ④.
            end_flow(mc, flow->id);
            c.res.set_cookies.push_back(cookie(kFlowCookie, "", 0));
            std::string msg = error_message(ErrorCode::bad_code, c.lang) +
                              (c.lang == Language::en
                                   ? " Too many wrong codes: please start again."
                                   : "認証コードを規定回数以上間違えたため、最初からやり直してください。");
            return refusal(rt_, c, ErrorCode::bad_code, msg);
        }
        code = ErrorCode::bad_code;
        return code_screen(rt_, c, &code, error_message(code, c.lang));
    }

    // Good once: the first to claim it wins, a parallel second use does not.
    if (!mc.add(flow_claim_key(flow->id, "code"), "1",
                static_cast<long>(flow->expires_at - c.req.now + 1))) {
        return refusal(rt_, c, ErrorCode::bad_code);
    }
    flow->step = FlowStep::code_ok;
    flow->code_hash.clear();
    save_flow(mc, *flow, c.req.now);
    thread_store(s.store_uri).append_event(flow->user_id, "code.accepted", flow->user_id,
                                           "client=" + c.req.client);
    return go_next(c, c.url("issue/confirm"));
}

// キャンセル (R7): ends the flow and goes back to the login screen, or to ④.
PortalResponse Portal::issue_cancel(Context &c) const {
    const Settings &s = c.s;
    if (c.req.method != "POST") return go_next(c, c.url(""));
    if (c.req.form_malformed || !c.csrf_ok()) return refusal(rt_, c, ErrorCode::csrf);
    auto fc = decode_flow_cookie(s.secret, c.cookie_value(kFlowCookie), c.req.now);
    if (fc) {
        try {
            end_flow(thread_memcache(s.memcached_host, s.memcached_port, s.memcached_timeout_ms),
                     fc->id);
        } catch (const MemcacheError &e) {
            // The flow dies with its cookie anyway.
            c.res.log_error = e.what();
        }
    }
    c.res.set_cookies.push_back(cookie(kFlowCookie, "", 0));
    return go_next(c, c.url(field(c.req, "to") == "issue" ? "issue" : ""));
}

}  // namespace certgate
