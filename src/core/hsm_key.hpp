// Internal to the CA core: a CA key that lives in an HSM and is reached
// through an OpenSSL engine loaded in-process (issue 9).
#pragma once

#include <string>

#include "core/ca.hpp"

namespace certgate {

// True for "engine:<engine id>:<key id>" (e.g. "engine:pkcs11:pkcs11:token=..."),
// the certgate_ca_key spelling of a key that is not a PEM file.
bool is_engine_key_spec(const std::string& key_spec);

// Loads the private key handle through the engine, logging in with the PIN
// from options.pin_file; the key itself never leaves the HSM.
PKey load_engine_key(const std::string& key_spec, const CaKeyOptions& options);

}  // namespace certgate
