// The per-source throttle of failed authentications (ngx_certgate_source.cpp).
#pragma once

#include "nginx/ngx_certgate.hpp"

struct ngx_certgate_source_pending_t;

// Configuration: adds the zone (init_main_conf) unless certgate_source_limit is off.
ngx_int_t ngx_certgate_source_zone(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;

// Before an authentication is posted: 0 and *pending set (the attempt is in
// flight until the request's pool goes), or the seconds the client must wait
// (429 with Retry-After), or -1 on allocation failure. Microseconds, no I/O.
long ngx_certgate_source_check(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                               ngx_certgate_source_pending_t **pending) noexcept;

// The attempt failed: it counts against its address when the request ends.
void ngx_certgate_source_failed(ngx_certgate_source_pending_t *pending) noexcept;
