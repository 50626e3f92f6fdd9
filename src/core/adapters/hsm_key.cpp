// The CA key in an HSM, through an OpenSSL engine (Debian 12's OpenSSL 3.0
// has no PKCS#11 provider; libengine-pkcs11-openssl, i.e. libp11, is the
// packaged way in). The ENGINE API is deprecated in 3.0 but not removed;
// this is the only file that uses it, so the deprecation is silenced here.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "core/adapters/hsm_key.hpp"

#include <openssl/engine.h>
#include <openssl/err.h>

#include <map>
#include <mutex>

#include "core/adapters/ca_openssl.hpp"

namespace certgate {

using namespace ca_detail;

namespace {

constexpr const char engine_prefix[] = "engine:";

// p11-kit's proxy reaches every module p11-kit knows (SoftHSM included).
constexpr const char default_pkcs11_module[] = "p11-kit-proxy.so";

// Engines are initialised once per process (in nginx: once per worker,
// since PKCS#11 sessions do not survive fork) and kept for its lifetime;
// the key handles hold their own references as well.
std::mutex engines_mutex;
std::map<std::string, ENGINE*> engines;

void unregister_defaults(ENGINE* e) {
    ENGINE_unregister_RSA(e);
    ENGINE_unregister_DSA(e);
    ENGINE_unregister_EC(e);
    ENGINE_unregister_DH(e);
    ENGINE_unregister_RAND(e);
    ENGINE_unregister_ciphers(e);
    ENGINE_unregister_digests(e);
    ENGINE_unregister_pkey_meths(e);
    ENGINE_unregister_pkey_asn1_meths(e);
}

ENGINE* engine_for(const std::string& id, const std::string& module) {
    std::lock_guard<std::mutex> lock(engines_mutex);
    std::string cache_key = id + "\n" + module;
    auto found = engines.find(cache_key);
    if (found != engines.end()) return found->second;

    ENGINE* e = ENGINE_by_id(id.c_str());
    if (!e)
        fail("cannot load OpenSSL engine \"" + id + "\" (is libengine-pkcs11-openssl installed?)");
    if (id == "pkcs11" && !ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module.c_str(), 0)) {
        ENGINE_free(e);
        fail("cannot set PKCS#11 module " + module + " on engine pkcs11");
    }
    if (!ENGINE_init(e)) {
        ENGINE_free(e);
        fail("cannot initialise OpenSSL engine \"" + id + "\"" +
             (id == "pkcs11" ? " with PKCS#11 module " + module : std::string()));
    }
    engines.emplace(cache_key, e);
    unregister_defaults(e);
    return e;
}

}  // namespace

void keep_engines_out_of_defaults() {
    std::lock_guard<std::mutex> lock(engines_mutex);
    for (auto& entry : engines) unregister_defaults(entry.second);
}

bool is_engine_key_spec(const std::string& key_spec) {
    return key_spec.compare(0, sizeof engine_prefix - 1, engine_prefix) == 0;
}

PKey load_engine_key(const std::string& key_spec, const CaKeyOptions& options) {
    std::string rest = key_spec.substr(sizeof engine_prefix - 1);
    size_t colon = rest.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
        throw CaError("CA key \"" + key_spec +
                      "\" is not of the form engine:<engine>:<key id>, e.g. "
                      "engine:pkcs11:pkcs11:token=certgate;object=ca;type=private");
    std::string id = rest.substr(0, colon);
    std::string key_id = rest.substr(colon + 1);
    std::string module =
        options.pkcs11_module.empty() ? default_pkcs11_module : options.pkcs11_module;

    ENGINE* e = engine_for(id, module);
    std::string pin;
    if (!options.pin_file.empty()) pin = read_secret_file(options.pin_file, "CA key PIN file");

    // The engine keeps the PIN it is given; set it and load the key under the
    // lock so two loads with different PIN files cannot interleave. libp11
    // keeps a token login for the process, so the PIN is really checked by
    // the first load in a process: `nginx -t`, start-up, each new worker.
    static std::mutex load_mutex;
    std::lock_guard<std::mutex> lock(load_mutex);
    if (!pin.empty() && !ENGINE_ctrl_cmd_string(e, "PIN", pin.c_str(), 0)) {
        OPENSSL_cleanse(pin.data(), pin.size());
        fail("cannot give the PIN to engine " + id);
    }
    OPENSSL_cleanse(pin.data(), pin.size());
    PKey key(ENGINE_load_private_key(e, key_id.c_str(), nullptr, nullptr));
    if (!key) {
        std::string why = openssl_errors();
        throw CaError("cannot load CA key " + key_id + " through engine " + id + ": " +
                      (why.empty() ? "no such key" : why) +
                      (options.pin_file.empty()
                           ? " (no certgate_ca_key_pin_file given)"
                           : " (wrong PIN in " + options.pin_file + ", or no such object?)"));
    }
    return key;
}

}  // namespace certgate
