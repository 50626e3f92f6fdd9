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
    struct Pass {
        const void *conf = nullptr;  // the main conf it was made under; nullptr: none
        ngx_atomic_uint_t changes = 0;
        time_t from = 0;
        time_t until = 0;
        bool master = false;
        std::string cookie;  // the request's one Cookie header
        // The identity its requests get; an earlier one that requests may
        // still point to is kept in `retired` until the connection ends.
        std::unique_ptr<const ngx_certgate_owned_identity_t> identity;
    } pass;
    std::vector<std::unique_ptr<const ngx_certgate_owned_identity_t>> retired;
    // The peer this one replaced on the connection, kept for the same reason.
    std::unique_ptr<ngx_certgate_peer_t> previous;
};

ngx_certgate_peer_t *ngx_certgate_peer(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf);

// The live session of this request, kept with its TLS connection (so a
// keep-alive client's HMAC is checked once); nullptr and *why otherwise.
// `changes`: the revocation set's change count read at the start of the
// request (0: always ask the set whether the session ended).
const certgate::Session *ngx_certgate_session(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                              ngx_certgate_peer_t *peer, certgate::ErrorCode *why,
                                              ngx_atomic_uint_t changes = 0);
