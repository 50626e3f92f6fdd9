// Internal to the CA core (ca.cpp, ca_issue.cpp, revocation.cpp, hsm_key.cpp):
// owning handles for the OpenSSL objects those files build, and the few
// steps they share. Not for use outside src/core/.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "core/adapters/ca.hpp"

namespace certgate::ca_detail {

struct Free {
    void operator()(BIO* p) const { BIO_free_all(p); }
    void operator()(BIGNUM* p) const { BN_free(p); }
    // ASN1_INTEGER, ASN1_TIME and ASN1_ENUMERATED are all ASN1_STRING.
    void operator()(ASN1_STRING* p) const { ASN1_STRING_free(p); }
    void operator()(X509_NAME* p) const { X509_NAME_free(p); }
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
    void operator()(PKCS12* p) const { PKCS12_free(p); }
    void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
using BioPtr = std::unique_ptr<BIO, Free>;
using BignumPtr = std::unique_ptr<BIGNUM, Free>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, Free>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, Free>;
using Asn1EnumeratedPtr = std::unique_ptr<ASN1_ENUMERATED, Free>;
using X509NamePtr = std::unique_ptr<X509_NAME, Free>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Free>;
using Pkcs12Ptr = std::unique_ptr<PKCS12, Free>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Free>;

// Throws CaError("<what>: <OpenSSL error queue>"); the queue says why.
[[noreturn]] void fail(const std::string& what);
// The same as a CaKeyError: the CA key's signature failed.
[[noreturn]] void fail_signature(const std::string& what);

// A fresh positive serial of 127 bits from RAND_bytes (top bit clear, next
// bit set), so it is never zero, never negative, and always >= 64 bits.
Asn1IntegerPtr random_serial();

// Signs cert or CRL with the CA key; SHA-256 for RSA and EC keys.
const EVP_MD* signing_digest(EVP_PKEY* key);

// Adds one extension given in OpenSSL's config syntax. Only for fixed
// values: user data (mail, URLs) is built as ASN.1 so it cannot inject
// further names through a comma.
void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value);

// A certificate or CRL time as time_t (UTC); 0 if it cannot be read.
time_t asn1_to_time(const ASN1_TIME* t);

// The first line of a passphrase or PIN file (trailing newline dropped);
// throws naming `what` and the path when it is missing or empty.
std::string read_secret_file(const std::string& path, const std::string& what);

// Everything written into a memory BIO, as text or bytes.
std::string bio_text(BIO* bio);
std::vector<uint8_t> bio_bytes(BIO* bio);

// A fresh memory BIO; throws on allocation failure.
BioPtr memory_bio();

}  // namespace certgate::ca_detail
