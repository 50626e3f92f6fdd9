// The issuance screens (R6): ④ ユーザー認証, ⑤ 認証コード入力, ⑥ 発行, ⑦ 発行中,
// ⑧ 発行結果 with the one-time .p12 download, and キャンセル (R7).

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>

#include "core/adapters/ca.hpp"
#include "core/adapters/mail.hpp"
#include "core/app/authentication.hpp"
#include "core/app/flow.hpp"
#include "core/app/issuance.hpp"
#include "core/app/outbox.hpp"
#include "core/app/runtime.hpp"
#include "core/base/encoding.hpp"
#include "core/base/json.hpp"
#include "core/base/secrets.hpp"
#include "core/web/portal_screens.hpp"

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

// R21: a user's codes are bounded per window, not per flow: tries
// (every judged code, wrong or right) and mails. An attacker who knows the
// password gets at most code_budget_tries guesses per window.
std::string budget_key(const char *what, const std::string &user_id) {
    return std::string(what) + ":" + user_id;
}

// Once per window the user hears that its codes are used up; queued to the
// outbox, in the user's own language (the tries may not be the user's).
void queue_budget_notice(Portal::Context &c, Store &store, const std::string &user_id,
                         int64_t until) {
    const Settings &s = c.s;
    try {
        if (!store.take_budget(budget_key("code_notice", user_id), 1, s.code_budget_window_s)
                 .allowed)
            return;
        auto user = store.find_user(user_id);
        if (!user || user->mail.empty() || s.mail.empty()) return;
        MailFields f;
        f.to = user->mail;
        f.user_id = user->id;
        f.until = static_cast<time_t>(until);
        f.timezone = s.timezone;
        f.helpdesk = s.helpdesk;
        MailMessage m = compose_user_mail(MailKind::code_budget, user->language, s.mail_language,
                                          s.mail_bilingual, f);
        queue_mail(store, m, "certgate", user->id);
        store.append_event("certgate", "code.budget_spent", user->id,
                           "until=" + std::to_string(until));
    } catch (const std::exception &e) {
        c.res.log_error = std::string("code budget notice: ") + e.what();
    }
}

PortalResponse budget_refusal(const Runtime &rt, Portal::Context &c, int64_t resets_at) {
    const std::string when = local_date_time(resets_at, c.s.timezone, c.lang);
    std::string msg =
        c.lang == Language::en
            ? "Authentication codes for this user ID were entered or sent as many "
              "times as allowed. Please start again after " +
                  when + "."
            : "このユーザーIDの認証コードの入力回数または送信回数が上限に達しました。" + when +
                  "以降に、最初からやり直してください。";
    c.res.retry_after = std::max<long>(1, static_cast<long>(resets_at - c.req.now));
    return refusal(rt, c, ErrorCode::too_many_requests, msg);
}

}  // namespace

std::optional<PortalResponse> code_mail_refusal(const Runtime &rt, Portal::Context &c, Store &store,
                                                const std::string &user_id) {
    const Settings &s = c.s;
    BudgetTake tries = store.peek_budget(budget_key("code_try", user_id), s.code_budget_tries,
                                         s.code_budget_window_s);
    if (!tries.allowed) {
        queue_budget_notice(c, store, user_id, tries.resets_at);
        return budget_refusal(rt, c, tries.resets_at);
    }
    BudgetTake mails = store.take_budget(budget_key("code_mail", user_id), s.code_budget_mails,
                                         s.code_budget_window_s);
    if (!mails.allowed) {
        queue_budget_notice(c, store, user_id, mails.resets_at);
        return budget_refusal(rt, c, mails.resets_at);
    }
    return std::nullopt;
}

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

    if (std::string why = credential_refusal(rt_, c, "user_id", user_id); !why.empty()) {
        code = ErrorCode::invalid_user_id;
        return auth_screen(rt_, c, &code, why);
    }
    if (std::string why = credential_refusal(rt_, c, "password", password); !why.empty()) {
        code = ErrorCode::invalid_password;
        return auth_screen(rt_, c, &code, why);
    }

    Store &store = thread_store(s.store_uri);
    Kv &mc = thread_kv(s);

    AuthResult ar = authenticate_form(c, user_id, password, AuthPurpose::issuance);
    switch (ar.status) {
        case AuthStatus::ok:
            break;
        case AuthStatus::unavailable:
        case AuthStatus::bad_credentials:
        case AuthStatus::locked:
        case AuthStatus::blocked:
        case AuthStatus::initial_password_expired: {
            std::string msg;
            code = auth_refusal(c, ar, &msg);
            return auth_screen(rt_, c, &code, msg);
        }
        case AuthStatus::already_issued: {
            // R20: with certgate_self_revoke on, ⑥ offers to revoke it and reissue.
            if (s.self_revoke && ar.user && ar.live_certificate) break;
            code = ErrorCode::already_issued;
            std::string msg = c.lang == Language::en
                                  ? "A certificate has already been issued (valid through " +
                                        local_date(ar.cert_not_after, s.timezone, c.lang) +
                                        "). Renewal opens on " +
                                        local_date(ar.renewal_opens, s.timezone, c.lang) + "."
                                  : "電子証明書は発行済みです（有効期限：" +
                                        local_date(ar.cert_not_after, s.timezone, c.lang) + "）。" +
                                        local_date(ar.renewal_opens, s.timezone, c.lang) +
                                        "から更新できます。";
            return auth_screen(rt_, c, &code, msg);
        }
    }

    const User &user = *ar.user;
    if (ar.initial_password && user.role == Role::master) {
        code = ErrorCode::must_register;
        return auth_screen(rt_, c, &code, must_register_message(c, user));
    }

    // A new flow: its cookie holds the key of the sealed password.
    int64_t lifetime = s.flow_lifetime_s();
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
    if (ar.status == AuthStatus::already_issued) {
        flow.replace_serial = ar.live_certificate->serial;
        flow.replace_not_after = ar.live_certificate->not_after;
    }
    c.res.set_cookies.push_back(
        cookie(kFlowCookie, encode_flow_cookie(s.secret, fc), static_cast<long>(lifetime)));

    if (flow.kind == FlowKind::register_general) {
        // 一般ユーザーの初期登録: a new password before the code is mailed.
        flow.step = FlowStep::need_password;
        save_flow(mc, flow, c.req.now);
        return go_next(c, c.url("register/password"));
    }

    // R21: no code mail when the window's code tries or mails are used up.
    if (auto refused = code_mail_refusal(rt_, c, store, user.id)) return *refused;

    // ⑤: the code, drawn from the CSPRNG, kept only as a hash bound to the
    // flow, mailed now if the relay takes it (the outbox keeps it otherwise).
    bool sent = mail_flow_code(c, store, mc, flow);
    derive_p12_keys_after(rt_, c, fc, flow, password);
    if (!sent) {
        code = ErrorCode::mail_not_sent;
        return code_screen(rt_, c, &code, error_message(code, c.lang));
    }
    return go_next(c, c.url("issue/code"));
}

// The .p12's keys, derived while the clerk reads the code mail (issue 18):
// after this answer, in the crypto pool, and kept only while the flow is
// still at ⑤ or ⑥ with this very password. Each step re-reads the flow, so
// a flow that ended, moved on to ⑦ or took a new password in the meantime
// keeps nothing behind.
void derive_p12_keys_after(const Runtime &rt, Portal::Context &c, const FlowCookie &fc,
                           const Flow &flow, const std::string &password) {
    const Settings &s = c.s;
    if (s.p12_legacy || !rt.ca || password.empty()) return;
    struct Job {
        std::string password, cookie_key, sealed_password, flow_id;
        int64_t expires_at = 0;
        int iterations = 0;
        ~Job() {
            wipe(password);
            wipe(cookie_key);
        }
    };
    auto job = std::make_shared<Job>();
    job->password = password;
    job->cookie_key = fc.key;
    job->sealed_password = flow.sealed_password;
    job->flow_id = flow.id;
    job->expires_at = flow.expires_at;
    job->iterations = s.p12_iterations;
    auto settings = std::make_shared<const Settings>(s);
    const Signer *signer = rt.ca.get();
    c.res.after = [job, settings, signer]() {
        Kv &mc = thread_kv(*settings);
        auto waiting = [&] {
            std::optional<Flow> f = load_flow(mc, job->flow_id);
            return f && f->sealed_password == job->sealed_password &&
                   (f->step == FlowStep::code_sent || f->step == FlowStep::code_ok);
        };
        // A task that waited in the pool until ⑦ began (or the flow ended)
        // derives nothing: ⑥ has derived its own by then.
        if (!waiting()) {
            wipe(job->password);
            return;
        }
        std::optional<P12Keys> keys =
            signer->derive_p12_keys(job->password, P12Encryption::aes256, job->iterations);
        wipe(job->password);
        if (!keys) return;
        long ttl = static_cast<long>(job->expires_at - static_cast<int64_t>(std::time(nullptr)));
        if (ttl < 1 || !waiting()) return;
        const std::string key = flow_p12_keys_key(job->flow_id);
        mc.set(key, seal_p12_keys(job->cookie_key, job->sealed_password, *keys), ttl);
        // ⑦ may have begun between the two reads: it then derives its own
        // keys, and these must not outlive the flow's use of them.
        if (!waiting()) mc.remove(key);
    };
}

std::optional<P12Keys> take_p12_keys(Kv &mc, const FlowCookie &fc, const Flow &flow) {
    try {
        const std::string key = flow_p12_keys_key(flow.id);
        std::optional<std::string> box = mc.get(key);
        if (!box) return std::nullopt;
        mc.remove(key);
        return unseal_p12_keys(fc.key, flow.sealed_password, *box);
    } catch (const KvError &) {
        return std::nullopt;  // derived at ⑥ instead
    }
}

// ⑤ 認証コード入力.
static PortalResponse issue_code(const Runtime &rt_, Portal::Context &c) {
    const Settings &s = c.s;
    ErrorCode code;
    Kv &mc = thread_kv(s);
    std::optional<Flow> flow;
    try {
        flow = current_flow(c, mc, nullptr);
    } catch (const KvError &e) {
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
    } catch (const KvError &e) {
        c.res.log_error = e.what();
        return refusal(rt_, c, ErrorCode::unavailable);
    }
    if (c.req.now > flow->code_expires) {
        end_flow(mc, flow->id);
        c.res.set_cookies.push_back(cookie(kFlowCookie, "", 0));
        return refusal(rt_, c, ErrorCode::code_expired);
    }
    // R21: every judged code takes one try of the user's window, in the
    // store (race-free, and memcached's loss gives nothing back).
    Store &budget_store = thread_store(s.store_uri);
    BudgetTake budget = budget_store.take_budget(budget_key("code_try", flow->user_id),
                                                 s.code_budget_tries, s.code_budget_window_s);
    if (!budget.allowed) {
        end_flow(mc, flow->id);
        c.res.set_cookies.push_back(cookie(kFlowCookie, "", 0));
        queue_budget_notice(c, budget_store, flow->user_id, budget.resets_at);
        c.res.auth_failure = true;
        return budget_refusal(rt_, c, budget.resets_at);
    }
    std::string given = field(c.req, "code");
    bool right = given.size() == static_cast<size_t>(s.code_digits) &&
                 equal_secrets(code_hash(s.secret, flow->id, given), flow->code_hash);
    if (!right || tries > static_cast<uint64_t>(s.code_attempts) + 1) {
        Store &store = thread_store(s.store_uri);
        store.append_event(flow->user_id, "code.failed", flow->user_id,
                           "try=" + std::to_string(tries) + " client=" + c.req.client);
        c.res.auth_failure = true;
        if (budget.reached) queue_budget_notice(c, store, flow->user_id, budget.resets_at);
        if (tries > static_cast<uint64_t>(s.code_attempts)) {
            // Past the allowed tries: the flow ends; start again at ④.
            end_flow(mc, flow->id);
            c.res.set_cookies.push_back(cookie(kFlowCookie, "", 0));
            std::string msg =
                error_message(ErrorCode::bad_code, c.lang) +
                (c.lang == Language::en
                     ? " Too many wrong codes: please start again."
                     : "認証コードを規定回数以上間違えたため、最初からやり直してください。");
            return refusal(rt_, c, ErrorCode::bad_code, msg);
        }
        // Tolerated wrong codes (certgate_code) plus the one that ends the flow.
        const uint64_t left = static_cast<uint64_t>(s.code_attempts) + 1 - tries;
        code = ErrorCode::bad_code;
        return code_screen(
            rt_, c, &code,
            error_message(code, c.lang) + (c.lang == Language::en
                                               ? " Tries left: " + std::to_string(left) + "."
                                               : "残り入力回数：" + std::to_string(left) + "回"));
    }

    // Good once: the first to claim it wins, a parallel second use does not.
    if (!mc.add(flow_claim_key(flow->id, "code"), "1",
                static_cast<long>(flow->expires_at - c.req.now + 1))) {
        return refusal(rt_, c, ErrorCode::bad_code);
    }
    flow->step = FlowStep::code_ok;
    flow->code_hash.clear();
    // A first registration (portal_account.cpp) makes the account active here.
    if (!complete_registration_flow(thread_store(s.store_uri), *flow, &c.res.log_error)) {
        end_flow(mc, flow->id);
        return refusal(rt_, c, ErrorCode::flow_expired);
    }
    save_flow(mc, *flow, c.req.now);
    thread_store(s.store_uri)
        .append_event(flow->user_id, "code.accepted", flow->user_id, "client=" + c.req.client);
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
            end_flow(thread_kv(s), fc->id);
        } catch (const KvError &e) {
            // The flow dies with its cookie anyway.
            c.res.log_error = e.what();
        }
    }
    c.res.set_cookies.push_back(cookie(kFlowCookie, "", 0));
    return go_next(c, c.url(field(c.req, "to") == "issue" ? "issue" : ""));
}

namespace {

const char kDownloadPrefix[] = "issue/download/";

std::string download_key(const std::string &token) { return "cg:dl:" + token; }

// ⑥, fresh, or again after a failed 発行 with the reason and the button.
PortalResponse confirm_screen(const Runtime &rt, Portal::Context &c, const Flow &flow) {
    PageData data{PageData::type::object};
    add_steps(data, 6, c.lang);
    if (!flow.replace_serial.empty()) {
        // R20: 発行 becomes 電子証明書を失効して再発行; the page says what goes.
        data.set("replace", true);
        data.set("replace_serial", flow.replace_serial);
        data.set("replace_until", local_date(flow.replace_not_after, c.s.timezone, c.lang));
    }
    if (flow.failure.empty()) {
        PortalResponse res =
            render_page(rt, c, "issue_confirm", page_words(c.lang).at("issue_confirm_title"),
                        std::move(data), 200, "", nullptr);
        if (c.req.json && !flow.replace_serial.empty()) {
            res.body = json_body(
                Json{{"ok", true}, {"replace", flow.replace_serial}, {"csrf_token", c.csrf()}});
        }
        return res;
    }
    ErrorCode code = ErrorCode::unavailable;
    std::string msg =
        error_message(code, c.lang) +
        (c.lang == Language::en
             ? " No certificate was issued: press Issue again."
             : "電子証明書は発行されていません。もう一度「発行」ボタンを押してください。");
    PortalResponse res =
        render_page(rt, c, "issue_confirm", page_words(c.lang).at("issue_confirm_title"),
                    std::move(data), status_of(code), msg, &code);
    if (c.req.json) {
        res.body = json_body(Json{{"ok", false},
                                  {"error", error_name(code)},
                                  {"retry", true},
                                  {"message", msg},
                                  {"csrf_token", c.csrf()}});
    }
    return res;
}

PortalResponse progress_screen(const Runtime &rt, Portal::Context &c) {
    PageData data{PageData::type::object};
    add_steps(data, 7, c.lang);
    data.set("refresh", c.url("issue/confirm"));
    PortalResponse res =
        render_page(rt, c, "issue_progress", page_words(c.lang).at("issue_progress_title"),
                    std::move(data), 200, "", nullptr);
    if (c.req.json)
        res.body = "{\"ok\":true,\"step\":\"issuing\",\"csrf_token\":\"" + c.csrf() + "\"}\n";
    return res;
}

// This worker, as ⑦ records it: "<host> <pid>".
std::string this_worker() {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    return std::string(host) + " " + std::to_string(static_cast<long>(getpid()));
}

// No issuance takes this long; a ⑦ older than this was interrupted.
constexpr int64_t kIssuingDeadline = 120;

// ⑦ whose worker is gone (killed, crashed: same host, no such process) or
// that outlived any issuance: nothing will finish it.
bool issuing_interrupted(const Flow &flow, int64_t now) {
    if (flow.issuing_since && now - flow.issuing_since > kIssuingDeadline) return true;
    auto sp = flow.issuing_by.rfind(' ');
    if (sp == std::string::npos) return false;
    std::string me = this_worker();
    if (flow.issuing_by.compare(0, sp, me, 0, me.rfind(' ')) != 0) return false;
    long pid = std::atol(flow.issuing_by.c_str() + sp + 1);
    return pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// Back to ⑥ with the reason, so 発行 can be pressed again.
void back_to_confirm(Kv &mc, Flow &flow, int64_t now, const std::string &why) {
    flow.step = FlowStep::code_ok;
    flow.failure = why;
    flow.issuing_by.clear();
    flow.issuing_since = 0;
    flow.serial.clear();
    flow.download_token.clear();
    save_flow(mc, flow, now);
    mc.remove(flow_claim_key(flow.id, "issue"));
}

#if (CERTGATE_TEST_HOOKS)
// Test builds only: ?keygen_delay_ms= / ?handover_delay_ms= on ⑥ hold the
// task before key generation / after the certificate is recorded, so suites
// can kill a worker or memcached at that moment.
void test_delay(const Portal::Context &c, const char *name) {
    auto it = c.req.query.find(name);
    if (it == c.req.query.end()) return;
    long ms = std::atol(it->second.c_str());
    if (ms <= 0 || ms > 60000) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, nullptr);
}
#else
void test_delay(const Portal::Context &, const char *) {}
#endif

// ⑧: shown again on every reload; the download link while its token lives.
PortalResponse result_screen(const Runtime &rt, Portal::Context &c, Kv &mc, const Flow &flow) {
    const Settings &s = c.s;
    bool downloadable =
        !flow.download_token.empty() && mc.get(download_key(flow.download_token)).has_value();
    std::string download = c.url(kDownloadPrefix + flow.download_token);
    if (c.req.json) {
        c.res.status = 200;
        c.res.content_type = "application/json";
        Json j{{"ok", true}, {"serial", flow.serial}, {"file_name", flow.file_name}};
        if (downloadable) j["download"] = download;
        j["csrf_token"] = c.csrf();
        c.res.body = json_body(j);
        return c.res;
    }
    PageData data{PageData::type::object};
    add_steps(data, 8, c.lang);
    data.set("user_id", flow.user_id);
    data.set("serial", flow.serial);
    data.set("not_before", local_date_time(flow.not_before, s.timezone, c.lang));
    data.set("not_after", local_date_time(flow.not_after, s.timezone, c.lang));
    data.set("file_name", flow.file_name);
    if (downloadable) data.set("download", download);
    return render_page(rt, c, "issue_result", page_words(c.lang).at("issue_result_title"),
                       std::move(data), 200, "", nullptr);
}

// ⑧ whose .p12 can no longer be handed over (its link expired, memcached
// lost it) while the certificate is still pending: that certificate is
// revoked and the flow goes back to ⑥, so the user can issue again.
bool handover_lost(Portal::Context &c, Kv &mc, Flow &flow) {
    if (flow.download_token.empty() || mc.get(download_key(flow.download_token))) return false;
    Store &store = thread_store(c.s.store_uri);
    auto cert = store.find_certificate(flow.serial);
    if (!cert || cert->status != CertStatus::pending) return false;
    bool revoked = revoke_if_pending(store, flow.serial, flow.user_id, "its download link expired");
    if (!revoked) return false;
    back_to_confirm(mc, flow, c.req.now, "expired");
    return true;
}

// ⑥ 発行 → ⑦ 発行中 → ⑧ 発行結果, as one transaction the user can finish:
// the certificate is recorded pending, its .p12 put where the download finds
// it, and it goes live only when the download is answered (issue_download).
// A failure on the way revokes what was recorded and returns to ⑥.
PortalResponse issue_confirm(const Runtime &rt, Portal::Context &c) {
    const Settings &s = c.s;
    Kv &mc = thread_kv(s);
    FlowCookie fc;
    std::optional<Flow> flow;
    try {
        flow = current_flow(c, mc, &fc);
        if (flow && flow->step == FlowStep::issuing && issuing_interrupted(*flow, c.req.now)) {
            c.res.log_error = "issuance for user " + flow->user_id +
                              " was interrupted (its worker is gone); ⑥ may be pressed again";
            back_to_confirm(mc, *flow, c.req.now, "interrupted");
        }
    } catch (const KvError &e) {
        c.res.log_error = e.what();
        return refusal(rt, c, ErrorCode::unavailable);
    }
    if (!flow) return refusal(rt, c, ErrorCode::flow_expired);

    if (c.req.method != "POST") {
        switch (flow->step) {
            case FlowStep::code_ok:
                return confirm_screen(rt, c, *flow);
            case FlowStep::issuing:
                return progress_screen(rt, c);
            case FlowStep::issued:
                if (handover_lost(c, mc, *flow)) return confirm_screen(rt, c, *flow);
                return result_screen(rt, c, mc, *flow);
            default:
                return refusal(rt, c, ErrorCode::flow_expired);
        }
    }
    if (c.req.form_malformed || !c.csrf_ok()) return refusal(rt, c, ErrorCode::csrf);
    if (flow->step == FlowStep::issued || flow->step == FlowStep::issuing) {
        // A second 発行 (a reload, a double click) issues nothing new.
        return go_next(c, c.url("issue/confirm"));
    }
    if (flow->step != FlowStep::code_ok) return refusal(rt, c, ErrorCode::flow_expired);

    // One issuance per flow at a time: the first to claim it makes the certificate.
    long ttl = static_cast<long>(flow->expires_at - c.req.now + 1);
    if (!mc.add(flow_claim_key(flow->id, "issue"), "1", ttl)) {
        return go_next(c, c.url("issue/confirm"));
    }
    std::string password;
    if (!unseal(fc.key, flow->sealed_password, &password)) {
        end_flow(mc, flow->id);
        return refusal(rt, c, ErrorCode::flow_expired);
    }
    flow->step = FlowStep::issuing;
    flow->issuing_by = this_worker();
    flow->issuing_since = c.req.now;
    flow->failure.clear();
    save_flow(mc, *flow, c.req.now);

    Store &store = thread_store(s.store_uri);
    IssuedCertificate issued;
    try {
        if (!flow->replace_serial.empty()) {
            // R20: the old certificate goes first (PC change); if the new one
            // then fails, ⑥ issues again without it.
            self_revoke(s, store, flow->user_id, flow->replace_serial);
            flow->replace_serial.clear();
            save_flow(mc, *flow, c.req.now);
        }
        test_delay(c, "keygen_delay_ms");
        std::optional<P12Keys> ahead = take_p12_keys(mc, fc, *flow);
        issued = issue_pending(s, store, *rt.ca, flow->user_id, password, c.req.now,
                               ahead ? &*ahead : nullptr);
        wipe(password);
        c.res.outcome.issued = true;
        c.res.outcome.p12_keys_ahead = ahead && ahead->iterations == s.p12_iterations;
    } catch (const std::exception &e) {
        // Nothing recorded: the flow goes back to ⑥ so 発行 can be pressed again.
        // Only a failed signature of the CA key is the HSM failing.
        if (dynamic_cast<const CaKeyError *>(&e) && rt.hsm_key()) rt.hsm_broken = true;
        wipe(password);
        c.res.log_error = std::string("issuance failed: ") + e.what();
        try {
            back_to_confirm(mc, *flow, c.req.now, "failed");
        } catch (const std::exception &) {
            // memcached is gone too: the flow ends with it; ④ starts a new one.
        }
        return confirm_screen(rt, c, *flow);
    }

    std::string token = base64url_encode(random_bytes(24));
    try {
        test_delay(c, "handover_delay_ms");
        std::string p12(issued.pkcs12.begin(), issued.pkcs12.end());
        mc.set(download_key(token), flow->id + "|" + p12, 300);
        wipe(p12);
        // The sealed password stays until the download: if the hand-over
        // fails, 発行 can be pressed again in this flow.
        flow->step = FlowStep::issued;
        flow->serial = issued.serial_hex;
        flow->file_name = issued.file_name;
        flow->not_before = issued.not_before;
        flow->not_after = issued.not_after;
        flow->download_token = token;
        flow->issuing_by.clear();
        flow->issuing_since = 0;
        save_flow(mc, *flow, c.req.now);
    } catch (const std::exception &e) {
        // The .p12 cannot reach the user: the certificate must not stay
        // behind. Revoked now (or by the sweep if the store is down too).
        c.res.log_error = std::string("issuance of ") + issued.serial_hex +
                          " could not be handed over: " + e.what();
        try {
            mc.remove(download_key(token));
        } catch (const std::exception &) {
        }
        try {
            abandon_issuance(store, flow->user_id, "the .p12 could not be handed over");
        } catch (const std::exception &e2) {
            c.res.log_error += std::string("; left to the sweep: ") + e2.what();
        }
        try {
            flow->serial.clear();
            back_to_confirm(mc, *flow, c.req.now, "failed");
        } catch (const std::exception &) {
        }
        flow->failure = "failed";
        return confirm_screen(rt, c, *flow);
    }

    std::string download = c.url(kDownloadPrefix + token);
    if (c.req.json) {
        c.res.status = 200;
        c.res.content_type = "application/json";
        c.res.body = json_body(Json{{"ok", true},
                                    {"next", c.url("issue/confirm")},
                                    {"download", download},
                                    {"serial", issued.serial_hex}});
        return c.res;
    }
    return go_next(c, c.url("issue/confirm"));
}

// The .p12, once, to the browser whose flow made it. Answering it is the
// hand-over: the certificate goes live here (and a renewal's old one gives way).
PortalResponse issue_download(const Runtime &rt, Portal::Context &c) {
    const Settings &s = c.s;
    std::string token = c.req.path.substr(sizeof(kDownloadPrefix) - 1);
    Kv &mc = thread_kv(s);
    FlowCookie fc;
    std::optional<Flow> flow;
    std::optional<std::string> value;
    try {
        flow = current_flow(c, mc, &fc);
        if (token.size() == 32 && flow) value = mc.get(download_key(token));
    } catch (const KvError &e) {
        c.res.log_error = e.what();
        return refusal(rt, c, ErrorCode::unavailable);
    }
    // The link of this flow's certificate pressed again after the download
    // (the automatic one, then the button): say so, not 404.
    auto downloaded = [&] {
        return flow && flow->step == FlowStep::issued && flow->download_token == token &&
               flow->sealed_password.empty();
    };
    auto bar = value ? value->find('|') : std::string::npos;
    if (!flow || !value || bar == std::string::npos || value->substr(0, bar) != flow->id ||
        flow->download_token != token) {
        return refusal(rt, c, downloaded() ? ErrorCode::already_downloaded : ErrorCode::not_found);
    }
    // Once: the first to claim the token gets the file.
    if (!mc.add(download_key(token) + ":used", "1", 600)) {
        return refusal(rt, c, ErrorCode::already_downloaded);
    }
    Store &store = thread_store(s.store_uri);
    try {
        hand_over(store, flow->serial, flow->user_id);
    } catch (const StoreConflict &e) {
        // Revoked meanwhile (a newer issuance, the sweep, the bank): not handed over.
        c.res.log_error = e.what();
        mc.remove(download_key(token));
        return refusal(rt, c, ErrorCode::not_found);
    } catch (const StoreError &e) {
        // Not live, not handed over: the same link may be tried again.
        c.res.log_error = e.what();
        mc.remove(download_key(token) + ":used");
        return refusal(rt, c, ErrorCode::unavailable);
    }
    mc.remove(download_key(token));
    flow->sealed_password.clear();
    try {
        save_flow(mc, *flow, c.req.now);
    } catch (const KvError &e) {
        // The sealed password dies with the flow anyway.
        c.res.log_error = e.what();
    }
    store.append_event(flow->user_id, "cert.downloaded", flow->serial, "client=" + c.req.client);
    c.res.status = 200;
    c.res.content_type = "application/x-pkcs12";
    c.res.attachment = flow->file_name;
    c.res.body = value->substr(bar + 1);
    return c.res;
}

// GET crl: the current CRL (DER), the same from every worker and node: the
// store keeps the last one signed. It is signed again when a
// certificate was revoked after it, when half its lifetime
// (certgate_crl_validity) has passed, or when the CA key changed; its number
// is the id of its crl.signed event, one sequence with `certgatectl crl`,
// so it only grows. Runs in the thread pool.
PortalResponse crl(const Runtime &rt, Portal::Context &c) {
    Store &store = thread_store(c.s.store_uri);
    const int64_t validity = c.s.crl_validity_seconds;
    auto fresh = [&](const std::optional<StoredCrl> &crl, int64_t now) {
        return crl && !crl->der.empty() && now < crl->this_update + validity / 2 &&
               now < crl->next_update && crl->next_update - crl->this_update <= validity &&
               !store.revoked_since(crl->number) && rt.ca->signed_crl(crl->der);
    };
    std::optional<StoredCrl> current = store.current_crl();
    if (!fresh(current, c.req.now)) {
        try {
            // One worker signs; one that waited for the lock takes its CRL.
            store.write([&] {
                const int64_t now = store.now();
                current = store.current_crl();
                if (fresh(current, now)) return;
                std::vector<RevokedEntry> revoked;
                for (const Certificate &cert : store.revoked_certificates()) {
                    revoked.push_back(
                        {cert.serial, static_cast<time_t>(cert.revoked_at), cert.reason});
                }
                StoredCrl crl;
                crl.number =
                    store.append_event("certgate", event_kind::kCrlSigned, "crl",
                                       "entries=" + std::to_string(revoked.size()) + " by=portal");
                crl.this_update = now;
                crl.next_update = now + validity;
                crl.der = rt.ca->make_crl_seconds(revoked, static_cast<time_t>(now), validity,
                                                  static_cast<uint64_t>(crl.number));
                store.save_crl(crl);
                current = std::move(crl);
            });
        } catch (const CaKeyError &) {
            if (rt.hsm_key()) rt.hsm_broken = true;  // as for a certificate
            throw;
        }
    }
    c.res.status = 200;
    c.res.content_type = "application/pkix-crl";
    c.res.no_store = false;
    c.res.body.assign(current->der.begin(), current->der.end());
    return c.res;
}

}  // namespace

bool issue_routes(const std::string &path) {
    return path == "issue" || path == "issue/code" || path == "issue/cancel" ||
           path == "issue/confirm" || path.rfind(kDownloadPrefix, 0) == 0 || path == "crl";
}

PortalResponse issue_screens(const Runtime &rt, Portal::Context &c) {
    const std::string &path = c.req.path;
    if (path == "issue") return issue_auth(rt, c);
    if (path == "issue/code") return issue_code(rt, c);
    if (path == "issue/confirm") return issue_confirm(rt, c);
    if (path.rfind(kDownloadPrefix, 0) == 0) return issue_download(rt, c);
    if (path == "crl") return crl(rt, c);
    return issue_cancel(rt, c);
}

}  // namespace certgate
