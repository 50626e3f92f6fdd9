// Internal to the CA core: a CA key that lives in an HSM and is reached
// through an OpenSSL engine loaded in-process (issue 9).
#pragma once

#include <string>

#include "core/adapters/ca.hpp"

namespace certgate {

// True for "engine:<engine id>:<key id>" (e.g. "engine:pkcs11:pkcs11:token=..."),
// the certgate_ca_key spelling of a key that is not a PEM file.
bool is_engine_key_spec(const std::string& key_spec);

// Loads the private key handle through the engine, logging in with the PIN
// from options.pin_file; the key itself never leaves the HSM.
PKey load_engine_key(const std::string& key_spec, const CaKeyOptions& options);

// Takes every engine this process loaded out of OpenSSL's default tables
// (RSA, EC, pkey methods, ...), so that key generation and anything else not
// done with the CA key never goes to the HSM. OpenSSL registers every engine
// it knows as a default when someone asks for OPENSSL_INIT_ENGINE_ALL_BUILTIN
// (libcurl's curl_global_init does, for the mailer): from then on, libp11
// would make EC keys ("unknown group"). The CA key keeps its
// engine methods, bound to the key itself. Cheap; safe from any thread.
void keep_engines_out_of_defaults();

}  // namespace certgate
