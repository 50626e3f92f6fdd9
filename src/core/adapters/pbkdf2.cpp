// See pbkdf2.hpp. SHA256_Transform is deprecated in OpenSSL 3 (the EVP
// interface has no bare compression) but stays in libcrypto 3.x, with the
// same SHA-NI / AVX2 code EVP_sha256() runs. It goes around the provider
// layer, so it is not the FIPS provider's code: an OpenSSL built without
// the deprecated interfaces gets PKCS5_PBKDF2_HMAC below, the same bytes at
// OpenSSL's own speed.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "core/adapters/pbkdf2.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace certgate {

namespace {

constexpr size_t kBlock = SHA256_CBLOCK;          // 64
constexpr size_t kDigest = SHA256_DIGEST_LENGTH;  // 32

[[maybe_unused]] void put_be32(unsigned char* p, uint32_t v) {
    p[0] = static_cast<unsigned char>(v >> 24);
    p[1] = static_cast<unsigned char>(v >> 16);
    p[2] = static_cast<unsigned char>(v >> 8);
    p[3] = static_cast<unsigned char>(v);
}

// The digest a context's state holds after whole blocks (no padding added).
[[maybe_unused]] void state_bytes(const SHA256_CTX& c, unsigned char* out) {
    for (size_t w = 0; w < 8; ++w) put_be32(out + 4 * w, c.h[w]);
}

// Everything that depends on the password, wiped on every way out.
struct Secrets {
    SHA256_CTX inner{}, outer{}, c{};
    unsigned char key[kBlock]{}, pad[kBlock]{}, block[kBlock]{}, u[kDigest]{}, t[kDigest]{};
    Secrets() = default;
    Secrets(const Secrets&) = delete;
    Secrets& operator=(const Secrets&) = delete;
    ~Secrets() { OPENSSL_cleanse(this, sizeof *this); }
};

}  // namespace

void pbkdf2_hmac_sha256(std::string_view password, std::string_view salt, int iterations,
                        unsigned char* out, size_t out_len) {
    if (iterations < 1) throw std::invalid_argument("PBKDF2 needs at least one iteration");
    if (out_len / kDigest >= 0xffffffffu) throw std::invalid_argument("PBKDF2 output too long");
#if defined(OPENSSL_NO_DEPRECATED_3_0)
    if (out_len > INT_MAX || password.size() > INT_MAX || salt.size() > INT_MAX ||
        PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()),
                          static_cast<int>(salt.size()), iterations, EVP_sha256(),
                          static_cast<int>(out_len), out) != 1)
        throw std::runtime_error("PBKDF2 failed");
#else
    Secrets s;
    // HMAC's key: the password, or its digest when longer than a block.
    if (password.size() > kBlock) {
        if (SHA256(reinterpret_cast<const unsigned char*>(password.data()), password.size(),
                   s.key) == nullptr)
            throw std::runtime_error("SHA-256 failed");
    } else if (!password.empty()) {
        std::memcpy(s.key, password.data(), password.size());
    }
    for (size_t i = 0; i < kBlock; ++i) s.pad[i] = s.key[i] ^ 0x36;
    if (SHA256_Init(&s.inner) != 1 || SHA256_Update(&s.inner, s.pad, kBlock) != 1)
        throw std::runtime_error("SHA-256 failed");
    for (size_t i = 0; i < kBlock; ++i) s.pad[i] = s.key[i] ^ 0x5c;
    if (SHA256_Init(&s.outer) != 1 || SHA256_Update(&s.outer, s.pad, kBlock) != 1)
        throw std::runtime_error("SHA-256 failed");

    // An iteration's message, U (32 bytes) after a 64-byte pad block: one
    // block holding U, SHA-256's padding and the bit length 768. The outer
    // hash's message (the inner digest) has the same shape.
    s.block[kDigest] = 0x80;
    s.block[kBlock - 2] = (8 * (kBlock + kDigest)) >> 8;
    s.block[kBlock - 1] = (8 * (kBlock + kDigest)) & 0xff;

    for (uint32_t index = 1; out_len > 0; ++index) {
        // U1 = HMAC(password, salt || INT(index)), through the usual path.
        unsigned char be_index[4];
        put_be32(be_index, index);
        s.c = s.inner;
        if (SHA256_Update(&s.c, salt.data(), salt.size()) != 1 ||
            SHA256_Update(&s.c, be_index, sizeof be_index) != 1 || SHA256_Final(s.u, &s.c) != 1)
            throw std::runtime_error("SHA-256 failed");
        s.c = s.outer;
        if (SHA256_Update(&s.c, s.u, kDigest) != 1 || SHA256_Final(s.u, &s.c) != 1)
            throw std::runtime_error("SHA-256 failed");
        std::memcpy(s.t, s.u, kDigest);
        // U2 .. Uc: two compressions each.
        for (int j = 1; j < iterations; ++j) {
            std::memcpy(s.block, s.u, kDigest);
            s.c = s.inner;
            SHA256_Transform(&s.c, s.block);
            state_bytes(s.c, s.block);
            s.c = s.outer;
            SHA256_Transform(&s.c, s.block);
            state_bytes(s.c, s.u);
            for (size_t w = 0; w < kDigest; ++w) s.t[w] ^= s.u[w];
        }
        size_t n = out_len < kDigest ? out_len : kDigest;
        std::memcpy(out, s.t, n);
        out += n;
        out_len -= n;
    }
#endif
}

}  // namespace certgate
