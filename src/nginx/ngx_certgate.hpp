// The one door from C++ into nginx: its headers inside extern "C", the
// module symbol, and the configuration and context types the glue shares.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

// Hidden: the module's own code reaches it without the GOT; nginx finds it
// through ngx_modules[] of the same object.
extern ngx_module_t ngx_http_certgate_module __attribute__((visibility("hidden")));
}

// The few functions every keep-alive protected request runs: kept together
// in .text.hot, away from the rest of the module.
#define NGX_CERTGATE_HOT __attribute__((hot))

#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "core/app/runtime.hpp"
#include "core/config/directives.hpp"
#include "core/web/errors.hpp"
#include "core/web/portal.hpp"

// Where a directive was written, so checks made after the whole http{} block
// is read can still name the file and line.
struct ngx_certgate_conf_place_t {
    ngx_str_t file;
    ngx_uint_t line;
};

struct ngx_certgate_set_head_t;  // ngx_certgate_revocation.hpp
struct ngx_certgate_peer_t;      // ngx_certgate_identity.hpp

// A worker's record of the client certificate check of the connection on a
// socket (ngx_certgate_identity.cpp): valid while `number` is the
// connection's c->number.
struct ngx_certgate_peer_slot_t {
    ngx_atomic_uint_t number;
    ngx_certgate_peer_t *peer;
};

// Made 64-aligned and zeroed (ngx_certgate_create_main_conf): what every
// protected request reads comes first, on one cache line.
struct alignas(64) ngx_certgate_main_conf_t {
    // The per-configuration C++ state (settings, CA, secret); deleted by a
    // cleanup of the configuration pool. NULL until the http{} block is read.
    certgate::Runtime *runtime;
    // The revocation zone's head (ngx_certgate_revocation.cpp), set when the
    // zone is initialised: the protected path reads it without the zone's
    // structures in between. nullptr: no zone.
    const ngx_certgate_set_head_t *revocation_sh;
    ngx_msec_t sync_max_lag;  // 0 means off
    // This worker's record by socket fd (see ngx_certgate_peer_slot_t):
    // made at the first protected request, freed with the configuration.
    ngx_certgate_peer_slot_t *peer_slots;
    ngx_uint_t peer_nslots;

    // The ngx_str_t below are empty until their directive is read; the
    // place records are zero.

    // What the shared directive table (core/config/directives.hpp) read:
    // a C++ object, deleted by a cleanup of the configuration pool.
    certgate::ConfValues *values;

    ngx_str_t thread_pool_name;
    ngx_str_t crypto_thread_pool_name;  // empty: crypto shares thread_pool

    // Copies of values->settings for the timers, which also run without a runtime.
    ngx_msec_t sync_interval;
    ngx_msec_t notify_interval;  // 0 means off
    time_t session_absolute;

    ngx_uint_t source_failures;  // R21: per-source throttle; 0 means off
    time_t source_window;
    size_t source_zone_size;
    ngx_shm_zone_t *source_zone;

    ngx_array_t *userid_rules;    // of ngx_regex_t *
    ngx_array_t *password_rules;  // of ngx_regex_t *

    ngx_str_t portal_prefix;  // the first certgate_portal location

    ngx_certgate_conf_place_t store_place;
    ngx_certgate_conf_place_t secret_place;
    ngx_certgate_conf_place_t ca_place;
    ngx_certgate_conf_place_t ca_previous_place;
    ngx_certgate_conf_place_t ca_key_place;
    ngx_certgate_conf_place_t templates_place;
    ngx_certgate_conf_place_t use_place;  // first certgate_portal/_require

    ngx_flag_t custom_userid_rules;    // certgate_userid_rule was given
    ngx_flag_t custom_password_rules;  // certgate_password_rule was given

    size_t revocation_zone_size;
    ngx_shm_zone_t *revocation_zone;

    ngx_shm_zone_t *metrics_zone;  // ngx_certgate_metrics.cpp
    ngx_flag_t metrics;            // some location has certgate_metrics
    ngx_str_t audit;               // certgate_audit target, validated

    ngx_flag_t used;  // some location has certgate_portal or certgate_require
    ngx_thread_pool_t *thread_pool;
    // The pool for argon2, key generation and signing; thread_pool itself
    // when certgate_crypto_thread_pool is not given.
    ngx_thread_pool_t *crypto_thread_pool;
};

enum ngx_certgate_lang_e { NGX_CERTGATE_LANG_JA = 0, NGX_CERTGATE_LANG_EN, NGX_CERTGATE_LANG_AUTO };

struct ngx_certgate_srv_conf_t {
    ngx_uint_t language;
    // certgate_expired_certificates pass: the TLS handshake of this server
    // does not check client certificates' dates; certgate checks them per request.
    ngx_uint_t expired_pass;
};

struct ngx_certgate_loc_conf_t {
    ngx_flag_t portal;
    ngx_str_t portal_prefix;
    ngx_flag_t require;
    ngx_flag_t require_master;
    ngx_flag_t metrics;  // certgate_metrics (set by ngx_pcalloc to 0)
};

static_assert(std::is_trivially_destructible<ngx_certgate_main_conf_t>::value,
              "main conf lives in pool memory");
static_assert(std::is_trivially_destructible<ngx_certgate_loc_conf_t>::value,
              "loc conf lives in pool memory");

// Directive handlers (ngx_certgate_conf.cpp). Those of the shared table
// parse with it; the others need nginx's structures (locations, zones, regexes).
char *ngx_certgate_set_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_source_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_portal(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_require(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
// The module's commands[] and the shared table name the same directives.
ngx_int_t ngx_certgate_check_commands(ngx_conf_t *cf) noexcept;

// R8 and R9 as PCRE2 patterns, where no certgate_*_rule replaced them.
ngx_int_t ngx_certgate_default_rules(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;

// The configuration's lifecycle (ngx_certgate_conf_init.cpp): the shared
// values made with the main conf, checked when http{} ends, and the C++
// runtime built from them.
ngx_int_t ngx_certgate_create_values(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;
ngx_int_t ngx_certgate_init_values(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;
ngx_int_t ngx_certgate_init_runtime(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;

// Handlers (ngx_certgate_portal.cpp, ngx_certgate_require.cpp).
ngx_int_t ngx_certgate_portal_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_certgate_require_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_certgate_require_rewrite_handler(ngx_http_request_t *r) noexcept;

// What the client asked in: JSON for scripts, else HTML.
bool ngx_certgate_wants_json(ngx_http_request_t *r) noexcept;
certgate::Language ngx_certgate_language(ngx_http_request_t *r,
                                         certgate::LangChoice *choice = nullptr) noexcept;

// Sends a complete in-memory response. The body is copied into the request pool.
ngx_int_t ngx_certgate_send(ngx_http_request_t *r, ngx_uint_t status, const char *content_type,
                            const std::string &body, bool no_store) noexcept;
ngx_int_t ngx_certgate_redirect(ngx_http_request_t *r, const std::string &location) noexcept;

// The common refusal for JSON and HTML clients.
ngx_int_t ngx_certgate_refuse(ngx_http_request_t *r, ngx_uint_t status,
                              certgate::ErrorCode code) noexcept;

// Who is asking (ngx_certgate_identity.cpp), for the portal and the protected
// path: the per-connection client certificate check, and the live session.
ngx_int_t ngx_certgate_require_init() noexcept;
// Picks the protected path's byte comparison for this CPU (AVX2 or SSE2).
void ngx_certgate_require_cpu(ngx_log_t *log) noexcept;
// Frees cmcf's record by socket (peer_slots) with the configuration pool.
ngx_int_t ngx_certgate_peer_slots_cleanup(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;
void ngx_certgate_present(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                          certgate::PresentedCertificate *pc);
std::optional<certgate::Session> ngx_certgate_live_session(ngx_http_request_t *r,
                                                           ngx_certgate_main_conf_t *cmcf,
                                                           certgate::ErrorCode *why);

// Calls f(value) for each request header called `name` (lower case, e.g.
// "cookie") until f returns true.
template <class F>
void ngx_certgate_each_header(ngx_http_request_t *r, const char *name, F f) {
    size_t len = ngx_strlen(name);
    ngx_list_part_t *part = &r->headers_in.headers.part;
    auto *h = static_cast<ngx_table_elt_t *>(part->elts);
    for (ngx_uint_t i = 0;; i++) {
        if (i >= part->nelts) {
            if (part->next == nullptr) return;
            part = part->next;
            h = static_cast<ngx_table_elt_t *>(part->elts);
            i = 0;
        }
        if (h[i].key.len == len && ngx_strncasecmp(h[i].key.data, (u_char *)name, len) == 0 &&
            f(h[i].value)) {
            return;
        }
    }
}

// The request's Cookie headers as nginx parsed them (headers_in), in order,
// until f returns true; and the one Cookie header, nullptr when there are
// none or several. Every cookie certgate reads comes from these, so the
// protected path's checks, its per-connection pass and the portal see the
// same bytes.
template <typename F>
void ngx_certgate_each_cookie(ngx_http_request_t *r, F f) {
#if nginx_version >= 1023000
    for (ngx_table_elt_t *h = r->headers_in.cookie; h != nullptr; h = h->next) {
        if (f(h->value)) return;
    }
#else
    auto **h = static_cast<ngx_table_elt_t **>(r->headers_in.cookies.elts);
    for (ngx_uint_t i = 0; i < r->headers_in.cookies.nelts; i++) {
        if (f(h[i]->value)) return;
    }
#endif
}

inline const ngx_str_t *ngx_certgate_one_cookie(ngx_http_request_t *r) {
#if nginx_version >= 1023000
    ngx_table_elt_t *h = r->headers_in.cookie;
    return h != nullptr && h->next == nullptr ? &h->value : nullptr;
#else
    if (r->headers_in.cookies.nelts != 1) return nullptr;
    return &static_cast<ngx_table_elt_t **>(r->headers_in.cookies.elts)[0]->value;
#endif
}

// Response headers; the value must outlive the request (a literal), or is
// copied into the request pool (_str).
ngx_int_t ngx_certgate_add_header(ngx_http_request_t *r, const char *key, const char *value);
ngx_int_t ngx_certgate_add_header_str(ngx_http_request_t *r, const char *key,
                                      const std::string &value);
ngx_int_t ngx_certgate_retry_after(ngx_http_request_t *r, long seconds);  // 429
// CSP, nosniff, no framing, no referrer; and Cache-Control: no-store.
ngx_int_t ngx_certgate_security_headers(ngx_http_request_t *r, bool no_store);

// Every Cookie header of the request, joined with "; ".
std::string ngx_certgate_cookie_header(ngx_http_request_t *r);
// Adds Set-Cookie: name=value with certgate's attributes (Secure, HttpOnly, ...).
ngx_int_t ngx_certgate_set_cookie(ngx_http_request_t *r, const char *name,
                                  const std::string &value);

// nginx string views.
inline std::string ngx_certgate_str(const ngx_str_t &s) {
    return std::string(reinterpret_cast<const char *>(s.data), s.len);
}
