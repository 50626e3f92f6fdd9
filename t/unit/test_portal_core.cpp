// Unit tests for the portal's core parts: error codes and words, page
// templates and the health JSON. (The memcached adapter: test_memcached_kv.)

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/app/health.hpp"
#include "core/web/errors.hpp"
#include "core/web/pages.hpp"
#include "core/web/portal.hpp"

// cmocka last: its macros (fail, ...) clash with the C++ library.
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

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

static void error_codes_round_trip(void **) {
    ErrorCode c;
    assert_true(parse_error_code("no_certificate", &c));
    assert_int_equal(static_cast<int>(c), static_cast<int>(ErrorCode::no_certificate));
    assert_string_equal(error_name(ErrorCode::locked), "locked");
    assert_string_equal(error_name(ErrorCode::unavailable), "unavailable");
    assert_false(parse_error_code("<script>", &c));
    assert_false(parse_error_code("", &c));
    // Every code has words in both languages.
    for (int i = 0; i <= static_cast<int>(ErrorCode::login_required); ++i) {
        auto code = static_cast<ErrorCode>(i);
        assert_true(parse_error_code(error_name(code), &c));
        assert_int_equal(static_cast<int>(c), i);
        assert_false(error_message(code, Language::ja).empty());
        assert_false(error_message(code, Language::en).empty());
    }
}

static void login_page_has_the_four_buttons(void **) {
    Settings s;
    s.helpdesk = {"ヘルプ窓口", "0120-111-222", "9:00-17:00"};
    Pages pages(s);
    PageData data{PageData::type::object};
    data.set("title", "T");
    data.set("csrf_token", "tok");
    std::string html = pages.render("login", Language::ja, data, "/certgate/");
    assert_true(contains(html, ">ログイン</button>"));
    assert_true(contains(html, ">マスターユーザーの初期登録</button>"));
    assert_true(contains(html, ">一般ユーザーの初期登録</button>"));
    assert_true(contains(html, ">電子証明書発行</button>"));
    assert_true(contains(html, "ヘルプ窓口"));
    assert_true(contains(html, "0120-111-222"));
    assert_true(contains(html, "value=\"tok\""));
    std::string en = pages.render("login", Language::en, data, "/certgate/");
    assert_true(contains(en, "<html lang=\"en\">"));
    assert_true(contains(en, ">Log in</button>"));
}

static void page_values_are_escaped(void **) {
    Settings s;
    Pages pages(s);
    PageData data{PageData::type::object};
    data.set("title", "x");
    data.set("message", "<script>alert(1)</script>");
    std::string html = pages.render("error", Language::ja, data, "/certgate/");
    assert_false(contains(html, "<script>alert"));
    assert_true(contains(html, "&lt;script&gt;"));
}

static void custom_templates_override_and_errors_name_the_file(void **) {
    char dir[] = "/tmp/certgate-tmpl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    std::string d = dir;
    { std::ofstream(d + "/error.mustache") << "<p>BANK BRANDED {{error}}</p>"; }
    Settings s;
    s.templates_dir = d;
    Pages pages(s);
    PageData data{PageData::type::object};
    data.set("title", "x");
    data.set("error", "locked");
    std::string html = pages.render("error", Language::ja, data, "/certgate/");
    assert_true(contains(html, "BANK BRANDED locked"));

    { std::ofstream(d + "/login.mustache") << "{{#unclosed}}oops"; }
    bool thrown = false;
    try {
        Pages broken(s);
    } catch (const PageError &e) {
        thrown = true;
        assert_true(contains(e.what(), d + "/login.mustache"));
    }
    assert_true(thrown);
    std::remove((d + "/error.mustache").c_str());
    std::remove((d + "/login.mustache").c_str());
    rmdir(dir);
}

static void health_json_hides_reasons(void **) {
    Health h;
    h.memcached_up = false;
    h.memcached_error = "cannot connect to memcached 10.0.0.1:11211";
    h.store_up = true;
    std::string json = health_json(h, -1);
    assert_true(contains(json, "\"status\":\"unavailable\""));
    assert_true(contains(json, "\"memcached\":{\"up\":false}"));
    assert_false(contains(json, "10.0.0.1"));
    assert_false(contains(json, "tasks_alive"));
    h.memcached_up = true;
    assert_true(contains(health_json(h, 3), "\"tasks_alive\":3"));
    assert_string_equal(
        ready_json(h, FeedHealth{false, 7, 3}, true).c_str(),
        "{\"status\":\"unavailable\",\"memcached\":{\"up\":true},\"store\":{\"up\":true},"
        "\"feed\":{\"fresh\":false,\"lag_seconds\":7,\"behind_events\":3},"
        "\"ca_key\":{\"up\":true}}\n");
    assert_true(ready(h, true, true));
    assert_string_equal(live_json(42).c_str(), "{\"status\":\"ok\",\"pid\":42}\n");
}

// Refusals keep their key order and their UTF-8; bytes that are not UTF-8
// are replaced, never thrown (no 500 for a bad byte in a message).
static void refusal_json_escapes_and_keeps_utf8(void **) {
    assert_string_equal(
        refusal_json(ErrorCode::locked, "ロック\"中\"\n\\").c_str(),
        "{\"ok\":false,\"error\":\"locked\",\"message\":\"ロック\\\"中\\\"\\n\\\\\"}\n");
    assert_true(contains(refusal_json(ErrorCode::locked, "a\xff"), "a\xef\xbf\xbd"));
}

// Which requests go to the crypto thread pool (issue 18): the POSTs that
// check or hash a password or issue; never a GET, ⑤'s code, the download.
static void crypto_bound_requests(void **) {
    for (const char *path : {"login", "issue", "issue/confirm", "register/master",
                             "register/password", "admin/users", "admin/users/gen0001/reset"})
        assert_true(Portal::crypto_bound("POST", path));
    for (const char *path : {"login", "issue/confirm", "admin/users"})
        assert_false(Portal::crypto_bound("GET", path));
    for (const char *path :
         {"", "logout", "issue/code", "issue/cancel", "admin/users/gen0001/unlock",
          "admin/users/gen0001/disable", "admin/users/reset", "crl", "issue/download/abc"})
        assert_false(Portal::crypto_bound("POST", path));
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_codes_round_trip),
        cmocka_unit_test(login_page_has_the_four_buttons),
        cmocka_unit_test(page_values_are_escaped),
        cmocka_unit_test(custom_templates_override_and_errors_name_the_file),
        cmocka_unit_test(health_json_hides_reasons),
        cmocka_unit_test(refusal_json_escapes_and_keeps_utf8),
        cmocka_unit_test(crypto_bound_requests),
    };
    return cmocka_run_group_tests_name("portal_core", tests, nullptr, nullptr);
}
