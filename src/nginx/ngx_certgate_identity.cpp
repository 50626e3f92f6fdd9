// The client certificate and session of a request (see the header).

#include "nginx/ngx_certgate_identity.hpp"

#include <openssl/ssl.h>

#include <memory>

#include "core/web/form.hpp"
#include "core/web/portal.hpp"
#include "nginx/ngx_certgate_revocation.hpp"

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

static void ngx_certgate_peer_slots_free(void *data) {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(data);
    if (cmcf->peer_slots != nullptr) ngx_free(cmcf->peer_slots);
    cmcf->peer_slots = nullptr;
    cmcf->peer_nslots = 0;
}

ngx_int_t ngx_certgate_peer_slots_cleanup(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr) return NGX_ERROR;
    cln->handler = ngx_certgate_peer_slots_free;
    cln->data = cmcf;
    return NGX_OK;
}

// Records peer as connection c's (see ngx_certgate_known_peer). The record
// has a slot for each socket a worker of this many connections is likely to
// use; a connection on a socket past them is found through OpenSSL.
static void ngx_certgate_record_peer(ngx_certgate_main_conf_t *cmcf, const ngx_connection_t *c,
                                     ngx_certgate_peer_t *peer) {
    if (cmcf->peer_slots == nullptr) {
        ngx_uint_t n = 2 * ngx_cycle->connection_n + 64;
        cmcf->peer_slots = static_cast<ngx_certgate_peer_slot_t *>(
            ngx_calloc(n * sizeof(ngx_certgate_peer_slot_t), c->log));
        if (cmcf->peer_slots == nullptr) return;  // found through OpenSSL
        cmcf->peer_nslots = n;
    }
    auto fd = static_cast<ngx_uint_t>(c->fd);
    if (fd >= cmcf->peer_nslots) return;
    cmcf->peer_slots[fd] = {c->number, peer};
}

ngx_certgate_peer_t *ngx_certgate_peer(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf) {
    if (r->connection->ssl == nullptr) return nullptr;
    ngx_certgate_peer_t *known = ngx_certgate_known_peer(cmcf, r->connection);
    if (known != nullptr) return known;
    SSL *ssl = r->connection->ssl->connection;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr) return nullptr;
    auto *cached = static_cast<ngx_certgate_peer_t *>(SSL_get_ex_data(ssl, ngx_certgate_ssl_index));
    if (cached != nullptr && cached->cert == cert) {
        ngx_certgate_record_peer(cmcf, r->connection, cached);
        return cached;
    }

    auto peer = std::make_unique<ngx_certgate_peer_t>();
    peer->cert = cert;
    // Dates are checked per request below; here only whether our CA signed it.
    auto result = cmcf->runtime->client_check->check(cert, ngx_time());
    peer->ours = result != certgate::ClientCertCheck::Result::not_ours;
    if (peer->ours) peer->id = certgate::certificate_identity(cert);
    // Requests of the connection may still point to the old one's identity.
    peer->previous.reset(cached);
    if (SSL_set_ex_data(ssl, ngx_certgate_ssl_index, peer.get()) != 1) {
        (void)peer->previous.release();  // still the connection's
        return nullptr;
    }
    ngx_certgate_record_peer(cmcf, r->connection, peer.get());
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
    ngx_certgate_each_cookie(r, [&](const ngx_str_t &v) {
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
const certgate::Session *ngx_certgate_session(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                              ngx_certgate_peer_t *peer, certgate::ErrorCode *why,
                                              ngx_atomic_uint_t changes) {
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
