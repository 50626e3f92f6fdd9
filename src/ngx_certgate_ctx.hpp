// The per-request context: who the request is, once certgate_require has
// decided. Lives in the request pool, so it holds only trivially
// destructible nginx strings.
#pragma once

#include "ngx_certgate.hpp"

struct ngx_certgate_ctx_t {
    // set by ngx_pcalloc(): every string empty, identity_set 0.
    ngx_str_t user;
    ngx_str_t org;
    ngx_str_t role;
    ngx_str_t serial;
    ngx_str_t days_left;
    ngx_uint_t refusal;  // 1 + certgate::ErrorCode when a JSON refusal is due
    unsigned identity_set : 1;
};

static_assert(std::is_trivially_destructible<ngx_certgate_ctx_t>::value,
              "request ctx lives in pool memory");

// The request's context, created on first use; nullptr when out of memory.
ngx_certgate_ctx_t *ngx_certgate_get_ctx(ngx_http_request_t *r) noexcept;

// A copy of s in r's pool, as an nginx string (empty on allocation failure).
ngx_str_t ngx_certgate_pstr(ngx_pool_t *pool, const std::string &s) noexcept;
