// Directive parsers and the configuration-time checks. Each error is a short
// phrase; nginx adds "in FILE:LINE". Checks that need the whole http{} block
// (the CA key with its passphrase, the store's schema) run in
// ngx_certgate_init_runtime() and name the line of the directive concerned.

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/policy/password.hpp"
#include "core/policy/policy.hpp"
#include "core/app/runtime.hpp"
#include "core/ports/store.hpp"
#include "nginx/ngx_certgate.hpp"
#include "nginx/ngx_certgate_ctx.hpp"

#define CG_CONF_ERROR static_cast<char *>(NGX_CONF_ERROR)

static void ngx_certgate_remember(ngx_conf_t *cf, ngx_certgate_conf_place_t *place) {
    place->file = cf->conf_file->file.name;
    place->line = cf->conf_file->line;
}

static ngx_str_t *ngx_certgate_field(void *conf, ngx_command_t *cmd) {
    return reinterpret_cast<ngx_str_t *>(static_cast<char *>(conf) + cmd->offset);
}

// A file named in nginx.conf must be there when nginx starts, readable by
// the master (which reads it before workers start).
// The file must be readable now; the message names the directive:
// cannot read the certgate_secret file "/etc/certgate/secret" (13: Permission denied).
static char *ngx_certgate_check_file(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *directive) {
    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) return CG_CONF_ERROR;
    std::string path = ngx_certgate_str(*name);
    if (access(path.c_str(), R_OK) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "cannot read the %V file \"%V\"", directive,
                           name);
        return CG_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

char *ngx_certgate_set_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    ngx_str_t uri = value[1];
    static const char sqlite[] = "sqlite:";
    static const char postgres[] = "postgresql:";
    if (uri.len > sizeof(sqlite) - 1 && ngx_strncmp(uri.data, sqlite, sizeof(sqlite) - 1) == 0) {
        ngx_str_t path = {uri.len - (sizeof(sqlite) - 1), uri.data + sizeof(sqlite) - 1};
        if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) return CG_CONF_ERROR;
        field->len = sizeof(sqlite) - 1 + path.len;
        field->data = static_cast<u_char *>(ngx_pnalloc(cf->pool, field->len));
        if (field->data == nullptr) return CG_CONF_ERROR;
        ngx_memcpy(ngx_cpymem(field->data, sqlite, sizeof(sqlite) - 1), path.data, path.len);
    } else if (uri.len >= sizeof(postgres) - 1 &&
               ngx_strncmp(uri.data, postgres, sizeof(postgres) - 1) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "PostgreSQL stores are not supported by this build of certgate; "
                           "use \"sqlite:/path/to/certgate.db\"");
        return CG_CONF_ERROR;
    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid store \"%V\": expected \"sqlite:/path/to/certgate.db\"", &uri);
        return CG_CONF_ERROR;
    }
    ngx_certgate_remember(cf, &cmcf->store_place);
    return NGX_CONF_OK;
}

char *ngx_certgate_set_memcached(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    ngx_url_t u;
    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 11211;
    u.no_resolve = 1;
    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.host.len == 0 || u.uri.len != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid memcached address \"%V\"%s%s: expected host:port", &value[1],
                           u.err ? ": " : "", u.err ? u.err : "");
        return CG_CONF_ERROR;
    }
    *field = value[1];
    return NGX_CONF_OK;
}

char *ngx_certgate_set_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    *field = value[1];
    char *rv = ngx_certgate_check_file(cf, field, &cmd->name);
    if (rv != NGX_CONF_OK) return rv;

    if (field == &cmcf->secret_file) ngx_certgate_remember(cf, &cmcf->secret_place);
    if (field == &cmcf->ca_certificate) ngx_certgate_remember(cf, &cmcf->ca_place);
    if (field == &cmcf->ca_certificate_previous) ngx_certgate_remember(cf, &cmcf->ca_previous_place);
    return NGX_CONF_OK;
}

char *ngx_certgate_set_ca_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    *field = value[1];
    ngx_certgate_remember(cf, &cmcf->ca_key_place);

    static const char engine[] = "engine:";
    if (field->len > sizeof(engine) - 1 &&
        ngx_strncmp(field->data, engine, sizeof(engine) - 1) == 0) {
        static const char pkcs11[] = "engine:pkcs11:";
        if (field->len <= sizeof(pkcs11) - 1 ||
            ngx_strncmp(field->data, pkcs11, sizeof(pkcs11) - 1) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid CA key \"%V\": the only engine is "
                               "\"engine:pkcs11:<pkcs11 URI>\"",
                               field);
            return CG_CONF_ERROR;
        }
        return NGX_CONF_OK;
    }
    return ngx_certgate_check_file(cf, field, &cmd->name);
}

char *ngx_certgate_set_key_type(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    try {
        if (!certgate::parse_key_type(ngx_certgate_str(value[1]))) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown key type \"%V\": use rsa:2048, rsa:3072 or ec:P-256",
                               &value[1]);
            return CG_CONF_ERROR;
        }
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return CG_CONF_ERROR;
    }
    *field = value[1];
    return NGX_CONF_OK;
}

// A time in nginx's notation (500ms, 2s, 1h); with cmd->post, that word
// (e.g. "off") means 0.
char *ngx_certgate_set_interval(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    auto *field = reinterpret_cast<ngx_msec_t *>(static_cast<char *>(conf) + cmd->offset);
    if (*field != NGX_CONF_UNSET_MSEC) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (cmd->post != nullptr) {
        auto *off = static_cast<const char *>(cmd->post);
        if (value[1].len == ngx_strlen(off) && ngx_strncmp(value[1].data, off, value[1].len) == 0) {
            *field = 0;
            return NGX_CONF_OK;
        }
    }
    ngx_msec_int_t ms = ngx_parse_time(&value[1], 0);
    if (ms == NGX_ERROR || ms <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid interval \"%V\"", &value[1]);
        return CG_CONF_ERROR;
    }
    *field = static_cast<ngx_msec_t>(ms);
    return NGX_CONF_OK;
}

// A number of whole days: "366d" or "366".
char *ngx_certgate_set_days(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    auto *field = reinterpret_cast<time_t *>(static_cast<char *>(conf) + cmd->offset);
    if (*field != NGX_CONF_UNSET) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    ngx_str_t v = value[1];
    if (v.len > 1 && v.data[v.len - 1] == 'd') v.len--;
    ngx_int_t days = ngx_atoi(v.data, v.len);
    if (days == NGX_ERROR || days < 1 || days > 3650) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of days \"%V\": expected e.g. \"366d\" (1 to 3650)",
                           &value[1]);
        return CG_CONF_ERROR;
    }
    *field = static_cast<time_t>(days);
    return NGX_CONF_OK;
}

char *ngx_certgate_set_timezone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    std::string name = ngx_certgate_str(value[1]);
    bool plausible = !name.empty() && name[0] != '/' && name.find("..") == std::string::npos;
    std::string path = "/usr/share/zoneinfo/" + name;
    struct stat st {};
    if (!plausible || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown time zone \"%V\": expected an IANA name such as Asia/Tokyo",
                           &value[1]);
        return CG_CONF_ERROR;
    }
    *field = value[1];
    return NGX_CONF_OK;
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
    if (s == static_cast<time_t>(NGX_ERROR) || s <= 0) return false;
    *out = s;
    return true;
}

char *ngx_certgate_set_lockout(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    if (cmcf->lockout_failures != NGX_CONF_UNSET_UINT) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (!ngx_certgate_count(&value[1], 1, 100, &cmcf->lockout_failures)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid number of failures \"%V\" (1 to 100)",
                           &value[1]);
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_duration(&value[2], &cmcf->lockout_time)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid lock time \"%V\": expected a time such as 60m or 1h",
                           &value[2]);
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_count(&value[3], 1, 100, &cmcf->lockout_locks)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid number of locks \"%V\" (1 to 100)",
                           &value[3]);
        return CG_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

char *ngx_certgate_set_code(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    if (cmcf->code_digits != NGX_CONF_UNSET_UINT) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (!ngx_certgate_count(&value[1], 6, 10, &cmcf->code_digits)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid number of code digits \"%V\" (6 to 10)",
                           &value[1]);
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_duration(&value[2], &cmcf->code_lifetime)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid code lifetime \"%V\": expected a time such as 30m",
                           &value[2]);
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_count(&value[3], 1, 20, &cmcf->code_attempts)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid number of code attempts \"%V\" (1 to 20)",
                           &value[3]);
        return CG_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

// certgate_code_budget <tries> <window> [mails=<n>] (R21).
char *ngx_certgate_set_code_budget(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    if (cmcf->code_budget_tries != NGX_CONF_UNSET_UINT) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (!ngx_certgate_count(&value[1], 1, 1000, &cmcf->code_budget_tries)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid number of code tries \"%V\" (1 to 1000)",
                           &value[1]);
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_duration(&value[2], &cmcf->code_budget_window)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid code budget window \"%V\": expected a time such as 24h",
                           &value[2]);
        return CG_CONF_ERROR;
    }
    if (cf->args->nelts == 4) {
        ngx_str_t v = value[3];
        if (v.len <= 6 || ngx_strncmp(v.data, "mails=", 6) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\": expected mails=<n>",
                               &value[3]);
            return CG_CONF_ERROR;
        }
        v.data += 6;
        v.len -= 6;
        if (!ngx_certgate_count(&v, 1, 1000, &cmcf->code_budget_mails)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid number of code mails \"%V\" (1 to 1000)", &value[3]);
            return CG_CONF_ERROR;
        }
    }
    return NGX_CONF_OK;
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
    } sets[] = {{&cmcf->userid_rules, &cmcf->custom_userid_rules, &certgate::kDefaultUserIdRule},
                {&cmcf->password_rules, &cmcf->custom_password_rules,
                 &certgate::kDefaultPasswordRule}};

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

// One or more PCRE2 patterns that must all match, through nginx's regex API,
// then the rule's options (min=, max=, description=, description_en=).
char *ngx_certgate_set_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    try {
        auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
        auto **field = reinterpret_cast<ngx_array_t **>(static_cast<char *>(conf) + cmd->offset);
        if (*field != nullptr) return const_cast<char *>("is duplicate");

        ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
        std::vector<std::string> args;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) args.push_back(ngx_certgate_str(value[i]));
        certgate::CredentialRule rule;
        try {
            rule = certgate::parse_credential_rule(args);
        } catch (const certgate::RuleError &e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name, e.what());
            return CG_CONF_ERROR;
        }

        *field = ngx_array_create(cf->pool, rule.patterns.size(), sizeof(ngx_regex_t *));
        if (*field == nullptr) return CG_CONF_ERROR;
        for (ngx_uint_t i = 1; i <= rule.patterns.size(); i++) {
            auto **slot = static_cast<ngx_regex_t **>(ngx_array_push(*field));
            if (slot == nullptr) return CG_CONF_ERROR;
            *slot = ngx_certgate_compile(cf, &value[i]);
            if (*slot == nullptr) return CG_CONF_ERROR;
        }
        // The whole directive, for the core's Policy (lengths, descriptions).
        ngx_array_t **kept = field == &cmcf->userid_rules ? &cmcf->userid_rule_args
                                                          : &cmcf->password_rule_args;
        *kept = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
        if (*kept == nullptr) return CG_CONF_ERROR;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
            auto *slot = static_cast<ngx_str_t *>(ngx_array_push(*kept));
            if (slot == nullptr) return CG_CONF_ERROR;
            *slot = value[i];
        }
        return NGX_CONF_OK;
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "certgate: %s", e.what());
        return CG_CONF_ERROR;
    }
}

char *ngx_certgate_set_mail(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    std::string uri = ngx_certgate_str(value[1]);
    if (uri.rfind("smtp://", 0) == 0 || uri.rfind("smtps://", 0) == 0) {
        size_t host = uri.find("://") + 3;
        if (uri.size() == host || uri[host] == ':' || uri[host] == '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid mail relay \"%V\": no host",
                               &value[1]);
            return CG_CONF_ERROR;
        }
        *field = value[1];
        return NGX_CONF_OK;
    }
    if (uri.rfind("maildir:", 0) == 0 && uri.size() > 8) {
        ngx_str_t dir = {value[1].len - 8, value[1].data + 8};
        if (ngx_conf_full_name(cf->cycle, &dir, 1) != NGX_OK) return CG_CONF_ERROR;
        struct stat st {};
        std::string path = ngx_certgate_str(dir);
        if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "maildir \"%V\" is not a directory", &dir);
            return CG_CONF_ERROR;
        }
        field->len = 8 + dir.len;
        field->data = static_cast<u_char *>(ngx_pnalloc(cf->pool, field->len));
        if (field->data == nullptr) return CG_CONF_ERROR;
        ngx_memcpy(ngx_cpymem(field->data, "maildir:", 8), dir.data, dir.len);
        return NGX_CONF_OK;
    }
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid mail relay \"%V\": expected smtp://host:port, "
                       "smtps://host:port or maildir:/path",
                       &value[1]);
    return CG_CONF_ERROR;
}

char *ngx_certgate_set_session_timeout(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    if (cmcf->session_idle != NGX_CONF_UNSET) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (!ngx_certgate_duration(&value[1], &cmcf->session_idle)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid idle timeout \"%V\"", &value[1]);
        return CG_CONF_ERROR;
    }
    if (!ngx_certgate_duration(&value[2], &cmcf->session_absolute)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid absolute timeout \"%V\"", &value[2]);
        return CG_CONF_ERROR;
    }
    if (cmcf->session_idle > cmcf->session_absolute) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the idle timeout \"%V\" is longer than the absolute timeout \"%V\"",
                           &value[1], &value[2]);
        return CG_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

char *ngx_certgate_set_templates(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept {
    ngx_str_t *field = ngx_certgate_field(conf, cmd);
    if (field->data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    *field = value[1];
    ngx_certgate_remember(cf, &static_cast<ngx_certgate_main_conf_t *>(conf)->templates_place);
    if (ngx_conf_full_name(cf->cycle, field, 1) != NGX_OK) return CG_CONF_ERROR;
    struct stat st {};
    std::string path = ngx_certgate_str(*field);
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "templates directory \"%V\" does not exist",
                           field);
        return CG_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

char *ngx_certgate_set_helpdesk(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept {
    auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(conf);
    if (cmcf->helpdesk_name.data != nullptr) return const_cast<char *>("is duplicate");

    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    cmcf->helpdesk_name = value[1];
    cmcf->helpdesk_phone = value[2];
    cmcf->helpdesk_hours = value[3];
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

// --- the runtime -------------------------------------------------------------

static void ngx_certgate_place_error(ngx_conf_t *cf, const ngx_certgate_conf_place_t &place,
                                     const char *msg) {
    if (place.line) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%s in %V:%ui", msg, &place.file, place.line);
    } else {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%s", msg);
    }
}

// Who nginx's workers will run as, the way ngx_worker_process_init
// switches: the "user" directive (parsed before http{}, as usual), nginx's
// default nobody (group nobody, else nogroup) when the master runs as root,
// the current user otherwise. False when no switch happens (master_process
// off) or the user is unknown (nginx itself says so).
static bool ngx_certgate_worker_identity(ngx_conf_t *cf, certgate::WorkerIdentity *who) {
    auto *ccf =
        reinterpret_cast<ngx_core_conf_t *>(ngx_get_conf(cf->cycle->conf_ctx, ngx_core_module));
    if (ccf->master == 0) return false;
    gid_t gid;
    if (geteuid() != 0) {
        who->uid = geteuid();
        gid = getegid();
        struct passwd *pw = getpwuid(who->uid);
        who->name = pw ? pw->pw_name : std::to_string(who->uid);
        who->gids.push_back(gid);
        int n = getgroups(0, nullptr);
        std::vector<gid_t> groups(n > 0 ? n : 0);
        if (n > 0 && getgroups(n, groups.data()) == n)
            who->gids.insert(who->gids.end(), groups.begin(), groups.end());
        return true;
    }
    if (ccf->user == (uid_t)NGX_CONF_UNSET_UINT) {
        struct passwd *pw = getpwnam("nobody");
        if (pw == nullptr) return false;
        struct group *gr = getgrnam("nobody");
        if (gr == nullptr) gr = getgrnam("nogroup");
        who->name = "nobody";
        who->uid = pw->pw_uid;
        gid = gr ? gr->gr_gid : pw->pw_gid;
    } else {
        who->name = ccf->username ? ccf->username : std::to_string(ccf->user);
        who->uid = ccf->user;
        gid = ccf->group;
    }
    int n = 64;
    std::vector<gid_t> groups(n);
    if (getgrouplist(who->name.c_str(), gid, groups.data(), &n) < 0) {
        groups.resize(n);
        if (getgrouplist(who->name.c_str(), gid, groups.data(), &n) < 0) n = 0;
    }
    groups.resize(n);
    who->gids.push_back(gid);
    who->gids.insert(who->gids.end(), groups.begin(), groups.end());
    return true;
}

static void ngx_certgate_runtime_cleanup(void *data) noexcept {
    delete static_cast<certgate::Runtime *>(data);
}

static bool ngx_certgate_required(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf,
                                  const ngx_str_t &value, const char *directive) {
    if (value.len != 0) return true;
    std::string msg = std::string("\"") + directive +
                      "\" is not set; certgate_portal and certgate_require need it";
    ngx_certgate_place_error(cf, cmcf->use_place, msg.c_str());
    return false;
}

ngx_int_t ngx_certgate_init_runtime(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    if (!ngx_certgate_required(cf, cmcf, cmcf->store, "certgate_store") ||
        !ngx_certgate_required(cf, cmcf, cmcf->memcached, "certgate_memcached") ||
        !ngx_certgate_required(cf, cmcf, cmcf->secret_file, "certgate_secret") ||
        !ngx_certgate_required(cf, cmcf, cmcf->ca_certificate, "certgate_ca_certificate") ||
        !ngx_certgate_required(cf, cmcf, cmcf->ca_key, "certgate_ca_key")) {
        return NGX_ERROR;
    }

    certgate::Runtime *rt;
    try {
        rt = new certgate::Runtime();
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return NGX_ERROR;
    }
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr) {
        delete rt;
        return NGX_ERROR;
    }
    cln->handler = ngx_certgate_runtime_cleanup;
    cln->data = rt;
    cmcf->runtime = rt;

    certgate::Settings &s = rt->settings;
    const ngx_certgate_conf_place_t *place = &cmcf->secret_place;
    try {
        s.store_uri = ngx_certgate_str(cmcf->store);
        std::string mc = ngx_certgate_str(cmcf->memcached);
        auto colon = mc.rfind(':');
        if (colon != std::string::npos && mc.find(']') < colon) {
            s.memcached_host = mc.substr(1, mc.find(']') - 1);
            s.memcached_port = std::stoi(mc.substr(colon + 1));
        } else if (colon != std::string::npos && mc.find(':') == colon) {
            s.memcached_host = mc.substr(0, colon);
            s.memcached_port = std::stoi(mc.substr(colon + 1));
        } else {
            s.memcached_host = mc;
        }
        // The http-level certgate_language: the language of the expiry
        // notices (this runs in init_main_conf, where cf->ctx is http{}'s).
        auto *http_scf = static_cast<ngx_certgate_srv_conf_t *>(
            ngx_http_conf_get_module_srv_conf(cf, ngx_http_certgate_module));
        if (http_scf != nullptr && http_scf->language != NGX_CONF_UNSET_UINT) {
            s.mail_language = http_scf->language == NGX_CERTGATE_LANG_EN ? certgate::Language::en
                                                                          : certgate::Language::ja;
            s.mail_bilingual = http_scf->language == NGX_CERTGATE_LANG_AUTO;
        }
        s.ca_certificate = ngx_certgate_str(cmcf->ca_certificate);
        s.ca_certificate_previous = ngx_certgate_str(cmcf->ca_certificate_previous);
        s.ca_key = ngx_certgate_str(cmcf->ca_key);
        s.ca_key_passphrase_file = ngx_certgate_str(cmcf->ca_key_passphrase_file);
        s.ca_key_pin_file = ngx_certgate_str(cmcf->ca_key_pin_file);
        s.pkcs11_module = ngx_certgate_str(cmcf->pkcs11_module);
        s.key_type = ngx_certgate_str(cmcf->key_type);
        s.p12_legacy = cmcf->p12_encryption == 1;
        s.p12_iterations = static_cast<int>(cmcf->p12_iterations);
        s.crl_url = ngx_certgate_str(cmcf->crl_url);
        s.sync_interval_ms = static_cast<long>(cmcf->sync_interval);
        s.notify_interval_ms = static_cast<long>(cmcf->notify_interval);
        s.cert_validity_days = static_cast<long>(cmcf->cert_validity);
        s.renew_before_days = static_cast<long>(cmcf->renew_before);
        s.crl_validity_seconds = static_cast<long>(cmcf->crl_validity);
        s.timezone = ngx_certgate_str(cmcf->timezone);
        s.lockout_failures = static_cast<int>(cmcf->lockout_failures);
        s.lockout_time_s = static_cast<long>(cmcf->lockout_time);
        s.lockout_locks = static_cast<int>(cmcf->lockout_locks);
        s.code_digits = static_cast<int>(cmcf->code_digits);
        s.code_lifetime_s = static_cast<long>(cmcf->code_lifetime);
        s.code_attempts = static_cast<int>(cmcf->code_attempts);
        s.code_budget_tries = static_cast<int>(cmcf->code_budget_tries);
        s.code_budget_window_s = static_cast<long>(cmcf->code_budget_window);
        s.code_budget_mails = static_cast<int>(cmcf->code_budget_mails);
        s.mail = ngx_certgate_str(cmcf->mail);
        s.mail_from = ngx_certgate_str(cmcf->mail_from);
        for (auto [from, to] : {std::pair{cmcf->userid_rule_args, &s.userid_rule_args},
                                std::pair{cmcf->password_rule_args, &s.password_rule_args}}) {
            if (from == nullptr) continue;
            auto *arg = static_cast<ngx_str_t *>(from->elts);
            for (ngx_uint_t i = 0; i < from->nelts; i++) to->push_back(ngx_certgate_str(arg[i]));
        }
        s.session_idle_s = static_cast<long>(cmcf->session_idle);
        s.session_absolute_s = static_cast<long>(cmcf->session_absolute);
        s.templates_dir = ngx_certgate_str(cmcf->templates);
        s.portal_prefix = ngx_certgate_str(cmcf->portal_prefix);
        if (cmcf->helpdesk_name.len) {
            s.helpdesk.name = ngx_certgate_str(cmcf->helpdesk_name);
            s.helpdesk.phone = ngx_certgate_str(cmcf->helpdesk_phone);
            s.helpdesk.hours = ngx_certgate_str(cmcf->helpdesk_hours);
        }

        place = &cmcf->secret_place;
        s.secret = certgate::read_secret_file(ngx_certgate_str(cmcf->secret_file));

        place = &cmcf->ca_place;
        certgate::X509Ptr ca_cert = certgate::load_certificate(s.ca_certificate);

        place = &cmcf->ca_key_place;
        certgate::CaKeyOptions key_options;
        key_options.passphrase_file = s.ca_key_passphrase_file;
        key_options.pin_file = s.ca_key_pin_file;
        key_options.pkcs11_module = s.pkcs11_module;
        rt->ca = std::make_unique<certgate::CaSigner>(
            certgate::CaSigner::load(s.ca_certificate, s.ca_key, key_options));

        std::vector<certgate::X509Ptr> previous;
        if (!s.ca_certificate_previous.empty()) {
            place = &cmcf->ca_previous_place;
            previous = certgate::load_previous_ca_certificates(s.ca_certificate_previous,
                                                               ca_cert.get());
        }
        rt->client_check =
            std::make_unique<certgate::ClientCertCheck>(rt->ca->certificate(), previous);

        place = cmcf->templates.len ? &cmcf->templates_place : &cmcf->use_place;
        rt->pages = std::make_unique<certgate::Pages>(s);

        // The store must hold the schema this build knows; nginx -t says so
        // instead of the first request failing.
        place = &cmcf->store_place;
        // nginx's workers must be able to write it, or every portal request
        // would answer 503; looked at before this process opens
        // it, so the -wal and -shm files seen are not this check's own.
        place = &cmcf->store_place;
        certgate::WorkerIdentity who;
        if (ngx_certgate_worker_identity(cf, &who)) {
            std::string problem = certgate::store_access_problem(s.store_uri, who);
            if (!problem.empty()) throw std::runtime_error(problem);
        }
        auto store = certgate::Store::open(s.store_uri);
        certgate::check_schema(*store);
        std::string exposed = store->permission_warning();
        if (!exposed.empty() && place->line) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0, "%s in %V:%ui", exposed.c_str(), &place->file,
                          place->line);
        } else if (!exposed.empty()) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0, "%s", exposed.c_str());
        }
    } catch (const std::exception &e) {
        ngx_certgate_place_error(cf, *place, e.what());
        return NGX_ERROR;
    }
    return NGX_OK;
}
