#include "core/base/secrets.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace certgate {

std::string random_bytes(size_t n) {
    std::string out(n, '\0');
    if (n && RAND_bytes(reinterpret_cast<unsigned char *>(&out[0]), static_cast<int>(n)) != 1) {
        throw std::runtime_error("the random number generator failed");
    }
    return out;
}

std::string random_digits(size_t n) {
    std::string out;
    out.reserve(n);
    while (out.size() < n) {
        for (unsigned char c : random_bytes(n * 2)) {
            // 250 = 25 * 10: bytes 250..255 would bias the digits.
            if (c < 250 && out.size() < n) out += static_cast<char>('0' + c % 10);
        }
    }
    return out;
}

namespace {
struct MacFree {
    void operator()(EVP_MAC *m) const { EVP_MAC_free(m); }
    void operator()(EVP_MAC_CTX *c) const { EVP_MAC_CTX_free(c); }
};

// OpenSSL 3 looks algorithms up by name on every one-shot HMAC(); the
// protected path checks a cookie per request, so each thread keeps an HMAC
// context keyed once (the key is certgate_secret) and copies it per use.
struct KeyedMac {
    std::unique_ptr<EVP_MAC, MacFree> mac;
    std::string key;
    std::unique_ptr<EVP_MAC_CTX, MacFree> ctx;
};
}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view message) {
    thread_local KeyedMac keyed;
    if (!keyed.mac) keyed.mac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!keyed.mac) throw std::runtime_error("HMAC is not available in this OpenSSL");
    if (!keyed.ctx || keyed.key != key) {
        keyed.ctx.reset(EVP_MAC_CTX_new(keyed.mac.get()));
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                               OSSL_PARAM_construct_end()};
        if (!keyed.ctx ||
            EVP_MAC_init(keyed.ctx.get(), reinterpret_cast<const unsigned char *>(key.data()),
                         key.size(), params) != 1) {
            keyed.ctx.reset();
            throw std::runtime_error("HMAC-SHA256 failed");
        }
        keyed.key.assign(key.data(), key.size());
    }
    std::unique_ptr<EVP_MAC_CTX, MacFree> ctx(EVP_MAC_CTX_dup(keyed.ctx.get()));
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (!ctx ||
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char *>(message.data()),
                       message.size()) != 1 ||
        EVP_MAC_final(ctx.get(), md, &len, sizeof(md)) != 1) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return std::string(reinterpret_cast<char *>(md), len);
}

bool equal_secrets(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {
struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX *c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
constexpr size_t kNonce = 12;
constexpr size_t kTag = 16;
}  // namespace

std::string seal(std::string_view key, std::string_view plaintext) {
    if (key.size() != 32) throw std::runtime_error("seal: the key must be 32 bytes");
    std::string nonce = random_bytes(kNonce);
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    std::string out = nonce;
    out.resize(kNonce + plaintext.size() + kTag);
    int len = 0, total = 0;
    auto *dst = reinterpret_cast<unsigned char *>(&out[kNonce]);
    if (!ctx ||
        EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                           reinterpret_cast<const unsigned char *>(key.data()),
                           reinterpret_cast<const unsigned char *>(nonce.data())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), dst, &len,
                          reinterpret_cast<const unsigned char *>(plaintext.data()),
                          static_cast<int>(plaintext.size())) != 1) {
        throw std::runtime_error("AES-256-GCM encryption failed");
    }
    total = len;
    if (EVP_EncryptFinal_ex(ctx.get(), dst + total, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, dst + total + len) != 1) {
        throw std::runtime_error("AES-256-GCM encryption failed");
    }
    return out;
}

bool unseal(std::string_view key, std::string_view box, std::string *plaintext) {
    if (key.size() != 32 || box.size() < kNonce + kTag) return false;
    size_t n = box.size() - kNonce - kTag;
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    std::string out(n, '\0');
    int len = 0;
    auto *src = reinterpret_cast<const unsigned char *>(box.data());
    std::string tag(box.substr(kNonce + n));
    if (!ctx ||
        EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                           reinterpret_cast<const unsigned char *>(key.data()), src) != 1 ||
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char *>(&out[0]), &len, src + kNonce,
                          static_cast<int>(n)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, &tag[0]) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char *>(&out[0]) + len, &len) !=
            1) {
        wipe(out);
        return false;
    }
    *plaintext = std::move(out);
    return true;
}

void wipe(std::string &s) noexcept {
    if (!s.empty()) OPENSSL_cleanse(&s[0], s.size());
    s.clear();
}

}  // namespace certgate
