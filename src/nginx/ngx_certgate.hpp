// The one door from C++ into nginx: its headers inside extern "C", the
// module symbol, and the configuration and context types the glue shares.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

extern ngx_module_t ngx_http_certgate_module;
}

#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "core/web/errors.hpp"
#include "core/web/portal.hpp"
#include "core/app/runtime.hpp"

// Where a directive was written, so checks made after the whole http{} block
// is read can still name the file and line.
struct ngx_certgate_conf_place_t {
    ngx_str_t file;
    ngx_uint_t line;
};

struct ngx_certgate_main_conf_t {
    // set by ngx_pcalloc: every ngx_str_t below is empty until its directive
    // is read; the place records are zero; runtime is NULL.
    ngx_str_t store;
    ngx_str_t memcached;
    ngx_str_t thread_pool_name;
    ngx_str_t secret_file;
    ngx_str_t ca_certificate;
    ngx_str_t ca_certificate_previous;
    ngx_str_t ca_key;
    ngx_str_t ca_key_passphrase_file;
    ngx_str_t ca_key_pin_file;
    ngx_str_t pkcs11_module;
    ngx_str_t templates;
    ngx_str_t key_type;
    ngx_str_t timezone;
    ngx_str_t mail;
    ngx_str_t mail_from;
    ngx_str_t helpdesk_name;
    ngx_str_t helpdesk_phone;
    ngx_str_t helpdesk_hours;
    ngx_str_t crl_url;

    ngx_uint_t p12_encryption;
    ngx_int_t p12_iterations;
    ngx_msec_t sync_interval;
    ngx_msec_t notify_interval;  // 0 means off
    time_t cert_validity;
    time_t renew_before;
    time_t crl_validity;  // nextUpdate - thisUpdate of the portal's CRL

    ngx_uint_t lockout_failures;
    time_t lockout_time;
    ngx_uint_t lockout_locks;

    ngx_uint_t code_digits;
    time_t code_lifetime;
    ngx_uint_t code_attempts;

    ngx_uint_t code_budget_tries;  // R21: per user and window
    time_t code_budget_window;
    ngx_uint_t code_budget_mails;

    ngx_uint_t source_failures;  // R21: per-source throttle; 0 means off
    time_t source_window;
    size_t source_zone_size;
    ngx_shm_zone_t *source_zone;

    ngx_array_t *userid_rules;    // of ngx_regex_t *
    ngx_array_t *password_rules;  // of ngx_regex_t *
    ngx_array_t *userid_rule_args;    // of ngx_str_t: the directive as written
    ngx_array_t *password_rule_args;  // (patterns, min=, max=, description=)

    time_t session_idle;
    time_t session_absolute;

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

    // The per-configuration C++ state (settings, CA, secret); deleted by a
    // cleanup of the configuration pool.
    certgate::Runtime *runtime;
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

// Directive setters (ngx_certgate_conf.cpp).
char *ngx_certgate_set_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_memcached(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_ca_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_key_type(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_interval(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_days(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_timezone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_lockout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_code(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_code_budget(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_source_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_mail(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_session_timeout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_templates(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_helpdesk(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_portal(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *ngx_certgate_set_require(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;

// R8 and R9 as PCRE2 patterns, where no certgate_*_rule replaced them.
ngx_int_t ngx_certgate_default_rules(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;

// Checks that need the whole http{} block, and the C++ runtime built from it.
ngx_int_t ngx_certgate_init_runtime(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept;

// Handlers (ngx_certgate_portal.cpp, ngx_certgate_require.cpp).
ngx_int_t ngx_certgate_portal_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_certgate_require_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_certgate_require_rewrite_handler(ngx_http_request_t *r) noexcept;

// What the client asked in: JSON for scripts, else HTML.
bool ngx_certgate_wants_json(ngx_http_request_t *r) noexcept;
certgate::Language ngx_certgate_language(ngx_http_request_t *r) noexcept;

// Sends a complete in-memory response. The body is copied into the request pool.
ngx_int_t ngx_certgate_send(ngx_http_request_t *r, ngx_uint_t status, const char *content_type,
                            const std::string &body, bool no_store) noexcept;
ngx_int_t ngx_certgate_redirect(ngx_http_request_t *r, const std::string &location) noexcept;

// The common refusal for JSON and HTML clients.
ngx_int_t ngx_certgate_refuse(ngx_http_request_t *r, ngx_uint_t status, certgate::ErrorCode code) noexcept;

// The protected path's pieces the portal shares (ngx_certgate_require.cpp):
// the per-connection client certificate check, and the live session.
ngx_int_t ngx_certgate_require_init() noexcept;
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

// Every Cookie header of the request, joined with "; ".
std::string ngx_certgate_cookie_header(ngx_http_request_t *r);
// Adds Set-Cookie: name=value with certgate's attributes (Secure, HttpOnly, ...).
ngx_int_t ngx_certgate_set_cookie(ngx_http_request_t *r, const char *name, const std::string &value);

// nginx string views.
inline std::string ngx_certgate_str(const ngx_str_t &s) {
    return std::string(reinterpret_cast<const char *>(s.data), s.len);
}
