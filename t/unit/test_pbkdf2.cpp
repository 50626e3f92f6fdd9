// pbkdf2_hmac_sha256 (the .p12's bag key, issue 18) against OpenSSL's
// PKCS5_PBKDF2_HMAC over the edges of the construction, and RFC 7914's
// PBKDF2-HMAC-SHA256 vectors.
#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/adapters/pbkdf2.hpp"

// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using certgate::pbkdf2_hmac_sha256;

static std::vector<unsigned char> ours(const std::string &pw, const std::string &salt, int iter,
                                       size_t len) {
    std::vector<unsigned char> out(len + 1, 0xee);  // one byte past: never written
    pbkdf2_hmac_sha256(pw, salt, iter, out.data(), len);
    assert_int_equal(out[len], 0xee);
    out.resize(len);
    return out;
}

static std::vector<unsigned char> openssl(const std::string &pw, const std::string &salt, int iter,
                                          size_t len) {
    std::vector<unsigned char> out(len);
    assert_int_equal(PKCS5_PBKDF2_HMAC(pw.data(), static_cast<int>(pw.size()),
                                       reinterpret_cast<const unsigned char *>(salt.data()),
                                       static_cast<int>(salt.size()), iter, EVP_sha256(),
                                       static_cast<int>(len), out.data()),
                     1);
    return out;
}

static std::vector<unsigned char> hex(const char *h) {
    std::vector<unsigned char> out;
    for (; h[0] && h[1]; h += 2) {
        while (*h == ' ') ++h;
        out.push_back(static_cast<unsigned char>(std::stoi(std::string(h, 2), nullptr, 16)));
    }
    return out;
}

// RFC 7914 §11: PBKDF2-HMAC-SHA256, dkLen 64.
static void rfc7914_vectors(void **) {
    assert_true(ours("passwd", "salt", 1, 64) ==
                hex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                    "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"));
    assert_true(ours("Password", "NaCl", 80000, 64) ==
                hex("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
                    "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"));
}

// Passwords around the HMAC block (64: the key as is; 65: its digest),
// empty ones, bytes that are not text, salts of every shape, 1-3
// iterations (the loop's edges), outputs that end inside a block and span
// several.
static void same_as_openssl(void **) {
    std::vector<std::string> passwords = {"",
                                          "a",
                                          "Passw0rd!",
                                          std::string(63, 'x'),
                                          std::string(64, 'y'),
                                          std::string(65, 'z'),
                                          std::string(200, 'q'),
                                          std::string("\0\xff\x80 \xe3\x81\x82", 7)};
    std::vector<std::string> salts = {"",
                                      "s",
                                      std::string(16, '\x01'),
                                      std::string(55, 'S'),
                                      std::string(56, 'T'),
                                      std::string(64, 'U'),
                                      std::string(100, '\0')};
    int checked = 0;
    for (const auto &pw : passwords)
        for (const auto &salt : salts)
            for (int iter : {1, 2, 3, 17})
                for (size_t len : {size_t{1}, size_t{20}, size_t{32}, size_t{33}, size_t{100}}) {
                    assert_true(ours(pw, salt, iter, len) == openssl(pw, salt, iter, len));
                    ++checked;
                }
    assert_int_equal(checked, 8 * 7 * 4 * 5);
    // The count the .p12 uses by default.
    assert_true(ours("Bench#Pass1", std::string(16, '\x07'), 100000, 32) ==
                openssl("Bench#Pass1", std::string(16, '\x07'), 100000, 32));
}

static void refuses_no_iterations(void **) {
    unsigned char out[32];
    bool threw = false;
    try {
        pbkdf2_hmac_sha256("pw", "salt", 0, out, sizeof out);
    } catch (const std::invalid_argument &) {
        threw = true;
    }
    assert_true(threw);
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc7914_vectors),
        cmocka_unit_test(same_as_openssl),
        cmocka_unit_test(refuses_no_iterations),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
