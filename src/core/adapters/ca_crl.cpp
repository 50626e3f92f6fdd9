// Revocation: reason words and the CRL the CA signs (GET /certgate/crl,
// `certgatectl crl`).
#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/adapters/ca.hpp"
#include "core/adapters/ca_openssl.hpp"

namespace certgate {

using namespace ca_detail;

namespace {

struct Reason {
    const char* word;
    int code;  // RFC 5280 CRLReason
};

constexpr Reason reasons[] = {
    {"unspecified", 0},        {"keyCompromise", 1},        {"affiliationChanged", 3},
    {"superseded", 4},         {"cessationOfOperation", 5}, {"certificateHold", 6},
    {"privilegeWithdrawn", 9},
};

struct RevokedFree {
    void operator()(X509_REVOKED* p) const { X509_REVOKED_free(p); }
};

Asn1TimePtr asn1_time(time_t t) {
    Asn1TimePtr out(ASN1_TIME_set(nullptr, t));
    if (!out) fail("cannot encode a CRL time");
    return out;
}

// One revoked entry: serial, date, and the reason extension (left out for
// "unspecified", as RFC 5280 5.3.1 asks).
X509_REVOKED* revoked_entry(const RevokedEntry& entry) {
    std::optional<int> reason = parse_revocation_reason(entry.reason);
    if (!reason)
        throw CaError("unknown revocation reason \"" + entry.reason + "\" for serial " +
                      entry.serial_hex);
    std::optional<std::string> hex = normalize_serial_hex(entry.serial_hex);
    if (!hex) throw CaError("invalid certificate serial \"" + entry.serial_hex + "\"");
    BIGNUM* raw = nullptr;
    if (!BN_hex2bn(&raw, hex->c_str())) fail("invalid certificate serial " + *hex);
    BignumPtr bn(raw);
    Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    std::unique_ptr<X509_REVOKED, RevokedFree> r(X509_REVOKED_new());
    Asn1TimePtr when = asn1_time(entry.revoked_at);
    if (!serial || !r || !X509_REVOKED_set_serialNumber(r.get(), serial.get()) ||
        !X509_REVOKED_set_revocationDate(r.get(), when.get()))
        fail("cannot add serial " + *hex + " to the CRL");
    if (*reason != 0) {
        Asn1EnumeratedPtr code(ASN1_ENUMERATED_new());
        if (!code || !ASN1_ENUMERATED_set(code.get(), *reason) ||
            X509_REVOKED_add1_ext_i2d(r.get(), NID_crl_reason, code.get(), 0, 0) != 1)
            fail("cannot add the revocation reason of serial " + *hex);
    }
    return r.release();
}

}  // namespace

std::optional<int> parse_revocation_reason(std::string_view word) {
    for (const Reason& r : reasons)
        if (word == r.word) return r.code;
    return std::nullopt;
}

std::vector<uint8_t> CaSigner::make_crl(const std::vector<RevokedEntry>& revoked, time_t now,
                                        int next_update_hours, uint64_t crl_number) const {
    if (next_update_hours <= 0) throw CaError("CRL next update must be at least one hour ahead");
    return make_crl_seconds(revoked, now, static_cast<int64_t>(next_update_hours) * 3600,
                            crl_number);
}

bool CaSigner::signed_crl(const std::vector<uint8_t>& der) const {
    const unsigned char* p = der.data();
    X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
    EVP_PKEY* pub = X509_get0_pubkey(cert_.get());
    bool ok = crl && pub && X509_CRL_verify(crl.get(), pub) == 1;
    ERR_clear_error();
    return ok;
}

std::vector<uint8_t> CaSigner::make_crl_seconds(const std::vector<RevokedEntry>& revoked,
                                                time_t now, int64_t validity_seconds,
                                                uint64_t crl_number) const {
    if (validity_seconds <= 0) throw CaError("CRL next update must be in the future");
    X509CrlPtr crl(X509_CRL_new());
    if (!crl || !X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert_.get())))
        fail("cannot make the CRL");
    Asn1TimePtr this_update = asn1_time(now);
    Asn1TimePtr next_update = asn1_time(now + static_cast<time_t>(validity_seconds));
    if (!X509_CRL_set1_lastUpdate(crl.get(), this_update.get()) ||
        !X509_CRL_set1_nextUpdate(crl.get(), next_update.get()))
        fail("cannot set the CRL dates");

    for (const RevokedEntry& entry : revoked) {
        X509_REVOKED* r = revoked_entry(entry);
        if (!X509_CRL_add0_revoked(crl.get(), r)) {
            X509_REVOKED_free(r);
            fail("cannot add serial " + entry.serial_hex + " to the CRL");
        }
    }
    X509_CRL_sort(crl.get());

    Asn1IntegerPtr number(ASN1_INTEGER_new());
    if (!number || !ASN1_INTEGER_set_uint64(number.get(), crl_number) ||
        X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1)
        fail("cannot set the CRL number");
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert_.get(), nullptr, nullptr, crl.get(), 0);
    ExtensionPtr aki(
        X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
    if (!aki || !X509_CRL_add_ext(crl.get(), aki.get(), -1))
        fail("cannot add the CRL's authority key identifier");

    if (!X509_CRL_sign(crl.get(), key_.get(), signing_digest(key_.get())))
        fail_signature("cannot sign the CRL with the CA key");
    BioPtr out = memory_bio();
    if (i2d_X509_CRL_bio(out.get(), crl.get()) != 1) fail("cannot encode the CRL");
    return bio_bytes(out.get());
}

std::string crl_der_to_pem(const std::vector<uint8_t>& der) {
    const unsigned char* p = der.data();
    X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
    if (!crl) fail("not a DER CRL");
    BioPtr out = memory_bio();
    if (!PEM_write_bio_X509_CRL(out.get(), crl.get())) fail("cannot encode the CRL as PEM");
    return bio_text(out.get());
}

}  // namespace certgate
