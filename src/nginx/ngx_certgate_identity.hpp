// Who is asking: the connection's client certificate as checked against our
// CA (once per TLS connection) and the request's session cookie.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/app/session.hpp"
#include "nginx/ngx_certgate.hpp"
#include "nginx/ngx_certgate_ctx.hpp"

// An identity with the bytes its strings point to.
struct ngx_certgate_owned_identity_t {
    std::string text;
    ngx_certgate_identity_t strs;
};

// The result of checking a connection's client certificate against our CA,
// kept with the TLS connection: the signature is checked once per
// connection, the dates and the revocation set at every request.
struct ngx_certgate_peer_t {
    // A Cookie header this long or shorter is kept in the Pass itself.
    static constexpr size_t kInlineCookie = 256;

    X509 *cert;  // the peer certificate this was computed for (not owned)
    bool ours;
    certgate::CertificateIdentity id;
    // The session cookie last verified on this connection, so a keep-alive
    // client's HMAC is checked once, not per request (the timeouts and the
    // revocation set still are).
    std::string session_value;
    certgate::Session session;
    // The revocation set's change count (ngx_certgate_set_now) when this
    // certificate and session last passed every check against the set; while
    // the count is the same, the serial is still not revoked and the session
    // not ended. 0: check again.
    ngx_atomic_uint_t clean_changes = 0;

    // The last request on this connection that passed every check of the
    // protected path (ngx_certgate_require.cpp). A later request passes on
    // it alone while everything those checks read is the same: the same
    // Cookie header bytes (so the same session cookie), the same
    // configuration, the revocation set at the same change count, a time in
    // [from, until) (the certificate's dates, the session's timeouts and
    // refresh, the whole days left), and no stricter role.
    //
    // What a keep-alive request compares comes first, on one cache line
    // with the start of the cookie.
    struct alignas(64) Pass {
        const void *conf = nullptr;  // the main conf it was made under; nullptr: none
        ngx_atomic_uint_t changes = 0;
        time_t from = 0;
        time_t until = 0;
        bool master = false;
        // The request's one Cookie header: its bytes in `cookie` when they
        // fit, else in long_cookie.
        size_t cookie_len = 0;
        u_char cookie[kInlineCookie];
        std::string long_cookie;
        const u_char *cookie_data() const {
            return cookie_len <= kInlineCookie
                       ? cookie
                       : reinterpret_cast<const u_char *>(long_cookie.data());
        }
        // The identity its requests get; an earlier one that requests may
        // still point to is kept in `retired` until the connection ends.
        std::unique_ptr<const ngx_certgate_owned_identity_t> identity;
    } pass;
    std::vector<std::unique_ptr<const ngx_certgate_owned_identity_t>> retired;
    // The peer this one replaced on the connection, kept for the same reason.
    std::unique_ptr<ngx_certgate_peer_t> previous;
};

// The connection's client certificate check, made once per TLS connection
// (nullptr: no certificate); the worker's record by socket finds it again.
ngx_certgate_peer_t *ngx_certgate_peer(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf);

// The check the worker recorded for connection c, or nullptr (none yet, or
// the record is of an earlier connection on the same socket: connection
// numbers are never used twice). An HTTP/2 stream's connection is a copy of
// its TLS connection, with the same socket and number. The peer lives as
// long as the TLS connection, and its certificate cannot change there:
// nginx refuses renegotiation and offers no post-handshake authentication.
inline ngx_certgate_peer_t *ngx_certgate_known_peer(const ngx_certgate_main_conf_t *cmcf,
                                                    const ngx_connection_t *c) {
    auto fd = static_cast<ngx_uint_t>(c->fd);
    if (fd >= cmcf->peer_nslots) return nullptr;
    const ngx_certgate_peer_slot_t &slot = cmcf->peer_slots[fd];
    return slot.number == c->number ? slot.peer : nullptr;
}

// The live session of this request, kept with its TLS connection (so a
// keep-alive client's HMAC is checked once); nullptr and *why otherwise.
// `changes`: the revocation set's change count read at the start of the
// request (0: always ask the set whether the session ended).
const certgate::Session *ngx_certgate_session(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                              ngx_certgate_peer_t *peer, certgate::ErrorCode *why,
                                              ngx_atomic_uint_t changes = 0);
