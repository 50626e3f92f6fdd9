// The OpenSSL side of issuance: one key pair, one client certificate, one PKCS#12.
//
// The certificate profile, all in one place:
//   subject         O=<org>, CN=<user ID>            (UTF-8)
//   serial          127 random bits, positive
//   notBefore       issue time - 5 minutes (clock-skew allowance between nodes)
//   notAfter        R1: 23:59:59 local of the last of validity_days days
//   keyUsage        critical digitalSignature (+ keyEncipherment for RSA)
//   extKeyUsage     clientAuth
//   basicConstraints critical CA:FALSE
//   SKI, AKI (keyid), SAN email:<mail>, CRL distribution point <crl_url>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include <cctype>
#include <cstdlib>
#include <mutex>

#include "core/adapters/ca.hpp"
#include "core/adapters/ca_openssl.hpp"
#include "core/adapters/key_pool.hpp"

namespace certgate {

using namespace ca_detail;

namespace {

// A node whose clock runs a little behind the one that issued must still
// accept a brand-new certificate (ClientCertCheck checks notBefore).
constexpr time_t clock_skew_allowance = 5 * 60;

// Printable ASCII without spaces: what an IA5String in a SAN or URI may hold
// for us; anything else is a data error better refused than encoded.
bool printable_ascii(const std::string& s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (c <= 0x20 || c >= 0x7f) return false;
    return true;
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
    if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                    0))
        fail(std::string("cannot put ") + field + "=\"" + value + "\" in the certificate subject");
}

// One GENERAL_NAME of an IA5 kind (GEN_EMAIL, GEN_URI), built as ASN.1.
GeneralNamesPtr general_names(int type, const std::string& value) {
    GeneralNamesPtr names(GENERAL_NAMES_new());
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (!names || !gn || !ia5 ||
        !ASN1_STRING_set(ia5, value.data(), static_cast<int>(value.size()))) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(ia5);
        fail("out of memory");
    }
    GENERAL_NAME_set0_value(gn, type, ia5);
    if (!sk_GENERAL_NAME_push(names.get(), gn)) {
        GENERAL_NAME_free(gn);
        fail("out of memory");
    }
    return names;
}

// local@domain in plain ASCII: enough to keep list separators and quoting
// out of the certificate; the portal validates addresses properly on entry.
bool plain_mail_address(const std::string& mail) {
    size_t at = mail.find('@');
    if (!printable_ascii(mail) || at == 0 || at == std::string::npos || at + 1 == mail.size() ||
        mail.find('@', at + 1) != std::string::npos)
        return false;
    if (mail.find_first_of(",;<>()[]\\\"") != std::string::npos) return false;
    for (size_t i = at + 1; i < mail.size(); ++i)
        if (!std::isalnum(static_cast<unsigned char>(mail[i])) && mail[i] != '.' && mail[i] != '-')
            return false;
    return true;
}

void add_subject_alt_email(X509* cert, const std::string& mail) {
    if (!plain_mail_address(mail))
        throw CaError("cannot put mail address \"" + mail +
                      "\" in a certificate: it must be an ASCII address with @");
    GeneralNamesPtr names = general_names(GEN_EMAIL, mail);
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1)
        fail("cannot add the subjectAltName extension");
}

void add_crl_distribution_point(X509* cert, const std::string& url) {
    if (!printable_ascii(url) || url.find(':') == std::string::npos)
        throw CaError("CRL URL \"" + url + "\" is not an absolute URL");
    CRL_DIST_POINTS* points = sk_DIST_POINT_new_null();
    DIST_POINT* point = DIST_POINT_new();
    DIST_POINT_NAME* name = DIST_POINT_NAME_new();
    if (!points || !point || !name) {
        sk_DIST_POINT_free(points);
        DIST_POINT_free(point);
        DIST_POINT_NAME_free(name);
        fail("out of memory");
    }
    point->distpoint = name;
    name->type = 0;  // fullName
    name->name.fullname = general_names(GEN_URI, url).release();
    sk_DIST_POINT_push(points, point);
    int ok = X509_add1_ext_i2d(cert, NID_crl_distribution_points, points, 0, X509V3_ADD_DEFAULT);
    CRL_DIST_POINTS_free(points);
    if (ok != 1) fail("cannot add the CRL distribution point extension");
}

// RC2-40 and SHA-1 PBE live in OpenSSL's legacy provider, which is not
// loaded by default. Load it once, with "default" alongside (loading any
// provider explicitly would otherwise switch the implicit default off).
void require_legacy_provider() {
    static std::once_flag once;
    static std::string failure;
    // Kept for the life of the process; our references are dropped at exit,
    // before OpenSSL's own cleanup, so it can free the providers (otherwise
    // LeakSanitizer reports them under SANITIZE=1).
    static OSSL_PROVIDER* default_provider = nullptr;
    static OSSL_PROVIDER* legacy_provider = nullptr;
    std::call_once(once, [] {
        default_provider = OSSL_PROVIDER_load(nullptr, "default");
        legacy_provider = OSSL_PROVIDER_load(nullptr, "legacy");
        if (!default_provider || !legacy_provider)
            failure = openssl_errors();
        else
            ERR_clear_error();
        std::atexit([] {
            if (legacy_provider) OSSL_PROVIDER_unload(legacy_provider);
            if (default_provider) OSSL_PROVIDER_unload(default_provider);
        });
    });
    if (!failure.empty() || !OSSL_PROVIDER_available(nullptr, "legacy"))
        throw CaError(
            "certgate_p12_encryption legacy needs OpenSSL's legacy provider (legacy.so in "
            "the ossl-modules directory), which could not be loaded: " +
            (failure.empty() ? std::string("not available") : failure));
}

std::vector<uint8_t> make_pkcs12(const std::string& friendly_name, EVP_PKEY* key, X509* cert,
                                 X509* ca_cert, const std::string& password, P12Encryption enc,
                                 int iterations) {
    if (password.empty()) throw CaError("refusing to write a PKCS#12 without a password");
    if (iterations < 1) throw CaError("the PKCS#12 iteration count must be positive");
    int key_pbe = NID_aes_256_cbc, cert_pbe = NID_aes_256_cbc;
    const EVP_MD* mac_md = EVP_sha256();
    if (enc == P12Encryption::legacy) {
        require_legacy_provider();
        key_pbe = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
        cert_pbe = NID_pbe_WithSHA1And40BitRC2_CBC;
        mac_md = EVP_sha1();
    }
    STACK_OF(X509)* chain = sk_X509_new_null();
    if (!chain || !sk_X509_push(chain, ca_cert)) {
        sk_X509_free(chain);
        fail("out of memory");
    }
    // No MAC from PKCS12_create (mac_iter -1): it is set just below with the
    // digest we chose, which PKCS12_create does not let us pick.
    Pkcs12Ptr p12(PKCS12_create_ex(password.c_str(), friendly_name.c_str(), key, cert, chain,
                                   key_pbe, cert_pbe, iterations, -1, 0, nullptr, nullptr));
    sk_X509_free(chain);  // the stack only; the CA certificate is not ours
    if (!p12) fail("cannot make the PKCS#12 file");
    if (!PKCS12_set_mac(p12.get(), password.c_str(), -1, nullptr, 0, iterations, mac_md))
        fail("cannot protect the PKCS#12 file with a MAC");
    BioPtr out = memory_bio();
    if (i2d_PKCS12_bio(out.get(), p12.get()) != 1) fail("cannot encode the PKCS#12 file");
    return bio_bytes(out.get());
}

}  // namespace

IssuedCertificate CaSigner::issue(const IssueRequest& req, const std::string& p12_password,
                                  P12Encryption enc) const {
    if (req.user_id.empty()) throw CaError("cannot issue a certificate without a user ID");
    time_t not_after = certificate_not_after(req.now, req.timezone, req.validity_days);
    PKey key = pooled_or_new_key(req.key_type);

    X509Ptr cert(X509_new());
    if (!cert || !X509_set_version(cert.get(), X509_VERSION_3)) fail("cannot make a certificate");
    Asn1IntegerPtr serial = random_serial();
    if (!X509_set_serialNumber(cert.get(), serial.get())) fail("cannot set the serial");
    X509_NAME* subject = X509_get_subject_name(cert.get());
    if (!req.org_name.empty()) add_name_entry(subject, "O", req.org_name);
    add_name_entry(subject, "CN", req.user_id);
    if (!X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) ||
        !ASN1_TIME_set(X509_getm_notBefore(cert.get()), req.now - clock_skew_allowance) ||
        !ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after) ||
        !X509_set_pubkey(cert.get(), key.get()))
        fail("cannot make a certificate");

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert_.get(), cert.get(), nullptr, nullptr, 0);
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), &ctx, NID_key_usage,
                  req.key_type.alg == KeyAlgorithm::rsa
                      ? "critical,digitalSignature,keyEncipherment"
                      : "critical,digitalSignature");
    add_extension(cert.get(), &ctx, NID_ext_key_usage, "clientAuth");
    add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
    if (!req.mail.empty()) add_subject_alt_email(cert.get(), req.mail);
    if (!req.crl_url.empty()) add_crl_distribution_point(cert.get(), req.crl_url);

    if (!X509_sign(cert.get(), key_.get(), signing_digest(key_.get())))
        fail_signature("cannot sign the certificate with the CA key");

    IssuedCertificate out;
    out.serial_hex = serial_hex(cert.get());
    out.not_before = asn1_to_time(X509_get0_notBefore(cert.get()));
    out.not_after = asn1_to_time(X509_get0_notAfter(cert.get()));
    BioPtr pem = memory_bio();
    if (!PEM_write_bio_X509(pem.get(), cert.get())) fail("cannot encode the certificate");
    out.cert_pem = bio_text(pem.get());
    out.pkcs12 = make_pkcs12(req.user_id, key.get(), cert.get(), cert_.get(), p12_password, enc,
                             req.p12_iterations);
    out.file_name = p12_file_name(req.user_id, req.now, req.timezone);
    return out;
}

}  // namespace certgate
