// The CA itself: key types, reading and creating the CA key and certificate,
// certificate facts, and the protected path's client-certificate check.
#include "core/adapters/ca.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/adapters/ca_openssl.hpp"
#include "core/adapters/hsm_key.hpp"

namespace certgate {

using namespace ca_detail;

// ---- errors and shared steps ---------------------------------------------------

std::string openssl_errors() {
    std::string out;
    const char* data = nullptr;
    int flags = 0;
    unsigned long e;
    while ((e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
        const char* reason = ERR_reason_error_string(e);
        std::string item = reason ? reason : ("error " + std::to_string(ERR_GET_REASON(e)));
        if ((flags & ERR_TXT_STRING) && data && *data) item += std::string(" (") + data + ")";
        // The same reason is often pushed by several layers; say it once.
        if (out.find(item) != std::string::npos) continue;
        if (!out.empty()) out += "; ";
        out += item;
    }
    return out;
}

namespace ca_detail {

void fail(const std::string& what) {
    std::string why = openssl_errors();
    throw CaError(why.empty() ? what : what + ": " + why);
}

void fail_signature(const std::string& what) {
    std::string why = openssl_errors();
    throw CaKeyError(why.empty() ? what : what + ": " + why);
}

Asn1IntegerPtr random_serial() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) fail("cannot make a certificate serial");
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
    if (!bn) fail("cannot make a certificate serial");
    Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    if (!serial) fail("cannot make a certificate serial");
    return serial;
}

const EVP_MD* signing_digest(EVP_PKEY*) { return EVP_sha256(); }

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
        fail(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid) + "=" + value);
}

time_t asn1_to_time(const ASN1_TIME* t) {
    struct tm tm {};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return timegm(&tm);
}

std::string read_secret_file(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CaError("cannot read " + what + " " + path + ": " + std::strerror(errno));
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) throw CaError(what + " " + path + " is empty");
    return line;
}

BioPtr memory_bio() {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio) fail("out of memory");
    return bio;
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, len > 0 ? static_cast<size_t>(len) : 0);
}

std::vector<uint8_t> bio_bytes(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::vector<uint8_t>(data, data + (len > 0 ? len : 0));
}

}  // namespace ca_detail

// ---- key types -------------------------------------------------------------------

std::string KeyType::name() const {
    return alg == KeyAlgorithm::rsa ? "rsa:" + std::to_string(bits) : "ec:" + curve;
}

std::optional<KeyType> parse_key_type(std::string_view spec) {
    if (spec == "rsa:2048") return KeyType{KeyAlgorithm::rsa, 2048, {}};
    if (spec == "rsa:3072") return KeyType{KeyAlgorithm::rsa, 3072, {}};
    if (spec == "ec:P-256") return KeyType{KeyAlgorithm::ec, 0, "P-256"};
    return std::nullopt;
}

namespace {
// OpenSSL calls this for each prime candidate and test round of an RSA key
// generation, every millisecond or so. Yielding there lets a thread of
// higher priority that shares the core (nginx's event loop, when the key is
// made in a pool thread) run at once instead of after this thread's time
// slice; with no one waiting it costs a system call.
// Returning 0 aborts the generation: the key pool's refill is cancelled so
// at worker exit.
int yield_during_keygen(EVP_PKEY_CTX* ctx) {
    auto* cancel = static_cast<const std::atomic<bool>*>(EVP_PKEY_CTX_get_app_data(ctx));
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return 0;
    sched_yield();
    return 1;
}
}  // namespace

// A user's key pair (or a PEM CA's) is made by OpenSSL's default provider,
// by name, never by an engine: the engine that holds the CA key in an HSM
// (pkcs11) must not take over key generation, which its token cannot do for
// every key type ("unknown group" for ec:P-256). Only the CA key
// lives in the HSM.
PKey generate_key(const KeyType& type, const std::atomic<bool>* cancel) {
    keep_engines_out_of_defaults();
#if (CERTGATE_TEST_HOOKS)
    // Test builds only: a key generation that fails, a CA error that is not
    // the HSM's (t/hsm.t: it must not recycle the worker).
    if (const char* f = std::getenv("CERTGATE_TEST_KEYGEN_FAILS"); f && *f == '1')
        fail("cannot generate a " + type.name() + " key (CERTGATE_TEST_KEYGEN_FAILS)");
#endif
    const bool ec = type.alg == KeyAlgorithm::ec;
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, ec ? "EC" : "RSA", "provider=default"),
        &EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        (ec ? EVP_PKEY_CTX_set_group_name(ctx.get(), type.curve.c_str())
            : EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), type.bits)) != 1)
        fail("cannot generate a " + type.name() + " key");
    if (!ec) {
        EVP_PKEY_CTX_set_app_data(ctx.get(), const_cast<std::atomic<bool>*>(cancel));
        EVP_PKEY_CTX_set_cb(ctx.get(), yield_during_keygen);
    }
    if (EVP_PKEY_keygen(ctx.get(), &key) != 1 || !key)
        fail("cannot generate a " + type.name() + " key");
    return PKey(key);
}

// ---- files -------------------------------------------------------------------------

namespace {

std::string errno_text() { return std::strerror(errno); }

// Writes a new file through a temporary one linked into place: link() fails
// if the name exists, so an existing CA is never replaced, and a crash leaves
// at most a stray temporary file, never a half-written key.
void write_new_file(const std::string& path, const std::string& data, mode_t mode) {
    std::string tmp = path + ".tmpXXXXXX";
    int fd = mkstemp(tmp.data());
    if (fd < 0) throw CaError("cannot create " + path + ": " + errno_text());
    auto give_up = [&](const std::string& what) {
        std::string why = errno_text();
        close(fd);
        unlink(tmp.c_str());
        throw CaError(what + " " + path + ": " + why);
    };
    if (fchmod(fd, mode) != 0) give_up("cannot set the mode of");
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) give_up("cannot write");
        done += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0) give_up("cannot write");
    if (close(fd) != 0) {
        std::string why = errno_text();
        unlink(tmp.c_str());
        throw CaError("cannot write " + path + ": " + why);
    }
    if (link(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        if (err == EEXIST) throw CaError("refusing to overwrite existing file " + path);
        throw CaError("cannot create " + path + ": " + std::strerror(err));
    }
    unlink(tmp.c_str());
}

bool file_exists(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
}

// Opens a file for OpenSSL, saying which file and why when it cannot.
BioPtr open_for_reading(const std::string& path, const std::string& what) {
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
        ERR_clear_error();
        throw CaError("cannot read " + what + " " + path + ": " + errno_text());
    }
    return bio;
}

// Feeds OpenSSL the passphrase without ever prompting on a terminal (nginx
// has none) and records whether one was asked for, to explain a failure.
struct PassphraseRequest {
    const std::string* passphrase;
    bool asked = false;
};

int passphrase_callback(char* buf, int size, int, void* u) {
    auto* req = static_cast<PassphraseRequest*>(u);
    req->asked = true;
    if (!req->passphrase || req->passphrase->empty()) return -1;
    int n = static_cast<int>(req->passphrase->size());
    if (n > size) return -1;
    std::memcpy(buf, req->passphrase->data(), static_cast<size_t>(n));
    return n;
}

PKey load_pem_key(const std::string& path, const std::string& passphrase_file) {
    std::string passphrase;
    if (!passphrase_file.empty())
        passphrase = read_secret_file(passphrase_file, "CA key passphrase file");
    BioPtr bio = open_for_reading(path, "CA key");
    PassphraseRequest req{&passphrase};
    PKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, passphrase_callback, &req));
    OPENSSL_cleanse(passphrase.data(), passphrase.size());
    if (key) return key;
    std::string why = openssl_errors();
    if (req.asked && passphrase_file.empty())
        throw CaError("CA key " + path +
                      " is encrypted: set certgate_ca_key_passphrase_file to a file holding "
                      "its passphrase");
    if (req.asked)
        throw CaError("cannot read CA key " + path + ": " + (why.empty() ? "error" : why) +
                      " (wrong passphrase in " + passphrase_file + "?)");
    throw CaError("cannot read CA key " + path + ": " +
                  (why.empty() ? "not a PEM private key" : why + " (not a PEM private key?)"));
}

// The extension point for keys that are not PEM files: "engine:<id>:<key id>".
PKey load_ca_key(const std::string& key_spec, const CaKeyOptions& options) {
    return is_engine_key_spec(key_spec) ? load_engine_key(key_spec, options)
                                        : load_pem_key(key_spec, options.passphrase_file);
}

void set_validity(X509* cert, time_t not_before, time_t not_after) {
    if (!ASN1_TIME_set(X509_getm_notBefore(cert), not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(cert), not_after))
        fail("cannot set certificate validity");
}

std::string name_entry(const X509_NAME* name, int nid) {
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i < 0) return {};
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, s);
    if (len < 0) {
        ERR_clear_error();
        return {};
    }
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
    return out;
}

}  // namespace

// ---- the operator's CA -------------------------------------------------------------

namespace {

// The self-signed CA certificate of create_ca and create_ca_certificate.
X509Ptr self_signed_ca(EVP_PKEY* key, const std::string& common_name, int days) {
    if (days <= 0) throw CaError("CA validity must be at least one day");
    if (common_name.empty()) throw CaError("CA common name must not be empty");
    X509Ptr cert(X509_new());
    if (!cert || !X509_set_version(cert.get(), X509_VERSION_3)) fail("cannot make CA certificate");
    Asn1IntegerPtr serial = random_serial();
    X509_set_serialNumber(cert.get(), serial.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                    -1, 0))
        fail("cannot use CA common name \"" + common_name + "\"");
    X509_set_issuer_name(cert.get(), name);
    time_t now = time(nullptr);
    set_validity(cert.get(), now, now + static_cast<time_t>(days) * 86400);
    if (!X509_set_pubkey(cert.get(), key)) fail("cannot make CA certificate");

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
    if (!X509_sign(cert.get(), key, signing_digest(key))) fail("cannot sign CA certificate");
    return cert;
}

std::string certificate_pem(X509* cert) {
    BioPtr pem = memory_bio();
    if (!PEM_write_bio_X509(pem.get(), cert)) fail("cannot encode CA certificate");
    return bio_text(pem.get());
}

}  // namespace

void create_ca(const std::string& cert_path, const std::string& key_path,
               const std::string& common_name, const KeyType& type, int days,
               const std::string& passphrase) {
    for (const std::string* p : {&key_path, &cert_path})
        if (file_exists(*p)) throw CaError("refusing to overwrite existing file " + *p);
    PKey key = generate_key(type);
    X509Ptr cert = self_signed_ca(key.get(), common_name, days);

    BioPtr key_pem = memory_bio();
    const EVP_CIPHER* cipher = passphrase.empty() ? nullptr : EVP_aes_256_cbc();
    if (!PEM_write_bio_PKCS8PrivateKey(key_pem.get(), key.get(), cipher, nullptr, 0, nullptr,
                                       const_cast<char*>(passphrase.c_str())))
        fail("cannot encode CA key");
    std::string cert_text = certificate_pem(cert.get());

    std::string key_text = bio_text(key_pem.get());
    write_new_file(key_path, key_text, 0600);
    OPENSSL_cleanse(key_text.data(), key_text.size());
    try {
        write_new_file(cert_path, cert_text, 0644);
    } catch (...) {
        // A key without its certificate is no CA: leave nothing behind.
        unlink(key_path.c_str());
        throw;
    }
}

void create_ca_certificate(const std::string& cert_path, const std::string& key_spec,
                           const CaKeyOptions& options, const std::string& common_name, int days) {
    if (file_exists(cert_path)) throw CaError("refusing to overwrite existing file " + cert_path);
    PKey key = load_ca_key(key_spec, options);
    X509Ptr cert = self_signed_ca(key.get(), common_name, days);
    write_new_file(cert_path, certificate_pem(cert.get()), 0644);
}

namespace {

// `what` names the file's role in errors ("CA certificate").
X509Ptr read_certificate(const std::string& path, const std::string& what) {
    BioPtr bio = open_for_reading(path, what);
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
        std::string why = openssl_errors();
        throw CaError("cannot read " + what + " " + path + ": " + (why.empty() ? "" : why + " ") +
                      "(not a PEM certificate?)");
    }
    return cert;
}

}  // namespace

X509Ptr load_certificate(const std::string& path) { return read_certificate(path, "certificate"); }

std::vector<X509Ptr> load_previous_ca_certificates(const std::string& path, X509* current) {
    BioPtr bio = open_for_reading(path, "previous CA certificates");
    std::vector<X509Ptr> certs;
    ERR_clear_error();
    for (;;) {
        const std::string which = "certificate " + std::to_string(certs.size() + 1) + " in " + path;
        X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!cert) {
            // No further BEGIN line is the end of the list; anything else is damage.
            unsigned long err = ERR_peek_last_error();
            if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break;
            }
            throw CaError("cannot read " + which + ": " + openssl_errors());
        }
        if (X509_check_ca(cert.get()) < 1)
            throw CaError(which + " is not a CA certificate (basicConstraints CA:TRUE)");
        if (current && X509_cmp(cert.get(), current) == 0)
            throw CaError(which + " is the current CA certificate (certgate_ca_certificate); " +
                          "list only the CAs being retired");
        certs.push_back(std::move(cert));
    }
    if (certs.empty()) throw CaError("no PEM certificate in " + path);
    return certs;
}

// ---- certificate facts -------------------------------------------------------------

std::string serial_hex(const X509* cert) {
    BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
    if (!bn) fail("cannot read certificate serial");
    char* hex = BN_bn2hex(bn.get());
    if (!hex) fail("cannot read certificate serial");
    std::string out(hex);
    OPENSSL_free(hex);
    return out;
}

std::optional<std::string> normalize_serial_hex(std::string_view text) {
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
        text.remove_prefix(2);
    std::string digits;
    for (char c : text) {
        if (c == ':' || c == ' ') continue;
        if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
        digits += c;
    }
    if (digits.empty() || digits.size() > 80) return std::nullopt;
    BIGNUM* raw = nullptr;
    if (!BN_hex2bn(&raw, digits.c_str())) {
        ERR_clear_error();
        return std::nullopt;
    }
    BignumPtr bn(raw);
    if (BN_is_zero(bn.get())) return std::nullopt;
    char* hex = BN_bn2hex(bn.get());
    if (!hex) return std::nullopt;
    std::string out(hex);
    OPENSSL_free(hex);
    return out;
}

CertificateIdentity certificate_identity(const X509* cert) {
    CertificateIdentity id;
    id.serial_hex = serial_hex(cert);
    const X509_NAME* subject = X509_get_subject_name(cert);
    id.common_name = name_entry(subject, NID_commonName);
    id.organisation = name_entry(subject, NID_organizationName);
    id.not_before = asn1_to_time(X509_get0_notBefore(cert));
    id.not_after = asn1_to_time(X509_get0_notAfter(cert));
    return id;
}

// ---- the protected path's check ---------------------------------------------------------

ClientCertCheck::ClientCertCheck(X509* ca_cert, const std::vector<X509Ptr>& previous)
    : store_(X509_STORE_new()) {
    if (!ca_cert) throw CaError("no CA certificate to check against");
    if (!store_) fail("cannot make the client-certificate trust store");
    // Our CA certificates are the trust anchors even when one is itself an
    // intermediate of the bank's root, which certgate never sees.
    if (X509_STORE_set_flags(store_.get(), X509_V_FLAG_PARTIAL_CHAIN) != 1 ||
        X509_STORE_set_purpose(store_.get(), X509_PURPOSE_SSL_CLIENT) != 1 ||
        X509_STORE_set_trust(store_.get(), X509_TRUST_SSL_CLIENT) != 1)
        fail("cannot set up the client-certificate trust store");
    trust(ca_cert);
    for (const X509Ptr& cert : previous) trust(cert.get());
}

void ClientCertCheck::trust(X509* cert) {
    // X509_STORE_add_cert takes its own reference (and ignores a duplicate).
    if (X509_STORE_add_cert(store_.get(), cert) != 1) fail("cannot trust a CA certificate");
    ++trusted_;
}

int ClientCertCheck::verify(X509* peer, time_t now, bool check_time) const {
    std::unique_ptr<X509_STORE_CTX, OpenSslDelete> ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store_.get(), peer, nullptr) != 1) {
        ERR_clear_error();
        return X509_V_ERR_OUT_OF_MEM;
    }
    if (check_time)
        X509_STORE_CTX_set_time(ctx.get(), 0, now);
    else
        X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
    int ok = X509_verify_cert(ctx.get());
    int error = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    if (ok == 1) return X509_V_OK;
    return error == X509_V_OK ? X509_V_ERR_UNSPECIFIED : error;
}

ClientCertCheck::Result ClientCertCheck::check(X509* peer, time_t now) const {
    // The CA certificate itself (or any sub-CA) is never a login certificate.
    if (!peer || X509_check_ca(peer) != 0) return Result::not_ours;
    int error = verify(peer, now, true);
    if (error == X509_V_OK) return Result::ok;
    if (error != X509_V_ERR_CERT_HAS_EXPIRED && error != X509_V_ERR_CERT_NOT_YET_VALID)
        return Result::not_ours;
    // Out of its dates (or its CA out of its own): ours only if every other
    // check passes, which is what certgate_expired_certificates pass lets in.
    if (verify(peer, now, false) != X509_V_OK) return Result::not_ours;
    return error == X509_V_ERR_CERT_HAS_EXPIRED ? Result::expired : Result::not_yet_valid;
}

// ---- loading the CA -------------------------------------------------------------------------

CaSigner::CaSigner(X509Ptr cert, PKey key) : cert_(std::move(cert)), key_(std::move(key)) {}

CaSigner CaSigner::load(const std::string& cert_path, const std::string& key_spec,
                        const std::string& passphrase_file) {
    CaKeyOptions options;
    options.passphrase_file = passphrase_file;
    return load(cert_path, key_spec, options);
}

CaSigner CaSigner::load(const std::string& cert_path, const std::string& key_spec,
                        const CaKeyOptions& options) {
    X509Ptr cert = read_certificate(cert_path, "CA certificate");
    if (X509_check_ca(cert.get()) == 0)
        throw CaError("CA certificate " + cert_path +
                      " is not a CA certificate (needs basicConstraints CA:TRUE and keyUsage "
                      "keyCertSign)");

    PKey key = load_ca_key(key_spec, options);

    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        ERR_clear_error();
        throw CaError("CA key " + key_spec + " does not match CA certificate " + cert_path);
    }
    // Fill the certificate's extension cache now, on one thread, so the
    // signing threads only ever read it.
    X509_check_purpose(cert.get(), -1, 0);
    ERR_clear_error();
    return CaSigner(std::move(cert), std::move(key));
}

}  // namespace certgate
