// The shared directive table: nginx's time notation, arity and duplicates,
// relative paths against the conf prefix, and the values the parsers set.
#include <cstring>
#include <string>
#include <vector>

#include "core/config/directives.hpp"

// cmocka last: it defines macros such as fail() that collide with <ios>.
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;

namespace {

std::string apply(ConfValues& v, const char* name, std::vector<std::string> args) {
    const Directive* d = find_directive(name);
    if (d == nullptr) fail_msg("no directive %s", name);
    ConfPaths paths;
    paths.conf_prefix = "/etc/nginx/";
    paths.check_files = false;
    return apply_directive(*d, args, paths, v);
}

void nginx_time_notation(void**) {
    assert_int_equal(parse_nginx_time("60m", true), 3600);
    assert_int_equal(parse_nginx_time("1h 30m", true), 5400);
    assert_int_equal(parse_nginx_time("1h30m", true), 5400);
    assert_int_equal(parse_nginx_time("90", true), 90);
    assert_int_equal(parse_nginx_time("1d", true), 86400);
    assert_int_equal(parse_nginx_time("500ms", false), 500);
    assert_int_equal(parse_nginx_time("2s", false), 2000);
    assert_int_equal(parse_nginx_time("1h", false), 3600000);
    for (const char* bad : {"", "60x", "m", "30m1h", "1h1h", "-5", "500ms"})
        if (parse_nginx_time(bad, true) != -1) fail_msg("\"%s\" was accepted in seconds", bad);
    assert_int_equal(parse_nginx_time("1y", false), -1);  // ms times start at months, as nginx
}

void arity_and_duplicates_as_nginx_words_them(void**) {
    ConfValues v;
    assert_string_equal(apply(v, "certgate_lockout", {"6", "60m"}).c_str(),
                        "invalid number of arguments in \"certgate_lockout\" directive");
    assert_string_equal(apply(v, "certgate_lockout", {"5", "10m", "2"}).c_str(), "");
    assert_string_equal(apply(v, "certgate_lockout", {"5", "10m", "2"}).c_str(),
                        "\"certgate_lockout\" directive is duplicate");
    assert_int_equal(v.settings.lockout_failures, 5);
    assert_int_equal(v.settings.lockout_time_s, 600);
    assert_int_equal(v.settings.lockout_locks, 2);
    assert_true(v.seen.count("certgate_lockout") == 1);
}

void relative_paths_follow_the_conf_prefix(void**) {
    ConfValues v;
    assert_string_equal(apply(v, "certgate_store", {"sqlite:data/certgate.db"}).c_str(), "");
    assert_string_equal(v.settings.store_uri.c_str(), "sqlite:/etc/nginx/data/certgate.db");
    assert_string_equal(apply(v, "certgate_ca_certificate", {"ca.crt"}).c_str(), "");
    assert_string_equal(v.settings.ca_certificate.c_str(), "/etc/nginx/ca.crt");
    assert_string_equal(apply(v, "certgate_ca_key", {"/srv/ca.key"}).c_str(), "");
    assert_string_equal(v.settings.ca_key.c_str(), "/srv/ca.key");
    ConfValues hsm;
    assert_string_equal(apply(hsm, "certgate_ca_key", {"engine:pkcs11:pkcs11:token=ca"}).c_str(),
                        "");
    assert_string_equal(hsm.settings.ca_key.c_str(), "engine:pkcs11:pkcs11:token=ca");
    assert_string_equal(apply(v, "certgate_mail", {"maildir:spool"}).c_str(), "");
    assert_string_equal(v.settings.mail.c_str(), "maildir:/etc/nginx/spool");
}

void values_and_refusals(void**) {
    ConfValues v;
    assert_string_equal(apply(v, "certgate_memcached", {"[::1]:11300"}).c_str(), "");
    assert_int_equal(v.settings.memcached_servers.size(), 1);
    assert_string_equal(v.settings.memcached_servers[0].host.c_str(), "::1");
    assert_int_equal(v.settings.memcached_servers[0].port, 11300);
    ConfValues two;
    assert_string_equal(
        apply(two, "certgate_memcached", {"127.0.0.1:1", "unix:/run/mc.sock", "timeout=2s"})
            .c_str(),
        "");
    assert_int_equal(two.settings.memcached_servers.size(), 2);
    assert_int_equal(two.settings.memcached_timeout_ms, 2000);
    ConfValues w;
    assert_string_equal(apply(w, "certgate_memcached", {"127.0.0.1:notaport"}).c_str(),
                        "invalid memcached address \"127.0.0.1:notaport\": invalid port");
    assert_string_equal(apply(v, "certgate_timezone", {"zone1970.tab"}).c_str(),
                        "unknown time zone \"zone1970.tab\": expected an IANA name such as "
                        "Asia/Tokyo");
    ConfValues tz;
    assert_string_equal(apply(tz, "certgate_timezone", {"America/New_York"}).c_str(), "");
    assert_string_equal(tz.settings.timezone.c_str(), "America/New_York");
    assert_string_equal(apply(v, "certgate_notify_interval", {"off"}).c_str(), "");
    assert_int_equal(v.settings.notify_interval_ms, 0);
    assert_string_equal(apply(v, "certgate_renew_before", {"45d"}).c_str(), "");
    assert_int_equal(v.settings.renew_before_days, 45);
    assert_string_equal(apply(v, "certgate_password_rule", {"^.{10,}$", "[0-9]"}).c_str(), "");
    assert_int_equal(v.settings.password_rules.size(), 2);
    assert_non_null(
        strstr(apply(v, "certgate_userid_rule", {"[A-Z"}).c_str(), "invalid pattern \"[A-Z\""));
    v.settings.cert_validity_days = 30;
    assert_non_null(strstr(check_settings(v.settings).c_str(), "must be shorter"));
}

// Every directive the glue hands to the table has a parser; the ones it
// keeps (locations, zones, the pool) are still named, with their context.
void the_table_names_every_directive(void**) {
    for (const char* name : {"certgate_store", "certgate_portal", "certgate_require",
                             "certgate_language", "certgate_source_limit"})
        assert_non_null(find_directive(name));
    assert_true(find_directive("certgate_portal")->contexts == kLocation);
    assert_true(find_directive("certgate_language")->contexts == (kHttp | kServer));
    assert_null(find_directive("certgate_nonsense"));
}

// The default each entry states is a value its parser takes, and gives the
// Settings' own default.
void defaults_parse_to_the_settings_defaults(void**) {
    const Settings plain;
    for (const Directive& d : directives()) {
        if (d.parse == nullptr || d.default_value[0] == '\0') continue;
        ConfValues v;
        std::vector<std::string> args;
        std::string word;
        for (const char* p = d.default_value;; ++p) {
            if (*p == ' ' || *p == '\0') {
                if (!word.empty()) args.push_back(word);
                word.clear();
                if (*p == '\0') break;
            } else {
                word += *p;
            }
        }
        std::string error = apply(v, d.name, args);
        if (!error.empty()) fail_msg("%s %s: %s", d.name, d.default_value, error.c_str());
        const Settings& s = v.settings;
        if (s.key_type != plain.key_type || s.timezone != plain.timezone ||
            s.p12_legacy != plain.p12_legacy || s.p12_iterations != plain.p12_iterations ||
            s.sync_interval_ms != plain.sync_interval_ms ||
            s.notify_interval_ms != plain.notify_interval_ms ||
            s.cert_validity_days != plain.cert_validity_days ||
            s.renew_before_days != plain.renew_before_days ||
            s.crl_validity_seconds != plain.crl_validity_seconds ||
            s.lockout_failures != plain.lockout_failures ||
            s.lockout_time_s != plain.lockout_time_s || s.lockout_locks != plain.lockout_locks ||
            s.code_digits != plain.code_digits || s.code_lifetime_s != plain.code_lifetime_s ||
            s.code_attempts != plain.code_attempts ||
            s.code_budget_tries != plain.code_budget_tries ||
            s.code_budget_window_s != plain.code_budget_window_s ||
            s.code_budget_mails != plain.code_budget_mails ||
            s.session_idle_s != plain.session_idle_s ||
            s.session_absolute_s != plain.session_absolute_s ||
            s.mail_language != plain.mail_language)
            fail_msg("%s: the stated default \"%s\" is not the Settings default", d.name,
                     d.default_value);
    }
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nginx_time_notation),
        cmocka_unit_test(arity_and_duplicates_as_nginx_words_them),
        cmocka_unit_test(relative_paths_follow_the_conf_prefix),
        cmocka_unit_test(values_and_refusals),
        cmocka_unit_test(the_table_names_every_directive),
        cmocka_unit_test(defaults_parse_to_the_settings_defaults),
    };
    return cmocka_run_group_tests_name("directives", tests, nullptr, nullptr);
}
