// certgatectl init, migrate, status: the store itself, the demo CA and a CA
// whose key is made inside an HSM.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "core/adapters/ca.hpp"
#include "core/adapters/ca_openssl.hpp"
#include "core/base/encoding.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

// The new CA's key type, common name and lifetime, from the command line or nginx.conf.
struct CaProfile {
    KeyType type;
    std::string cn;
    int days = 3650;
};

CaProfile ca_profile(Context& ctx, const std::string& default_cn) {
    std::string type_spec = ctx.option_or("--key-type", ctx.settings().key_type);
    if (type_spec.empty()) type_spec = "rsa:2048";
    auto type = parse_key_type(type_spec);
    if (!type)
        throw UsageError("unknown key type '" + type_spec + "' (rsa:2048, rsa:3072, ec:P-256)");
    CaProfile p;
    p.type = *type;
    p.cn = ctx.args.value("--ca-cn", default_cn);
    p.days = static_cast<int>(parse_number(ctx.args.value("--ca-days", "3650"), "--ca-days"));
    if (p.days < 1) throw UsageError("--ca-days must be at least 1");
    return p;
}

// Creates the demo CA unless both files exist already (a rerun of init keeps them).
std::string make_demo_ca(Context& ctx) {
    const std::string cert = ctx.option_or("--ca-cert", ctx.settings().ca_certificate);
    const std::string key = ctx.option_or("--ca-key", ctx.settings().ca_key);
    if (cert.empty() || key.empty())
        throw UsageError(
            "--demo-ca needs the CA paths: certgate_ca_certificate and "
            "certgate_ca_key in nginx.conf, or --ca-cert and --ca-key");
    if (key.rfind("engine:", 0) == 0)
        throw UsageError("--demo-ca writes a PEM key file; certgate_ca_key is an HSM key (" + key +
                         ")");
    const bool have_cert = access(cert.c_str(), F_OK) == 0;
    const bool have_key = access(key.c_str(), F_OK) == 0;
    if (have_cert && have_key) return "kept the existing CA " + cert;
    if (have_cert != have_key)
        throw ConfigError("only one of " + cert + " and " + key +
                          " exists; remove it or give both files");
    const CaProfile profile = ca_profile(ctx, "certgate demo CA");
    const std::string passfile = ctx.settings().ca_key_passphrase_file;
    std::string passphrase;
    if (!passfile.empty())
        throw UsageError(
            "--demo-ca makes an unencrypted key; remove "
            "certgate_ca_key_passphrase_file or create the CA yourself");
    create_ca(cert, key, profile.cn, profile.type, profile.days, passphrase);
    return "created demo CA " + cert + " (key " + key + ", " + profile.type.name() + ")";
}

// The attributes of a PKCS#11 URI (RFC 7512) that name one key in a token.
struct TokenKey {
    std::string token;   // token=
    std::string object;  // object= (CKA_LABEL)
    std::string id_hex;  // id= (CKA_ID), as pkcs11-tool's --id wants it
};

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(const std::string& s, const std::string& uri) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
        int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) throw UsageError("bad percent-encoding in " + uri);
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

// "engine:pkcs11:pkcs11:token=certgate;object=ca;type=private" -> its token and key.
TokenKey parse_token_key(const std::string& key_spec) {
    static const std::string prefix = "engine:pkcs11:pkcs11:";
    if (key_spec.rfind(prefix, 0) != 0)
        throw UsageError("--hsm needs certgate_ca_key (or --ca-key) of the form " + prefix +
                         "token=...;object=...;type=private, not \"" + key_spec + "\"");
    std::string path = key_spec.substr(prefix.size());
    path = path.substr(0, path.find('?'));  // query attributes (pin-value, ...) are not ours
    TokenKey k;
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find(';', start);
        if (end == std::string::npos) end = path.size();
        std::string attr = path.substr(start, end - start);
        size_t eq = attr.find('=');
        std::string name = attr.substr(0, eq);
        std::string value =
            eq == std::string::npos ? "" : percent_decode(attr.substr(eq + 1), key_spec);
        if (name == "token") k.token = value;
        if (name == "object") k.object = value;
        if (name == "id") k.id_hex += hex_encode(value);
        if (name == "type" && value != "private")
            throw UsageError("--hsm makes a private key: the URI needs type=private, not " +
                             key_spec);
        start = end + 1;
    }
    if (k.token.empty() || (k.object.empty() && k.id_hex.empty()))
        throw UsageError("--hsm needs token= and object= (or id=) in " + key_spec);
    return k;
}

// Runs OpenSC's pkcs11-tool on the token with `args`, logged in with the PIN.
// The PIN reaches it through its environment (--pin env:...), never argv,
// so `ps` does not show it. Returns the exit code; `output` gets what it said.
int run_pkcs11_tool(const std::string& module, const std::string& pin, const TokenKey& key,
                    std::vector<std::string> args, std::string& output) {
    std::vector<std::string> argv = {"pkcs11-tool", "--module", module,  "--token-label",
                                     key.token,     "--login",  "--pin", "env:CERTGATE_PKCS11_PIN"};
    argv.insert(argv.end(), args.begin(), args.end());
    int fds[2];
    if (pipe(fds) != 0) throw ConfigError("cannot run pkcs11-tool: pipe failed");
    pid_t pid = fork();
    if (pid < 0) throw ConfigError("cannot run pkcs11-tool: fork failed");
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        setenv("CERTGATE_PKCS11_PIN", pin.c_str(), 1);
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        execvp(cargv[0], cargv.data());
        std::fprintf(stderr, "cannot run pkcs11-tool (is opensc installed?)\n");
        _exit(127);
    }
    close(fds[1]);
    char buf[4096];
    ssize_t n;
    output.clear();
    while ((n = read(fds[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Whether pkcs11-tool's object listing shows a private key with this label/id
// (its --list-objects ignores --label, so the listing is read here).
bool token_has_private_key(const std::string& listing, const TokenKey& key) {
    // Each object is a line "Private Key Object; EC" and indented "  label: ca" lines.
    bool in_key = false, found = false;
    std::string label, id;
    auto matches = [&] {
        return in_key && (key.object.empty() || label == key.object) &&
               (key.id_hex.empty() || id == key.id_hex);
    };
    size_t start = 0;
    while (start < listing.size() && !found) {
        size_t end = listing.find('\n', start);
        if (end == std::string::npos) end = listing.size();
        std::string line = listing.substr(start, end - start);
        start = end + 1;
        if (!line.empty() && line[0] != ' ') {
            found = matches();
            in_key = line.rfind("Private Key Object", 0) == 0;
            label.clear();
            id.clear();
            continue;
        }
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(line.find_first_not_of(' '), colon);
        name = name.substr(0, name.find(':'));
        size_t v = line.find_first_not_of(' ', colon + 1);
        std::string value = v == std::string::npos ? "" : line.substr(v);
        if (name == "label") label = value;
        if (name == "ID") id = value;
    }
    return found || matches();
}

// pkcs11-tool's output as one line for an error message.
std::string one_line(std::string text) {
    while (!text.empty() && isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    for (char& c : text)
        if (c == '\n') c = ' ';
    return text;
}

// init --hsm: makes the CA key inside the token (unless the token holds it
// already) and writes the self-signed CA certificate for it. The key is
// generated by the token itself, sensitive and never extractable.
std::string make_hsm_ca(Context& ctx) {
    const std::string cert = ctx.option_or("--ca-cert", ctx.settings().ca_certificate);
    const std::string key_spec = ctx.option_or("--ca-key", ctx.settings().ca_key);
    if (cert.empty() || key_spec.empty())
        throw UsageError(
            "--hsm needs certgate_ca_certificate and certgate_ca_key in nginx.conf, "
            "or --ca-cert and --ca-key engine:pkcs11:<pkcs11 URI>");
    const TokenKey key = parse_token_key(key_spec);
    CaKeyOptions options;
    options.pin_file = ctx.option_or("--pin-file", ctx.settings().ca_key_pin_file);
    options.pkcs11_module = ctx.option_or("--pkcs11-module", ctx.settings().pkcs11_module);
    if (options.pin_file.empty())
        throw UsageError("--hsm needs the token's PIN: certgate_ca_key_pin_file or --pin-file");
    const std::string module =
        options.pkcs11_module.empty() ? "p11-kit-proxy.so" : options.pkcs11_module;
    if (access(cert.c_str(), F_OK) == 0) {
        CaSigner::load(cert, key_spec, options);  // says why if they do not belong together
        return "kept the existing CA " + cert;
    }

    const CaProfile profile = ca_profile(ctx, "certgate CA");

    std::string pin = ca_detail::read_secret_file(options.pin_file, "CA key PIN file");
    std::string out;
    int rc = run_pkcs11_tool(module, pin, key, {"--list-objects", "--type", "privkey"}, out);
    std::string note;
    if (rc != 0) {
        OPENSSL_cleanse(pin.data(), pin.size());
        throw ConfigError("cannot list the keys of token \"" + key.token + "\" with " + module +
                          ": " + one_line(out) +
                          (out.find("PIN_INCORRECT") != std::string::npos
                               ? " (wrong PIN in " + options.pin_file + "?)"
                               : ""));
    }
    if (token_has_private_key(out, key)) {
        note = "used the key already in token \"" + key.token + "\"";
    } else {
        std::vector<std::string> gen = {"--keypairgen", "--key-type",
                                        profile.type.alg == KeyAlgorithm::rsa
                                            ? "rsa:" + std::to_string(profile.type.bits)
                                            : "EC:prime256v1",
                                        "--usage-sign", "--sensitive"};
        if (!key.object.empty()) gen.insert(gen.end(), {"--label", key.object});
        if (!key.id_hex.empty()) gen.insert(gen.end(), {"--id", key.id_hex});
        rc = run_pkcs11_tool(module, pin, key, gen, out);
        if (rc != 0) {
            OPENSSL_cleanse(pin.data(), pin.size());
            throw ConfigError("cannot generate the CA key in token \"" + key.token +
                              "\": " + one_line(out));
        }
        note = "generated a " + profile.type.name() + " key in token \"" + key.token + "\"";
    }
    OPENSSL_cleanse(pin.data(), pin.size());
    create_ca_certificate(cert, key_spec, options, profile.cn, profile.days);
    return "created CA " + cert + " (" + note + ", key " + key_spec + ")";
}

}  // namespace

int cmd_init(Context& ctx) {
    const bool demo = ctx.args.flag("--demo-ca");
    const bool hsm = ctx.args.flag("--hsm");
    if (demo && hsm) throw UsageError("give --demo-ca or --hsm, not both");
    if (!demo && !hsm && (ctx.args.flag("--ca-cn") || ctx.args.flag("--ca-days")))
        throw UsageError("--ca-cn and --ca-days only go with --demo-ca or --hsm");
    if (!hsm && (ctx.args.flag("--pin-file") || ctx.args.flag("--pkcs11-module")))
        throw UsageError("--pin-file and --pkcs11-module only go with --hsm");
    const std::string uri = ctx.store_uri();
    auto store = ctx.open_store_raw(true);
    const int before = store->schema_version();
    store->migrate();
    std::string ca_note;
    if (demo) ca_note = make_demo_ca(ctx);
    if (hsm) ca_note = make_hsm_ca(ctx);
    std::string what = before == 0                      ? "created"
                       : before < Store::kSchemaVersion ? "migrated"
                                                        : "already initialised";
    if (ctx.json) {
        Json o{{"store", uri}, {"schema_version", Store::kSchemaVersion}, {"result", what}};
        if (demo || hsm) o["ca"] = ca_note;
        print_json(o);
    } else {
        std::cout << store->describe() << ": " << what << " (schema version "
                  << Store::kSchemaVersion << ")\n";
        if (demo || hsm) std::cout << ca_note << "\n";
    }
    return kOk;
}

int cmd_migrate(Context& ctx) {
    auto store = ctx.open_store_raw(false);
    const int before = store->schema_version();
    store->migrate();
    if (ctx.json) {
        print_json(Json{{"from", before}, {"to", Store::kSchemaVersion}});
    } else if (before == Store::kSchemaVersion) {
        std::cout << store->describe() << " is already at schema version " << before << "\n";
    } else {
        std::cout << store->describe() << ": schema version " << before << " -> "
                  << Store::kSchemaVersion << "\n";
    }
    return kOk;
}

int cmd_status(Context& ctx) {
    Store& store = ctx.store();
    store.ping();
    const size_t orgs = store.list_orgs().size();
    const size_t users = store.list_users().size();
    const size_t certs = store.list_certificates().size();
    const int64_t last = store.last_event_id();
    const size_t queued = store.list_mails(MailState::queued).size();
    if (ctx.json) {
        print_json(Json{{"store", ctx.store_uri()},
                        {"schema_version", store.schema_version()},
                        {"organisations", static_cast<int64_t>(orgs)},
                        {"users", static_cast<int64_t>(users)},
                        {"certificates", static_cast<int64_t>(certs)},
                        {"last_event", last},
                        {"mails_queued", static_cast<int64_t>(queued)}});
        return kOk;
    }
    std::cout << store.describe() << "\n"
              << "  schema version  " << store.schema_version() << "\n"
              << "  organisations   " << orgs << "\n"
              << "  users           " << users << "\n"
              << "  certificates    " << certs << "\n"
              << "  last event      " << last << "\n"
              << "  mails queued    " << queued << "\n";
    return kOk;
}

}  // namespace certgate::ctl
