// The per-request state of the gate: whether the request went through a
// protected location, and who it is once certgate_require has decided. Lives
// in the request pool, so it holds only trivially destructible nginx strings.
#pragma once

#include "nginx/ngx_certgate.hpp"

// Who a request that passed the gate is, as the variables show it. Made once
// per connection and identity (ngx_certgate_peer_t::Pass) and never changed,
// it lives as long as the TLS connection, which outlives its requests.
struct ngx_certgate_identity_t {
    ngx_str_t user;
    ngx_str_t org;
    ngx_str_t role;
    ngx_str_t serial;
    ngx_str_t days_left;
};

struct ngx_certgate_ctx_t {
    // zeroed when made: no identity, every flag 0.
    ngx_http_request_t *r;                    // the request (or subrequest) this state belongs to
    const ngx_certgate_identity_t *identity;  // set when the gate let it through
    unsigned required : 1;                    // the request entered a certgate_require location
    unsigned required_master : 1;             // ... one with role=master
    unsigned passed : 1;                      // the gate let it through
    unsigned passed_master : 1;               // ... as a master user
};

static_assert(std::is_trivially_destructible<ngx_certgate_ctx_t>::value,
              "request ctx lives in pool memory");

// The request's gate state, kept across internal and named redirects (see
// ngx_certgate_require.cpp), or nullptr when there is none (the gate makes
// it).
ngx_certgate_ctx_t *ngx_certgate_find_ctx(ngx_http_request_t *r) noexcept;

// A copy of s in r's pool, as an nginx string (empty on allocation failure).
ngx_str_t ngx_certgate_pstr(ngx_pool_t *pool, const std::string &s) noexcept;
