// The small cryptographic pieces the flows stand on: random bytes, HMAC,
// constant-time comparison and AES-256-GCM for the login
// password kept between screens ④ and ⑥.
#pragma once

#include <string>
#include <string_view>

namespace certgate {

// n bytes from OpenSSL's CSPRNG; throws std::runtime_error if it fails.
std::string random_bytes(size_t n);

// n random decimal digits, uniformly (rejection sampling), for auth codes.
std::string random_digits(size_t n);

// HMAC-SHA256(key, message), 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view message);

// Compares in time independent of where the inputs differ.
bool equal_secrets(std::string_view a, std::string_view b);

// AES-256-GCM with a random 12-byte nonce: nonce | ciphertext | tag.
// key is 32 raw bytes.
std::string seal(std::string_view key, std::string_view plaintext);
// False when the box was not sealed with this key or was changed.
bool unseal(std::string_view key, std::string_view box, std::string *plaintext);

// Overwrites a string that held a secret before it is freed.
void wipe(std::string &s) noexcept;

}  // namespace certgate
