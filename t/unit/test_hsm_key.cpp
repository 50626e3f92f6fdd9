// The CA key in an HSM (issue 9): a SoftHSM2 token made for this run, the
// key generated inside it, reached through OpenSSL's pkcs11 engine (libp11).
// Skipped when softhsm2, opensc's pkcs11-tool or the engine is not installed.
//
// Order matters: a process that has logged in to a token keeps that login,
// so the wrong-PIN case runs first, as it would in a fresh `nginx -t`.
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/adapters/mail.hpp"

// cmocka last: it defines macros such as fail() that collide with <ios>. It
// needs the three C headers first, and has no extern "C" of its own.
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

#include "ca_fixture.hpp"

using namespace certgate;
using namespace ca_fixture;

namespace {

constexpr const char softhsm_module[] = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char engine_so[] = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";
constexpr const char key_spec[] = "engine:pkcs11:pkcs11:token=certgate;object=ca;type=private";

std::string dir;
bool available = false;

std::string path(const std::string& name) { return dir + "/" + name; }

CaKeyOptions options(const std::string& pin_file) {
    CaKeyOptions o;
    o.pin_file = pin_file;
    o.pkcs11_module = softhsm_module;
    return o;
}

std::string pkcs11_tool() {
    return std::string("pkcs11-tool --module ") + softhsm_module +
           " --token-label certgate --login --pin 1234";
}

int setup(void**) {
    if (access(softhsm_module, R_OK) != 0 || access(engine_so, R_OK) != 0 ||
        run("command -v softhsm2-util && command -v pkcs11-tool") != 0)
        return 0;
    char tmpl[] = "/tmp/certgate-test-hsm-XXXXXX";
    if (!mkdtemp(tmpl)) return -1;
    dir = tmpl;
    run("mkdir '" + path("tokens") + "'");
    write_file(path("softhsm2.conf"), "directories.tokendir = " + path("tokens") +
                                          "\nobjectstore.backend = file\nlog.level = ERROR\n");
    setenv("SOFTHSM2_CONF", path("softhsm2.conf").c_str(), 1);
    std::string out;
    if (run("softhsm2-util --init-token --free --label certgate --pin 1234 --so-pin 5678", &out) !=
            0 ||
        run(pkcs11_tool() + " --keypairgen --key-type EC:prime256v1 --label ca --id 01", &out) !=
            0) {
        print_error("cannot prepare the SoftHSM2 token: %s\n", out.c_str());
        return -1;
    }
    write_file(path("pin"), "1234\n");
    write_file(path("wrong.pin"), "9999\n");
    available = true;
    return 0;
}

int teardown(void**) {
    if (!dir.empty()) run("rm -rf '" + dir + "'");
    return 0;
}

#define REQUIRE_HSM() \
    if (!available) fail_msg("SoftHSM2, opensc or libengine-pkcs11-openssl missing (make deps)")

void wrong_pin_is_reported(void**) {
    REQUIRE_HSM();
    std::string e = error_of([] {
        create_ca_certificate(path("ca.pem"), key_spec, options(path("wrong.pin")), "x", 1);
    });
    expect_contains(e, "PIN incorrect");
    expect_contains(e, path("wrong.pin"));
    assert_int_not_equal(access(path("ca.pem").c_str(), F_OK), 0);
}

void bad_specs_and_missing_pin_file(void**) {
    REQUIRE_HSM();
    std::string e = error_of([] { CaSigner::load("/nonexistent", "engine:pkcs11", options("")); });
    expect_contains(e, "/nonexistent");
    e = error_of([] {
        create_ca_certificate(path("x.pem"), "engine:pkcs11", options(path("pin")), "x", 1);
    });
    expect_contains(e, "engine:<engine>:<key id>");
    e = error_of(
        [] { create_ca_certificate(path("x.pem"), key_spec, options(path("no.pin")), "x", 1); });
    expect_contains(e, path("no.pin"));
    e = error_of([] {
        create_ca_certificate(path("x.pem"), "engine:nosuchengine:key", options(path("pin")), "x",
                              1);
    });
    expect_contains(e, "nosuchengine");
}

void hsm_key_signs_the_ca_certificates_and_crl(void**) {
    REQUIRE_HSM();
    create_ca_certificate(path("ca.pem"), key_spec, options(path("pin")), "certgate HSM CA", 30);
    CaSigner ca = CaSigner::load(path("ca.pem"), key_spec, options(path("pin")));
    // libcurl's global init (the mailer's) registers every loaded engine as
    // a default; the user's EC key must still be made without the engine
    // (issue 12.8).
    mail_global_init();

    IssueRequest req;
    req.user_id = "hsmuser1";
    req.org_name = "HSM org";
    req.mail = "hsmuser1@example.jp";
    req.key_type = *parse_key_type("ec:P-256");
    req.now = time(nullptr);
    IssuedCertificate c = ca.issue(req, "Passw0rd!", P12Encryption::aes256);
    write_file(path("client.pem"), c.cert_pem);
    std::string out;
    assert_int_equal(
        run("openssl verify -CAfile '" + path("ca.pem") + "' '" + path("client.pem") + "'", &out),
        0);
    expect_contains(out, ": OK");

    std::vector<uint8_t> der =
        ca.make_crl({{c.serial_hex, req.now, "keyCompromise"}}, req.now, 24, 1);
    write_file(path("crl.der"), std::string(der.begin(), der.end()));
    assert_int_equal(run("openssl crl -inform DER -in '" + path("crl.der") + "' -CAfile '" +
                             path("ca.pem") + "' -noout",
                         &out),
                     0);
    expect_contains(out, "verify OK");
}

// Pool threads sign through the one engine key at once.
void hsm_signing_from_several_threads(void**) {
    REQUIRE_HSM();
    CaSigner ca = CaSigner::load(path("ca.pem"), key_spec, options(path("pin")));
    X509* ca_cert = ca.certificate();
    constexpr int threads = 4, each = 3;
    std::vector<std::string> errors(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([t, &ca, &errors, ca_cert] {
            try {
                for (int i = 0; i < each; ++i) {
                    IssueRequest req;
                    req.user_id = "thread" + std::to_string(t);
                    req.key_type = *parse_key_type("ec:P-256");
                    req.now = time(nullptr);
                    IssuedCertificate c = ca.issue(req, "Passw0rd!", P12Encryption::aes256);
                    BIO* bio = BIO_new_mem_buf(c.cert_pem.data(), -1);
                    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
                    BIO_free(bio);
                    bool ok = cert && X509_verify(cert, X509_get0_pubkey(ca_cert)) == 1;
                    X509_free(cert);
                    if (!ok) throw CaError("signature does not verify");
                }
            } catch (const std::exception& e) {
                errors[t] = e.what();
            }
        });
    for (auto& th : pool) th.join();
    for (int t = 0; t < threads; ++t)
        if (!errors[t].empty()) fail_msg("thread %d: %s", t, errors[t].c_str());
}

void unknown_object_and_mismatched_key(void**) {
    REQUIRE_HSM();
    std::string e = error_of([] {
        CaSigner::load(path("ca.pem"),
                       "engine:pkcs11:pkcs11:token=certgate;object=nope;type=private",
                       options(path("pin")));
    });
    expect_contains(e, "object=nope");
    expect_contains(e, "not found");

    create_ca(path("pem-ca.pem"), path("pem-ca.key"), "PEM CA", *parse_key_type("ec:P-256"), 30);
    e = error_of([] { CaSigner::load(path("pem-ca.pem"), key_spec, options(path("pin"))); });
    assert_string_equal(e.c_str(), (std::string("CA key ") + key_spec +
                                    " does not match CA certificate " + path("pem-ca.pem"))
                                       .c_str());
}

void key_never_leaves_the_token(void**) {
    REQUIRE_HSM();
    std::string out;
    assert_int_equal(run(pkcs11_tool() + " --list-objects --type privkey", &out), 0);
    expect_contains(out, "never extractable");
    expect_contains(out, "sensitive");
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wrong_pin_is_reported),
        cmocka_unit_test(bad_specs_and_missing_pin_file),
        cmocka_unit_test(hsm_key_signs_the_ca_certificates_and_crl),
        cmocka_unit_test(hsm_signing_from_several_threads),
        cmocka_unit_test(unknown_object_and_mismatched_key),
        cmocka_unit_test(key_never_leaves_the_token),
    };
    return cmocka_run_group_tests_name("hsm_key", tests, setup, teardown);
}
