// The directives' ngx_command_t handlers. Those of the shared table
// (core/config/directives.hpp) hand the arguments to its parser and report
// its message with ngx_conf_log_error, which adds "in FILE:LINE"; the others
// need nginx's own structures: locations, shared zones, compiled regexes.

#include <exception>
#include <string>
#include <vector>

#include "core/config/directives.hpp"
#include "core/policy/password.hpp"
#include "nginx/ngx_certgate.hpp"
#include "nginx/ngx_certgate_ctx.hpp"

#define CG_CONF_ERROR (static_cast<char *>(NGX_CONF_ERROR))

static void ngx_certgate_remember(ngx_conf_t *cf, ngx_certgate_conf_place_t *place) {
    place->file = cf->conf_file->file.name;
    place->line = cf->conf_file->line;
}

// The lines that checks made once http{} is read (ngx_certgate_init_runtime)
// point back to.
static ngx_certgate_conf_place_t *ngx_certgate_place_of(ngx_certgate_main_conf_t *cmcf,
                                                        const ngx_str_t &name) {
    static const struct {
        const char *name;
        ngx_certgate_conf_place_t ngx_certgate_main_conf_t::*place;
    } places[] = {
        {"certgate_store", &ngx_certgate_main_conf_t::store_place},
        {"certgate_secret", &ngx_certgate_main_conf_t::secret_place},
        {"certgate_ca_certificate", &ngx_certgate_main_conf_t::ca_place},
        {"certgate_ca_certificate_previous", &ngx_certgate_main_conf_t::ca_previous_place},
        {"certgate_ca_key", &ngx_certgate_main_conf_t::ca_key_place},
        {"certgate_templates", &ngx_certgate_main_conf_t::templates_place},
    };
    for (const auto &p : places) {
        if (name.len == ngx_strlen(p.name) && ngx_strncmp(name.data, p.name, name.len) == 0) {
            return &(cmcf->*p.place);
        }
    }
    return nullptr;
}

char *ngx_certgate_set_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    try {
        std::string name = ngx_certgate_str(cmd->name);
        const certgate::Directive *d = certgate::find_directive(name);
        if (d == nullptr || d->parse == nullptr) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "certgate: no parser for this directive");
            return CG_CONF_ERROR;
        }
        auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        std::vector<std::string> args;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) args.push_back(ngx_certgate_str(value[i]));

        certgate::ConfPaths paths;
        paths.conf_prefix = ngx_certgate_str(cf->cycle->conf_prefix);
        std::string error = certgate::apply_directive(*d, args, paths, *cmcf->values);
        if (!error.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", error.c_str());
            return CG_CONF_ERROR;
        }
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return CG_CONF_ERROR;
    }
    if (ngx_certgate_conf_place_t *place = ngx_certgate_place_of(cmcf, cmd->name)) {
        ngx_certgate_remember(cf, place);
    }
    return NGX_CONF_OK;
}

// Every directive of the shared table has a command, and every command that
// hands its arguments to the table finds a parser there.
ngx_int_t ngx_certgate_check_commands(ngx_conf_t *cf) noexcept {
    try {
        for (const certgate::Directive &d : certgate::directives()) {
            ngx_command_t *cmd = ngx_http_certgate_module.commands;
            while (cmd->name.len && ngx_certgate_str(cmd->name) != d.name) cmd++;
            if (cmd->name.len == 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "certgate: no command for \"%s\"", d.name);
                return NGX_ERROR;
            }
        }
        for (ngx_command_t *cmd = ngx_http_certgate_module.commands; cmd->name.len; cmd++) {
            if (cmd->set != ngx_certgate_set_directive && cmd->set != ngx_certgate_set_rule)
                continue;
            const certgate::Directive *d = certgate::find_directive(ngx_certgate_str(cmd->name));
            if (d == nullptr || d->parse == nullptr) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "certgate: no parser for \"%V\"",
                              &cmd->name);
                return NGX_ERROR;
            }
        }
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "certgate: %s", e.what());
        return NGX_ERROR;
    }
    return NGX_OK;
}

// A positive count between lo and hi.
static bool ngx_certgate_count(ngx_str_t *v, ngx_uint_t lo, ngx_uint_t hi, ngx_uint_t *out) {
    ngx_int_t n = ngx_atoi(v->data, v->len);
    if (n == NGX_ERROR || static_cast<ngx_uint_t>(n) < lo || static_cast<ngx_uint_t>(n) > hi) {
        return false;
    }
    *out = static_cast<ngx_uint_t>(n);
    return true;
}

// A duration in nginx's notation (60m, 1h, 30s), in seconds.
static bool ngx_certgate_duration(ngx_str_t *v, time_t *out) {
    time_t s = ngx_parse_time(v, 1);
    if (s <= 0) return false;  // NGX_ERROR is -1
    *out = s;
    return true;
}

// certgate_source_limit <failures> <window> [zone=<size>] | off (R21).
char *ngx_certgate_set_source_limit(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    if (cmcf->source_failures != NGX_CONF_UNSET_UINT) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        cmcf->source_failures = 0;
        return NGX_CONF_OK;
    }
    if (cf->args->nelts < 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "expected \"off\" or <failures> <window> [zone=<size>]");
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_count(&value[1], 1, 100000, &cmcf->source_failures)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid number of failures \"%V\" (1 to 100000)",
                           &value[1]);
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_duration(&value[2], &cmcf->source_window)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid window \"%V\": expected a time such as 15m", &value[2]);
        return CG_CONF_ERROR;
    }
    if (cf->args->nelts == 4) {
        ngx_str_t v = value[3];
        ssize_t size = NGX_ERROR;
        if (v.len > 5 && ngx_strncmp(v.data, "zone=", 5) == 0) {
            v.data += 5;
            v.len -= 5;
            size = ngx_parse_size(&v);
        }
        if (size == NGX_ERROR || size < 32 * 1024) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": expected zone=<size> of at least 32k",
                               &value[3]);
            return CG_CONF_ERROR;
        }
        cmcf->source_zone_size = static_cast<size_t>(size);
    }
    return NGX_CONF_OK;
}

static ngx_regex_t *ngx_certgate_compile(ngx_conf_t *cf, ngx_str_t *pattern) {
    u_char errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t rc;
    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));
    rc.pattern = *pattern;
    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;
    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid pattern \"%V\": %V", pattern, &rc.err);
        return nullptr;
    }
    return rc.regex;
}

// The default rules, R8 for user IDs and R9 for passwords, where no
// certgate_*_rule replaced them: the core's patterns, compiled by nginx.
ngx_int_t ngx_certgate_default_rules(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    struct {
        ngx_array_t **rules;
        ngx_flag_t *custom;
        const std::vector<std::string> *patterns;
    } sets[] = {
        {&cmcf->userid_rules, &cmcf->custom_userid_rules, &certgate::kDefaultUserIdRule},
        {&cmcf->password_rules, &cmcf->custom_password_rules, &certgate::kDefaultPasswordRule}};

    for (auto &set : sets) {
        *set.custom = *set.rules != nullptr;
        if (*set.custom) continue;
        *set.rules = ngx_array_create(cf->pool, set.patterns->size(), sizeof(ngx_regex_t *));
        if (*set.rules == nullptr) return NGX_ERROR;
        for (const std::string &pattern : *set.patterns) {
            ngx_str_t p = ngx_certgate_pstr(cf->pool, pattern);
            auto **slot = static_cast<ngx_regex_t **>(ngx_array_push(*set.rules));
            if (p.len == 0 || slot == nullptr) return NGX_ERROR;
            *slot = ngx_certgate_compile(cf, &p);
            if (*slot == nullptr) return NGX_ERROR;
        }
    }
    return NGX_OK;
}

// One or more PCRE2 patterns that must all match, then the rule's options
// (min=, max=, description=): the shared parser reads them into the settings
// (certgatectl does the same), nginx's regex API compiles the patterns here.
char *ngx_certgate_set_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    char *rv = ngx_certgate_set_directive(cf, cmd, conf);
    if (rv != NGX_CONF_OK) return rv;
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    auto **field = reinterpret_cast<ngx_array_t **>(static_cast<char *>(conf) + cmd->offset);
    const certgate::Settings &s = cmcf->values->settings;
    const std::vector<std::string> &patterns =
        field == &cmcf->userid_rules ? s.userid_rules : s.password_rules;
    try {
        *field = ngx_array_create(cf->pool, patterns.size() ? patterns.size() : 1,
                                  sizeof(ngx_regex_t *));
        if (*field == nullptr) return CG_CONF_ERROR;
        for (const std::string &p : patterns) {
            auto **slot = static_cast<ngx_regex_t **>(ngx_array_push(*field));
            if (slot == nullptr) return CG_CONF_ERROR;
            ngx_str_t pattern = ngx_certgate_pstr(cf->pool, p);
            if (pattern.len == 0) return CG_CONF_ERROR;
            *slot = ngx_certgate_compile(cf, &pattern);
            if (*slot == nullptr) return CG_CONF_ERROR;
        }
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "certgate: %s", e.what());
        return CG_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static void ngx_certgate_mark_used(ngx_conf_t *cf) {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_certgate_module));
    if (!cmcf->used) ngx_certgate_remember(cf, &cmcf->use_place);
    cmcf->used = 1;
}

char *ngx_certgate_set_portal(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *lcf = static_cast<ngx_certgate_loc_conf_t *>(conf);
    if (lcf->portal != NGX_CONF_UNSET) return const_cast<char *>("is duplicate");

    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf->regex || clcf->named || clcf->noname) {
        return const_cast<char *>("needs a prefix location such as \"location /certgate/\"");
    }
    if (clcf->name.len == 0 || clcf->name.data[clcf->name.len - 1] != '/') {
        return const_cast<char *>("needs a location that ends with \"/\", e.g. \"/certgate/\"");
    }

    lcf->portal = 1;
    lcf->portal_prefix = clcf->name;
    clcf->handler = ngx_certgate_portal_handler;

    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_certgate_module));
    if (cmcf->portal_prefix.len == 0) cmcf->portal_prefix = clcf->name;
    ngx_certgate_mark_used(cf);
    return NGX_CONF_OK;
}

char *ngx_certgate_set_require(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *lcf = static_cast<ngx_certgate_loc_conf_t *>(conf);
    if (lcf->require != NGX_CONF_UNSET) return const_cast<char *>("is duplicate");

    lcf->require = 1;
    lcf->require_master = 0;
    if (cf->args->nelts == 2) {
        ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
        if (value[1].len == 11 && ngx_strncmp(value[1].data, "role=master", 11) == 0) {
            lcf->require_master = 1;
        } else if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
            lcf->require = 0;
            return NGX_CONF_OK;
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": expected \"role=master\" or \"off\"",
                               &value[1]);
            return CG_CONF_ERROR;
        }
    }
    ngx_certgate_mark_used(cf);
    return NGX_CONF_OK;
}
