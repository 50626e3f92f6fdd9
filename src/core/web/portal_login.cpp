// The login screen of R13 and, with the client certificate, the login itself
// (ログイン) and logout.

#include "core/app/authentication.hpp"
#include "core/base/encoding.hpp"
#include "core/base/json.hpp"
#include "core/web/portal_screens.hpp"

namespace certgate {

namespace {

// Where to go after login: the return= the gate gave, when it stays on this
// site; otherwise certgate_home.
std::string after_login(const Portal::Context &c, const std::string &to) {
    return site_local_path(to) ? to : c.s.home;
}

PortalResponse login_form(const Runtime &rt, Portal::Context &c, ErrorCode *error,
                          const std::string &message) {
    PageData data{PageData::type::object};
    auto ret = c.req.query.find("return");
    std::string to = ret != c.req.query.end() ? ret->second : field(c.req, "return");
    if (site_local_path(to)) data.set("return", to);
    data.set("user_id", field(c.req, "user_id"));
    if (error &&
        (*error == ErrorCode::certificate_expired || *error == ErrorCode::certificate_revoked)) {
        data.set("show_issue_link", true);
    }
    if (error && *error == ErrorCode::no_certificate) data.set("show_certificate_hint", true);
    int status = error ? status_of(*error) : 200;
    return render_page(rt, c, "login", page_words(c.lang).at("login_title"), std::move(data),
                       status, message, error);
}

PortalResponse login_screen(const Runtime &rt, Portal::Context &c) {
    if (c.req.method == "POST") {
        c.res.status = 405;
        return c.res;
    }
    auto it = c.req.query.find("error");
    ErrorCode code;
    if (it != c.req.query.end() && parse_error_code(it->second, &code)) {
        return login_form(rt, c, &code, error_message(code, c.lang));
    }
    // A certificate of ours that can no longer log in (R4, R5): say why and
    // how to get a new one, before the clerk types a password in vain.
    const PresentedCertificate &pc = c.req.cert;
    if (!c.req.json && pc.ours && (pc.expired || pc.revoked)) {
        code = pc.revoked ? ErrorCode::certificate_revoked : ErrorCode::certificate_expired;
        std::string msg = error_message(code, c.lang);
        if (!pc.revoked) {
            msg += (c.lang == Language::en ? " (valid until " : "（有効期限：") +
                   local_date_time(pc.not_after, c.s.timezone, c.lang) +
                   (c.lang == Language::en ? ")" : "）");
        }
        PortalResponse res = login_form(rt, c, &code, msg);
        res.status = 200;
        return res;
    }
    // After ログアウト the screen says so, and no frame is shown (the
    // session's cookie is gone).
    if (c.req.query.count("logged_out") && !c.req.session)
        c.notice = page_words(c.lang).at("logged_out");
    PortalResponse res = login_form(rt, c, nullptr, "");
    res.status = 200;
    return res;
}

// ログイン: the certificate first (no I/O), then the password (lockout
// counted), then the certificate's standing in the store.
PortalResponse login(const Runtime &rt, Portal::Context &c) {
    const Settings &s = c.s;
    if (c.req.method != "POST") return go_next(c, c.url(""));
    ErrorCode code;
    auto refuse = [&](ErrorCode e, const std::string &message = "") {
        code = e;
        return login_form(rt, c, &code, message.empty() ? error_message(e, c.lang) : message);
    };
    if (c.req.form_malformed || !c.csrf_ok()) return refuse(ErrorCode::csrf);

    std::string user_id = field(c.req, "user_id");
    std::string password = field(c.req, "password");
    if (std::string why = credential_refusal(rt, c, "user_id", user_id); !why.empty())
        return refuse(ErrorCode::invalid_user_id, why);
    if (std::string why = credential_refusal(rt, c, "password", password); !why.empty())
        return refuse(ErrorCode::invalid_password, why);

    const PresentedCertificate &pc = c.req.cert;
    if (!pc.present) return refuse(ErrorCode::no_certificate);
    if (!pc.ours) return refuse(ErrorCode::certificate_mismatch);
    if (pc.expired) return refuse(ErrorCode::certificate_expired);
    if (pc.user_id != user_id) {
        std::string msg =
            c.lang == Language::en
                ? "The selected certificate belongs to another user (" + pc.user_id +
                      "). Close all browser windows, open this site again and select the "
                      "certificate of " +
                      user_id + "."
                : "選択された電子証明書は別のユーザー（" + pc.user_id +
                      "）のものです。開いているブラウザをすべて閉じ、ユーザーID " + user_id +
                      " の電子証明書を選択してください。";
        return refuse(ErrorCode::certificate_mismatch, msg);
    }

    AuthResult ar = authenticate_form(c, user_id, password, AuthPurpose::login);
    if (ar.status != AuthStatus::ok) {
        std::string msg;
        ErrorCode e = auth_refusal(c, ar, &msg);
        return refuse(e, msg);
    }
    if (ar.initial_password)
        return refuse(ErrorCode::must_register, must_register_message(c, *ar.user));

    // The certificate must be the user's live one: not revoked, not replaced.
    Store &store = thread_store(s.store_uri);
    auto cert = store.find_certificate(pc.serial);
    if (!cert || cert->user_id != user_id) return refuse(ErrorCode::certificate_mismatch);
    if (cert->status == CertStatus::revoked) return refuse(ErrorCode::certificate_revoked);
    if (cert->status == CertStatus::superseded) {
        return refuse(ErrorCode::certificate_revoked,
                      c.lang == Language::en
                          ? "This certificate has been replaced by a newer one. Close all "
                            "browser windows and select your new certificate."
                          : "この電子証明書は更新済みです。開いているブラウザをすべて閉じ、新しい"
                            "電子証明書を選択してください。");
    }
    if (cert->status == CertStatus::expired) return refuse(ErrorCode::certificate_expired);
    // Only a live certificate logs in: a pending one was never handed over.
    if (cert->status != CertStatus::issued) return refuse(ErrorCode::certificate_revoked);

    Session session = new_session(*ar.user, pc.serial, pc.not_after, c.req.now);
    session.epoch = store.append_event(
        user_id, "session.login", user_id,
        "session=" + session.id + " serial=" + pc.serial + " client=" + c.req.client);
    c.res.set_cookies.push_back(cookie(kSessionCookie, encode_session(s.secret, session), -1));

    std::string next = after_login(c, field(c.req, "return"));
    int64_t window = static_cast<int64_t>(s.renew_before_days) * 86400;
    bool renewal_open = cert->not_after - c.req.now <= window;
    if (!renewal_open) return go_next(c, next);

    // R2: inside the renewal window the login passes with a notice.
    std::string expires = local_date(cert->not_after, s.timezone, c.lang);
    if (c.req.json) {
        c.res.status = 200;
        c.res.content_type = "application/json";
        c.res.body =
            json_body(Json{{"ok", true},
                           {"next", next},
                           {"renewal", {{"expires", expires}, {"renew", c.url("issue")}}}});
        return c.res;
    }
    PageData data{PageData::type::object};
    data.set("next", next);
    data.set("expires", expires);
    return render_page(rt, c, "renewal_notice", page_words(c.lang).at("renewal_title"),
                       std::move(data), 200, "", nullptr);
}

PortalResponse logout(const Runtime &, Portal::Context &c) {
    if (c.req.method != "POST") return go_next(c, c.url(""));
    if (c.req.form_malformed || !c.csrf_ok()) {
        c.res.status = status_of(ErrorCode::csrf);
        return go_next(c, c.url("?error=csrf"));
    }
    std::string value = c.cookie_value(kSessionCookie);
    auto session = decode_session(c.s.secret, value);
    if (session) {
        // The event ends the session in every worker and node (the revocation feed).
        thread_store(c.s.store_uri)
            .append_event(session->user_id, event_kind::kLogout, session->user_id,
                          "session=" + session->id + " client=" + c.req.client);
    }
    c.res.set_cookies.push_back(cookie(kSessionCookie, "", 0));
    return go_next(c, c.url("?logged_out=1"));
}

}  // namespace

bool login_routes(const std::string &path) {
    return path.empty() || path == "login" || path == "logout";
}

PortalResponse login_screens(const Runtime &rt, Portal::Context &c) {
    if (c.req.path == "login") return login(rt, c);
    if (c.req.path == "logout") return logout(rt, c);
    return login_screen(rt, c);
}

}  // namespace certgate
