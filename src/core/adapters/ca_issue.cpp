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
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include <cctype>
#include <cstdlib>
#include <mutex>

#include "core/adapters/ca.hpp"
#include "core/adapters/ca_openssl.hpp"
#include "core/adapters/key_pool.hpp"
#include "core/adapters/pbkdf2.hpp"
#include "core/base/secrets.hpp"

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

// certgate_p12_encryption legacy: 3DES key bag, RC2 certificate bag, SHA-1
// MAC, through PKCS12_create (aes256 files: make_pkcs12_ahead below).
std::vector<uint8_t> make_pkcs12_legacy(const std::string& friendly_name, EVP_PKEY* key, X509* cert,
                                        X509* ca_cert, const std::string& password,
                                        int iterations) {
    if (password.empty()) throw CaError("refusing to write a PKCS#12 without a password");
    if (iterations < 1) throw CaError("the PKCS#12 iteration count must be positive");
    require_legacy_provider();
    const int key_pbe = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
    const int cert_pbe = NID_pbe_WithSHA1And40BitRC2_CBC;
    const EVP_MD* mac_md = EVP_sha1();
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

// --- the PKCS#12 around its derived keys (P12Keys) ---------------------------------------
//
// Every aes256 .p12: the same structure as PKCS12_create's with aes256: an
// encrypted-data safe with the user's and the CA's certificate bags, a data
// safe with the shrouded key bag, both bags PBES2 (PBKDF2-HMAC-SHA256,
// AES-256-CBC), and a SHA-256 MAC keyed by the PKCS#12 KDF. The keys come
// from `keys` (derived ahead after ④, or just before at ⑥), one bag key for
// both bags; every IV is fresh.

constexpr size_t kP12SaltBytes = 16;
constexpr size_t kP12KeyBytes = 32;  // AES-256, and SHA-256's output for the MAC key

std::string random_string(size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        fail("the random generator failed");
    return out;
}

struct Der {  // OpenSSL-allocated DER, wiped when freed (it may hold a private key)
    unsigned char* p = nullptr;
    int len = 0;
    ~Der() { OPENSSL_clear_free(p, len > 0 ? static_cast<size_t>(len) : 0); }
};

std::string aes256_cbc(const std::string& key, const std::string& iv, const Der& plain) {
    std::unique_ptr<EVP_CIPHER_CTX, void (*)(EVP_CIPHER_CTX*)> ctx(EVP_CIPHER_CTX_new(),
                                                                   EVP_CIPHER_CTX_free);
    std::string out(static_cast<size_t>(plain.len) + 16, '\0');
    int n = 0, tail = 0;
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (!ctx || key.size() != kP12KeyBytes || iv.size() != 16 ||
        EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr,
                           reinterpret_cast<const unsigned char*>(key.data()),
                           reinterpret_cast<const unsigned char*>(iv.data())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), o, &n, plain.p, plain.len) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), o + n, &tail) != 1)
        fail("cannot encrypt the PKCS#12 bags");
    out.resize(static_cast<size_t>(n) + static_cast<size_t>(tail));
    return out;
}

// PBES2 parameters naming the salt and iteration count the key came from, and `iv`.
X509_ALGOR* pbes2_algorithm(const P12Keys& keys, const std::string& iv) {
    std::string salt = keys.bag_salt, ivc = iv;
    X509_ALGOR* alg = PKCS5_pbe2_set_iv(
        EVP_aes_256_cbc(), keys.iterations, reinterpret_cast<unsigned char*>(salt.data()),
        static_cast<int>(salt.size()), reinterpret_cast<unsigned char*>(ivc.data()),
        NID_hmacWithSHA256);
    if (!alg) fail("cannot describe the PKCS#12 encryption");
    return alg;
}

void add_bag_names(PKCS12_SAFEBAG* bag, const std::string& friendly_name,
                   const unsigned char* key_id, unsigned key_id_len) {
    if (!PKCS12_add_friendlyname_utf8(bag, friendly_name.c_str(), -1) ||
        !PKCS12_add_localkeyid(bag, const_cast<unsigned char*>(key_id),
                               static_cast<int>(key_id_len)))
        fail("cannot name the PKCS#12 bags");
}

using SafeBags = std::unique_ptr<STACK_OF(PKCS12_SAFEBAG), void (*)(STACK_OF(PKCS12_SAFEBAG)*)>;
using Safes = std::unique_ptr<STACK_OF(PKCS7), void (*)(STACK_OF(PKCS7)*)>;

SafeBags new_bags() {
    SafeBags bags(sk_PKCS12_SAFEBAG_new_null(), [](STACK_OF(PKCS12_SAFEBAG) * s) {
        sk_PKCS12_SAFEBAG_pop_free(s, PKCS12_SAFEBAG_free);
    });
    if (!bags) fail("out of memory");
    return bags;
}

void push_bag(STACK_OF(PKCS12_SAFEBAG) * bags, PKCS12_SAFEBAG* bag) {
    if (!bag || !sk_PKCS12_SAFEBAG_push(bags, bag)) {
        PKCS12_SAFEBAG_free(bag);
        fail("cannot make the PKCS#12 bags");
    }
}

std::vector<uint8_t> make_pkcs12_ahead(const std::string& friendly_name, EVP_PKEY* key, X509* cert,
                                       X509* ca_cert, const P12Keys& keys) {
    if (keys.iterations < 1 || keys.bag_key.size() != kP12KeyBytes ||
        keys.mac_key.size() != kP12KeyBytes || keys.bag_salt.empty() || keys.mac_salt.empty())
        throw CaError("the PKCS#12 keys derived ahead are not whole");
    unsigned char key_id[EVP_MAX_MD_SIZE];
    unsigned key_id_len = 0;
    if (!X509_digest(cert, EVP_sha1(), key_id, &key_id_len)) fail("cannot hash the certificate");

    // The certificates: encrypted data.
    SafeBags cert_bags = new_bags();
    PKCS12_SAFEBAG* user_bag = PKCS12_SAFEBAG_create_cert(cert);
    push_bag(cert_bags.get(), user_bag);
    add_bag_names(user_bag, friendly_name, key_id, key_id_len);
    push_bag(cert_bags.get(), PKCS12_SAFEBAG_create_cert(ca_cert));
    Der cert_der;
    cert_der.len = ASN1_item_i2d(reinterpret_cast<ASN1_VALUE*>(cert_bags.get()), &cert_der.p,
                                 ASN1_ITEM_rptr(PKCS12_SAFEBAGS));
    if (cert_der.len <= 0) fail("cannot encode the PKCS#12 certificates");
    std::string iv = random_string(16);
    std::string sealed_certs = aes256_cbc(keys.bag_key, iv, cert_der);
    PKCS7* cert_safe = PKCS7_new();
    if (!cert_safe || !PKCS7_set_type(cert_safe, NID_pkcs7_encrypted)) {
        PKCS7_free(cert_safe);
        fail("out of memory");
    }
    Safes safes(sk_PKCS7_new_null(), [](STACK_OF(PKCS7) * s) { sk_PKCS7_pop_free(s, PKCS7_free); });
    if (!safes || !sk_PKCS7_push(safes.get(), cert_safe)) {
        PKCS7_free(cert_safe);
        fail("out of memory");
    }
    PKCS7_ENC_CONTENT* enc = cert_safe->d.encrypted->enc_data;
    X509_ALGOR_free(enc->algorithm);
    enc->algorithm = pbes2_algorithm(keys, iv);
    // The content is OPTIONAL in the ASN.1, so PKCS7_set_type leaves it out.
    if (!enc->enc_data) enc->enc_data = ASN1_OCTET_STRING_new();
    if (!enc->enc_data ||
        !ASN1_OCTET_STRING_set(enc->enc_data,
                               reinterpret_cast<const unsigned char*>(sealed_certs.data()),
                               static_cast<int>(sealed_certs.size())))
        fail("out of memory");

    // The key: a shrouded key bag in a data safe.
    Der p8_der;
    {
        std::unique_ptr<PKCS8_PRIV_KEY_INFO, void (*)(PKCS8_PRIV_KEY_INFO*)> p8(
            EVP_PKEY2PKCS8(key), PKCS8_PRIV_KEY_INFO_free);
        if (!p8) fail("cannot encode the private key");
        p8_der.len = i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &p8_der.p);
        if (p8_der.len <= 0) fail("cannot encode the private key");
    }
    iv = random_string(16);
    std::string sealed_key = aes256_cbc(keys.bag_key, iv, p8_der);
    X509_SIG* shrouded = X509_SIG_new();
    X509_ALGOR* alg = nullptr;
    ASN1_OCTET_STRING* digest = nullptr;
    if (shrouded) X509_SIG_getm(shrouded, &alg, &digest);
    X509_ALGOR* pbe = shrouded ? pbes2_algorithm(keys, iv) : nullptr;
    bool built =
        pbe && X509_ALGOR_copy(alg, pbe) &&
        ASN1_OCTET_STRING_set(digest, reinterpret_cast<const unsigned char*>(sealed_key.data()),
                              static_cast<int>(sealed_key.size()));
    X509_ALGOR_free(pbe);
    if (!built) {
        X509_SIG_free(shrouded);
        fail("cannot make the PKCS#12 key bag");
    }
    SafeBags key_bags = new_bags();
    PKCS12_SAFEBAG* key_bag = PKCS12_SAFEBAG_create0_pkcs8(shrouded);
    if (!key_bag) X509_SIG_free(shrouded);
    push_bag(key_bags.get(), key_bag);
    add_bag_names(key_bag, friendly_name, key_id, key_id_len);
    PKCS7* key_safe = PKCS12_pack_p7data(key_bags.get());
    if (!key_safe || !sk_PKCS7_push(safes.get(), key_safe)) {
        PKCS7_free(key_safe);
        fail("cannot make the PKCS#12 key safe");
    }

    // The PFX and its MAC over the encoded safes (what PKCS12_add_safes packs).
    Pkcs12Ptr p12(PKCS12_add_safes(safes.get(), 0));
    if (!p12) fail("cannot make the PKCS#12 file");
    Der safes_der;
    safes_der.len = ASN1_item_i2d(reinterpret_cast<ASN1_VALUE*>(safes.get()), &safes_der.p,
                                  ASN1_ITEM_rptr(PKCS12_AUTHSAFES));
    if (safes_der.len <= 0) fail("cannot encode the PKCS#12 safes");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    std::string mac_salt = keys.mac_salt;
    const ASN1_OCTET_STRING* mac_slot = nullptr;
    if (!PKCS12_setup_mac(p12.get(), keys.iterations,
                          reinterpret_cast<unsigned char*>(mac_salt.data()),
                          static_cast<int>(mac_salt.size()), EVP_sha256()) ||
        !HMAC(EVP_sha256(), keys.mac_key.data(), static_cast<int>(keys.mac_key.size()), safes_der.p,
              static_cast<size_t>(safes_der.len), mac, &mac_len))
        fail("cannot protect the PKCS#12 file with a MAC");
    PKCS12_get0_mac(&mac_slot, nullptr, nullptr, nullptr, p12.get());
    // The slot PKCS12_setup_mac left empty, inside p12 (PKCS12_set_mac fills it the same way).
    if (!mac_slot || !ASN1_OCTET_STRING_set(const_cast<ASN1_OCTET_STRING*>(mac_slot), mac,
                                            static_cast<int>(mac_len)))
        fail("cannot protect the PKCS#12 file with a MAC");
    BioPtr out = memory_bio();
    if (i2d_PKCS12_bio(out.get(), p12.get()) != 1) fail("cannot encode the PKCS#12 file");
    return bio_bytes(out.get());
}

}  // namespace

P12Keys::~P12Keys() {
    wipe(bag_key);
    wipe(mac_key);
}

std::optional<P12Keys> CaSigner::derive_p12_keys(const std::string& password, P12Encryption enc,
                                                 int iterations) const {
    if (enc != P12Encryption::aes256) return std::nullopt;
    if (password.empty()) throw CaError("refusing to write a PKCS#12 without a password");
    // The MAC's KDF (and every reader) stops at a NUL; the bag key would not.
    if (password.find('\0') != std::string::npos)
        throw CaError("refusing a PKCS#12 password with a NUL character");
    if (iterations < 1) throw CaError("the PKCS#12 iteration count must be positive");
    P12Keys k;
    k.iterations = iterations;
    k.bag_salt = random_string(kP12SaltBytes);
    k.mac_salt = random_string(kP12SaltBytes);
    k.bag_key.assign(kP12KeyBytes, '\0');
    k.mac_key.assign(kP12KeyBytes, '\0');
    // The bag key through pbkdf2.hpp (OpenSSL's PKCS5_PBKDF2_HMAC's bytes at
    // about half its CPU), the MAC key through OpenSSL's PKCS#12 KDF (one
    // compression an iteration already).
    pbkdf2_hmac_sha256(password, k.bag_salt, iterations,
                       reinterpret_cast<unsigned char*>(k.bag_key.data()), kP12KeyBytes);
    if (PKCS12_key_gen_utf8(password.c_str(), -1,
                            reinterpret_cast<unsigned char*>(k.mac_salt.data()),
                            static_cast<int>(k.mac_salt.size()), PKCS12_MAC_ID, iterations,
                            static_cast<int>(kP12KeyBytes),
                            reinterpret_cast<unsigned char*>(k.mac_key.data()), EVP_sha256()) != 1)
        fail("cannot derive the PKCS#12 keys");
    return k;
}

namespace {}  // namespace

IssuedCertificate CaSigner::issue(const IssueRequest& req, const std::string& p12_password,
                                  P12Encryption enc, const P12Keys* ahead) const {
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
    // Keys derived ahead serve only the count and encryption they were made
    // for; without them an aes256 .p12 derives its two keys now, the same
    // way (one PBKDF2 for both bags and one PKCS#12 KDF for the MAC, where
    // PKCS12_create would run PBKDF2 once per bag). Legacy: PKCS12_create.
    std::optional<P12Keys> now;
    const P12Keys* keys =
        ahead && enc == P12Encryption::aes256 && ahead->iterations == req.p12_iterations ? ahead
                                                                                         : nullptr;
    if (!keys && enc == P12Encryption::aes256) {
        now = derive_p12_keys(p12_password, enc, req.p12_iterations);
        if (!now) fail("cannot derive the PKCS#12 keys");
        keys = &*now;
    }
    if (keys)
        out.pkcs12 = make_pkcs12_ahead(req.user_id, key.get(), cert.get(), cert_.get(), *keys);
    else
        out.pkcs12 = make_pkcs12_legacy(req.user_id, key.get(), cert.get(), cert_.get(),
                                        p12_password, req.p12_iterations);
    out.file_name = p12_file_name(req.user_id, req.now, req.timezone);
    return out;
}

}  // namespace certgate
