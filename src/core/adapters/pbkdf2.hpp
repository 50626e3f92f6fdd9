// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) on SHA-256's compression function:
// the .p12's bag key (issue 18). The same bytes as OpenSSL's
// PKCS5_PBKDF2_HMAC(..., EVP_sha256(), ...) at about half the CPU, because
// each iteration costs its two compressions and nothing else: the HMAC's
// inner and outer pad blocks are compressed once per derivation, and an
// iteration's 32-byte message is one ready-padded block (OpenSSL copies an
// HMAC context and runs a whole Init/Update/Final per iteration).
// t/unit/test_pbkdf2.cpp holds it to OpenSSL's output and RFC 7914's vectors.
#pragma once

#include <cstddef>
#include <string_view>

namespace certgate {

// Derives out_len bytes from password and salt with `iterations` (>= 1)
// rounds into out. Throws std::invalid_argument for iterations < 1 or an
// out_len over 2^32 - 1 blocks. Wipes its intermediate state.
void pbkdf2_hmac_sha256(std::string_view password, std::string_view salt, int iterations,
                        unsigned char* out, size_t out_len);

}  // namespace certgate
