// The issuance screens (R6): ④ ユーザー認証, ⑤ 認証コード入力, ⑥ 発行, ⑦ 発行中,
// ⑧ 発行結果 with the one-time .p12 download, and キャンセル (R7).

#include <exception>

#include "core/authentication.hpp"
#include "core/flow.hpp"
#include "core/mail.hpp"
#include "core/portal_screens.hpp"
#include "core/secrets.hpp"

namespace certgate {

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

}  // namespace

// ④ ユーザー認証: user ID and password, then the code goes by mail.
static PortalResponse issue_auth(const Runtime &rt_, Portal::Context &c) {
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
static PortalResponse issue_code(const Runtime &rt_, Portal::Context &c) {
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
static PortalResponse issue_cancel(const Runtime &rt_, Portal::Context &c) {
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

bool issue_routes(const std::string &path) {
    return path == "issue" || path == "issue/code" || path == "issue/cancel";
}

PortalResponse issue_screens(const Runtime &rt, Portal::Context &c) {
    const std::string &path = c.req.path;
    if (path == "issue") return issue_auth(rt, c);
    if (path == "issue/code") return issue_code(rt, c);
    return issue_cancel(rt, c);
}

}  // namespace certgate
