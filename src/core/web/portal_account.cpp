// The account screens (issue 7): the master user's first registration, the
// general user's new password, and the master's pages for general users.

#include <exception>

#include "core/adapters/mail.hpp"
#include "core/app/authentication.hpp"
#include "core/app/flow.hpp"
#include "core/app/outbox.hpp"
#include "core/app/runtime.hpp"
#include "core/base/json.hpp"
#include "core/base/secrets.hpp"
#include "core/web/portal_screens.hpp"

namespace certgate {

namespace {

constexpr const char *kAdminUsers = "admin/users";

bool ja(const Portal::Context &c) { return c.lang == Language::ja; }

// A screen of this file, fresh or with a refusal.
PortalResponse screen(const Runtime &rt, Portal::Context &c, const std::string &name, PageData data,
                      ErrorCode *error, const std::string &message) {
    int status = error ? status_of(*error) : 200;
    return render_page(rt, c, name, page_words(c.lang).at(name + "_title"), std::move(data), status,
                       message, error);
}

PortalResponse refuse(const Runtime &rt, Portal::Context &c, const std::string &name, PageData data,
                      ErrorCode code, const std::string &message = "") {
    return screen(rt, c, name, std::move(data), &code,
                  message.empty() ? error_message(code, c.lang) : message);
}

// A mail address as the mailer will send it (check_mail_address); *message
// says what is wrong otherwise.
bool mail_ok(const Portal::Context &c, const std::string &mail, std::string *message) {
    MailAddressProblem problem = check_mail_address(mail);
    if (problem == MailAddressProblem::none) return true;
    *message = mail_address_message(problem, c.lang);
    return false;
}

// The password rule for a field the glue checked, the violation named.
bool password_rule_ok(const Runtime &rt, const Portal::Context &c, const char *name,
                      const std::string &value, std::string *message) {
    *message = credential_refusal(rt, c, name, value);
    return message->empty();
}

// The new password of a registration: R9, typed twice, not the initial one.
bool new_password_ok(const Runtime &rt, const Portal::Context &c, const std::string &initial,
                     ErrorCode *code, std::string *message) {
    std::string pw = field(c.req, "new_password");
    *code = ErrorCode::invalid_password;
    if (!password_rule_ok(rt, c, "new_password", pw, message)) return false;
    if (pw != field(c.req, "new_password_confirm")) {
        *code = ErrorCode::password_mismatch;
        *message = error_message(*code, c.lang);
        return false;
    }
    if (equal_secrets(pw, initial)) {
        *message = ja(c) ? "初期パスワードと同じパスワードは登録できません。"
                         : "The new password must differ from the initial password.";
        return false;
    }
    return true;
}

}  // namespace

bool mail_flow_code(Portal::Context &c, Store &store, Kv &mc, Flow &flow) {
    const Settings &s = c.s;
    std::string auth_code = random_digits(static_cast<size_t>(s.code_digits));
    flow.step = FlowStep::code_sent;
    flow.code_hash = code_hash(s.secret, flow.id, auth_code);
    flow.code_expires = c.req.now + s.code_lifetime_s;

    MailFields f;
    f.to = flow.mail;
    f.user_id = flow.user_id;
    f.code = auth_code;
    f.minutes = (s.code_lifetime_s + 59) / 60;
    f.timezone = s.timezone;
    f.helpdesk = s.helpdesk;
    MailMessage m = compose_mail(MailKind::auth_code, c.lang, f);
    m.expires_at = flow.code_expires;  // no use after it; the outbox then wipes the code
    wipe(auth_code);
    // Claimed as it is queued: an outbox run of another worker cannot take it
    // between the queueing and the sending. The flow is saved after: no one
    // can use the code before this answer brings the flow cookie.
    std::string why;
    bool sent = send_mail_now(store, mail_settings(s), m, flow.user_id, flow.user_id, c.req.now,
                              &flow.mail_id, &why);
    save_flow(mc, flow, c.req.now);
    if (!sent) c.res.log_error = "auth code mail not sent: " + why;
    c.res.outcome.code_sent = sent;
    return sent;
}

namespace {

// Where a registration goes once its code is mailed: ⑤, or ⑤ saying the mail
// waits in the outbox.
PortalResponse to_code_screen(const Runtime &rt, Portal::Context &c, bool sent) {
    if (sent) return go_next(c, c.url("issue/code"));
    PageData data{PageData::type::object};
    add_steps(data, 5, c.lang);
    data.set("code_digits", std::to_string(c.s.code_digits));
    ErrorCode code = ErrorCode::mail_not_sent;
    return render_page(rt, c, "issue_code", page_words(c.lang).at("issue_code_title"),
                       std::move(data), status_of(code), error_message(code, c.lang), &code);
}

PageData registration_data(const Portal::Context &c) {
    PageData data{PageData::type::object};
    add_steps(data, 4, c.lang);
    data.set("user_id", field(c.req, "user_id"));
    data.set("mail", field(c.req, "mail"));
    return data;
}

// マスターユーザー初期登録: the initial password from the bank's letter, a new
// password and the mail address; then ⑤ with the code sent to that address.
PortalResponse register_master(const Runtime &rt, Portal::Context &c) {
    const Settings &s = c.s;
    const char *page = "register_master";
    if (c.req.method != "POST") return screen(rt, c, page, registration_data(c), nullptr, "");
    if (c.req.form_malformed || !c.csrf_ok())
        return refuse(rt, c, page, registration_data(c), ErrorCode::csrf);

    std::string user_id = field(c.req, "user_id");
    std::string initial = field(c.req, "password");
    std::string new_password = field(c.req, "new_password");
    std::string mail = field(c.req, "mail");
    std::string message;

    if (std::string why = credential_refusal(rt, c, "user_id", user_id); !why.empty())
        return refuse(rt, c, page, registration_data(c), ErrorCode::invalid_user_id, why);
    if (!password_rule_ok(rt, c, "password", initial, &message))
        return refuse(rt, c, page, registration_data(c), ErrorCode::invalid_password, message);
    ErrorCode code;
    if (!new_password_ok(rt, c, initial, &code, &message))
        return refuse(rt, c, page, registration_data(c), code, message);
    if (!mail_ok(c, mail, &message))
        return refuse(rt, c, page, registration_data(c), ErrorCode::mail_mismatch, message);
    if (mail != field(c.req, "mail_confirm"))
        return refuse(rt, c, page, registration_data(c), ErrorCode::mail_mismatch);

    // The initial password counts toward the lockout like any password.
    Store &store = thread_store(s.store_uri);
    Kv &mc = thread_kv(s);
    AuthResult ar = authenticate_form(c, user_id, initial, AuthPurpose::issuance);
    bool registered = ar.status == AuthStatus::already_issued ||
                      (ar.status == AuthStatus::ok && !ar.initial_password);
    if (registered) {
        return refuse(rt, c, page, registration_data(c), ErrorCode::forbidden,
                      ja(c)
                          ? "このユーザーは初期登録済みです。ログイン画面からログインしてください。"
                          : "This user has already registered. Please log in from the login "
                            "screen.");
    }
    if (ar.status != AuthStatus::ok) {
        code = auth_refusal(c, ar, &message);
        return refuse(rt, c, page, registration_data(c), code, message);
    }
    if (ar.user->role != Role::master) {
        return refuse(
            rt, c, page, registration_data(c), ErrorCode::forbidden,
            ja(c) ? "一般ユーザーは、ログイン画面の［一般ユーザーの初期登録］から登録してください。"
                  : "General users register with \"General user's first "
                    "registration\" on the login screen.");
    }

    // The flow holds the new password for ⑥ (the .p12's password), sealed
    // with the key that only its cookie carries.
    int64_t lifetime = s.code_lifetime_s + 30 * 60;
    FlowCookie fc = new_flow_cookie(c.req.now + lifetime);
    Flow flow;
    flow.id = fc.id;
    flow.kind = FlowKind::register_master;
    flow.user_id = ar.user->id;
    flow.lang = c.lang;
    flow.created_at = c.req.now;
    flow.expires_at = fc.expires_at;
    flow.sealed_password = seal(fc.key, new_password);
    flow.new_password_hash = hash_password(new_password);
    flow.mail = mail;
    if (auto refused = code_mail_refusal(rt, c, store, flow.user_id)) return *refused;
    c.res.set_cookies.push_back(
        cookie(kFlowCookie, encode_flow_cookie(s.secret, fc), static_cast<long>(lifetime)));
    bool sent = mail_flow_code(c, store, mc, flow);
    derive_p12_keys_after(rt, c, fc, flow, new_password);
    return to_code_screen(rt, c, sent);
}

// 一般ユーザーの初期登録, after ④ passed with the initial password: the new
// password, then ⑤ with the code sent to the registered address.
PortalResponse register_password(const Runtime &rt, Portal::Context &c) {
    const Settings &s = c.s;
    const char *page = "register_password";
    Kv &mc = thread_kv(s);
    FlowCookie flow_cookie;
    std::optional<Flow> flow;
    try {
        flow = current_flow(c, mc, &flow_cookie);
    } catch (const KvError &e) {
        c.res.log_error = e.what();
        return refusal(rt, c, ErrorCode::unavailable);
    }
    if (!flow || flow->kind != FlowKind::register_general ||
        flow->step != FlowStep::need_password) {
        return refusal(rt, c, ErrorCode::flow_expired);
    }
    PageData data{PageData::type::object};
    add_steps(data, 4, c.lang);
    data.set("user_id", flow->user_id);
    if (c.req.method != "POST") return screen(rt, c, page, std::move(data), nullptr, "");
    if (c.req.form_malformed || !c.csrf_ok())
        return refuse(rt, c, page, std::move(data), ErrorCode::csrf);

    std::string initial;
    if (!unseal(flow_cookie.key, flow->sealed_password, &initial))
        return refusal(rt, c, ErrorCode::flow_expired);
    ErrorCode code;
    std::string message;
    bool ok = new_password_ok(rt, c, initial, &code, &message);
    wipe(initial);
    if (!ok) return refuse(rt, c, page, std::move(data), code, message);

    std::string new_password = field(c.req, "new_password");
    flow->sealed_password = seal(flow_cookie.key, new_password);
    flow->new_password_hash = hash_password(new_password);
    Store &store = thread_store(s.store_uri);
    if (auto refused = code_mail_refusal(rt, c, store, flow->user_id)) return *refused;
    bool sent = mail_flow_code(c, store, mc, *flow);
    derive_p12_keys_after(rt, c, flow_cookie, *flow, new_password);
    return to_code_screen(rt, c, sent);
}

// --- the master user's pages ---------------------------------------------------------

// Who may use the admin pages: a master's session; the refusal otherwise.
std::optional<PortalResponse> admin_refusal(const Runtime &rt, Portal::Context &c) {
    if (c.req.session && c.req.session->role == Role::master) return std::nullopt;
    if (!c.req.session && !c.req.json) {
        // A browser without a session logs in first and comes back, as
        // certgate_require sends it (a POST's form is gone: back to the list).
        c.res.status = 302;
        std::string back = c.url(c.req.method == "GET" ? c.req.path : kAdminUsers);
        c.res.location = c.url("?return=" + url_encode(back));
        return c.res;
    }
    PortalResponse res = refusal(rt, c, ErrorCode::forbidden);
    if (!c.req.session) res.status = 401;
    return res;
}

// 閉塞 before a lock: a block does not lift by itself, so it shows no time.
std::string state_label(const Portal::Context &c, const User &u) {
    if (u.state == UserState::disabled) return ja(c) ? "利用停止" : "Disabled";
    if (u.blocked) return ja(c) ? "閉塞" : "Blocked";
    if (u.locked_at(c.req.now)) return ja(c) ? "ロック中" : "Locked";
    if (u.state == UserState::must_register) return ja(c) ? "初期登録待ち" : "Not registered yet";
    return ja(c) ? "利用可能" : "Active";
}

// The certificate column: the live one, or else the newest handed over
// (a disabled user's shows 失効, not 未発行).
struct CertColumn {
    std::optional<Certificate> cert;
    const char *state = "none";  // valid, renewable, expired, revoked, none
};

CertColumn cert_column(const Portal::Context &c, Store &store, const std::string &user_id) {
    CertColumn col;
    col.cert = store.current_certificate(user_id);
    if (!col.cert) {
        CertificateFilter filter;
        filter.user_id = user_id;
        for (Certificate &cert : store.list_certificates(filter)) {
            if (cert.status == CertStatus::pending) continue;
            if (!col.cert || cert.issued_at > col.cert->issued_at ||
                (cert.issued_at == col.cert->issued_at && cert.not_after > col.cert->not_after))
                col.cert = std::move(cert);
        }
    }
    if (!col.cert) return col;
    const int64_t window = static_cast<int64_t>(c.s.renew_before_days) * 86400;
    if (col.cert->status == CertStatus::revoked || col.cert->status == CertStatus::superseded)
        col.state = "revoked";
    else if (col.cert->status == CertStatus::expired || col.cert->not_after < c.req.now)
        col.state = "expired";
    else if (col.cert->not_after - c.req.now <= window)
        col.state = "renewable";
    else
        col.state = "valid";
    return col;
}

// The result of an admin action, as the list reports it (?done=<action>&user=<id>).
std::string admin_result(const Portal::Context &c, const std::string &action,
                         const std::string &user_id) {
    const auto &t = page_words(c.lang);
    auto it = t.find("admin_done_" + action);
    if (it == t.end()) return "";
    PageData values{PageData::type::object};
    values.set("user_id", user_id);
    kainjow::mustache::mustache tmpl(it->second);
    tmpl.set_custom_escape([](const std::string &v) { return v; });
    return tmpl.render(values);
}

// admin/users: the organisation's general users, and the form that adds one.
PortalResponse admin_list(const Runtime &rt, Portal::Context &c, ErrorCode *error,
                          const std::string &message) {
    const Settings &s = c.s;
    Store &store = thread_store(s.store_uri);
    const std::string &org = c.req.session->org;
    PageData rows{PageData::type::list};
    Json users = Json::array();
    auto done = c.req.query.find("done");
    auto done_user = c.req.query.find("user");
    for (const User &u : store.list_users(org)) {
        if (u.role != Role::general) continue;
        CertColumn col = cert_column(c, store, u.id);
        bool locked = u.locked_at(c.req.now) && !u.blocked;
        PageData row{PageData::type::object};
        row.set("user_id", u.id);
        row.set("name", u.name);
        row.set("mail", u.mail);
        row.set("state", state_label(c, u));
        if (locked) row.set("locked_until", local_date_time(u.locked_until, s.timezone, c.lang));
        row.set("cert_state", page_words(c.lang).at(std::string("cert_state_") + col.state));
        row.set(std::string("cert_") + col.state, true);
        if (col.cert) {
            row.set("serial", col.cert->serial);
            row.set("expiry", local_date(col.cert->not_after, s.timezone, c.lang));
        }
        if (u.state != UserState::disabled) {
            row.set("active", true);
            if (locked || u.blocked) row.set("unlockable", true);
        }
        rows.push_back(row);
        // Only a user of this organisation is named in a result.
        if (!error && done != c.req.query.end() && done_user != c.req.query.end() &&
            done_user->second == u.id)
            c.notice = admin_result(c, done->second, u.id);
        users.push_back(
            Json{{"user_id", u.id},
                 {"name", u.name},
                 {"mail", u.mail},
                 {"state", to_string(u.state)},
                 {"locked_until", locked ? u.locked_until : 0},
                 {"blocked", u.blocked},
                 {"certificate_state", col.state},
                 {"certificate", col.cert ? Json{{"serial", col.cert->serial},
                                                 {"not_after", col.cert->not_after},
                                                 {"status", to_string(col.cert->status)}}
                                          : Json(nullptr)}});
    }
    if (c.req.json && !error) {
        c.res.status = 200;
        c.res.content_type = "application/json";
        c.res.body =
            json_body(Json{{"ok", true}, {"csrf_token", c.csrf()}, {"org", org}, {"users", users}});
        return c.res;
    }
    PageData data{PageData::type::object};
    data.set("users", rows);
    data.set("org", org);
    data.set("master", c.req.session->user_id);
    data.set("wide", true);
    if (error) {
        data.set("new_user_id", field(c.req, "user_id"));
        data.set("new_name", field(c.req, "name"));
        data.set("new_mail", field(c.req, "mail"));
    }
    return screen(rt, c, "admin_users", std::move(data), error, message);
}

// A new initial password, shown to the master once (HTML) or given once (JSON).
PortalResponse show_initial_password(const Runtime &rt, Portal::Context &c, const User &u,
                                     const std::string &password, bool added) {
    if (c.req.json) {
        c.res.status = 200;
        c.res.content_type = "application/json";
        c.res.body = json_body(Json{{"ok", true},
                                    {"user_id", u.id},
                                    {"initial_password", password},
                                    {"message", admin_result(c, added ? "add" : "reset", u.id)},
                                    {"next", c.url(kAdminUsers)}});
        return c.res;
    }
    PageData data{PageData::type::object};
    data.set("user_id", u.id);
    data.set("name", u.name);
    data.set("initial_password", password);
    data.set(added ? "added" : "reset", true);
    return screen(rt, c, "admin_password", std::move(data), nullptr, "");
}

PortalResponse admin_add(const Runtime &rt, Portal::Context &c) {
    const Settings &s = c.s;
    ErrorCode code;
    std::string user_id = field(c.req, "user_id");
    std::string mail = field(c.req, "mail");
    if (std::string why = credential_refusal(rt, c, "user_id", user_id); !why.empty()) {
        code = ErrorCode::invalid_user_id;
        return admin_list(rt, c, &code, why);
    }
    std::string message;
    if (!mail_ok(c, mail, &message)) {
        code = ErrorCode::mail_mismatch;
        return admin_list(rt, c, &code, message);
    }
    if (c.req.form.count("mail_confirm") && field(c.req, "mail_confirm") != mail) {
        code = ErrorCode::mail_mismatch;
        return admin_list(rt, c, &code, error_message(code, c.lang));
    }

    Store &store = thread_store(s.store_uri);
    std::string password = generate_initial_password(rt.pages->policy().initial_password_length());
    User u;
    u.id = user_id;
    u.org = c.req.session->org;
    u.role = Role::general;
    u.name = field(c.req, "name");
    u.mail = mail;
    u.password_hash = hash_password(password);
    u.state = UserState::must_register;
    try {
        store.add_user(u, c.req.session->user_id, "initial password issued by the master user");
    } catch (const StoreConflict &) {
        code = ErrorCode::invalid_user_id;
        return admin_list(
            rt, c, &code,
            ja(c) ? "このユーザーIDは既に使われています。別のユーザーIDを指定してください。"
                  : "This user ID is taken. Please choose another.");
    }
    PortalResponse res = show_initial_password(rt, c, u, password, true);
    wipe(password);
    return res;
}

// パスワード初期化 and 利用停止 ask first (R19: a plain form, no script):
// the list's button shows this page, whose 実行 posts again with confirm=yes.
// JSON clients (scripts) act at once.
PortalResponse admin_confirm(const Runtime &rt, Portal::Context &c, const User &u,
                             const std::string &action) {
    PageData data{PageData::type::object};
    data.set("user_id", u.id);
    data.set("name", u.name);
    data.set("action", action);
    data.set(action, true);
    return render_page(rt, c, "admin_confirm", page_words(c.lang).at("admin_confirm_" + action),
                       std::move(data), 200, "", nullptr);
}

// The list again, saying what was done (303, so a reload does not redo it).
PortalResponse admin_done(Portal::Context &c, const std::string &action,
                          const std::string &user_id) {
    if (c.req.json) {
        c.res.status = 200;
        c.res.content_type = "application/json";
        c.res.body = json_body(Json{{"ok", true},
                                    {"message", admin_result(c, action, user_id)},
                                    {"next", c.url(kAdminUsers)}});
        c.res.outcome.result = PortalOutcome::Result::ok;
        return c.res;
    }
    return go_next(c, c.url(std::string(kAdminUsers) + "?done=" + action + "&user=" + user_id));
}

// A lock or block the master releases (R10, R16), a reset (new initial
// password; sessions end), or a disable (certificates revoked).
PortalResponse admin_action(const Runtime &rt, Portal::Context &c, const std::string &target,
                            const std::string &action) {
    const Settings &s = c.s;
    Store &store = thread_store(s.store_uri);
    const std::string &actor = c.req.session->user_id;
    auto u = store.find_user(target);
    // Another organisation's users do not exist for this master.
    if (!u || u->org != c.req.session->org || u->role != Role::general)
        return refusal(rt, c, ErrorCode::not_found);

    if (action == "unlock") {
        // An unblock lifts the lock with the block.
        if (u->blocked) {
            store.unblock_user(target, actor);
        } else if (u->locked_at(c.req.now) || u->failure_streak > 0) {
            store.unlock_user(target, actor);
        }
        return admin_done(c, action, target);
    }
    if (u->state == UserState::disabled) {
        if (action == "reset") return refusal(rt, c, ErrorCode::not_found);
        return admin_done(c, action, target);  // disabled already
    }
    if (!c.req.json && field(c.req, "confirm") != "yes") return admin_confirm(rt, c, *u, action);
    if (action == "reset") {
        std::string password =
            generate_initial_password(rt.pages->policy().initial_password_length());
        store.reset_user(target, hash_password(password), actor);
        PortalResponse res = show_initial_password(rt, c, *u, password, false);
        wipe(password);
        return res;
    }
    // disable
    store.write([&] {
        store.disable_user(target, actor);
        store.revoke_user_certificates(target, "cessationOfOperation", actor);
    });
    return admin_done(c, action, target);
}

PortalResponse admin_users(const Runtime &rt, Portal::Context &c) {
    if (auto refused = admin_refusal(rt, c)) return *refused;
    const std::string &path = c.req.path;
    if (c.req.method != "POST") {
        if (path != kAdminUsers) {
            c.res.status = 405;
            return c.res;
        }
        return admin_list(rt, c, nullptr, "");
    }
    if (c.req.form_malformed || !c.csrf_ok()) {
        ErrorCode code = ErrorCode::csrf;
        return admin_list(rt, c, &code, error_message(code, c.lang));
    }
    if (path == kAdminUsers) return admin_add(rt, c);
    // admin/users/<id>/<action>
    std::string rest = path.substr(std::string(kAdminUsers).size() + 1);
    auto slash = rest.find('/');
    return admin_action(rt, c, rest.substr(0, slash), rest.substr(slash + 1));
}

bool admin_action_path(const std::string &path) {
    std::string head = std::string(kAdminUsers) + "/";
    if (path.compare(0, head.size(), head) != 0) return false;
    std::string rest = path.substr(head.size());
    auto slash = rest.find('/');
    if (slash == std::string::npos || slash == 0 || slash > 64) return false;
    std::string action = rest.substr(slash + 1);
    return action == "unlock" || action == "reset" || action == "disable";
}

}  // namespace

bool complete_registration_flow(Store &store, const Flow &flow, std::string *error) {
    if (flow.kind == FlowKind::issue) return true;
    try {
        store.complete_registration(flow.user_id, flow.new_password_hash, flow.mail, flow.user_id);
        return true;
    } catch (const StoreError &e) {
        // Registered meanwhile by another flow, or reset, or disabled.
        if (error) *error = e.what();
        return false;
    }
}

bool account_routes(const std::string &path) {
    return path == "register/master" || path == "register/password" || path == kAdminUsers ||
           admin_action_path(path);
}

PortalResponse account_screens(const Runtime &rt, Portal::Context &c) {
    const std::string &path = c.req.path;
    if (path == "register/master") return register_master(rt, c);
    if (path == "register/password") return register_password(rt, c);
    return admin_users(rt, c);
}

}  // namespace certgate
