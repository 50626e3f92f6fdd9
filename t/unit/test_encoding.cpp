// The one base64 and hex (core/base/encoding): RFC 4648's test vectors for
// both alphabets, and base64url's strict decoding.
#include <string>

#include "core/base/encoding.hpp"

// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;

static void base64_rfc4648_vectors(void **) {
    const char *vectors[][2] = {{"", ""},
                                {"f", "Zg=="},
                                {"fo", "Zm8="},
                                {"foo", "Zm9v"},
                                {"foob", "Zm9vYg=="},
                                {"fooba", "Zm9vYmE="},
                                {"foobar", "Zm9vYmFy"}};
    for (const auto &v : vectors) assert_string_equal(base64_encode(v[0]).c_str(), v[1]);
    // Both alphabets' last two letters.
    assert_string_equal(base64_encode("\xfb\xff\xbf").c_str(), "+/+/");
    assert_string_equal(base64url_encode("\xfb\xff\xbf").c_str(), "-_-_");
    assert_string_equal(base64url_encode("f").c_str(), "Zg");
}

static void base64url_decodes_only_canonical_text(void **) {
    std::string raw;
    for (size_t n = 0; n < 40; ++n) {
        std::string in;
        for (size_t i = 0; i < n; ++i) in += static_cast<char>(i * 37 + n);
        std::string back;
        assert_true(base64url_decode(base64url_encode(in), &back));
        assert_true(back == in);
    }
    assert_true(base64url_decode("-_-_", &raw) && raw == "\xfb\xff\xbf");
    assert_false(base64url_decode("a", &raw));     // impossible length
    assert_false(base64url_decode("+/+/", &raw));  // the other alphabet
    assert_false(base64url_decode("Zg==", &raw));  // padding
    assert_false(base64url_decode("Zh", &raw));    // non-zero leftover bits
    assert_false(base64url_decode("Zm 9v", &raw));
    assert_false(base64url_decode(std::string("Zm\0v", 4), &raw));
}

static void hex_is_lower_case(void **) {
    assert_string_equal(hex_encode(std::string("\x00\x0f\xa5\xff", 4)).c_str(), "000fa5ff");
    assert_string_equal(hex_encode("").c_str(), "");
}

// return= and certgate_home: a path of this site, nothing a browser could
// read as another host or scheme, also after one more decoding.
static void site_local_paths(void **) {
    for (const char *ok : {"/", "/app/", "/app/report?month=11", "/app/a%20b", "/a%41b", "/x#frag"})
        assert_true(site_local_path(ok));
    for (const char *bad : {"",
                            "app/",
                            "https://evil.example/",
                            "//evil.example/",
                            "/\\evil",
                            "\\\\evil",
                            "/app//x",
                            "javascript:alert(1)",
                            "/app/%2F%2Fevil",
                            "/app/%2f",
                            "/app/%5Cx",
                            "/app/%5c",
                            "/app/%0d%0a",
                            "/app/%1f",
                            "/app/%7F",
                            "/app/%",
                            "/app/%2",
                            "/app/\tx",
                            "/app/ x",
                            "/app/\x01",
                            "/app/\xc3\xa9"})
        assert_false(site_local_path(bad));
    assert_true(site_local_path(std::string(2048, 'a').replace(0, 1, "/")));
    assert_false(site_local_path(std::string(2049, 'a').replace(0, 1, "/")));
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_rfc4648_vectors),
        cmocka_unit_test(base64url_decodes_only_canonical_text),
        cmocka_unit_test(hex_is_lower_case),
        cmocka_unit_test(site_local_paths),
    };
    return cmocka_run_group_tests_name("encoding", tests, nullptr, nullptr);
}
