// The CA core: key types, creating and loading the CA, issuance and its
// PKCS#12, the protected path's client-certificate check, and the CRL.
// Where the issue asks that the openssl command line agrees, it is asked.
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/adapters/ca.hpp"

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

// ---- fixture: one temp dir and one CA for the whole file ----------------------------

std::string dir;
std::unique_ptr<CaSigner> ca;

constexpr time_t issue_time = 1795654800;    // 2026-11-26 10:00:00 JST
constexpr time_t r1_not_after = 1827241199;  // 2027-11-26 23:59:59 JST

std::string path(const std::string& name) { return dir + "/" + name; }

int setup(void**) {
    char tmpl[] = "/tmp/certgate-test-ca-XXXXXX";
    if (!mkdtemp(tmpl)) return -1;
    dir = tmpl;
    create_ca(path("ca.pem"), path("ca.key"), "certgate test CA", *parse_key_type("ec:P-256"),
              3650);
    ca = std::make_unique<CaSigner>(CaSigner::load(path("ca.pem"), path("ca.key"), ""));
    return 0;
}

int teardown(void**) {
    ca.reset();
    run("rm -rf '" + dir + "'");
    return 0;
}

X509Ptr parse_pem(const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    assert_non_null(cert.get());
    return cert;
}

IssueRequest request(const char* key_type) {
    IssueRequest req;
    req.user_id = "user01";
    req.org_name = "労働金庫テスト団体";
    req.mail = "user01@example.jp";
    req.key_type = *parse_key_type(key_type);
    req.now = issue_time;
    req.timezone = "Asia/Tokyo";
    req.validity_days = 366;
    return req;
}

std::string extension_text(X509* cert, int nid, bool* critical = nullptr) {
    int i = X509_get_ext_by_NID(cert, nid, -1);
    if (i < 0) return "(absent)";
    X509_EXTENSION* ext = X509_get_ext(cert, i);
    if (critical) *critical = X509_EXTENSION_get_critical(ext) != 0;
    BIO* bio = BIO_new(BIO_s_mem());
    X509V3_EXT_print(bio, ext, 0, 0);
    char* data;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
}

std::string certificate_pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
}

// ---- key types ----------------------------------------------------------------------------

void key_types_parse_exactly_the_three_allowed(void**) {
    auto rsa = parse_key_type("rsa:2048");
    assert_true(rsa && rsa->alg == KeyAlgorithm::rsa && rsa->bits == 2048);
    assert_string_equal(rsa->name().c_str(), "rsa:2048");
    assert_int_equal(parse_key_type("rsa:3072")->bits, 3072);
    auto ec = parse_key_type("ec:P-256");
    assert_true(ec && ec->alg == KeyAlgorithm::ec && ec->curve == "P-256");
    assert_string_equal(ec->name().c_str(), "ec:P-256");
    for (const char* bad : {"", "rsa", "rsa:1024", "rsa:4096", "RSA:2048", "rsa:2048 ", "ec:P-384",
                            "ec:p-256", "ec:prime256v1", "ed25519", "ec:"})
        if (parse_key_type(bad)) fail_msg("\"%s\" was accepted", bad);
}

void other_words_parse(void**) {
    assert_int_equal(*parse_revocation_reason("keyCompromise"), 1);
    assert_int_equal(*parse_revocation_reason("superseded"), 4);
    assert_int_equal(*parse_revocation_reason("cessationOfOperation"), 5);
    assert_int_equal(*parse_revocation_reason("privilegeWithdrawn"), 9);
    assert_false(parse_revocation_reason("keycompromise").has_value());
    assert_false(parse_revocation_reason("").has_value());
    assert_string_equal(normalize_serial_hex("4a:1f")->c_str(), "4A1F");
    assert_string_equal(normalize_serial_hex("0x004A1F")->c_str(), "4A1F");
    assert_false(normalize_serial_hex("xyz").has_value());
    assert_false(normalize_serial_hex("00").has_value());
}

// ---- creating and loading the CA ---------------------------------------------------------

void created_ca_has_the_profile_and_modes(void**) {
    struct stat st;
    assert_int_equal(stat(path("ca.key").c_str(), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(path("ca.pem").c_str(), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    X509* cert = ca->certificate();
    bool critical = false;
    expect_contains(extension_text(cert, NID_basic_constraints, &critical), "CA:TRUE");
    assert_true(critical);
    std::string ku = extension_text(cert, NID_key_usage, &critical);
    expect_contains(ku, "Certificate Sign");
    expect_contains(ku, "CRL Sign");
    assert_true(critical);
    assert_string_not_equal(extension_text(cert, NID_subject_key_identifier).c_str(), "(absent)");
    assert_string_equal(certificate_identity(cert).common_name.c_str(), "certgate test CA");
    // No stray temporary files next to them.
    std::string listing;
    run("ls -A '" + dir + "'", &listing);
    assert_true(listing.find("tmp") == std::string::npos);
}

void create_ca_refuses_to_overwrite(void**) {
    std::string before;
    run("cat '" + path("ca.key") + "'", &before);
    std::string e = error_of([] {
        create_ca(path("ca.pem"), path("ca.key"), "other", *parse_key_type("ec:P-256"), 10);
    });
    expect_contains(e, "refusing to overwrite existing file");
    expect_contains(e, path("ca.key"));
    // Only the certificate exists: the key must not be written either.
    e = error_of([] {
        create_ca(path("ca.pem"), path("new.key"), "other", *parse_key_type("ec:P-256"), 10);
    });
    expect_contains(e, path("ca.pem"));
    assert_int_not_equal(access(path("new.key").c_str(), F_OK), 0);
    std::string after;
    run("cat '" + path("ca.key") + "'", &after);
    assert_true(before == after);
}

void passphrase_protected_key(void**) {
    create_ca(path("enc.pem"), path("enc.key"), "encrypted CA", *parse_key_type("rsa:2048"), 30,
              "correct horse");
    write_file(path("good.pass"), "correct horse\n");
    write_file(path("bad.pass"), "wrong horse\n");
    CaSigner ok = CaSigner::load(path("enc.pem"), path("enc.key"), path("good.pass"));
    assert_non_null(ok.private_key());

    std::string e =
        error_of([] { CaSigner::load(path("enc.pem"), path("enc.key"), path("bad.pass")); });
    expect_contains(e, "cannot read CA key " + path("enc.key"));
    expect_contains(e, "wrong passphrase");
    e = error_of([] { CaSigner::load(path("enc.pem"), path("enc.key"), ""); });
    expect_contains(e, path("enc.key"));
    expect_contains(e, "certgate_ca_key_passphrase_file");
    e = error_of([] { CaSigner::load(path("enc.pem"), path("enc.key"), path("nope.pass")); });
    expect_contains(e, path("nope.pass"));
    expect_contains(e, "No such file");
}

void mismatched_or_missing_files(void**) {
    create_ca(path("other.pem"), path("other.key"), "another CA", *parse_key_type("ec:P-256"), 30);
    std::string e = error_of([] { CaSigner::load(path("ca.pem"), path("other.key"), ""); });
    assert_string_equal(e.c_str(), ("CA key " + path("other.key") +
                                    " does not match CA certificate " + path("ca.pem"))
                                       .c_str());
    e = error_of([] { CaSigner::load(path("missing.pem"), path("ca.key"), ""); });
    expect_contains(e, path("missing.pem"));
    expect_contains(e, "No such file");
    e = error_of([] { CaSigner::load(path("ca.pem"), path("missing.key"), ""); });
    expect_contains(e, "cannot read CA key " + path("missing.key"));
    write_file(path("garbage.pem"), "not a certificate\n");
    e = error_of([] { load_certificate(path("garbage.pem")); });
    expect_contains(e, path("garbage.pem"));
    e = error_of([] { CaSigner::load(path("ca.pem"), path("garbage.pem"), ""); });
    expect_contains(e, path("garbage.pem"));
}

void a_client_certificate_is_not_a_ca(void**) {
    IssuedCertificate c = ca->issue(request("ec:P-256"), "Passw0rd!", P12Encryption::aes256);
    write_file(path("client.pem"), c.cert_pem);
    std::string e = error_of([] { CaSigner::load(path("client.pem"), path("ca.key"), ""); });
    expect_contains(e, path("client.pem"));
    expect_contains(e, "not a CA certificate");
}

// ---- issuance ---------------------------------------------------------------------------------

// A .p12 opened with `password`: its MAC checks and its parts, or all null.
struct OpenedP12 {
    EVP_PKEY* key = nullptr;
    X509* leaf = nullptr;
    STACK_OF(X509) * chain = nullptr;
    bool ok = false;
    OpenedP12(const std::vector<uint8_t>& der, const char* password) {
        const unsigned char* p = der.data();
        PKCS12* p12 = d2i_PKCS12(nullptr, &p, static_cast<long>(der.size()));
        assert_non_null(p12);
        ok = PKCS12_verify_mac(p12, password, -1) == 1 &&
             PKCS12_parse(p12, password, &key, &leaf, &chain) == 1 &&
             X509_check_private_key(leaf, key) == 1;
        ERR_clear_error();
        PKCS12_free(p12);
    }
    ~OpenedP12() {
        EVP_PKEY_free(key);
        X509_free(leaf);
        sk_X509_pop_free(chain, X509_free);
    }
    OpenedP12(const OpenedP12&) = delete;
    OpenedP12& operator=(const OpenedP12&) = delete;
};

// `ahead`: the .p12 built around keys derived before (P12Keys), as ⑥ does
// when ④'s background derivation finished.
void check_issued(const char* key_type, P12Encryption enc, bool ahead = false) {
    IssueRequest req = request(key_type);
    req.crl_url = "http://ca.example.jp/certgate/crl";
    std::optional<P12Keys> keys;
    if (ahead) {
        keys = ca->derive_p12_keys("Passw0rd!", enc, req.p12_iterations);
        assert_true(keys.has_value());
    }
    IssuedCertificate c = ca->issue(req, "Passw0rd!", enc, keys ? &*keys : nullptr);
    X509Ptr cert = parse_pem(c.cert_pem);

    CertificateIdentity id = certificate_identity(cert.get());
    assert_string_equal(id.common_name.c_str(), "user01");
    assert_string_equal(id.organisation.c_str(), "労働金庫テスト団体");
    assert_string_equal(id.serial_hex.c_str(), c.serial_hex.c_str());
    assert_int_equal(X509_get_version(cert.get()), X509_VERSION_3);

    // Serial: positive, at least 64 bits.
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
    BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
    assert_false(BN_is_negative(bn));
    assert_true(BN_num_bits(bn) >= 64);
    BN_free(bn);

    // R1 and the clock-skew allowance.
    assert_int_equal(c.not_after, r1_not_after);
    assert_int_equal(id.not_after, r1_not_after);
    assert_true(c.not_before <= issue_time && c.not_before >= issue_time - 600);
    assert_string_equal(c.file_name.c_str(), "user0120261126100000.p12");

    bool critical = false;
    std::string bc = extension_text(cert.get(), NID_basic_constraints, &critical);
    expect_contains(bc, "CA:FALSE");
    assert_true(critical);
    std::string ku = extension_text(cert.get(), NID_key_usage, &critical);
    assert_true(critical);
    expect_contains(ku, "Digital Signature");
    bool rsa = std::string(key_type).rfind("rsa", 0) == 0;
    assert_int_equal(ku.find("Key Encipherment") != std::string::npos, rsa);
    assert_string_equal(extension_text(cert.get(), NID_ext_key_usage).c_str(),
                        "TLS Web Client Authentication");
    assert_string_equal(extension_text(cert.get(), NID_subject_alt_name).c_str(),
                        "email:user01@example.jp");
    expect_contains(extension_text(cert.get(), NID_crl_distribution_points),
                    "URI:http://ca.example.jp/certgate/crl");
    assert_string_not_equal(extension_text(cert.get(), NID_subject_key_identifier).c_str(),
                            "(absent)");
    assert_string_not_equal(extension_text(cert.get(), NID_authority_key_identifier).c_str(),
                            "(absent)");
    assert_int_equal(X509_verify(cert.get(), X509_get0_pubkey(ca->certificate())), 1);

    // The .p12 opens with the password only, and carries key, cert and CA.
    assert_false(OpenedP12(c.pkcs12, "Wrong0rd!").ok);
    OpenedP12 opened(c.pkcs12, "Passw0rd!");
    assert_true(opened.ok);
    assert_int_equal(X509_cmp(opened.leaf, cert.get()), 0);
    assert_int_equal(sk_X509_num(opened.chain), 1);
    assert_int_equal(X509_cmp(sk_X509_value(opened.chain, 0), ca->certificate()), 0);
    int len = 0;
    unsigned char* alias = X509_alias_get0(opened.leaf, &len);
    assert_non_null(alias);
    assert_true(std::string(reinterpret_cast<char*>(alias), static_cast<size_t>(len)) == "user01");
}

void issue_ec_p256(void**) { check_issued("ec:P-256", P12Encryption::aes256); }
void issue_rsa_2048(void**) { check_issued("rsa:2048", P12Encryption::aes256); }
void issue_rsa_3072(void**) { check_issued("rsa:3072", P12Encryption::aes256); }
void issue_legacy_p12(void**) { check_issued("rsa:2048", P12Encryption::legacy); }
void issue_ec_p256_keys_ahead(void**) { check_issued("ec:P-256", P12Encryption::aes256, true); }
void issue_rsa_2048_keys_ahead(void**) { check_issued("rsa:2048", P12Encryption::aes256, true); }

// Keys derived ahead are what protects the .p12 (not a second derivation
// from the password at ⑥), each of its parts with fresh salts and IVs; keys
// of another iteration count, and legacy, fall back to deriving at ⑥.
void p12_keys_ahead_are_used_only_when_they_fit(void**) {
    IssueRequest req = request("ec:P-256");
    req.p12_iterations = kMinP12Iterations;
    auto opens = [](const IssuedCertificate& c, const char* password) {
        return OpenedP12(c.pkcs12, password).ok;
    };
    std::optional<P12Keys> other =
        ca->derive_p12_keys("Other0rd!", P12Encryption::aes256, req.p12_iterations);
    assert_true(other.has_value());
    assert_int_equal(other->bag_key.size(), 32);
    assert_int_equal(other->mac_key.size(), 32);
    IssuedCertificate c = ca->issue(req, "Passw0rd!", P12Encryption::aes256, &*other);
    assert_true(opens(c, "Other0rd!"));
    assert_false(opens(c, "Passw0rd!"));

    // Two derivations of one password: other salts, other keys.
    std::optional<P12Keys> again =
        ca->derive_p12_keys("Other0rd!", P12Encryption::aes256, req.p12_iterations);
    assert_true(again->bag_salt != other->bag_salt && again->bag_key != other->bag_key);
    assert_true(again->mac_salt != other->mac_salt && again->mac_key != other->mac_key);
    // The same keys twice still give two different files (fresh IVs).
    IssuedCertificate d = ca->issue(req, "Passw0rd!", P12Encryption::aes256, &*other);
    assert_true(d.pkcs12 != c.pkcs12);

    // Another count: derived now from the password.
    P12Keys stale = *other;
    stale.iterations = req.p12_iterations + 1;
    IssuedCertificate e = ca->issue(req, "Passw0rd!", P12Encryption::aes256, &stale);
    assert_true(opens(e, "Passw0rd!"));
    // Legacy: never derived ahead, and keys given are not used.
    assert_false(
        ca->derive_p12_keys("Passw0rd!", P12Encryption::legacy, req.p12_iterations).has_value());
    IssuedCertificate f = ca->issue(req, "Passw0rd!", P12Encryption::legacy, &*other);
    assert_false(opens(f, "Other0rd!"));
    // Keys cut short are refused, not used.
    P12Keys cut = *other;
    cut.mac_key.resize(16);
    expect_contains(error_of([&] { ca->issue(req, "Passw0rd!", P12Encryption::aes256, &cut); }),
                    "not whole");
    // A NUL would end the MAC's password but not the bag key's: refused.
    expect_contains(error_of([&] {
                        ca->derive_p12_keys(std::string("Pass\0w0rd!", 10), P12Encryption::aes256,
                                            req.p12_iterations);
                    }),
                    "NUL");
    expect_contains(
        error_of([&] { ca->issue(req, std::string("Pass\0w0rd!", 10), P12Encryption::aes256); }),
        "NUL");
}

void issue_refuses_bad_input(void**) {
    IssueRequest req = request("ec:P-256");
    req.mail = "user01@example.jp,DNS:evil.example";
    expect_contains(error_of([&] { ca->issue(req, "Passw0rd!", P12Encryption::aes256); }),
                    "mail address");
    req = request("ec:P-256");
    req.crl_url = "http://x/ y";
    expect_contains(error_of([&] { ca->issue(req, "Passw0rd!", P12Encryption::aes256); }),
                    "CRL URL");
    req = request("ec:P-256");
    req.timezone = "Mars/Olympus";
    expect_contains(error_of([&] { ca->issue(req, "Passw0rd!", P12Encryption::aes256); }),
                    "Mars/Olympus");
    req = request("ec:P-256");
    expect_contains(error_of([&] { ca->issue(req, "", P12Encryption::aes256); }), "password");
}

// Signing from several pool threads at once on one CaSigner.
void issue_from_several_threads(void**) {
    constexpr int threads = 4, each = 5;
    std::vector<std::string> serials[threads];
    std::vector<std::string> errors(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([t, &serials, &errors] {
            try {
                for (int i = 0; i < each; ++i)
                    serials[t].push_back(
                        ca->issue(request("ec:P-256"), "Passw0rd!", P12Encryption::aes256)
                            .serial_hex);
            } catch (const std::exception& e) {
                errors[t] = e.what();
            }
        });
    for (auto& th : pool) th.join();
    std::set<std::string> all;
    for (int t = 0; t < threads; ++t) {
        if (!errors[t].empty()) fail_msg("thread %d: %s", t, errors[t].c_str());
        all.insert(serials[t].begin(), serials[t].end());
    }
    assert_int_equal(all.size(), threads * each);
}

// ---- the protected path's check ---------------------------------------------------------------

// issue() at the real clock: the fixture's CAs are valid from the moment the
// tests start, and X509_verify_cert checks the CA's dates as well.
IssuedCertificate issue_now() {
    IssueRequest req = request("ec:P-256");
    req.now = time(nullptr);
    return ca->issue(req, "Passw0rd!", P12Encryption::aes256);
}

void client_cert_check(void**) {
    IssuedCertificate c = issue_now();
    X509Ptr cert = parse_pem(c.cert_pem);
    ClientCertCheck check(ca->certificate());
    using R = ClientCertCheck::Result;
    time_t now = time(nullptr);
    assert_true(check.check(cert.get(), now) == R::ok);
    assert_true(check.check(cert.get(), c.not_after - 1) == R::ok);
    assert_true(check.check(cert.get(), c.not_after + 1) == R::expired);
    assert_true(check.check(cert.get(), c.not_before - 1) == R::not_yet_valid);
    assert_true(check.check(nullptr, now) == R::not_ours);
    assert_true(check.check(ca->certificate(), now) == R::not_ours);

    // Same subject name, other key: the signature decides.
    create_ca(path("twin.pem"), path("twin.key"), "certgate test CA", *parse_key_type("ec:P-256"),
              30);
    CaSigner twin = CaSigner::load(path("twin.pem"), path("twin.key"), "");
    IssueRequest req = request("ec:P-256");
    req.now = now;
    X509Ptr forged = parse_pem(twin.issue(req, "Passw0rd!", P12Encryption::aes256).cert_pem);
    assert_true(check.check(forged.get(), now) == R::not_ours);
    // ... also once it has expired: an expiry never hides a foreign signature.
    assert_true(check.check(forged.get(), c.not_after + 1) == R::not_ours);
    // Another CA altogether.
    CaSigner other = CaSigner::load(path("other.pem"), path("other.key"), "");
    X509Ptr foreign = parse_pem(other.issue(req, "Passw0rd!", P12Encryption::aes256).cert_pem);
    assert_true(check.check(foreign.get(), now) == R::not_ours);
}

// A leaf signed with the fixture CA's key, with extensions in OpenSSL's config
// syntax: the certificates issue() never makes.
X509Ptr hand_made_leaf(time_t not_before, time_t not_after,
                       const std::vector<std::pair<const char*, const char*>>& extensions) {
    FILE* f = fopen(path("ca.key").c_str(), "r");
    assert_non_null(f);
    PKey ca_key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    fclose(f);
    assert_non_null(ca_key.get());
    PKey key(EVP_EC_gen("P-256"));
    X509Ptr cert(X509_new());
    assert_true(key && cert);
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                     static_cast<long>(not_before & 0xffffff) + 1);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("user01"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(ca->certificate()));
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), not_before);
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after);
    X509_set_pubkey(cert.get(), key.get());
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca->certificate(), cert.get(), nullptr, nullptr, 0);
    for (const auto& [name, value] : extensions) {
        X509_EXTENSION* ext = X509V3_EXT_nconf(nullptr, &ctx, name, value);
        if (!ext) fail_msg("extension %s=%s: %s", name, value, openssl_errors().c_str());
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0);
    return cert;
}

// X509_verify_cert with the SSL-client purpose: what a certificate is for
// counts, not only who signed it.
void client_cert_check_uses_the_client_purpose(void**) {
    ClientCertCheck check(ca->certificate());
    using R = ClientCertCheck::Result;
    time_t now = time(nullptr);
    time_t from = now - 3600, to = now + 86400;
    const std::pair<const char*, const char*> leaf = {"basicConstraints", "critical,CA:FALSE"};
    const std::pair<const char*, const char*> signing = {"keyUsage", "critical,digitalSignature"};
    const std::pair<const char*, const char*> client = {"extendedKeyUsage", "clientAuth"};

    assert_true(check.check(hand_made_leaf(from, to, {leaf, signing, client}).get(), now) == R::ok);
    // A TLS server certificate of our CA is no login certificate.
    X509Ptr server = hand_made_leaf(from, to, {leaf, signing, {"extendedKeyUsage", "serverAuth"}});
    assert_true(check.check(server.get(), now) == R::not_ours);
    // Nor one whose key may not sign.
    X509Ptr encipher =
        hand_made_leaf(from, to, {leaf, {"keyUsage", "critical,keyEncipherment"}, client});
    assert_true(check.check(encipher.get(), now) == R::not_ours);
    // A critical extension nobody here understands refuses it; a non-critical one does not.
    X509Ptr critical = hand_made_leaf(
        from, to, {leaf, signing, client, {"1.3.6.1.4.1.99999.1", "critical,DER:05:00"}});
    assert_true(check.check(critical.get(), now) == R::not_ours);
    X509Ptr noncritical =
        hand_made_leaf(from, to, {leaf, signing, client, {"1.3.6.1.4.1.99999.1", "DER:05:00"}});
    assert_true(check.check(noncritical.get(), now) == R::ok);

    // Expired: refused as expired (the login screen says so), yet ours in every
    // other respect, which is what certgate_expired_certificates pass lets in.
    X509Ptr expired = hand_made_leaf(now - 2 * 86400, now - 86400, {leaf, signing, client});
    assert_true(check.check(expired.get(), now) == R::expired);
    // An expiry never hides a wrong purpose.
    X509Ptr expired_server = hand_made_leaf(now - 2 * 86400, now - 86400,
                                            {leaf, signing, {"extendedKeyUsage", "serverAuth"}});
    assert_true(check.check(expired_server.get(), now) == R::not_ours);
}

// A CA rotation: the previous CA's certificates stay good until they expire;
// the new CA may carry the same subject name.
void client_cert_check_during_rotation(void**) {
    create_ca(path("old.pem"), path("old.key"), "certgate test CA", *parse_key_type("ec:P-256"),
              30);
    CaSigner old_ca = CaSigner::load(path("old.pem"), path("old.key"), "");
    time_t now = time(nullptr);
    IssueRequest req = request("ec:P-256");
    req.now = now;
    X509Ptr old_cert = parse_pem(old_ca.issue(req, "Passw0rd!", P12Encryption::aes256).cert_pem);
    X509Ptr new_cert = parse_pem(ca->issue(req, "Passw0rd!", P12Encryption::aes256).cert_pem);
    using R = ClientCertCheck::Result;

    ClientCertCheck alone(ca->certificate());
    assert_true(alone.check(old_cert.get(), now) == R::not_ours);

    std::vector<X509Ptr> previous =
        load_previous_ca_certificates(path("old.pem"), ca->certificate());
    assert_int_equal(previous.size(), 1);
    ClientCertCheck overlap(ca->certificate(), previous);
    assert_int_equal(overlap.trusted(), 2);
    assert_true(overlap.check(old_cert.get(), now) == R::ok);
    assert_true(overlap.check(new_cert.get(), now) == R::ok);
    // Once the old CA itself has expired (30 days), its certificates count as expired.
    assert_true(overlap.check(old_cert.get(), now + 31 * 86400) == R::expired);
    assert_true(overlap.check(new_cert.get(), now + 31 * 86400) == R::ok);
    assert_true(overlap.check(old_ca.certificate(), now) == R::not_ours);
    CaSigner other = CaSigner::load(path("other.pem"), path("other.key"), "");
    X509Ptr foreign = parse_pem(other.issue(req, "Passw0rd!", P12Encryption::aes256).cert_pem);
    assert_true(overlap.check(foreign.get(), now) == R::not_ours);

    // Several CAs in one file.
    std::string old_pem = certificate_pem(old_ca.certificate());
    std::string other_pem = certificate_pem(other.certificate());
    write_file(path("two.pem"), old_pem + other_pem);
    assert_int_equal(load_previous_ca_certificates(path("two.pem"), ca->certificate()).size(), 2);

    // What the file may not hold, each with its message.
    write_file(path("current.pem"), old_pem + certificate_pem(ca->certificate()));
    expect_contains(
        error_of([&] { load_previous_ca_certificates(path("current.pem"), ca->certificate()); }),
        "certificate 2 in " + path("current.pem") + " is the current CA certificate");
    write_file(path("leaf.pem"), certificate_pem(new_cert.get()));
    expect_contains(
        error_of([&] { load_previous_ca_certificates(path("leaf.pem"), ca->certificate()); }),
        "is not a CA certificate");
    write_file(path("empty.pem"), "nothing here\n");
    expect_contains(
        error_of([&] { load_previous_ca_certificates(path("empty.pem"), ca->certificate()); }),
        "no PEM certificate in");
    std::string broken = old_pem + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    write_file(path("broken.pem"), broken);
    expect_contains(
        error_of([&] { load_previous_ca_certificates(path("broken.pem"), ca->certificate()); }),
        "cannot read certificate 2 in");
    expect_contains(
        error_of([&] { load_previous_ca_certificates(path("missing.pem"), ca->certificate()); }),
        "missing.pem");
}

// ---- CRL ----------------------------------------------------------------------------------------

void crl_lists_revoked_serials_and_verifies(void**) {
    IssuedCertificate a = ca->issue(request("ec:P-256"), "Passw0rd!", P12Encryption::aes256);
    IssuedCertificate b = ca->issue(request("ec:P-256"), "Passw0rd!", P12Encryption::aes256);
    std::vector<RevokedEntry> revoked = {{a.serial_hex, issue_time + 60, "keyCompromise"},
                                         {b.serial_hex, issue_time + 120, "unspecified"}};
    std::vector<uint8_t> der = ca->make_crl(revoked, issue_time + 300, 24, 7);
    const unsigned char* p = der.data();
    X509_CRL* crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size()));
    assert_non_null(crl);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca->certificate())), 1);
    assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
    STACK_OF(X509_REVOKED)* list = X509_CRL_get_REVOKED(crl);
    assert_int_equal(sk_X509_REVOKED_num(list), 2);
    X509Ptr cert_a = parse_pem(a.cert_pem);
    X509_REVOKED* entry = nullptr;
    assert_int_equal(X509_CRL_get0_by_cert(crl, &entry, cert_a.get()), 1);
    ASN1_ENUMERATED* reason = static_cast<ASN1_ENUMERATED*>(
        X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr));
    assert_non_null(reason);
    assert_int_equal(ASN1_ENUMERATED_get(reason), 1);
    ASN1_ENUMERATED_free(reason);
    ASN1_INTEGER* number =
        static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr));
    assert_int_equal(ASN1_INTEGER_get(number), 7);
    ASN1_INTEGER_free(number);
    X509_CRL_free(crl);
    assert_true(crl_der_to_pem(der).rfind("-----BEGIN X509 CRL-----", 0) == 0);

    expect_contains(error_of([&] { ca->make_crl({{a.serial_hex, 0, "lost"}}, 0, 24, 1); }), "lost");
    expect_contains(error_of([&] { ca->make_crl({{"zz", 0, "superseded"}}, 0, 24, 1); }), "zz");
}

// ---- the openssl command line agrees -----------------------------------------------------------

void openssl_command_line_agrees(void**) {
    IssuedCertificate c = ca->issue(request("rsa:2048"), "Passw0rd!", P12Encryption::aes256);
    write_file(path("cli.pem"), c.cert_pem);
    write_file(path("cli.p12"), std::string(c.pkcs12.begin(), c.pkcs12.end()));
    std::string out;
    assert_int_equal(run("openssl verify -CAfile '" + path("ca.pem") + "' -purpose sslclient '" +
                             path("cli.pem") + "'",
                         &out),
                     0);
    expect_contains(out, path("cli.pem") + ": OK");
    assert_int_equal(
        run("openssl pkcs12 -info -noout -in '" + path("cli.p12") + "' -passin pass:Passw0rd!",
            &out),
        0);
    expect_contains(out, "MAC: sha256");
    expect_contains(out, "AES-256-CBC");
    assert_int_not_equal(
        run("openssl pkcs12 -info -noout -in '" + path("cli.p12") + "' -passin pass:Wrong0rd!",
            &out),
        0);

    // The same from keys derived ahead, with the iteration count in the file.
    IssueRequest fast = request("ec:P-256");
    fast.p12_iterations = 12345;
    std::optional<P12Keys> keys =
        ca->derive_p12_keys("Passw0rd!", P12Encryption::aes256, fast.p12_iterations);
    IssuedCertificate ahead = ca->issue(fast, "Passw0rd!", P12Encryption::aes256, &*keys);
    write_file(path("ahead.p12"), std::string(ahead.pkcs12.begin(), ahead.pkcs12.end()));
    assert_int_equal(
        run("openssl pkcs12 -info -nokeys -in '" + path("ahead.p12") + "' -passin pass:Passw0rd!",
            &out),
        0);
    expect_contains(out, "MAC: sha256, Iteration 12345");
    expect_contains(out, "PBES2, PBKDF2, AES-256-CBC, Iteration 12345, PRF hmacWithSHA256");
    expect_contains(out, "friendlyName: user01");
    expect_contains(out, "subject=");
    assert_int_equal(
        run("openssl pkcs12 -in '" + path("ahead.p12") + "' -passin pass:Passw0rd! -nocerts -nodes",
            &out),
        0);
    expect_contains(out, "BEGIN PRIVATE KEY");
    assert_int_not_equal(
        run("openssl pkcs12 -info -noout -in '" + path("ahead.p12") + "' -passin pass:Wrong0rd!",
            &out),
        0);

    IssuedCertificate legacy = ca->issue(request("rsa:2048"), "Passw0rd!", P12Encryption::legacy);
    write_file(path("legacy.p12"), std::string(legacy.pkcs12.begin(), legacy.pkcs12.end()));
    assert_int_equal(run("openssl pkcs12 -legacy -info -noout -in '" + path("legacy.p12") +
                             "' -passin pass:Passw0rd!",
                         &out),
                     0);
    expect_contains(out, "MAC: sha1");
    expect_contains(out, "pbeWithSHA1And40BitRC2-CBC");

    std::vector<uint8_t> der =
        ca->make_crl({{c.serial_hex, issue_time, "superseded"}}, time(nullptr), 24, 1);
    write_file(path("crl.der"), std::string(der.begin(), der.end()));
    assert_int_equal(run("openssl crl -inform DER -in '" + path("crl.der") + "' -CAfile '" +
                             path("ca.pem") + "' -noout -text",
                         &out),
                     0);
    expect_contains(out, "verify OK");
    expect_contains(out, c.serial_hex);
    expect_contains(out, "Superseded");
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_types_parse_exactly_the_three_allowed),
        cmocka_unit_test(other_words_parse),
        cmocka_unit_test(created_ca_has_the_profile_and_modes),
        cmocka_unit_test(create_ca_refuses_to_overwrite),
        cmocka_unit_test(passphrase_protected_key),
        cmocka_unit_test(mismatched_or_missing_files),
        cmocka_unit_test(a_client_certificate_is_not_a_ca),
        cmocka_unit_test(issue_ec_p256),
        cmocka_unit_test(issue_rsa_2048),
        cmocka_unit_test(issue_rsa_3072),
        cmocka_unit_test(issue_legacy_p12),
        cmocka_unit_test(issue_ec_p256_keys_ahead),
        cmocka_unit_test(issue_rsa_2048_keys_ahead),
        cmocka_unit_test(p12_keys_ahead_are_used_only_when_they_fit),
        cmocka_unit_test(issue_refuses_bad_input),
        cmocka_unit_test(issue_from_several_threads),
        cmocka_unit_test(client_cert_check),
        cmocka_unit_test(client_cert_check_uses_the_client_purpose),
        cmocka_unit_test(client_cert_check_during_rotation),
        cmocka_unit_test(crl_lists_revoked_serials_and_verifies),
        cmocka_unit_test(openssl_command_line_agrees),
    };
    return cmocka_run_group_tests_name("ca", tests, setup, teardown);
}
