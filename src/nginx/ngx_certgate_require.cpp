// certgate_require: the protected path. It decides from the TLS result, the
// session cookie and the shared-memory revocation set alone (no I/O): a
// logged-in user, whose session is bound to the client certificate it
// presents, that certificate ours, valid at this request (not only at the
// handshake) and not revoked.

#include <openssl/ssl.h>

#include <exception>

#include "core/web/errors.hpp"
#include "core/web/form.hpp"
#include "core/web/portal.hpp"
#include "core/app/session.hpp"
#include "nginx/ngx_certgate_ctx.hpp"
#include "nginx/ngx_certgate_revocation.hpp"

// The result of checking a connection's client certificate against our CA,
// kept with the TLS connection: the signature is checked once per
// connection, the dates and the revocation set at every request.
struct ngx_certgate_peer_t {
    X509 *cert;  // the peer certificate this was computed for (not owned)
    bool ours;
    certgate::CertificateIdentity id;
    // The session cookie last verified on this connection, so a keep-alive
    // client's HMAC is checked once, not per request (the timeouts and the
    // revocation set still are).
    std::string session_value;
    certgate::Session session;
    // The revocation set's change count (ngx_certgate_set_changes) when this
    // certificate and session last passed every check against the set; while
    // the count is the same, the serial is still not revoked and the session
    // not ended. 0: check again.
    ngx_atomic_uint_t clean_changes = 0;
};

static int ngx_certgate_ssl_index = -1;

static void ngx_certgate_peer_free(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
    delete static_cast<ngx_certgate_peer_t *>(ptr);
}

ngx_int_t ngx_certgate_require_init() noexcept {
    if (ngx_certgate_ssl_index == -1) {
        ngx_certgate_ssl_index =
            SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, ngx_certgate_peer_free);
    }
    return ngx_certgate_ssl_index == -1 ? NGX_ERROR : NGX_OK;
}

ngx_certgate_peer_t *ngx_certgate_peer(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf) {
    if (r->connection->ssl == nullptr) return nullptr;
    SSL *ssl = r->connection->ssl->connection;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr) return nullptr;
    auto *cached = static_cast<ngx_certgate_peer_t *>(SSL_get_ex_data(ssl, ngx_certgate_ssl_index));
    if (cached != nullptr && cached->cert == cert) return cached;

    auto peer = std::make_unique<ngx_certgate_peer_t>();
    peer->cert = cert;
    // Dates are checked per request below; here only whether our CA signed it.
    auto result = cmcf->runtime->client_check->check(cert, ngx_time());
    peer->ours = result != certgate::ClientCertCheck::Result::not_ours;
    if (peer->ours) peer->id = certgate::certificate_identity(cert);
    delete cached;
    if (SSL_set_ex_data(ssl, ngx_certgate_ssl_index, peer.get()) != 1) return nullptr;
    return peer.release();
}

void ngx_certgate_present(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                          certgate::PresentedCertificate *pc) {
    const ngx_certgate_peer_t *peer = ngx_certgate_peer(r, cmcf);
    if (peer == nullptr) return;
    pc->present = true;
    pc->ours = peer->ours;
    if (!peer->ours) return;
    time_t now = ngx_time();
    pc->expired = now > peer->id.not_after || now < peer->id.not_before;
    pc->serial = peer->id.serial_hex;
    pc->user_id = peer->id.common_name;
    pc->org = peer->id.organisation;
    pc->not_after = peer->id.not_after;
    pc->revoked = ngx_certgate_serial_revoked(cmcf, peer->id.serial_hex);
}

// The session cookie's value, a view into the request's Cookie headers.
static std::string_view ngx_certgate_session_cookie(ngx_http_request_t *r) {
    std::string_view found;
    ngx_certgate_each_header(r, "cookie", [&](const ngx_str_t &v) {
        found = certgate::find_cookie_view(
            std::string_view(reinterpret_cast<char *>(v.data), v.len), certgate::kSessionCookie);
        return !found.empty();
    });
    return found;
}

// The live session of this request, kept with its TLS connection (so a
// keep-alive client's HMAC is checked once); nullptr and *why otherwise.
//
// `changes` is the set's change count read at the start of the request; the
// set is asked whether the session ended unless this connection's session
// passed that check at the same count (0: always ask).
static const certgate::Session *ngx_certgate_session(ngx_http_request_t *r,
                                                     ngx_certgate_main_conf_t *cmcf,
                                                     ngx_certgate_peer_t *peer,
                                                     certgate::ErrorCode *why,
                                                     ngx_atomic_uint_t changes = 0) {
    const certgate::Settings &s = cmcf->runtime->settings;
    *why = certgate::ErrorCode::login_required;
    std::string_view value = ngx_certgate_session_cookie(r);
    if (value.empty() || peer == nullptr) return nullptr;
    if (peer->session_value.empty() || value != peer->session_value) {
        auto decoded = certgate::decode_session(s.secret, std::string(value));
        if (!decoded) return nullptr;
        peer->session_value.assign(value.data(), value.size());
        peer->session = std::move(*decoded);
        peer->clean_changes = 0;  // a new session: ask the set about it
    }
    const certgate::Session *session = &peer->session;
    auto check = certgate::check_session(*session, peer->id.serial_hex, ngx_time(),
                                         s.session_idle_s, s.session_absolute_s);
    if (check == certgate::SessionCheck::wrong_certificate) {
        *why = certgate::ErrorCode::certificate_mismatch;
        return nullptr;
    }
    if (check == certgate::SessionCheck::expired) return nullptr;
    bool known_live = changes != 0 && peer->clean_changes == changes;
    if (!known_live &&
        ngx_certgate_session_ended(cmcf, session->id, session->user_id, session->epoch)) {
        return nullptr;
    }
    return session;
}

std::optional<certgate::Session> ngx_certgate_live_session(ngx_http_request_t *r,
                                                          ngx_certgate_main_conf_t *cmcf,
                                                          certgate::ErrorCode *why) {
    ngx_certgate_peer_t *peer = ngx_certgate_peer(r, cmcf);
    if (peer == nullptr || !peer->ours) {
        *why = certgate::ErrorCode::no_certificate;
        return std::nullopt;
    }
    const certgate::Session *session = ngx_certgate_session(r, cmcf, peer, why);
    if (session == nullptr) return std::nullopt;
    return *session;
}

static ngx_uint_t ngx_certgate_status(certgate::ErrorCode code) {
    switch (code) {
    case certgate::ErrorCode::forbidden: return NGX_HTTP_FORBIDDEN;
    case certgate::ErrorCode::unavailable: return NGX_HTTP_SERVICE_UNAVAILABLE;
    default: return NGX_HTTP_UNAUTHORIZED;
    }
}

// --- the gate's state, kept across internal and named redirects ----------------

// nginx zeroes r->ctx on every internal or named redirect (try_files, index,
// error_page, X-Accel-Redirect); the gate's state also hangs on the request
// pool as a cleanup, which those redirects keep, and is found there again.
static void ngx_certgate_gate_mark(void *) noexcept {}

ngx_certgate_ctx_t *ngx_certgate_find_ctx(ngx_http_request_t *r) noexcept {
    auto *ctx =
        static_cast<ngx_certgate_ctx_t *>(ngx_http_get_module_ctx(r, ngx_http_certgate_module));
    if (ctx != nullptr) return ctx;
    for (ngx_pool_cleanup_t *cln = r->pool->cleanup; cln != nullptr; cln = cln->next) {
        if (cln->handler != ngx_certgate_gate_mark) continue;
        ctx = static_cast<ngx_certgate_ctx_t *>(cln->data);
        if (ctx->r != r) continue;  // a subrequest's state: subrequests share the main pool
        ngx_http_set_ctx(r, ctx, ngx_http_certgate_module);
        return ctx;
    }
    return nullptr;
}

ngx_certgate_ctx_t *ngx_certgate_get_ctx(ngx_http_request_t *r) noexcept {
    ngx_certgate_ctx_t *ctx = ngx_certgate_find_ctx(r);
    if (ctx != nullptr) return ctx;
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_certgate_ctx_t));
    if (cln == nullptr) return nullptr;
    ctx = static_cast<ngx_certgate_ctx_t *>(cln->data);
    ngx_memzero(ctx, sizeof(ngx_certgate_ctx_t));
    ctx->r = r;
    cln->handler = ngx_certgate_gate_mark;
    ngx_http_set_ctx(r, ctx, ngx_http_certgate_module);
    return ctx;
}

// --- refusals -------------------------------------------------------------------

// The refusal as the client gets it: JSON or a page with its status, or for a
// browser that only needs to log in a 302 to the login screen. Sent from here,
// never left to a later phase, so no error_page, try_files, mirror or content
// handler of the location can turn it into something else.
static ngx_int_t ngx_certgate_send_refusal(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                           certgate::ErrorCode code) {
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) return rc;
    if (ngx_certgate_wants_json(r) || code == certgate::ErrorCode::forbidden ||
        code == certgate::ErrorCode::unavailable) {
        return ngx_certgate_refuse(r, ngx_certgate_status(code), code);
    }
    // A browser goes to the login screen and comes back after login.
    std::string to = cmcf->runtime->settings.portal_prefix;
    if (code == certgate::ErrorCode::login_required) {
        std::string back = ngx_certgate_str(r->uri);
        if (r->args.len) back += "?" + ngx_certgate_str(r->args);
        to += "?return=" + certgate::url_encode(back);
    } else {
        to += "?error=" + std::string(certgate::error_name(code));
    }
    rc = ngx_certgate_redirect(r, to);
    if (rc != NGX_HTTP_MOVED_TEMPORARILY) return rc;
    return ngx_certgate_send(r, NGX_HTTP_MOVED_TEMPORARILY, "text/html; charset=utf-8", "", false);
}

// Ends a refused request here. The phase checkers take NGX_DONE as "the
// request is handled", so neither `satisfy any` nor a later phase can let it
// on; a subrequest (auth_request, SSI) ends with the status alone.
static ngx_int_t ngx_certgate_deny(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                   certgate::ErrorCode code) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "certgate: access refused: %s",
                  certgate::error_name(code));
    ngx_int_t rc = r == r->main ? ngx_certgate_send_refusal(r, cmcf, code)
                                : static_cast<ngx_int_t>(ngx_certgate_status(code));
    ngx_http_finalize_request(r, rc);
    return NGX_DONE;
}

// --- the decision ---------------------------------------------------------------

// Whether this request, as it stands, may pass: the checks of the protected
// path (no I/O). True with the identity kept in ctx, or false and the refusal.
static bool ngx_certgate_decide(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                ngx_certgate_ctx_t *ctx, bool master,
                                certgate::ErrorCode *refusal) {
    using certgate::ErrorCode;

    // The set's change count, read before anything is decided: a change
    // after this read makes the next request check again.
    ngx_atomic_uint_t changes = ngx_certgate_set_changes(cmcf);
    ngx_certgate_peer_t *peer = ngx_certgate_peer(r, cmcf);
    // This connection's certificate passed the set at this count already.
    bool known_clean = changes != 0 && peer != nullptr && peer->clean_changes == changes;

    // Until the set is loaded, nothing proves a certificate is not revoked.
    if (!known_clean && ngx_certgate_revocation_state(cmcf) != NGX_CERTGATE_SET_READY) {
        *refusal = ErrorCode::unavailable;
        return false;
    }
    if (peer == nullptr) {
        *refusal = ErrorCode::no_certificate;
        return false;
    }
    if (!peer->ours) {
        *refusal = ErrorCode::certificate_mismatch;
        return false;
    }
    time_t now = ngx_time();
    if (now > peer->id.not_after || now < peer->id.not_before) {
        *refusal = ErrorCode::certificate_expired;
        return false;
    }
    if (!known_clean && ngx_certgate_serial_revoked(cmcf, peer->id.serial_hex)) {
        *refusal = ErrorCode::certificate_revoked;
        return false;
    }

    ErrorCode why;
    const certgate::Session *session = ngx_certgate_session(r, cmcf, peer, &why, changes);
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "certgate require: certificate ok, session %s (%s)", session ? "live" : "none",
                   session ? "" : certgate::error_name(why));
    if (session == nullptr) {
        *refusal = why;
        return false;
    }
    if (session->user_id != peer->id.common_name) {
        *refusal = ErrorCode::certificate_mismatch;
        return false;
    }
    if (master && session->role != certgate::Role::master) {
        *refusal = ErrorCode::forbidden;
        return false;
    }

    const certgate::Settings &s = cmcf->runtime->settings;
    if (r == r->main && certgate::session_needs_refresh(*session, now, s.session_idle_s)) {
        peer->session.last_seen = now;
        peer->session_value = certgate::encode_session(s.secret, peer->session);
        if (ngx_certgate_set_cookie(r, certgate::kSessionCookie, peer->session_value) != NGX_OK) {
            *refusal = ErrorCode::unavailable;
            return false;
        }
    }

    // Every check against the set passed at `changes`.
    peer->clean_changes = changes;

    if (!ctx->identity_set) {
        ctx->user = ngx_certgate_pstr(r->pool, session->user_id);
        ctx->org = ngx_certgate_pstr(r->pool, session->org);
        const char *role = certgate::to_string(session->role);
        ctx->role.data = (u_char *)role;
        ctx->role.len = ngx_strlen(role);
        ctx->serial = ngx_certgate_pstr(r->pool, peer->id.serial_hex);
        long days =
            peer->id.not_after > now ? static_cast<long>((peer->id.not_after - now) / 86400) : 0;
        ctx->days_left.data = static_cast<u_char *>(ngx_pnalloc(r->pool, NGX_INT_T_LEN));
        if (ctx->days_left.data == nullptr) {
            *refusal = ErrorCode::unavailable;
            return false;
        }
        ctx->days_left.len = ngx_sprintf(ctx->days_left.data, "%l", days) - ctx->days_left.data;
        ctx->identity_set = 1;
    }
    if (master) ctx->passed_master = 1;
    ctx->passed = 1;
    return true;
}

// The gate, run in the rewrite phase (before the location's own rewrite,
// return and set directives) and again in the access phase. A request that
// entered a protected location stays protected wherever a rewrite or an
// internal redirect takes it; once it passed, the later checks are free.
static ngx_int_t ngx_certgate_gate(ngx_http_request_t *r) noexcept {
    try {
        auto *lcf = static_cast<ngx_certgate_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_certgate_module));
        ngx_certgate_ctx_t *ctx = ngx_certgate_find_ctx(r);
        if (!lcf->require && (ctx == nullptr || !ctx->required)) return NGX_DECLINED;

        auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
            ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
        if (cmcf->runtime == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        if (ctx == nullptr) ctx = ngx_certgate_get_ctx(r);
        if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        if (lcf->require) {
            ctx->required = 1;
            if (lcf->require_master) ctx->required_master = 1;
        }
        bool master = ctx->required_master;
        if (ctx->passed && (!master || ctx->passed_master)) return NGX_DECLINED;

        certgate::ErrorCode refusal;
        if (!ngx_certgate_decide(r, cmcf, ctx, master, &refusal)) {
            return ngx_certgate_deny(r, cmcf, refusal);
        }
        return NGX_DECLINED;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

ngx_int_t ngx_certgate_require_rewrite_handler(ngx_http_request_t *r) noexcept {
    return ngx_certgate_gate(r);
}

// In the access phase a request that passed the gate counts as allowed, so
// under `satisfy any` the gate is one of the ways in; it is never skipped.
ngx_int_t ngx_certgate_require_handler(ngx_http_request_t *r) noexcept {
    ngx_int_t rc = ngx_certgate_gate(r);
    if (rc != NGX_DECLINED) return rc;
    ngx_certgate_ctx_t *ctx = ngx_certgate_find_ctx(r);
    return ctx != nullptr && ctx->passed ? NGX_OK : NGX_DECLINED;
}
