// certgate_require: the protected path. It decides from the TLS result and
// memory alone (no I/O): the client certificate must be one of our CA's and
// within its validity at this request, not only at the handshake.

#include <openssl/ssl.h>

#include <exception>

#include "core/errors.hpp"
#include "ngx_certgate_ctx.hpp"

static ngx_int_t ngx_certgate_refusal_handler(ngx_http_request_t *r) noexcept {
    ngx_certgate_ctx_t *ctx = ngx_certgate_get_ctx(r);
    if (ctx == nullptr || ctx->refusal == 0) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) return rc;
    return ngx_certgate_refuse(r, NGX_HTTP_UNAUTHORIZED,
                               static_cast<certgate::ErrorCode>(ctx->refusal - 1));
}

static ngx_int_t ngx_certgate_deny(ngx_http_request_t *r, certgate::ErrorCode code) {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "certgate: access refused: %s",
                  certgate::error_name(code));

    if (ngx_certgate_wants_json(r)) {
        // The JSON answer is written by the content phase, in place of the
        // location's own handler, so nginx finalizes it the usual way.
        ngx_certgate_ctx_t *ctx = ngx_certgate_get_ctx(r);
        if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        ctx->refusal = 1 + static_cast<ngx_uint_t>(code);
        r->content_handler = ngx_certgate_refusal_handler;
        return NGX_OK;
    }
    std::string to = cmcf->runtime->settings.portal_prefix + "?error=" + certgate::error_name(code);
    return ngx_certgate_redirect(r, to);
}

static std::string ngx_certgate_days_left(time_t not_after, time_t now) {
    if (not_after <= now) return "0";
    return std::to_string((not_after - now) / 86400);
}

ngx_int_t ngx_certgate_require_handler(ngx_http_request_t *r) noexcept {
    try {
        auto *lcf = static_cast<ngx_certgate_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_certgate_module));
        if (!lcf->require || r != r->main) return NGX_DECLINED;

        auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
            ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
        if (cmcf->runtime == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;

        X509 *peer = nullptr;
        if (r->connection->ssl != nullptr) {
            peer = SSL_get0_peer_certificate(r->connection->ssl->connection);
        }
        if (peer == nullptr) return ngx_certgate_deny(r, certgate::ErrorCode::no_certificate);

        time_t now = ngx_time();
        auto result = cmcf->runtime->client_check->check(peer, now);
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "certgate require: client certificate check: %s",
                       certgate::to_string(result));
        switch (result) {
        case certgate::ClientCertCheck::Result::ok: break;
        case certgate::ClientCertCheck::Result::expired:
            return ngx_certgate_deny(r, certgate::ErrorCode::certificate_expired);
        default:
            return ngx_certgate_deny(r, certgate::ErrorCode::certificate_mismatch);
        }

        ngx_certgate_ctx_t *ctx = ngx_certgate_get_ctx(r);
        if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        if (!ctx->identity_set) {
            certgate::CertificateIdentity id = certgate::certificate_identity(peer);
            ctx->user = ngx_certgate_pstr(r->pool, id.common_name);
            ctx->org = ngx_certgate_pstr(r->pool, id.organisation);
            ctx->serial = ngx_certgate_pstr(r->pool, id.serial_hex);
            ctx->days_left = ngx_certgate_pstr(r->pool, ngx_certgate_days_left(id.not_after, now));
            ctx->identity_set = 1;
        }
        return NGX_OK;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
