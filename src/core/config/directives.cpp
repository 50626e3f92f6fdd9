#include "core/config/directives.hpp"

#include "core/config/memcached_servers.hpp"
#include "core/policy/policy.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>

#include "core/adapters/ca.hpp"
#include "core/adapters/tz.hpp"
#include "core/base/encoding.hpp"

namespace certgate {

namespace {

using Args = std::vector<std::string>;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

bool starts_with(const std::string& s, std::string_view prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

// ngx_atoi: digits only, no sign; -1 if not a number.
long long to_number(std::string_view v) {
    if (v.empty() || v.size() > 18) return -1;
    long long n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
    }
    return n;
}

bool count_in(const std::string& v, long long lo, long long hi, int& out) {
    long long n = to_number(v);
    if (n < lo || n > hi) return false;
    out = static_cast<int>(n);
    return true;
}

// A duration in nginx's notation (60m, 1h, 30s), in seconds, above zero.
bool duration(const std::string& v, long& out) {
    long long s = parse_nginx_time(v, true);
    if (s <= 0) return false;
    out = static_cast<long>(s);
    return true;
}

// A file that must be there when nginx starts, readable by the master,
// which reads it before the workers start.
std::string readable_file(const std::string& directive, const std::string& name,
                          const ConfPaths& paths, std::string& out) {
    out = paths.full_name(name);
    if (paths.check_files && access(out.c_str(), R_OK) != 0) {
        const int err = errno;
        return "cannot read the " + directive + " file " + quoted(out) + " (" +
               std::to_string(err) + ": " + std::strerror(err) + ")";
    }
    return "";
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// --- the parsers, in table order ------------------------------------------------

std::string parse_store(const Args& a, const ConfPaths& paths, ConfValues& v) {
    const std::string& uri = a[0];
    if (starts_with(uri, "sqlite:") && uri.size() > 7) {
        v.settings.store_uri = "sqlite:" + paths.full_name(uri.substr(7));
        return "";
    }
    // Handed to libpq as it is (host=a,b, sslmode, passfile, ...); nginx -t
    // connects and says what is wrong with it.
    if ((starts_with(uri, "postgresql://") && uri.size() > 13) ||
        (starts_with(uri, "postgres://") && uri.size() > 11)) {
        v.settings.store_uri = uri;
        return "";
    }
    return "invalid store " + quoted(uri) +
           ": expected \"sqlite:/path/to/certgate.db\" or "
           "\"postgresql://user@host:port/database\"";
}

template <std::string Settings::*field>
std::string parse_file(const std::string& directive, const Args& a, const ConfPaths& paths,
                       ConfValues& v) {
    return readable_file(directive, a[0], paths, v.settings.*field);
}

#define CG_FILE(name, field)                                \
    [](const Args& a, const ConfPaths& p, ConfValues& v) {  \
        return parse_file<&Settings::field>(name, a, p, v); \
    }

std::string parse_ca_key(const Args& a, const ConfPaths& paths, ConfValues& v) {
    const std::string& key = a[0];
    if (starts_with(key, "engine:") && key.size() > 7) {
        if (!starts_with(key, "engine:pkcs11:") || key.size() <= 14)
            return "invalid CA key " + quoted(key) +
                   ": the only engine is \"engine:pkcs11:<pkcs11 URI>\"";
        v.settings.ca_key = key;
        return "";
    }
    return readable_file("certgate_ca_key", key, paths, v.settings.ca_key);
}

std::string parse_p12_encryption(const Args& a, const ConfPaths&, ConfValues& v) {
    if (a[0] != "aes256" && a[0] != "legacy") return "invalid value " + quoted(a[0]);
    v.settings.p12_legacy = a[0] == "legacy";
    return "";
}

// Below the floor a stolen .p12 (and with it the login password) falls to
// an offline guess too fast; above the ceiling issuance takes minutes.
std::string parse_p12_iterations(const Args& a, const ConfPaths&, ConfValues& v) {
    const long long n = to_number(a[0]);
    if (n < 0) return "\"certgate_p12_iterations\" directive invalid number";
    if (n < kMinP12Iterations)
        return "\"certgate_p12_iterations\" directive is below the floor of 10000 iterations: a "
               "stolen .p12 and its password would fall to an offline guess too fast (default "
               "100000)";
    if (n > kMaxP12Iterations)
        return "\"certgate_p12_iterations\" directive is above 10000000 iterations: issuance "
               "would take minutes";
    v.settings.p12_iterations = static_cast<int>(n);
    return "";
}

// A time in nginx's notation (500ms, 2s, 1h), in milliseconds; `off` (where
// allowed) is 0.
std::string interval(const std::string& text, bool may_be_off, long& out) {
    if (may_be_off && text == "off") {
        out = 0;
        return "";
    }
    const long long ms = parse_nginx_time(text, false);
    if (ms <= 0) return "invalid interval " + quoted(text);
    out = static_cast<long>(ms);
    return "";
}

std::string parse_templates(const Args& a, const ConfPaths& paths, ConfValues& v) {
    v.settings.templates_dir = paths.full_name(a[0]);
    if (paths.check_files && !is_directory(v.settings.templates_dir))
        return "templates directory " + quoted(v.settings.templates_dir) + " does not exist";
    return "";
}

// certgate_key_pool off | N [pause=TIME]: keys made ahead per worker.
std::string parse_key_pool(const Args& a, const ConfPaths&, ConfValues& v) {
    if (a[0] == "off") {
        if (a.size() > 1) return "\"certgate_key_pool\" directive: nothing may follow \"off\"";
        v.settings.key_pool_size = 0;
        return "";
    }
    char* end = nullptr;
    long n = std::strtol(a[0].c_str(), &end, 10);
    if (a[0].empty() || *end != '\0' || n < 1 || n > 1000)
        return "\"certgate_key_pool\" directive: expected off or a number of keys from 1 to "
               "1000, not " +
               quoted(a[0]);
    v.settings.key_pool_size = static_cast<int>(n);
    for (size_t i = 1; i < a.size(); i++) {
        if (a[i].rfind("pause=", 0) != 0)
            return "\"certgate_key_pool\" directive: unknown parameter " + quoted(a[i]) +
                   " (expected pause=TIME)";
        long long ms = parse_nginx_time(a[i].substr(6), false);
        if (ms < 0 || ms > 3600 * 1000LL)
            return "\"certgate_key_pool\" directive: invalid pause " + quoted(a[i].substr(6));
        v.settings.key_pool_pause_ms = static_cast<long>(ms);
    }
    return "";
}

std::string parse_key_type_directive(const Args& a, const ConfPaths&, ConfValues& v) {
    try {
        if (!parse_key_type(a[0]))
            return "unknown key type " + quoted(a[0]) + ": use rsa:2048, rsa:3072 or ec:P-256";
    } catch (const std::exception& e) {
        return e.what();
    }
    v.settings.key_type = a[0];
    return "";
}

// A number of whole days: "366d" or "366".
std::string days(const std::string& text, long& out) {
    std::string n = text;
    if (n.size() > 1 && n.back() == 'd') n.pop_back();
    const long long d = to_number(n);
    if (d < 1 || d > 3650)
        return "invalid number of days " + quoted(text) + ": expected e.g. \"366d\" (1 to 3650)";
    out = static_cast<long>(d);
    return "";
}

std::string parse_timezone(const Args& a, const ConfPaths&, ConfValues& v) {
    std::string problem = time_zone_problem(a[0]);
    if (!problem.empty()) return problem;
    v.settings.timezone = a[0];
    return "";
}

std::string parse_lockout(const Args& a, const ConfPaths&, ConfValues& v) {
    Settings& s = v.settings;
    if (!count_in(a[0], 1, 100, s.lockout_failures))
        return "invalid number of failures " + quoted(a[0]) + " (1 to 100)";
    if (!duration(a[1], s.lockout_time_s))
        return "invalid lock time " + quoted(a[1]) + ": expected a time such as 60m or 1h";
    if (!count_in(a[2], 1, 100, s.lockout_locks))
        return "invalid number of locks " + quoted(a[2]) + " (1 to 100)";
    return "";
}

std::string parse_code(const Args& a, const ConfPaths&, ConfValues& v) {
    Settings& s = v.settings;
    if (!count_in(a[0], 6, 10, s.code_digits))
        return "invalid number of code digits " + quoted(a[0]) + " (6 to 10)";
    if (!duration(a[1], s.code_lifetime_s))
        return "invalid code lifetime " + quoted(a[1]) + ": expected a time such as 30m";
    if (!count_in(a[2], 1, 20, s.code_attempts))
        return "invalid number of code attempts " + quoted(a[2]) + " (1 to 20)";
    return "";
}

// certgate_code_budget <tries> <window> [mails=<n>] (R21).
std::string parse_code_budget(const Args& a, const ConfPaths&, ConfValues& v) {
    Settings& s = v.settings;
    if (!count_in(a[0], 1, 1000, s.code_budget_tries))
        return "invalid number of code tries " + quoted(a[0]) + " (1 to 1000)";
    if (!duration(a[1], s.code_budget_window_s))
        return "invalid code budget window " + quoted(a[1]) + ": expected a time such as 24h";
    if (a.size() == 3) {
        if (a[2].size() <= 6 || !starts_with(a[2], "mails="))
            return "invalid parameter " + quoted(a[2]) + ": expected mails=<n>";
        if (!count_in(a[2].substr(6), 1, 1000, s.code_budget_mails))
            return "invalid number of code mails " + quoted(a[2]) + " (1 to 1000)";
    }
    return "";
}

// One or more PCRE2 patterns that must all match, then min=, max=,
// description=, description_en= (the Policy's reading of the rule).
std::string parse_rule(const char* name, const Args& a, std::vector<std::string>& patterns,
                       std::vector<std::string>& args) {
    CredentialRule rule;
    try {
        rule = parse_credential_rule(a);
    } catch (const RuleError& e) {
        return "\"" + std::string(name) + "\": " + e.what();
    }
    for (const std::string& p : rule.patterns) {
        int err = 0;
        PCRE2_SIZE offset = 0;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), 0, &err,
                                         &offset, nullptr);
        if (code == nullptr) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return "invalid pattern " + quoted(p) + ": " + reinterpret_cast<const char*>(msg) +
                   " at offset " + std::to_string(offset);
        }
        pcre2_code_free(code);
    }
    patterns = rule.patterns;
    args = a;
    return "";
}

std::string parse_mail(const Args& a, const ConfPaths& paths, ConfValues& v) {
    const std::string& uri = a[0];
    if (starts_with(uri, "smtp://") || starts_with(uri, "smtps://")) {
        const size_t host = uri.find("://") + 3;
        if (uri.size() == host || uri[host] == ':' || uri[host] == '/')
            return "invalid mail relay " + quoted(uri) + ": no host";
        v.settings.mail = uri;
        return "";
    }
    if (starts_with(uri, "maildir:") && uri.size() > 8) {
        const std::string dir = paths.full_name(uri.substr(8));
        if (paths.check_files && !is_directory(dir))
            return "maildir " + quoted(dir) + " is not a directory";
        v.settings.mail = "maildir:" + dir;
        return "";
    }
    return "invalid mail relay " + quoted(uri) +
           ": expected smtp://host:port, smtps://host:port or maildir:/path";
}

std::string parse_session_timeout(const Args& a, const ConfPaths&, ConfValues& v) {
    Settings& s = v.settings;
    if (!duration(a[0], s.session_idle_s)) return "invalid idle timeout " + quoted(a[0]);
    if (!duration(a[1], s.session_absolute_s)) return "invalid absolute timeout " + quoted(a[1]);
    if (s.session_idle_s > s.session_absolute_s)
        return "the idle timeout " + quoted(a[0]) + " is longer than the absolute timeout " +
               quoted(a[1]);
    return "";
}

std::string parse_helpdesk(const Args& a, const ConfPaths&, ConfValues& v) {
    v.settings.helpdesk = HelpDesk{a[0], a[1], a[2]};
    return "";
}

std::string parse_crl_validity(const Args& a, const ConfPaths&, ConfValues& v) {
    const long long s = parse_nginx_time(a[0], true);
    if (s < 0) return "\"certgate_crl_validity\" directive invalid value";
    v.settings.crl_validity_seconds = static_cast<long>(s);
    return "";
}

// At the http level, the language of the mails no page asks for (the
// expiry notices); the glue keeps the per-server value for the pages.
std::string parse_language(const Args& a, const ConfPaths&, ConfValues& v) {
    if (a[0] != "ja" && a[0] != "en" && a[0] != "auto") return "invalid value " + quoted(a[0]);
    v.settings.mail_language = a[0] == "en" ? Language::en : Language::ja;
    v.settings.mail_bilingual = a[0] == "auto";
    return "";
}

}  // namespace

// --- the parsers other work extends --------------------------------------------------

// host[:port] or [v6]:port, as ngx_parse_url reads it without resolving.
// certgate_memcached server... [timeout=time]: every server checked, so a
// typo fails nginx -t at its line.
std::string parse_memcached(const Args& a, const ConfPaths&, ConfValues& v) {
    std::vector<MemcachedServer> servers;
    bool timeout_seen = false;
    for (const std::string& arg : a) {
        if (arg.rfind("timeout=", 0) == 0) {
            long long ms = parse_nginx_time(arg.substr(8), false);
            if (ms <= 0 || ms > 60000 || timeout_seen)
                return "invalid memcached timeout " + quoted(arg) +
                       ": expected once, 1ms to 60s, e.g. timeout=500ms";
            timeout_seen = true;
            v.settings.memcached_timeout_ms = static_cast<int>(ms);
            continue;
        }
        MemcachedServer server;
        std::string why;
        if (!parse_memcached_server(arg, &server, &why))
            return "invalid memcached address " + quoted(arg) + ": " + why;
        for (const auto& other : servers)
            if (other == server) return "memcached server " + quoted(arg) + " is listed twice";
        servers.push_back(server);
    }
    if (servers.empty()) return "no memcached server given";
    v.settings.memcached_servers = std::move(servers);
    return "";
}

std::string parse_userid_rule(const Args& a, const ConfPaths&, ConfValues& v) {
    return parse_rule("certgate_userid_rule", a, v.settings.userid_rules,
                      v.settings.userid_rule_args);
}

std::string parse_password_rule(const Args& a, const ConfPaths&, ConfValues& v) {
    return parse_rule("certgate_password_rule", a, v.settings.password_rules,
                      v.settings.password_rule_args);
}

// --- the table ------------------------------------------------------------------------

const std::vector<Directive>& directives() {
    static const std::vector<Directive> table = {
        {"certgate_store", kHttp, 1, 1, "", parse_store},
        {"certgate_memcached", kHttp, 1, -1, "", parse_memcached},
        {"certgate_thread_pool", kHttp, 1, 1, "default", nullptr},
        {"certgate_crypto_thread_pool", kHttp, 1, 1, "", nullptr},
        {"certgate_secret", kHttp, 1, 1, "", CG_FILE("certgate_secret", secret_file)},
        {"certgate_ca_certificate", kHttp, 1, 1, "",
         CG_FILE("certgate_ca_certificate", ca_certificate)},
        {"certgate_ca_certificate_previous", kHttp, 1, 1, "",
         CG_FILE("certgate_ca_certificate_previous", ca_certificate_previous)},
        {"certgate_ca_key", kHttp, 1, 1, "", parse_ca_key},
        {"certgate_ca_key_passphrase_file", kHttp, 1, 1, "",
         CG_FILE("certgate_ca_key_passphrase_file", ca_key_passphrase_file)},
        {"certgate_ca_key_pin_file", kHttp, 1, 1, "",
         CG_FILE("certgate_ca_key_pin_file", ca_key_pin_file)},
        {"certgate_pkcs11_module", kHttp, 1, 1, "",
         CG_FILE("certgate_pkcs11_module", pkcs11_module)},
        {"certgate_p12_encryption", kHttp, 1, 1, "aes256", parse_p12_encryption},
        {"certgate_p12_iterations", kHttp, 1, 1, "100000", parse_p12_iterations},
        {"certgate_sync_interval", kHttp, 1, 1, "1s",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             return interval(a[0], false, v.settings.sync_interval_ms);
         }},
        {"certgate_sync_max_lag", kHttp, 1, 1, "10s",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             return interval(a[0], true, v.settings.sync_max_lag_ms);
         }},
        {"certgate_notify_interval", kHttp, 1, 1, "1h",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             return interval(a[0], true, v.settings.notify_interval_ms);
         }},
        {"certgate_templates", kHttp, 1, 1, "", parse_templates},
        {"certgate_key_type", kHttp, 1, 1, "rsa:2048", parse_key_type_directive},
        {"certgate_key_pool", kHttp, 1, 2, "8 pause=100ms", parse_key_pool},
        {"certgate_cert_validity", kHttp, 1, 1, "366d",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             return days(a[0], v.settings.cert_validity_days);
         }},
        {"certgate_renew_before", kHttp, 1, 1, "30d",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             return days(a[0], v.settings.renew_before_days);
         }},
        {"certgate_timezone", kHttp, 1, 1, "Asia/Tokyo", parse_timezone},
        {"certgate_lockout", kHttp, 3, 3, "6 60m 3", parse_lockout},
        {"certgate_code", kHttp, 3, 3, "6 30m 5", parse_code},
        {"certgate_code_budget", kHttp, 2, 3, "30 24h mails=10", parse_code_budget},
        {"certgate_source_limit", kHttp, 1, 3, "15 1h zone=1m", nullptr},
        {"certgate_userid_rule", kHttp, 1, -1, "", parse_userid_rule},
        {"certgate_password_rule", kHttp, 1, -1, "", parse_password_rule},
        {"certgate_mail", kHttp, 1, 1, "", parse_mail},
        {"certgate_mail_from", kHttp, 1, 1, "",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             v.settings.mail_from = a[0];
             return std::string();
         }},
        {"certgate_session_timeout", kHttp, 2, 2, "20m 8h", parse_session_timeout},
        {"certgate_helpdesk", kHttp, 3, 3, "", parse_helpdesk},
        {"certgate_crl_url", kHttp, 1, 1, "",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             v.settings.crl_url = a[0];
             return std::string();
         }},
        {"certgate_home", kHttp, 1, 1, "/",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             if (!site_local_path(a[0]))
                 return "certgate_home \"" + a[0] +
                        "\" is not a path of this site (it must start with one \"/\", without "
                        "\"//\", backslashes, spaces or control characters)";
             v.settings.home = a[0];
             return std::string();
         }},
        {"certgate_crl_validity", kHttp, 1, 1, "24h", parse_crl_validity},
        {"certgate_revocation_zone", kHttp, 1, 1, "8m", nullptr},
        {"certgate_language", kHttp | kServer, 1, 1, "ja", parse_language},
        {"certgate_portal_url", kHttp, 1, 1, "",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             if (a[0].rfind("https://", 0) != 0 || a[0].size() <= 8 ||
                 a[0].find_first_of(" \t\r\n\"<>") != std::string::npos)
                 return "\"certgate_portal_url\" directive: expected an https:// URL, not " +
                        quoted(a[0]);
             v.settings.portal_url = a[0];
             return std::string();
         }},
        {"certgate_footer_note", kHttp, 1, 2, "",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             for (const std::string& text : a) {
                 if (text.empty() || text.find_first_of("\r\n") != std::string::npos)
                     return std::string(
                         "\"certgate_footer_note\" directive: expected a one-line text");
             }
             v.settings.footer_note_ja = a[0];
             v.settings.footer_note_en = a.size() > 1 ? a[1] : a[0];
             return std::string();
         }},
        {"certgate_self_revoke", kHttp, 1, 1, "on",
         [](const Args& a, const ConfPaths&, ConfValues& v) {
             if (a[0] != "on" && a[0] != "off")
                 return "\"certgate_self_revoke\" directive: expected on or off, not " +
                        quoted(a[0]);
             v.settings.self_revoke = a[0] == "on";
             return std::string();
         }},
        {"certgate_expired_certificates", kHttp | kServer, 1, 1, "reject", nullptr},
        {"certgate_audit", kHttp, 1, 1, "", nullptr},
        {"certgate_metrics", kLocation, 0, 0, "", nullptr},
        {"certgate_portal", kLocation, 0, 0, "", nullptr},
        {"certgate_require", kLocation, 0, 1, "", nullptr},
    };
    return table;
}

const Directive* find_directive(std::string_view name) {
    for (const Directive& d : directives())
        if (name == d.name) return &d;
    return nullptr;
}

std::string apply_directive(const Directive& d, const std::vector<std::string>& args,
                            const ConfPaths& paths, ConfValues& values) {
    const int n = static_cast<int>(args.size());
    if (n < d.min_args || (d.max_args >= 0 && n > d.max_args))
        return std::string("invalid number of arguments in \"") + d.name + "\" directive";
    if (!values.seen.insert(d.name).second)
        return std::string("\"") + d.name + "\" directive is duplicate";
    if (d.parse == nullptr) return "";
    return d.parse(args, paths, values);
}

std::string check_settings(const Settings& s) {
    // Two polls at least fit in the limit, so one slow poll does not fail it.
    if (s.sync_max_lag_ms != 0 && s.sync_max_lag_ms < 2 * s.sync_interval_ms)
        return "certgate_sync_max_lag (" + std::to_string(s.sync_max_lag_ms) +
               "ms) must be at least twice certgate_sync_interval (" +
               std::to_string(s.sync_interval_ms) + "ms)";
    if (s.crl_validity_seconds < 2) return "certgate_crl_validity must be at least 2s";
    if (s.renew_before_days >= s.cert_validity_days)
        return "certgate_renew_before (" + std::to_string(s.renew_before_days) +
               " days) must be shorter than certgate_cert_validity (" +
               std::to_string(s.cert_validity_days) + " days)";
    return "";
}

std::string ConfPaths::full_name(const std::string& name) const {
    if (!name.empty() && name[0] == '/') return name;
    return conf_prefix + name;
}

// ngx_parse_time's grammar: units in decreasing order (y M w d h m s ms),
// each at most once, optionally separated by spaces; a trailing bare number
// counts as seconds.
long long parse_nginx_time(std::string_view text, bool in_seconds) {
    enum Step { start, year, month, week, day, hour, min, sec, msec, last };
    Step step = in_seconds ? start : month;
    long long value = 0, total = 0;
    bool valid = false;
    const long long max_total = LLONG_MAX / 1000;
    size_t i = 0;
    while (i < text.size()) {
        const char c = text[i++];
        if (c >= '0' && c <= '9') {
            if (value > max_total / 10) return -1;
            value = value * 10 + (c - '0');
            valid = true;
            continue;
        }
        long long scale;
        Step next;
        switch (c) {
            case 'y':
                next = year, scale = 365LL * 86400;
                break;
            case 'M':
                next = month, scale = 30LL * 86400;
                break;
            case 'w':
                next = week, scale = 7LL * 86400;
                break;
            case 'd':
                next = day, scale = 86400;
                break;
            case 'h':
                next = hour, scale = 3600;
                break;
            case 'm':
                if (i < text.size() && text[i] == 's') {
                    if (in_seconds) return -1;
                    ++i;
                    next = msec, scale = 1;
                } else {
                    next = min, scale = 60;
                }
                break;
            case 's':
                next = sec, scale = 1;
                break;
            case ' ':
                next = last, scale = 1;
                break;
            default:
                return -1;
        }
        if ((next != last && step >= next) || (next == last && step >= sec)) return -1;
        if (next == year && step > start) return -1;
        step = next;
        if (next != msec && !in_seconds) scale *= 1000;
        if (value > max_total / scale) return -1;
        total += value * scale;
        if (total > max_total) return -1;
        value = 0;
        while (i < text.size() && text[i] == ' ') ++i;
    }
    if (!valid) return -1;
    if (!in_seconds) value *= 1000;
    total += value;
    return total > max_total ? -1 : total;
}

}  // namespace certgate
