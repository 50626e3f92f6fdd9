// certgate: client-certificate login and certificate self-service for nginx.
//
// This file is the module's frame: directives, configuration, variables and
// the phase handler. The directives are parsed by the shared table
// (core/config/directives.cpp) through ngx_certgate_conf.cpp, the runtime is
// built in ngx_certgate_conf_init.cpp,
// the portal in ngx_certgate_portal.cpp, the protected path in
// ngx_certgate_require.cpp and the thread tasks in ngx_certgate_task.cpp.

#include <chrono>
#include <exception>
#include <memory>

#include "core/adapters/ca.hpp"
#include "core/app/flow.hpp"
#include "core/web/errors.hpp"
#include "core/web/form.hpp"
#include "core/web/portal.hpp"
#include "nginx/ngx_certgate.hpp"
#include "nginx/ngx_certgate_ctx.hpp"
#include "nginx/ngx_certgate_metrics.hpp"
#include "nginx/ngx_certgate_revocation.hpp"
#include "nginx/ngx_certgate_source.hpp"
#include "nginx/ngx_certgate_task.hpp"

static ngx_int_t ngx_certgate_add_variables(ngx_conf_t *cf) noexcept;
static ngx_int_t ngx_certgate_init(ngx_conf_t *cf) noexcept;
static void *ngx_certgate_create_main_conf(ngx_conf_t *cf) noexcept;
static char *ngx_certgate_init_main_conf(ngx_conf_t *cf, void *conf) noexcept;
static void *ngx_certgate_create_srv_conf(ngx_conf_t *cf) noexcept;
static char *ngx_certgate_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child) noexcept;
static void *ngx_certgate_create_loc_conf(ngx_conf_t *cf) noexcept;
static char *ngx_certgate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) noexcept;
static ngx_int_t ngx_certgate_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
                                       uintptr_t data) noexcept;
static ngx_int_t ngx_certgate_init_process(ngx_cycle_t *cycle) noexcept;
static ngx_int_t ngx_certgate_init_module(ngx_cycle_t *cycle) noexcept;

static ngx_conf_enum_t ngx_certgate_expired_modes[] = {
    {ngx_string("reject"), 0},
    {ngx_string("pass"), 1},
    {ngx_null_string, 0},
};

static ngx_conf_enum_t ngx_certgate_languages[] = {
    {ngx_string("ja"), NGX_CERTGATE_LANG_JA},
    {ngx_string("en"), NGX_CERTGATE_LANG_EN},
    {ngx_string("auto"), NGX_CERTGATE_LANG_AUTO},
    {ngx_null_string, 0},
};

#define CG_MAIN NGX_HTTP_MAIN_CONF
#define CG_MAIN_OFF NGX_HTTP_MAIN_CONF_OFFSET
#define CG_FIELD(f) offsetof(ngx_certgate_main_conf_t, f)
// A directive of the shared table (core/config/directives.hpp): it checks
// the arity, the duplicates and the values, for nginx and certgatectl alike.
#define CG_SHARED(name)                                                                       \
    {                                                                                         \
        ngx_string(name), CG_MAIN | NGX_CONF_ANY, ngx_certgate_set_directive, CG_MAIN_OFF, 0, \
            nullptr                                                                           \
    }

static ngx_command_t ngx_certgate_commands[] = {

    CG_SHARED("certgate_store"),
    CG_SHARED("certgate_memcached"),

    {ngx_string("certgate_thread_pool"), CG_MAIN | NGX_CONF_TAKE1, ngx_conf_set_str_slot,
     CG_MAIN_OFF, CG_FIELD(thread_pool_name), nullptr},

    {ngx_string("certgate_crypto_thread_pool"), CG_MAIN | NGX_CONF_TAKE1, ngx_conf_set_str_slot,
     CG_MAIN_OFF, CG_FIELD(crypto_thread_pool_name), nullptr},

    CG_SHARED("certgate_secret"),
    CG_SHARED("certgate_ca_certificate"),
    CG_SHARED("certgate_ca_certificate_previous"),
    CG_SHARED("certgate_ca_key"),
    CG_SHARED("certgate_ca_key_passphrase_file"),
    CG_SHARED("certgate_ca_key_pin_file"),
    CG_SHARED("certgate_pkcs11_module"),
    CG_SHARED("certgate_p12_encryption"),
    CG_SHARED("certgate_p12_iterations"),
    CG_SHARED("certgate_sync_interval"),
    CG_SHARED("certgate_sync_max_lag"),
    CG_SHARED("certgate_notify_interval"),
    CG_SHARED("certgate_templates"),
    CG_SHARED("certgate_key_type"),
    CG_SHARED("certgate_key_pool"),
    CG_SHARED("certgate_cert_validity"),
    CG_SHARED("certgate_renew_before"),
    CG_SHARED("certgate_timezone"),
    CG_SHARED("certgate_lockout"),
    CG_SHARED("certgate_code"),
    CG_SHARED("certgate_code_budget"),
    CG_SHARED("certgate_self_revoke"),
    CG_SHARED("certgate_footer_note"),
    CG_SHARED("certgate_portal_url"),

    {ngx_string("certgate_source_limit"), CG_MAIN | NGX_CONF_TAKE123, ngx_certgate_set_source_limit,
     CG_MAIN_OFF, 0, nullptr},

    // Shared too; the glue also compiles the patterns with nginx's regex API.
    {ngx_string("certgate_userid_rule"), CG_MAIN | NGX_CONF_ANY, ngx_certgate_set_rule, CG_MAIN_OFF,
     CG_FIELD(userid_rules), nullptr},
    {ngx_string("certgate_password_rule"), CG_MAIN | NGX_CONF_ANY, ngx_certgate_set_rule,
     CG_MAIN_OFF, CG_FIELD(password_rules), nullptr},

    CG_SHARED("certgate_mail"),
    CG_SHARED("certgate_mail_from"),
    CG_SHARED("certgate_session_timeout"),
    CG_SHARED("certgate_helpdesk"),
    CG_SHARED("certgate_crl_url"),
    CG_SHARED("certgate_home"),
    CG_SHARED("certgate_crl_validity"),

    {ngx_string("certgate_revocation_zone"), CG_MAIN | NGX_CONF_TAKE1, ngx_conf_set_size_slot,
     CG_MAIN_OFF, CG_FIELD(revocation_zone_size), nullptr},

    // Per server for the pages; the shared parser reads the http-level one
    // for certgatectl's mails.
    {ngx_string("certgate_language"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_certgate_srv_conf_t, language),
     ngx_certgate_languages},

    {ngx_string("certgate_expired_certificates"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1, ngx_conf_set_enum_slot,
     NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_certgate_srv_conf_t, expired_pass),
     ngx_certgate_expired_modes},

    {ngx_string("certgate_audit"), CG_MAIN | NGX_CONF_TAKE1, ngx_certgate_set_audit, CG_MAIN_OFF, 0,
     nullptr},

    {ngx_string("certgate_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, ngx_certgate_set_metrics,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},

    {ngx_string("certgate_portal"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, ngx_certgate_set_portal,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},

    {ngx_string("certgate_require"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
     ngx_certgate_set_require, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},

    ngx_null_command};

// After nginx's thread pools were told to stop (their exit_process runs
// first): wait until their threads are gone, see ngx_certgate_task.cpp.
static void ngx_certgate_exit_process(ngx_cycle_t *cycle) noexcept {
    ngx_certgate_wait_for_pool_threads(cycle->log);
    ngx_certgate_revocation_stop();
    ngx_certgate_metrics_stop();
    // No issuance runs now: the pool's keys are freed (and wiped) here.
    certgate::set_key_pool(nullptr);
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_certgate_module));
    if (cmcf != nullptr && cmcf->runtime != nullptr && cmcf->runtime->key_pool) {
        cmcf->runtime->key_pool->stop();
    }
}

static ngx_http_module_t ngx_certgate_module_ctx = {
    ngx_certgate_add_variables,     // preconfiguration
    ngx_certgate_init,              // postconfiguration
    ngx_certgate_create_main_conf,  // create main configuration
    ngx_certgate_init_main_conf,    // init main configuration
    ngx_certgate_create_srv_conf,   // create server configuration
    ngx_certgate_merge_srv_conf,    // merge server configuration
    ngx_certgate_create_loc_conf,   // create location configuration
    ngx_certgate_merge_loc_conf,    // merge location configuration
};

ngx_module_t ngx_http_certgate_module = {NGX_MODULE_V1,
                                         &ngx_certgate_module_ctx,   // module context
                                         ngx_certgate_commands,      // module directives
                                         NGX_HTTP_MODULE,            // module type
                                         nullptr,                    // init master
                                         ngx_certgate_init_module,   // init module
                                         ngx_certgate_init_process,  // init process
                                         nullptr,                    // init thread
                                         nullptr,                    // exit thread
                                         ngx_certgate_exit_process,  // exit process
                                         nullptr,                    // exit master
                                         NGX_MODULE_V1_PADDING};

enum ngx_certgate_var_e {
    NGX_CERTGATE_VAR_USER,
    NGX_CERTGATE_VAR_ORG,
    NGX_CERTGATE_VAR_ROLE,
    NGX_CERTGATE_VAR_SERIAL,
    NGX_CERTGATE_VAR_DAYS_LEFT,
    NGX_CERTGATE_VAR_LOGOUT_URL,
    NGX_CERTGATE_VAR_ADMIN_URL,
    NGX_CERTGATE_VAR_CSRF_TOKEN,
};

static ngx_http_variable_t ngx_certgate_vars[] = {
    {ngx_string("certgate_user"), nullptr, ngx_certgate_variable, NGX_CERTGATE_VAR_USER,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("certgate_org"), nullptr, ngx_certgate_variable, NGX_CERTGATE_VAR_ORG,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("certgate_role"), nullptr, ngx_certgate_variable, NGX_CERTGATE_VAR_ROLE,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("certgate_cert_serial"), nullptr, ngx_certgate_variable, NGX_CERTGATE_VAR_SERIAL,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("certgate_cert_days_left"), nullptr, ngx_certgate_variable,
     NGX_CERTGATE_VAR_DAYS_LEFT, NGX_HTTP_VAR_NOCACHEABLE, 0},
    // What the upstream needs to show certgate's frame (docs/frame.md).
    {ngx_string("certgate_logout_url"), nullptr, ngx_certgate_variable, NGX_CERTGATE_VAR_LOGOUT_URL,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("certgate_admin_url"), nullptr, ngx_certgate_variable, NGX_CERTGATE_VAR_ADMIN_URL,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("certgate_csrf_token"), nullptr, ngx_certgate_variable, NGX_CERTGATE_VAR_CSRF_TOKEN,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    ngx_http_null_variable};

static ngx_int_t ngx_certgate_add_variables(ngx_conf_t *cf) noexcept {
    if (ngx_certgate_check_commands(cf) != NGX_OK) return NGX_ERROR;
    for (ngx_http_variable_t *v = ngx_certgate_vars; v->name.len; v++) {
        ngx_http_variable_t *var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == nullptr) return NGX_ERROR;
        var->get_handler = v->get_handler;
        var->data = v->data;
    }
    return NGX_OK;
}

// The frame's values for the upstream: the portal's logout (and, for a
// master, admin) URL, and the CSRF token of this browser's seed cookie that
// the logout form must carry. An HMAC, computed on first use: no I/O.
static ngx_str_t *ngx_certgate_frame_value(ngx_http_request_t *r, ngx_certgate_ctx_t *ctx,
                                           uintptr_t which) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
    if (cmcf == nullptr || cmcf->runtime == nullptr) return nullptr;
    auto *out = static_cast<ngx_str_t *>(ngx_pcalloc(r->pool, sizeof(ngx_str_t)));
    if (out == nullptr) return nullptr;
    try {
        const certgate::Settings &s = cmcf->runtime->settings;
        std::string text;
        if (which == NGX_CERTGATE_VAR_LOGOUT_URL) {
            text = s.portal_prefix + "logout";
        } else if (which == NGX_CERTGATE_VAR_ADMIN_URL) {
            if (ngx_certgate_str(ctx->identity->role) == "master") {
                text = s.portal_prefix + "admin/users";
            }
        } else {
            std::string seed =
                certgate::find_cookie(ngx_certgate_cookie_header(r), certgate::kCsrfCookie);
            if (seed.size() == 24) text = certgate::csrf_token(s.secret, seed);
        }
        *out = ngx_certgate_pstr(r->pool, text);
    } catch (const std::exception &) {
        return nullptr;
    }
    return out;
}

// The variables describe the request's verified identity, which the
// certgate_require handler put in the request context; elsewhere they are
// not found (empty in logs, no header from proxy_set_header).
static ngx_int_t ngx_certgate_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
                                       uintptr_t data) noexcept {
    // A subrequest that did not pass the gate itself shows its main request's identity.
    ngx_certgate_ctx_t *ctx = ngx_certgate_find_ctx(r);
    if ((ctx == nullptr || ctx->identity == nullptr) && r != r->main)
        ctx = ngx_certgate_find_ctx(r->main);
    const ngx_str_t *value = nullptr;
    if (ctx != nullptr && ctx->identity != nullptr) {
        switch (data) {
            case NGX_CERTGATE_VAR_USER:
                value = &ctx->identity->user;
                break;
            case NGX_CERTGATE_VAR_ORG:
                value = &ctx->identity->org;
                break;
            case NGX_CERTGATE_VAR_ROLE:
                value = &ctx->identity->role;
                break;
            case NGX_CERTGATE_VAR_SERIAL:
                value = &ctx->identity->serial;
                break;
            case NGX_CERTGATE_VAR_DAYS_LEFT:
                value = &ctx->identity->days_left;
                break;
            case NGX_CERTGATE_VAR_LOGOUT_URL:
            case NGX_CERTGATE_VAR_ADMIN_URL:
            case NGX_CERTGATE_VAR_CSRF_TOKEN:
                value = ngx_certgate_frame_value(r, ctx, data);
                break;
        }
    }
    if (value == nullptr || value->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    v->len = value->len;
    v->data = value->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    return NGX_OK;
}

static void *ngx_certgate_create_main_conf(ngx_conf_t *cf) noexcept {
    // On its own cache lines (see ngx_certgate_main_conf_t); freed with the pool.
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(ngx_pmemalign(
        cf->pool, sizeof(ngx_certgate_main_conf_t), alignof(ngx_certgate_main_conf_t)));
    if (cmcf == nullptr) return nullptr;
    ngx_memzero(cmcf, sizeof(ngx_certgate_main_conf_t));
    // Zeroed: all ngx_str_t empty, places zero, runtime, thread_pool,
    // crypto_thread_pool, rule arrays, peer_slots NULL, used 0.
    if (ngx_certgate_peer_slots_cleanup(cf, cmcf) != NGX_OK) return nullptr;

    if (ngx_certgate_create_values(cf, cmcf) != NGX_OK) return nullptr;
    cmcf->source_failures = NGX_CONF_UNSET_UINT;
    cmcf->source_window = NGX_CONF_UNSET;
    cmcf->source_zone_size = NGX_CONF_UNSET_SIZE;
    cmcf->revocation_zone_size = NGX_CONF_UNSET_SIZE;
    return cmcf;
}

static char *ngx_certgate_init_main_conf(ngx_conf_t *cf, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);

    if (ngx_certgate_init_values(cf, cmcf) != NGX_OK) return static_cast<char *>(NGX_CONF_ERROR);
    ngx_conf_init_uint_value(cmcf->source_failures, 15);
    ngx_conf_init_value(cmcf->source_window, 60 * 60);
    ngx_conf_init_size_value(cmcf->source_zone_size, 1024 * 1024);
    ngx_conf_init_size_value(cmcf->revocation_zone_size, 8 * 1024 * 1024);
    if (cmcf->revocation_zone_size < 64 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "certgate_revocation_zone must be at least 64k");
        return static_cast<char *>(NGX_CONF_ERROR);
    }

    if (cmcf->thread_pool_name.len == 0) {
        ngx_str_set(&cmcf->thread_pool_name, "default");
    }
    if (cmcf->used || cmcf->metrics) {
        if (ngx_certgate_metrics_zone(cf, cmcf) != NGX_OK)
            return static_cast<char *>(NGX_CONF_ERROR);
    }
    if (!cmcf->used) return NGX_CONF_OK;

    if (ngx_certgate_default_rules(cf, cmcf) != NGX_OK) return static_cast<char *>(NGX_CONF_ERROR);

    cmcf->thread_pool = ngx_thread_pool_add(cf, &cmcf->thread_pool_name);
    if (cmcf->thread_pool == nullptr) return static_cast<char *>(NGX_CONF_ERROR);
    cmcf->crypto_thread_pool = cmcf->thread_pool;
    if (cmcf->crypto_thread_pool_name.len != 0) {
        cmcf->crypto_thread_pool = ngx_thread_pool_add(cf, &cmcf->crypto_thread_pool_name);
        if (cmcf->crypto_thread_pool == nullptr) return static_cast<char *>(NGX_CONF_ERROR);
    }

    if (ngx_certgate_init_runtime(cf, cmcf) != NGX_OK) return static_cast<char *>(NGX_CONF_ERROR);
    if (ngx_certgate_revocation_zone(cf, cmcf) != NGX_OK)
        return static_cast<char *>(NGX_CONF_ERROR);
    if (ngx_certgate_source_zone(cf, cmcf) != NGX_OK) return static_cast<char *>(NGX_CONF_ERROR);
    return NGX_CONF_OK;
}

static void *ngx_certgate_create_srv_conf(ngx_conf_t *cf) noexcept {
    auto *cscf = static_cast<ngx_certgate_srv_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_certgate_srv_conf_t)));
    if (cscf == nullptr) return nullptr;
    cscf->language = NGX_CONF_UNSET_UINT;
    cscf->expired_pass = NGX_CONF_UNSET_UINT;
    return cscf;
}

static char *ngx_certgate_merge_srv_conf(ngx_conf_t *, void *parent, void *child) noexcept {
    auto *prev = static_cast<ngx_certgate_srv_conf_t *>(parent);
    auto *conf = static_cast<ngx_certgate_srv_conf_t *>(child);
    ngx_conf_merge_uint_value(conf->language, prev->language,
                              static_cast<ngx_uint_t>(NGX_CERTGATE_LANG_JA));
    ngx_conf_merge_uint_value(conf->expired_pass, prev->expired_pass, 0);
    return NGX_CONF_OK;
}

static void *ngx_certgate_create_loc_conf(ngx_conf_t *cf) noexcept {
    auto *clcf = static_cast<ngx_certgate_loc_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_certgate_loc_conf_t)));
    if (clcf == nullptr) return nullptr;

    // set by ngx_pcalloc(): portal_prefix empty.

    clcf->portal = NGX_CONF_UNSET;
    clcf->require = NGX_CONF_UNSET;
    clcf->require_master = NGX_CONF_UNSET;
    return clcf;
}

static char *ngx_certgate_merge_loc_conf(ngx_conf_t *, void *parent, void *child) noexcept {
    auto *prev = static_cast<ngx_certgate_loc_conf_t *>(parent);
    auto *conf = static_cast<ngx_certgate_loc_conf_t *>(child);

    // The portal is a content handler of its own location; it is not
    // inherited. certgate_require is inherited by nested locations.
    ngx_conf_init_value(conf->portal, 0);
    ngx_conf_merge_value(conf->require, prev->require, 0);
    ngx_conf_merge_value(conf->require_master, prev->require_master, 0);
    return NGX_CONF_OK;
}

// certgate_expired_certificates pass: the handshake of that server accepts
// a client certificate outside its dates (X509_V_FLAG_NO_CHECK_TIME on the
// server's verification store), so its owner reaches the portal and is told
// why instead of getting nginx's 400 page; certgate_require still refuses it,
// since it checks the dates at every request. Runs after the servers merged.
static ngx_int_t ngx_certgate_tls_dates(ngx_conf_t *cf) {
    auto *hcmcf = static_cast<ngx_http_core_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    auto **servers = static_cast<ngx_http_core_srv_conf_t **>(hcmcf->servers.elts);
    for (ngx_uint_t i = 0; i < hcmcf->servers.nelts; i++) {
        ngx_http_conf_ctx_t *ctx = servers[i]->ctx;
        auto *cscf = static_cast<ngx_certgate_srv_conf_t *>(
            ctx->srv_conf[ngx_http_certgate_module.ctx_index]);
        if (cscf->expired_pass != 1) continue;
        auto *sscf =
            static_cast<ngx_http_ssl_srv_conf_t *>(ctx->srv_conf[ngx_http_ssl_module.ctx_index]);
        if (sscf->ssl.ctx == nullptr || sscf->verify == 0) continue;  // no client certificates here
        if (X509_STORE_set_flags(SSL_CTX_get_cert_store(sscf->ssl.ctx),
                                 X509_V_FLAG_NO_CHECK_TIME) != 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "certgate_expired_certificates: cannot change the TLS verification");
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

static ngx_int_t ngx_certgate_init(ngx_conf_t *cf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_certgate_module));
    if (ngx_certgate_tls_dates(cf) != NGX_OK) return NGX_ERROR;
    if (!cmcf->used) return NGX_OK;
    // With master_process off, a reload makes the new cycle in the same
    // process and nginx starts no thread pools for it (their init_process
    // runs once): our tasks would wait forever and the set would go stale.
    // Refused, the running configuration stays in force.
    if (ngx_process == NGX_PROCESS_SINGLE && cf->cycle->old_cycle != nullptr &&
        !ngx_is_init_cycle(cf->cycle->old_cycle)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "certgate: a reload with \"master_process off\" is not possible (nginx "
                      "starts no thread pools for it); the running configuration stays, restart "
                      "nginx to change it");
        return NGX_ERROR;
    }
    if (ngx_certgate_require_init() != NGX_OK) return NGX_ERROR;
    ngx_certgate_require_cpu(cf->log);

    auto *hcmcf = static_cast<ngx_http_core_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    // The gate runs in the rewrite phase too, before the location's own
    // rewrite, return and set (this module registers after them, so its
    // handler comes first), and in the access phase.
    auto *h = static_cast<ngx_http_handler_pt *>(
        ngx_array_push(&hcmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers));
    if (h == nullptr) return NGX_ERROR;
    *h = ngx_certgate_require_rewrite_handler;
    h = static_cast<ngx_http_handler_pt *>(
        ngx_array_push(&hcmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers));
    if (h == nullptr) return NGX_ERROR;
    *h = ngx_certgate_require_handler;
    return NGX_OK;
}

// Moves the entry of `handler` to the front of the run of phase-engine
// entries that share `checker` and contain it.
static void ngx_certgate_run_first(ngx_http_phase_handler_t *ph, ngx_uint_t n,
                                   ngx_http_phase_handler_pt checker, ngx_http_handler_pt handler) {
    for (ngx_uint_t i = 0; i < n; i++) {
        if (ph[i].checker != checker || ph[i].handler != handler) continue;
        ngx_uint_t first = i;
        while (first > 0 && ph[first - 1].checker == checker) first--;
        ngx_http_phase_handler_t mine = ph[i];
        for (ngx_uint_t j = i; j > first; j--) ph[j] = ph[j - 1];
        ph[first] = mine;
        return;
    }
}

// The gate runs first in its phases whatever the load order: a module loaded
// after certgate (e.g. lua with rewrite_by_lua_no_postpone, or an access
// module that allows under `satisfy any`) would otherwise run before it.
// The phase engine exists once the whole configuration is read.
static ngx_int_t ngx_certgate_init_module(ngx_cycle_t *cycle) noexcept {
    if (cycle->conf_ctx[ngx_http_module.index] == nullptr) return NGX_OK;
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_certgate_module));
    if (cmcf == nullptr || !cmcf->used) return NGX_OK;
    auto *hcmcf = static_cast<ngx_http_core_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module));
    ngx_http_phase_handler_t *ph = hcmcf->phase_engine.handlers;
    if (ph == nullptr) return NGX_OK;
    ngx_uint_t n = 0;
    while (ph[n].checker != nullptr) n++;
    ngx_certgate_run_first(ph, n, ngx_http_core_rewrite_phase,
                           ngx_certgate_require_rewrite_handler);
    ngx_certgate_run_first(ph, n, ngx_http_core_access_phase, ngx_certgate_require_handler);
    return NGX_OK;
}

static ngx_int_t ngx_certgate_init_process(ngx_cycle_t *cycle) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_certgate_module));
    if (cmcf == nullptr) return NGX_OK;
    if (!cmcf->used) return cmcf->metrics ? ngx_certgate_metrics_start(cycle, cmcf) : NGX_OK;

    // A key in an HSM is opened again in each worker: PKCS#11 sessions do
    // not survive fork(). nginx -t and the master checked it already.
    certgate::Runtime *rt = cmcf->runtime;
    if (rt->settings.ca_key.rfind("engine:", 0) == 0) {
        try {
            certgate::CaKeyOptions options;
            options.passphrase_file = rt->settings.ca_key_passphrase_file;
            options.pin_file = rt->settings.ca_key_pin_file;
            options.pkcs11_module = rt->settings.pkcs11_module;
            // The protected path's check keeps its own references to the
            // CA certificates; only the key is opened again.
            rt->ca = std::make_unique<certgate::CaSigner>(certgate::CaSigner::load(
                rt->settings.ca_certificate, rt->settings.ca_key, options));
        } catch (const std::exception &e) {
            // The HSM does not answer now. The worker serves all the same
            // (issuance answers "unavailable") and is replaced by a fresh
            // one on its timer, until the key opens again.
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "certgate: %s", e.what());
            rt->hsm_broken = true;
        }
    }

    // Keys made ahead, in this worker's memory only (never in shared memory).
    if (rt->settings.key_pool_size > 0) {
        try {
            rt->key_pool = std::make_unique<certgate::KeyPool>(
                *certgate::parse_key_type(rt->settings.key_type),
                static_cast<size_t>(rt->settings.key_pool_size),
                std::chrono::milliseconds(rt->settings.key_pool_pause_ms));
            rt->key_pool->start();
            certgate::set_key_pool(rt->key_pool.get());
        } catch (const std::exception &e) {
            // Issuance makes its keys inline then.
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "certgate: key pool: %s", e.what());
        }
    }

    if (ngx_certgate_metrics_start(cycle, cmcf) != NGX_OK) return NGX_ERROR;
    if (ngx_certgate_revocation_start(cycle, cmcf) != NGX_OK) return NGX_ERROR;
    return ngx_certgate_sweep_start(cycle, cmcf);
}
