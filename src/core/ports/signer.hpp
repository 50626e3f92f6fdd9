// The signer port: what the issuance use case and the CRL need from the CA.
// The OpenSSL CA (adapters/ca.hpp: CaSigner, a PEM or HSM key) implements
// it; unit tests use a fake. No OpenSSL types here.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace certgate {

// One exception type for the CA, so callers (nginx glue, certgatectl) catch
// it and print what() as it is: it already names the file and cause.
struct CaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// The CA key itself failed to sign a certificate or a CRL. With the key in an
// HSM this is the token or its session failing, the one CA error after which
// a worker is replaced (Runtime::hsm_broken); a key that could not be made, a
// bad request or an encoding error is a CaError and recycles nothing.
struct CaKeyError : CaError {
    using CaError::CaError;
};

enum class KeyAlgorithm { rsa, ec };

// A key type of certgate_key_type: data, so the issuance profile is one code path.
struct KeyType {
    KeyAlgorithm alg = KeyAlgorithm::rsa;
    int bits = 2048;    // rsa only
    std::string curve;  // ec only: "P-256"

    // The directive spelling ("rsa:2048", "ec:P-256"), for logs and errors.
    std::string name() const;
};

// Parses certgate_key_type; accepts exactly rsa:2048, rsa:3072 and ec:P-256,
// so a typo stops nginx -t instead of issuing weak or unexpected keys.
std::optional<KeyType> parse_key_type(std::string_view spec);

// How the .p12 is protected: aes256 = PBKDF2 + AES-256-CBC with a SHA-256
// MAC (default); legacy = 3DES keys, RC2-40 certificates, SHA-1 MAC, for old
// Windows (needs OpenSSL's legacy provider, loaded on demand).
enum class P12Encryption { aes256, legacy };

// certgate_p12_iterations: the PBKDF2 (aes256) or PKCS#12-KDF (legacy)
// iteration count of the key, certificate and MAC protection. The login
// password is short, so the count is what slows an offline guess.
inline constexpr int kDefaultP12Iterations = 100000;
inline constexpr int kMinP12Iterations = 10000;
inline constexpr int kMaxP12Iterations = 10000000;

// What issue() needs to know about one user and the site's rules (R1, R11).
struct IssueRequest {
    std::string user_id;   // CN, and the .p12 friendly name and file name
    std::string org_name;  // O (UTF-8)
    std::string mail;      // SAN rfc822Name; empty = no SAN
    KeyType key_type;
    time_t now = 0;                              // the issue time
    std::string timezone = "Asia/Tokyo";         // certgate_timezone, an IANA name
    int validity_days = 366;                     // certgate_cert_validity, counting the issue day
    std::string crl_url;                         // CRL distribution point; empty = none
    int p12_iterations = kDefaultP12Iterations;  // certgate_p12_iterations
};

// The result of one issuance: what the store records and what the user downloads.
struct IssuedCertificate {
    std::string serial_hex;
    time_t not_before = 0;
    time_t not_after = 0;
    std::string cert_pem;
    std::vector<uint8_t> pkcs12;
    std::string file_name;  // <userID><YYYYMMDDhhmmss>.p12, local time in the timezone (R11)
};

// One line of the CRL, as the store keeps it.
struct RevokedEntry {
    std::string serial_hex;
    time_t revoked_at = 0;
    std::string reason;  // keyCompromise, superseded, cessationOfOperation, ...
};

// The PKCS#12's key derivations, done ahead (issue 18): at ④, once the
// password is known, a background task of the crypto pool derives them
// with fresh salts, and ⑥ builds the .p12 around them instead of spending
// its two derivations of certgate_p12_iterations on the clerk's wait. The
// same key encrypts the key bag and the certificate bag (each with its own
// random IV); the MAC key comes from the PKCS#12 KDF as PKCS12_set_mac's.
// Held only sealed with the flow cookie's key, taken once, wiped.
struct P12Keys {
    int iterations = 0;
    std::string bag_salt, bag_key;  // PBKDF2-HMAC-SHA256 -> the AES-256-CBC key
    std::string mac_salt, mac_key;  // PKCS#12 KDF (SHA-256, ID 3) -> the HMAC-SHA256 key

    P12Keys() = default;
    P12Keys(const P12Keys&) = default;
    P12Keys& operator=(const P12Keys&) = default;
    ~P12Keys();  // wipes the keys
};

// Safe to call from several thread-pool threads at once.
class Signer {
  public:
    virtual ~Signer() = default;

    // Makes a key pair, a client certificate and a PKCS#12 protected by
    // p12_password. Throws CaError (CaKeyError when the CA key failed).
    // `ahead`: the PKCS#12 keys derived before from the same password with
    // enc and request.p12_iterations (nullptr, or another count or
    // encryption: derived now).
    virtual IssuedCertificate issue(const IssueRequest& request, const std::string& p12_password,
                                    P12Encryption enc, const P12Keys* ahead = nullptr) const = 0;

    // The keys for issue()'s `ahead`, for aes256 only (nullopt for legacy,
    // whose 3DES and RC2 bags are derived at ⑥ as before). Seconds of CPU
    // at high iteration counts: a crypto pool's work.
    virtual std::optional<P12Keys> derive_p12_keys(const std::string& p12_password,
                                                   P12Encryption enc, int iterations) const = 0;

    // Signs a v2 CRL (DER) listing `revoked`, valid for validity_seconds.
    virtual std::vector<uint8_t> make_crl_seconds(const std::vector<RevokedEntry>& revoked,
                                                  time_t now, int64_t validity_seconds,
                                                  uint64_t crl_number) const = 0;
    // True when `der` is a CRL whose signature this CA's key made.
    virtual bool signed_crl(const std::vector<uint8_t>& der) const = 0;
};

}  // namespace certgate
