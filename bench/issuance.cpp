// bench/issuance: one client certificate + PKCS#12, made in-process by
// certgate's CA core (CaSigner::issue) against the same work done with the
// openssl command line (genpkey + req + x509 -req + pkcs12 -export), for each
// key type. Runs are interleaved, and their order alternates, so machine
// noise hits both sides alike. With --hsm, the same issuance signed by a CA
// key inside a SoftHSM2 token (issue 9) next to the PEM CA key.
//
// Output is Markdown tables (readable on a terminal too) plus one
// `RESULT name=value ...` line per figure for bench/run to pick up.
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/adapters/key_pool.hpp"

extern char** environ;

namespace {

using certgate::CaKeyOptions;
using certgate::CaSigner;
using certgate::IssueRequest;
using certgate::KeyType;
using certgate::P12Encryption;
using Clock = std::chrono::steady_clock;

constexpr const char p12_password[] = "Bench#Pass1";
constexpr const char user_id[] = "bench01";
constexpr const char org_name[] = "Bench Org";
constexpr const char mail[] = "bench01@example.test";

constexpr const char softhsm_module[] = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char pkcs11_engine[] = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";
constexpr const char hsm_token[] = "certgate-bench";

struct Options {
    int n = 30;          // issuances per side and key type
    int n_rsa3072 = 15;  // fewer: each takes a few hundred ms per side
    // More: the rows' medians hold the random prime search of N keys on
    // each side (p10-p90 of one key 95-240 ms), and 30 moved the worst
    // case's ratio by +-0.08 from run to run.
    int n_rsa2048 = 60;
    std::vector<std::string> types{"ec:P-256", "rsa:2048", "rsa:3072"};
    std::string ca_cert, ca_key;  // default: a fresh rsa:2048 CA in the temp dir
    bool cli = true;
    bool hsm = false;
    int hsm_n = 30;
};

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "bench/issuance: %s\n"
                 "usage: issuance [-n N] [--n-rsa2048 N] [--n-rsa3072 N] [--types "
                 "ec:P-256,rsa:2048,rsa:3072]\n"
                 "                [--ca-cert F --ca-key F] [--no-cli] [--hsm] [--hsm-n N]\n",
                 msg);
    std::exit(2);
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        auto number = [&]() {
            std::string v = value();
            char* end = nullptr;
            long n = std::strtol(v.c_str(), &end, 10);
            if (*end || n < 1 || n > 10000) usage(("bad number for " + a).c_str());
            return static_cast<int>(n);
        };
        if (a == "-n") {
            o.n = number();
        } else if (a == "--n-rsa3072") {
            o.n_rsa3072 = number();
        } else if (a == "--n-rsa2048") {
            o.n_rsa2048 = number();
        } else if (a == "--types") {
            o.types.clear();
            std::stringstream ss(value());
            for (std::string t; std::getline(ss, t, ',');) {
                if (!certgate::parse_key_type(t)) usage(("unknown key type " + t).c_str());
                o.types.push_back(t);
            }
        } else if (a == "--ca-cert") {
            o.ca_cert = value();
        } else if (a == "--ca-key") {
            o.ca_key = value();
        } else if (a == "--no-cli") {
            o.cli = false;
        } else if (a == "--hsm") {
            o.hsm = true;
        } else if (a == "--hsm-n") {
            o.hsm_n = number();
        } else {
            usage(("unknown argument " + a).c_str());
        }
    }
    if (o.ca_cert.empty() != o.ca_key.empty()) usage("--ca-cert and --ca-key go together");
    return o;
}

// ---- timing ---------------------------------------------------------------------

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Stats {
    double median = 0, p90 = 0, min = 0;
};

// Nearest-rank percentiles: with 15-30 samples, interpolation adds nothing.
Stats stats(std::vector<double> v) {
    Stats s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    auto rank = [&](double p) {
        size_t k = static_cast<size_t>(p * static_cast<double>(v.size()) + 0.999999);
        return v[std::min(v.size(), std::max<size_t>(k, 1)) - 1];
    };
    s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    s.p90 = rank(0.90);
    s.min = v.front();
    return s;
}

std::string fmt(const char* f, double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, x);
    return buf;
}

// ---- files and processes ------------------------------------------------------------

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/certgate-bench-issuance-XXXXXX";
        if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out << data;
    if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Runs argv with stdout and stderr to `log`; throws with the log on failure.
void run(const std::vector<std::string>& args, const std::string& log) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error(args[0] + ": " + std::strerror(rc));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) throw std::runtime_error("waitpid failed");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::string cmd;
        for (const auto& a : args) cmd += a + " ";
        throw std::runtime_error("command failed: " + cmd + "\n" + read_file(log));
    }
}

std::string random_serial_hex() {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
    b[0] = (b[0] & 0x7f) | 0x40;  // positive, 127 bits, like the core's serials
    static const char digits[] = "0123456789ABCDEF";
    std::string hex = "0x";
    for (unsigned char c : b) {
        hex += digits[c >> 4];
        hex += digits[c & 15];
    }
    return hex;
}

// ---- the two sides --------------------------------------------------------------------

IssueRequest request_for(const KeyType& type) {
    IssueRequest r;
    r.user_id = user_id;
    r.org_name = org_name;
    r.mail = mail;
    r.key_type = type;
    r.now = std::time(nullptr);
    return r;
}

// One issuance in-process; returns milliseconds. `ahead`: the PKCS#12 keys
// derived first, untimed, as the crypto pool does after ④ (P12Keys), so
// what is timed is ⑥'s work.
double issue_in_process(const CaSigner& ca, const KeyType& type, bool ahead = false) {
    IssueRequest req = request_for(type);
    std::optional<certgate::P12Keys> keys;
    if (ahead) keys = ca.derive_p12_keys(p12_password, P12Encryption::aes256, req.p12_iterations);
    auto t0 = Clock::now();
    certgate::IssuedCertificate c =
        ca.issue(req, p12_password, P12Encryption::aes256, keys ? &*keys : nullptr);
    double ms = ms_since(t0);
    if (c.pkcs12.empty()) throw std::runtime_error("issue() returned no PKCS#12");
    return ms;
}

// The command line's equivalent: the same key type, subject, extensions,
// validity, serial size and PKCS#12 protection (OpenSSL 3's pkcs12 -export
// defaults are AES-256-CBC + PBKDF2 + SHA-256 MAC, as the core's; -iter gives
// both the core's iteration count). Returns milliseconds for the four processes.
double issue_with_cli(const TempDir& dir, const std::string& ca_cert, const std::string& ca_key,
                      const KeyType& type) {
    const std::string key = dir / "cli.key", csr = dir / "cli.csr", crt = dir / "cli.crt",
                      p12 = dir / "cli.p12", ext = dir / "cli.ext", log = dir / "cli.log";
    std::vector<std::string> genpkey{"openssl", "genpkey", "-out", key};
    if (type.alg == certgate::KeyAlgorithm::ec) {
        genpkey.insert(genpkey.end(), {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"});
    } else {
        genpkey.insert(genpkey.end(), {"-algorithm", "RSA", "-pkeyopt",
                                       "rsa_keygen_bits:" + std::to_string(type.bits)});
    }
    std::remove(key.c_str());
    std::remove(p12.c_str());
    auto t0 = Clock::now();
    run(genpkey, log);
    run({"openssl", "req", "-new", "-key", key, "-subj",
         std::string("/O=") + org_name + "/CN=" + user_id, "-out", csr},
        log);
    run({"openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial",
         random_serial_hex(), "-days", "366", "-sha256", "-extfile", ext, "-out", crt},
        log);
    // The same PBKDF2 and MAC iteration count as the in-process side
    // (certgate_p12_iterations' default), so both do the same work.
    run({"openssl", "pkcs12", "-export", "-inkey", key, "-in", crt, "-certfile", ca_cert, "-name",
         user_id, "-iter", std::to_string(certgate::kDefaultP12Iterations), "-passout",
         std::string("pass:") + p12_password, "-out", p12},
        log);
    double ms = ms_since(t0);
    struct stat st;
    if (stat(p12.c_str(), &st) != 0 || st.st_size == 0)
        throw std::runtime_error("openssl pkcs12 wrote no file");
    return ms;
}

void write_cli_extensions(const TempDir& dir, const KeyType& type) {
    write_file(dir / "cli.ext", std::string("basicConstraints=critical,CA:FALSE\n") +
                                    (type.alg == certgate::KeyAlgorithm::rsa
                                         ? "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                         : "keyUsage=critical,digitalSignature\n") +
                                    "extendedKeyUsage=clientAuth\n"
                                    "subjectKeyIdentifier=hash\n"
                                    "authorityKeyIdentifier=keyid:always\n"
                                    "subjectAltName=email:" +
                                    mail + "\n");
}

// Key generation alone, in-process: where RSA issuance spends its time.
double keygen_only(const KeyType& type) {
    auto t0 = Clock::now();
    certgate::PKey k = certgate::generate_key(type);
    return ms_since(t0);
}

// ---- the comparison against the command line -------------------------------------------------

struct Target {
    const char* type;
    double max_ratio;
};
// Issue 18: EC and a warm pool's RSA-2048 at most 0.1× the command line, an
// empty pool's RSA-2048 (the key made inline) at most 0.8×. The 0.1× rows are
// ⑥ as a clerk meets it: the .p12 keys derived after ④ (P12Keys); the 0.8×
// rows are an empty pool with the keys derived ahead (the default), and the
// worst case, key and the three derivations all at ⑥.
constexpr Target targets[] = {{"ec:P-256, keys derived ahead", 0.1},
                              {"rsa:2048", 0.8},
                              {"rsa:2048, keys derived ahead", 0.8},
                              {"rsa:2048, warm key pool, keys derived ahead", 0.1}};

// The PKCS#12's key derivations alone, each side's: the command line's
// `pkcs12 -export` runs OpenSSL's PBKDF2-HMAC-SHA256 once per bag (key and
// certificates) and the PKCS#12 KDF for the MAC; certgate derives one bag
// key for both bags (pbkdf2.hpp: the same bytes at about half the CPU) and
// the MAC key with the same KDF (CaSigner::derive_p12_keys). The floor of
// an issuance whose key is ready and whose keys are derived at ⑥.
double kdf_cli() {
    unsigned char out[32];
    const unsigned char salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    auto t0 = Clock::now();
    for (int i = 0; i < 2; ++i) {
        if (!PKCS5_PBKDF2_HMAC(p12_password, static_cast<int>(std::strlen(p12_password)), salt,
                               sizeof salt, certgate::kDefaultP12Iterations, EVP_sha256(),
                               sizeof out, out))
            throw std::runtime_error("PBKDF2 failed");
    }
    if (!PKCS12_key_gen_utf8(p12_password, -1, const_cast<unsigned char*>(salt), sizeof salt,
                             PKCS12_MAC_ID, certgate::kDefaultP12Iterations, sizeof out, out,
                             EVP_sha256()))
        throw std::runtime_error("PKCS#12 KDF failed");
    return ms_since(t0);
}

double kdf_in_process(const CaSigner& ca) {
    auto t0 = Clock::now();
    auto keys =
        ca.derive_p12_keys(p12_password, P12Encryption::aes256, certgate::kDefaultP12Iterations);
    double ms = ms_since(t0);
    if (!keys) throw std::runtime_error("derive_p12_keys returned nothing");
    return ms;
}

const Target* target_for(const std::string& type) {
    for (const auto& t : targets)
        if (type == t.type) return &t;
    return nullptr;
}

void compare_with_cli(const Options& o, const TempDir& dir, const CaSigner& ca,
                      const std::string& ca_cert, const std::string& ca_key) {
    std::printf(
        "### Issuance: in-process vs openssl command line\n\n"
        "One issuance = key pair + X.509 certificate signed by the CA (%s) + PKCS#12 "
        "(AES-256, PBKDF2).\n"
        "Times in milliseconds; the two sides interleaved, order alternating.\n\n",
        "PEM key");
    std::printf(
        "| key type | N | in-process median | p90 | key generation alone, median (share) | "
        "openssl CLI median | p90 | ratio in-process/CLI | target | |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    std::fflush(stdout);
    // One row: N issuances of `type` on each side, interleaved. `warm`: the
    // key comes from a key pool filled before (certgate_key_pool), whose
    // refill makes one more key at SCHED_IDLE after each take.
    // `ahead`: the .p12 keys derived before each timed issuance (untimed).
    auto row = [&](const std::string& spec, const KeyType& type, int n, bool warm, bool ahead) {
        write_cli_extensions(dir, type);
        std::unique_ptr<certgate::KeyPool> pool;
        if (warm) {
            pool = std::make_unique<certgate::KeyPool>(type, n + 2, std::chrono::milliseconds(0));
            pool->start();
            while (pool->stats().ready < static_cast<size_t>(n + 2))
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            certgate::set_key_pool(pool.get());
        }
        // Warm-up, not counted: providers, the tz file, the page cache.
        issue_in_process(ca, type, ahead);
        if (o.cli) issue_with_cli(dir, ca_cert, ca_key, type);
        std::vector<double> in, cli, keygen;
        for (int i = 0; i < n; ++i) {
            if (i % 2 == 0) {
                in.push_back(issue_in_process(ca, type, ahead));
                if (o.cli) cli.push_back(issue_with_cli(dir, ca_cert, ca_key, type));
            } else {
                if (o.cli) cli.push_back(issue_with_cli(dir, ca_cert, ca_key, type));
                in.push_back(issue_in_process(ca, type, ahead));
            }
            if (!warm) keygen.push_back(keygen_only(type));
        }
        if (warm) {
            certgate::KeyPoolStats st = pool->stats();
            certgate::set_key_pool(nullptr);
            pool->stop();
            if (st.missed != 0) throw std::runtime_error("the warm key pool ran empty");
        }
        Stats si = stats(in), sc = stats(cli), sk = stats(keygen);
        double ratio = o.cli && sc.median > 0 ? si.median / sc.median : 0;
        const Target* t = target_for(spec);
        std::string target = t ? fmt("≤ %.1f×", t->max_ratio) : "—";
        std::string verdict = !t || !o.cli ? "" : (ratio <= t->max_ratio ? "met" : "**missed**");
        std::string kg = warm ? std::string("0 (the pool's)")
                              : fmt("%.1f", sk.median) + " (" +
                                    fmt("%.0f", si.median > 0 ? 100 * sk.median / si.median : 0) +
                                    "%)";
        std::printf("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", spec.c_str(), n,
                    fmt("%.1f", si.median).c_str(), fmt("%.1f", si.p90).c_str(), kg.c_str(),
                    o.cli ? fmt("%.1f", sc.median).c_str() : "—",
                    o.cli ? fmt("%.1f", sc.p90).c_str() : "—",
                    o.cli ? fmt("%.2f×", ratio).c_str() : "—", target.c_str(), verdict.c_str());
        std::fprintf(
            stderr,
            "RESULT issuance type=%s n=%d in_median_ms=%.2f in_p90_ms=%.2f "
            "keygen_median_ms=%.2f cli_median_ms=%.2f cli_p90_ms=%.2f ratio=%.3f "
            "target=%s verdict=%s\n",
            (spec.substr(0, spec.find(',')) + (warm ? "+pool" : "") + (ahead ? "+ahead" : ""))
                .c_str(),
            n, si.median, si.p90, sk.median, sc.median, sc.p90, ratio,
            t ? fmt("%.1f", t->max_ratio).c_str() : "none",
            verdict.empty() ? "none" : (ratio <= (t ? t->max_ratio : 0) ? "met" : "missed"));
        std::fflush(stdout);
    };
    for (const auto& spec : o.types) {
        KeyType type = *certgate::parse_key_type(spec);
        int n = type.alg != certgate::KeyAlgorithm::rsa ? o.n
                : type.bits == 3072                     ? o.n_rsa3072
                : type.bits == 2048                     ? o.n_rsa2048
                                                        : o.n;
        row(spec, type, n, false, false);
        if (type.alg == certgate::KeyAlgorithm::ec)
            row(spec + ", keys derived ahead", type, n, false, true);
        if (spec == "rsa:2048") {
            row(spec + ", keys derived ahead", type, n, false, true);
            row(spec + ", warm key pool", type, n, true, false);
            row(spec + ", warm key pool, keys derived ahead", type, n, true, true);
        }
    }
    std::vector<double> kdf_in, kdf_out;
    for (int i = 0; i < 9; ++i) {
        kdf_in.push_back(kdf_in_process(ca));
        kdf_out.push_back(kdf_cli());
    }
    std::printf(
        "\nThe PKCS#12's key derivations alone (%d iterations each, "
        "`certgate_p12_iterations`), the floor of an issuance whose key is ready and whose "
        ".p12 keys are derived at ⑥: the command line's three (PBKDF2-HMAC-SHA256 for the key "
        "bag and for the certificate bag, the PKCS#12 KDF for the MAC) %s ms median; "
        "certgate's two (one PBKDF2 key for both bags, on SHA-256's compression function, "
        "and the same KDF for the MAC) %s ms. Rows *keys derived ahead* time ⑥ when the "
        "crypto pool derived them after ④ (the default; ⑥ falls back to deriving them when "
        "they are not ready).\n",
        certgate::kDefaultP12Iterations, fmt("%.1f", stats(kdf_out).median).c_str(),
        fmt("%.1f", stats(kdf_in).median).c_str());
    std::fprintf(stderr, "RESULT kdf median_ms=%.2f cli_median_ms=%.2f\n", stats(kdf_in).median,
                 stats(kdf_out).median);
    std::printf("\n");
}

// ---- HSM (issue 9) ------------------------------------------------------------------------------

std::string hsm_missing() {
    std::string missing;
    if (access(softhsm_module, R_OK) != 0)
        missing += " softhsm2 (" + std::string(softhsm_module) + ")";
    if (access(pkcs11_engine, R_OK) != 0)
        missing += " libengine-pkcs11-openssl (" + std::string(pkcs11_engine) + ")";
    if (std::system("command -v softhsm2-util >/dev/null 2>&1") != 0) missing += " softhsm2-util";
    if (std::system("command -v pkcs11-tool >/dev/null 2>&1") != 0)
        missing += " opensc (pkcs11-tool)";
    return missing;
}

// Signs a fixed certificate with the CA key: the CA's own share of an issuance.
double sign_only(const CaSigner& ca, X509* cert) {
    auto t0 = Clock::now();
    if (X509_sign(cert, ca.private_key(), EVP_sha256()) <= 0)
        throw std::runtime_error("X509_sign failed");
    return ms_since(t0);
}

void compare_hsm(const Options& o, const TempDir& dir, const CaSigner& pem_ca,
                 const std::string& pem_ca_cert) {
    std::printf("### Issuance with the CA key in an HSM (SoftHSM2 through the pkcs11 engine)\n\n");
    std::string missing = hsm_missing();
    if (!missing.empty()) {
        std::printf("skipped: not installed:%s\n\n", missing.c_str());
        std::fprintf(stderr, "RESULT hsm skipped=1\n");
        return;
    }
    // The CA key of the HSM run is the same algorithm as the PEM CA's, so
    // the difference is where the key lives, not what it is.
    certgate::X509Ptr pem_cert = certgate::load_certificate(pem_ca_cert);
    EVP_PKEY* pub = X509_get0_pubkey(pem_cert.get());
    std::string ca_alg = "rsa:2048";
    if (pub && EVP_PKEY_is_a(pub, "EC"))
        ca_alg = "EC:prime256v1";
    else if (pub)
        ca_alg = "rsa:" + std::to_string(EVP_PKEY_get_bits(pub));

    std::filesystem::create_directory(dir / "tokens");
    write_file(dir / "softhsm2.conf", "directories.tokendir = " + (dir / "tokens") +
                                          "\nobjectstore.backend = file\nlog.level = ERROR\n");
    setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);
    const std::string log = dir / "hsm.log";
    run({"softhsm2-util", "--init-token", "--free", "--label", hsm_token, "--pin", "1234",
         "--so-pin", "5678"},
        log);
    run({"pkcs11-tool", "--module", softhsm_module, "--token-label", hsm_token, "--login", "--pin",
         "1234", "--keypairgen", "--key-type", ca_alg, "--label", "ca", "--id", "01"},
        log);
    write_file(dir / "pin", "1234\n");
    CaKeyOptions ko;
    ko.pin_file = dir / "pin";
    ko.pkcs11_module = softhsm_module;
    const std::string spec =
        std::string("engine:pkcs11:pkcs11:token=") + hsm_token + ";object=ca;type=private";
    certgate::create_ca_certificate(dir / "hsm-ca.crt", spec, ko, "certgate bench HSM CA", 30);
    CaSigner hsm_ca = CaSigner::load(dir / "hsm-ca.crt", spec, ko);

    std::printf(
        "SoftHSM2 token in a temp dir, CA key (%s) generated in the token with pkcs11-tool, "
        "loaded as `%s`.\n"
        "Times in milliseconds; PEM and HSM runs interleaved.\n\n",
        ca_alg.c_str(), spec.c_str());
    std::printf(
        "| what | N | PEM CA key median | p90 | HSM CA key median | p90 | HSM − PEM (median) |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n");

    auto row = [&](const std::string& what, int n, auto&& pem_side, auto&& hsm_side) {
        pem_side();  // warm-up: the engine's first use of a session
        hsm_side();
        std::vector<double> pem, hsm;
        for (int i = 0; i < n; ++i) {
            if (i % 2 == 0) {
                pem.push_back(pem_side());
                hsm.push_back(hsm_side());
            } else {
                hsm.push_back(hsm_side());
                pem.push_back(pem_side());
            }
        }
        Stats sp = stats(pem), sh = stats(hsm);
        std::printf("| %s | %d | %s | %s | %s | %s | %+.2f ms |\n", what.c_str(), n,
                    fmt("%.2f", sp.median).c_str(), fmt("%.2f", sp.p90).c_str(),
                    fmt("%.2f", sh.median).c_str(), fmt("%.2f", sh.p90).c_str(),
                    sh.median - sp.median);
        std::fprintf(stderr,
                     "RESULT hsm what=%s n=%d pem_median_ms=%.3f pem_p90_ms=%.3f "
                     "hsm_median_ms=%.3f hsm_p90_ms=%.3f\n",
                     what.c_str(), n, sp.median, sp.p90, sh.median, sh.p90);
        std::fflush(stdout);
    };

    // The CA signature alone, re-signing one certificate: the CA's own share.
    IssueRequest req = request_for(*certgate::parse_key_type("ec:P-256"));
    certgate::IssuedCertificate issued = pem_ca.issue(req, p12_password, P12Encryption::aes256);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(issued.cert_pem.data(), static_cast<int>(issued.cert_pem.size())),
        BIO_free);
    certgate::X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!cert) throw std::runtime_error("cannot read back an issued certificate");
    row(
        "CA signature only", o.hsm_n * 2, [&] { return sign_only(pem_ca, cert.get()); },
        [&] { return sign_only(hsm_ca, cert.get()); });
    // A whole issuance with an EC user key, where key generation is small
    // enough not to hide the signature. (With an RSA user key the same
    // signature time sits under 100+ ms of key generation that varies more
    // than that from one key to the next.)
    KeyType ec = *certgate::parse_key_type("ec:P-256");
    row(
        "issuance ec:P-256", o.hsm_n, [&] { return issue_in_process(pem_ca, ec); },
        [&] { return issue_in_process(hsm_ca, ec); });
    std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    try {
        TempDir dir;
        std::string ca_cert = o.ca_cert, ca_key = o.ca_key;
        if (ca_cert.empty()) {
            ca_cert = dir / "ca.crt";
            ca_key = dir / "ca.key";
            certgate::create_ca(ca_cert, ca_key, "certgate bench CA",
                                *certgate::parse_key_type("rsa:2048"), 30);
        }
        CaSigner ca = CaSigner::load(ca_cert, ca_key, std::string());
        compare_with_cli(o, dir, ca, ca_cert, ca_key);
        if (o.hsm) compare_hsm(o, dir, ca, ca_cert);
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "bench/issuance: %s\n", e.what());
        return 1;
    }
    return 0;
}
