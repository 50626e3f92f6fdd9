// Who is asking: the connection's client certificate as checked against our
// CA (once per TLS connection) and the request's session cookie.
#pragma once

#include "core/app/session.hpp"
#include "nginx/ngx_certgate.hpp"

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

ngx_certgate_peer_t *ngx_certgate_peer(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf);

// The live session of this request, kept with its TLS connection (so a
// keep-alive client's HMAC is checked once); nullptr and *why otherwise.
// `changes`: the revocation set's change count read at the start of the
// request (0: always ask the set whether the session ended).
const certgate::Session *ngx_certgate_session(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                              ngx_certgate_peer_t *peer, certgate::ErrorCode *why,
                                              ngx_atomic_uint_t changes = 0);
