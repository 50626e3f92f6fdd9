// certgate's certificate authority: key types, the CA key and certificate,
// client-certificate checks, issuance (certificate + PKCS#12) and the CRL.
//
// Plain C++17 over OpenSSL 3; no nginx types. Every function that can fail
// throws CaError with a message a sysadmin can act on (file names, and the
// OpenSSL error queue text where OpenSSL was the one to refuse).
//
// Threads: a loaded CaSigner is immutable; issue() and make_crl() may run on
// several nginx thread-pool threads at once (see CaSigner below).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/adapters/tz.hpp"
#include "core/ports/signer.hpp"

namespace certgate {

// ---- errors ------------------------------------------------------------------

// CaError and CaKeyError are the signer port's (core/ports/signer.hpp).

// Drains the calling thread's OpenSSL error queue into one readable line
// ("bad decrypt; ..."), so a CaError says what OpenSSL refused; "" if empty.
std::string openssl_errors();

// ---- owning handles ------------------------------------------------------------

// Deleters for the OpenSSL objects the core hands out, so no caller frees by hand.
struct OpenSslDelete {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
    void operator()(X509* p) const { X509_free(p); }
    void operator()(X509_CRL* p) const { X509_CRL_free(p); }
    void operator()(X509_STORE* p) const { X509_STORE_free(p); }
    void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, OpenSslDelete>;
using X509Ptr = std::unique_ptr<X509, OpenSslDelete>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslDelete>;

// ---- key types (KeyType, parse_key_type: core/ports/signer.hpp) --------------------

// Makes a fresh key pair for one certificate (CPU-heavy for RSA: thread pool
// only). A set *cancel stops an RSA generation early (CaError).
PKey generate_key(const KeyType& type, const std::atomic<bool>* cancel = nullptr);

// ---- the operator's CA -------------------------------------------------------------

// Creates a self-signed CA (demo, certgatectl init): basicConstraints CA:TRUE
// critical, keyUsage keyCertSign+cRLSign, SKI. The key file is written 0600 and
// the certificate 0644, each through a temporary file linked into place, so an
// existing file is never overwritten and nothing half-written is left behind.
// A non-empty passphrase encrypts the key (AES-256-CBC, PKCS#8).
void create_ca(const std::string& cert_path, const std::string& key_path,
               const std::string& common_name, const KeyType& type, int days,
               const std::string& passphrase = {});

// Where the CA key comes from besides its spec: the passphrase file for an
// encrypted PEM key; for an HSM key (issue 9) the PIN file and PKCS#11 module.
struct CaKeyOptions {
    std::string passphrase_file;  // certgate_ca_key_passphrase_file; may be empty
    std::string pin_file;         // certgate_ca_key_pin_file (engine keys)
    std::string pkcs11_module;    // certgate_pkcs11_module; empty = p11-kit's proxy
};

// Writes a self-signed CA certificate (same profile as create_ca) for a key
// that already exists: one made inside an HSM (`pkcs11-tool --keypairgen`),
// given as "engine:pkcs11:<uri>", or a PEM file. Never overwrites cert_path.
void create_ca_certificate(const std::string& cert_path, const std::string& key_spec,
                           const CaKeyOptions& options, const std::string& common_name, int days);

// Reads one PEM certificate; for the glue's config-time check of
// certgate_ca_certificate without touching the key.
X509Ptr load_certificate(const std::string& path);

// Reads the CA certificates of certgate_ca_certificate_previous: one or more
// PEM certificates, each a CA (basicConstraints CA:TRUE), none of them
// `current`. Throws CaError naming the file and what is wrong.
std::vector<X509Ptr> load_previous_ca_certificates(const std::string& path, X509* current);

// ---- certificate facts -------------------------------------------------------------

// Serial as upper-case hex without separators ("4A1F..."): the form the store,
// the $certgate_cert_serial variable and `openssl x509 -serial` all use.
std::string serial_hex(const X509* cert);

// Canonical form of a serial an operator typed ("4a:1f", "0x4A1F", "004A1F"
// all give "4A1F"), so lookups match; nullopt if it is not hex or is zero.
std::optional<std::string> normalize_serial_hex(std::string_view text);

// Who a client certificate names: what the session and the log variables show.
struct CertificateIdentity {
    std::string serial_hex;
    std::string common_name;   // the user ID
    std::string organisation;  // O, UTF-8
    time_t not_before = 0;
    time_t not_after = 0;
};
CertificateIdentity certificate_identity(const X509* cert);

// ---- the protected path's check ---------------------------------------------------------

// Checks a TLS peer certificate against our CA inline on the event loop with
// X509_verify_cert and the SSL-client purpose, so signature, dates, keyUsage,
// extendedKeyUsage and unhandled critical extensions are OpenSSL's verdict;
// a CA certificate is never a login certificate. No I/O; tens of microseconds.
// Revocation is not checked here: the revocation set does that.
//
// During a CA rotation the previous CA certificates are trust anchors too, so
// certificates of the old CA keep working until they expire; a new and an
// old CA may share a subject name, so the signature decides between them.
class ClientCertCheck {
  public:
    enum class Result { ok, not_ours, expired, not_yet_valid };

    // Takes its own references to the certificates; the caller keeps its own.
    explicit ClientCertCheck(X509* ca_cert, const std::vector<X509Ptr>& previous = {});

    // Decides for one peer certificate at `now` (passed in so tests fix the
    // clock). expired and not_yet_valid mean the certificate is ours in every
    // other respect (it passes with X509_V_FLAG_NO_CHECK_TIME).
    Result check(X509* peer, time_t now) const;

    // How many CA certificates are trusted (1 + the previous ones).
    size_t trusted() const { return trusted_; }

  private:
    void trust(X509* cert);
    // X509_verify_cert's error for peer: X509_V_OK when it passes.
    int verify(X509* peer, time_t now, bool check_time) const;
    std::unique_ptr<X509_STORE, OpenSslDelete> store_;
    size_t trusted_ = 0;
};

// ---- issuance ---------------------------------------------------------------------------

// ---- revocation -------------------------------------------------------------------------

// Maps the reason words certgatectl accepts (keyCompromise, superseded,
// cessationOfOperation, affiliationChanged, unspecified, certificateHold,
// privilegeWithdrawn) to the RFC 5280 CRLReason code; nullopt otherwise.
std::optional<int> parse_revocation_reason(std::string_view word);

// PEM text of a DER CRL, for `certgatectl crl --out x.pem`.
std::string crl_der_to_pem(const std::vector<uint8_t>& der);

// ---- the CA key ---------------------------------------------------------------------------

// The loaded CA: its certificate and private key.
//
// Immutable after load(): issue() and make_crl() are const and may be called
// from several threads at once. They share, read-only, the CA X509 (its
// extension cache is filled at load, so no thread writes it later) and the
// CA EVP_PKEY (OpenSSL 3 makes a fresh EVP_PKEY_CTX per signature, so a
// shared key is safe to sign with concurrently). Everything else each call
// makes for itself. Move-only: hold it in a unique_ptr/shared_ptr.
// An engine (HSM) key is a handle on a PKCS#11 session, which does not
// survive fork(): load it in each nginx worker (init_process); loading in
// the master as well is fine for the nginx -t checks.
class CaSigner final : public Signer {
  public:
    // key_spec is a PEM file path, or "engine:pkcs11:<pkcs11 URI>" for a key
    // in an HSM. Checks the key matches the certificate and that the
    // certificate is a CA; every failure names the file and the cause.
    static CaSigner load(const std::string& cert_path, const std::string& key_spec,
                         const std::string& passphrase_file);
    static CaSigner load(const std::string& cert_path, const std::string& key_spec,
                         const CaKeyOptions& options);

    // The CA certificate, e.g. for ClientCertCheck and for the .p12 chain.
    X509* certificate() const { return cert_.get(); }

    // Makes a key pair, a client certificate (the profile is in ca_issue.cpp)
    // and a PKCS#12 protected by p12_password. CPU-heavy: thread pool only.
    IssuedCertificate issue(const IssueRequest& request, const std::string& p12_password,
                            P12Encryption enc, const P12Keys* ahead = nullptr) const override;
    std::optional<P12Keys> derive_p12_keys(const std::string& p12_password, P12Encryption enc,
                                           int iterations) const override;

    // Signs a v2 CRL (DER) listing `revoked`, with CRL number and AKI, valid
    // from now for next_update_hours.
    std::vector<uint8_t> make_crl(const std::vector<RevokedEntry>& revoked, time_t now,
                                  int next_update_hours, uint64_t crl_number) const;
    // The same, valid for validity_seconds (at least 1).
    std::vector<uint8_t> make_crl_seconds(const std::vector<RevokedEntry>& revoked, time_t now,
                                          int64_t validity_seconds,
                                          uint64_t crl_number) const override;
    // True when `der` is a CRL whose signature this CA's key made.
    bool signed_crl(const std::vector<uint8_t>& der) const override;

    // The CA's private key, for tests and for signing beyond issue()/make_crl().
    EVP_PKEY* private_key() const { return key_.get(); }

    CaSigner(CaSigner&&) noexcept = default;
    CaSigner& operator=(CaSigner&&) noexcept = default;

  private:
    CaSigner(X509Ptr cert, PKey key);

    X509Ptr cert_;
    PKey key_;
};

// ---- validity (R1) and file names (R11) ---------------------------------------------------

// notAfter by R1: 23:59:59 local time, in IANA zone `tz`, of the last of
// `validity_days` days counting the local issue day (366: 2026-11-26 gives
// 2027-11-26 23:59:59). Throws CaError for an unknown zone.
time_t certificate_not_after(time_t issue_time, const std::string& tz, int validity_days);

// The .p12 file name of R11: <userID><YYYYMMDDhhmmss>.p12, local time in `tz`.
std::string p12_file_name(const std::string& user_id, time_t issue_time, const std::string& tz);

}  // namespace certgate
