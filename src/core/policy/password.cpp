#include "core/policy/password.hpp"

#include "core/policy/policy.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pcre2.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>

namespace certgate {

namespace {

const char kUpper[] = "ABCDEFGHJKLMNPQRSTUVWXYZ";  // no I, O
const char kLower[] = "abcdefghijkmnpqrstuvwxyz";  // no l, o
const char kDigit[] = "23456789";                  // no 0, 1
const char kSymbol[] = "!#$%&*+-=?@";              // none that a letter's font blurs
const char kSaltChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// A uniform index below n from the CSPRNG (rejection sampling, no modulo bias).
size_t random_below(size_t n) {
    const unsigned limit = 256 - (256 % n);
    for (;;) {
        unsigned char b;
        if (RAND_bytes(&b, 1) != 1) throw std::runtime_error("OpenSSL RAND_bytes failed");
        if (b < limit) return b % n;
    }
}

template <size_t N>
char pick(const char (&set)[N]) {
    return set[random_below(N - 1)];
}

bool is_symbol(char c) {
    return c >= 0x21 && c <= 0x7e && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') &&
           !(c >= '0' && c <= '9');
}

// --- Argon2id with its memory straight from the kernel ------------------------------
//
// libargon2's own functions take their m KiB (19 MiB by default) from
// malloc. The first free of a block that size raises glibc's dynamic mmap
// threshold above it, so every later hash takes it from a pool thread's
// malloc arena, which keeps it resident for the life of the worker (the
// trim threshold rises with it) and lays other allocations around it: a
// worker carried 19.7 MiB of Argon2 memory after its first logins, and its
// RSS crept as the arena's other blocks moved (bench part d, issue 18).
// Here the memory is mapped for each hash and unmapped after, never in a
// core dump (libargon2 wipes it before the unmap), and glibc's thresholds
// never see it. The PHC string is read and written here, as libargon2's
// argon2_verify and *_hash_encoded do, since those allocate with malloc.

int map_argon2_memory(uint8_t** memory, size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *memory = nullptr;  // what libargon2 checks
        return ARGON2_MEMORY_ALLOCATION_ERROR;
    }
    (void)madvise(p, bytes, MADV_DONTDUMP);
    *memory = static_cast<uint8_t*>(p);
    return ARGON2_OK;
}

void unmap_argon2_memory(uint8_t* memory, size_t bytes) { (void)munmap(memory, bytes); }

// Argon2id of password and salt into out (out_len bytes); an ARGON2_ code.
int argon2id_raw(std::string_view password, std::string_view salt, uint32_t t, uint32_t m,
                 uint32_t p, uint32_t version, unsigned char* out, size_t out_len) {
    if (password.size() > ARGON2_MAX_PWD_LENGTH) return ARGON2_PWD_TOO_LONG;
    if (salt.size() > ARGON2_MAX_SALT_LENGTH) return ARGON2_SALT_TOO_LONG;
    if (out_len > ARGON2_MAX_OUTLEN) return ARGON2_OUTPUT_TOO_LONG;
    argon2_context ctx{};
    ctx.out = out;
    ctx.outlen = static_cast<uint32_t>(out_len);
    // Not written: ARGON2_DEFAULT_FLAGS leaves the password and salt alone.
    ctx.pwd = reinterpret_cast<uint8_t*>(const_cast<char*>(password.data()));
    ctx.pwdlen = static_cast<uint32_t>(password.size());
    ctx.salt = reinterpret_cast<uint8_t*>(const_cast<char*>(salt.data()));
    ctx.saltlen = static_cast<uint32_t>(salt.size());
    ctx.t_cost = t;
    ctx.m_cost = m;
    ctx.lanes = p;
    // One thread: the lanes are computed in turn (the same output), so a
    // hash never takes more cores than the crypto pool that runs it has.
    ctx.threads = 1;
    ctx.version = version;
    ctx.allocate_cbk = map_argon2_memory;
    ctx.free_cbk = unmap_argon2_memory;
    ctx.flags = ARGON2_DEFAULT_FLAGS;
    return argon2_ctx(&ctx, Argon2_id);
}

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Base64 without padding, as the PHC string format (and libargon2) writes it.
std::string b64_nopad(const unsigned char* in, size_t n) {
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; ++i) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kB64[(acc >> bits) & 63]);
        }
    }
    if (bits > 0) out.push_back(kB64[(acc << (6 - bits)) & 63]);
    return out;
}

// Strict: only the alphabet, no padding, no length that cannot be, unused
// trailing bits zero (one string per value, as libargon2 reads it).
std::optional<std::string> unb64_nopad(std::string_view in) {
    if (in.size() % 4 == 1) return std::nullopt;
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        const char* at = c ? std::strchr(kB64, c) : nullptr;
        if (!at) return std::nullopt;
        acc = (acc << 6) | static_cast<uint32_t>(at - kB64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

// "name=<decimal>" at the front of s, consumed; a uint32 without sign,
// leading zeros or overflow.
std::optional<uint32_t> take_number(std::string_view& s, std::string_view name) {
    if (s.substr(0, name.size()) != name) return std::nullopt;
    s.remove_prefix(name.size());
    size_t n = 0;
    uint64_t v = 0;
    while (n < s.size() && n < 11 && s[n] >= '0' && s[n] <= '9')
        v = v * 10 + static_cast<uint64_t>(s[n++] - '0');
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0') || v > UINT32_MAX) return std::nullopt;
    s.remove_prefix(n);
    return static_cast<uint32_t>(v);
}

bool take(std::string_view& s, char c) {
    if (s.empty() || s[0] != c) return false;
    s.remove_prefix(1);
    return true;
}

constexpr uint32_t kMaxMemoryKib = 1024 * 1024;  // 1 GiB
constexpr uint32_t kMaxPasses = 64;
constexpr uint32_t kMaxLanes = 16;

struct Phc {
    uint32_t version = ARGON2_VERSION_10, m = 0, t = 0, p = 0;
    std::string salt, hash;
};

// "$argon2id$[v=19$]m=<m>,t=<t>,p=<p>$<salt>$<hash>"; nullopt if not that.
std::optional<Phc> parse_phc(std::string_view s) {
    constexpr std::string_view prefix = "$argon2id$";
    if (s.substr(0, prefix.size()) != prefix) return std::nullopt;
    s.remove_prefix(prefix.size());
    Phc phc;
    if (s.substr(0, 2) == "v=") {
        auto v = take_number(s, "v=");
        if (!v || (*v != ARGON2_VERSION_10 && *v != ARGON2_VERSION_13) || !take(s, '$'))
            return std::nullopt;
        phc.version = *v;
    }
    auto m = take_number(s, "m=");
    if (!m || !take(s, ',')) return std::nullopt;
    auto t = take_number(s, "t=");
    if (!t || !take(s, ',')) return std::nullopt;
    auto p = take_number(s, "p=");
    if (!p || !take(s, '$')) return std::nullopt;
    size_t dollar = s.find('$');
    if (dollar == std::string_view::npos) return std::nullopt;
    auto salt = unb64_nopad(s.substr(0, dollar));
    auto hash = unb64_nopad(s.substr(dollar + 1));
    // libargon2's bounds: a salt of 8 bytes at least, a hash of 4 to 1024 here.
    if (!salt || !hash || salt->size() < ARGON2_MIN_SALT_LENGTH ||
        hash->size() < ARGON2_MIN_OUTLEN || hash->size() > 1024)
        return std::nullopt;
    // A store row is input: what it may ask for is bounded well above any
    // hash certgate or a sysadmin's `argon2 -e` makes (19 MiB, t=2, p=1 by
    // default; RFC 9106's second recommendation is 64 MiB, t=3, p=4), so a
    // bad row cannot map gigabytes or hold a crypto thread for hours.
    if (*m > kMaxMemoryKib || *t > kMaxPasses || *p > kMaxLanes) return std::nullopt;
    phc.m = *m;
    phc.t = *t;
    phc.p = *p;
    phc.salt = std::move(*salt);
    phc.hash = std::move(*hash);
    return phc;
}

}  // namespace

std::string hash_password(std::string_view password, const Argon2Params& p) {
    // A printable salt, so `argon2 SALT -id ...` from Debian can recompute the
    // hash by hand (the PHC string holds it base64-encoded). 22 chars ≈ 131 bits.
    char salt[23];
    for (size_t i = 0; i < 22; ++i) salt[i] = pick(kSaltChars);
    salt[22] = '\0';
    unsigned char hash[32];
    int rc = argon2id_raw(password, std::string_view(salt, 22), p.iterations, p.memory_kib,
                          p.parallelism, ARGON2_VERSION_13, hash, sizeof hash);
    if (rc != ARGON2_OK)
        throw std::runtime_error(std::string("argon2id hashing failed: ") +
                                 argon2_error_message(rc));
    std::string encoded =
        "$argon2id$v=" + std::to_string(ARGON2_VERSION_13) + "$m=" + std::to_string(p.memory_kib) +
        ",t=" + std::to_string(p.iterations) + ",p=" + std::to_string(p.parallelism) + "$" +
        b64_nopad(reinterpret_cast<const unsigned char*>(salt), 22) + "$" +
        b64_nopad(hash, sizeof hash);
    OPENSSL_cleanse(hash, sizeof hash);
    return encoded;
}

bool verify_password(std::string_view password, const std::string& phc_string) {
    std::optional<Phc> phc = parse_phc(phc_string);
    if (!phc) return false;
    std::string computed(phc->hash.size(), '\0');
    int rc = argon2id_raw(password, phc->salt, phc->t, phc->m, phc->p, phc->version,
                          reinterpret_cast<unsigned char*>(computed.data()), computed.size());
    bool same =
        rc == ARGON2_OK && CRYPTO_memcmp(computed.data(), phc->hash.data(), computed.size()) == 0;
    OPENSSL_cleanse(computed.data(), computed.size());
    return same;
}

std::string generate_initial_password(size_t length) {
    if (length < 8) length = 8;
    if (length > 64) length = 64;
    // One of each class first, the rest from all classes, then a shuffle.
    std::string pw = {pick(kUpper), pick(kLower), pick(kDigit), pick(kSymbol)};
    const std::string all = std::string(kUpper) + kLower + kDigit + kSymbol;
    while (pw.size() < length) pw.push_back(all[random_below(all.size())]);
    for (size_t i = pw.size() - 1; i > 0; --i) std::swap(pw[i], pw[random_below(i + 1)]);
    return pw;
}

const char* describe(RuleViolation v) {
    switch (v) {
        case RuleViolation::none:
            return "ok";
        case RuleViolation::too_short:
            return "too short";
        case RuleViolation::too_long:
            return "too long";
        case RuleViolation::bad_character:
            return "contains a character that is not allowed";
        case RuleViolation::full_width:
            return "contains a full-width character";
        case RuleViolation::missing_letter:
            return "needs at least one letter";
        case RuleViolation::missing_digit:
            return "needs at least one digit";
        case RuleViolation::missing_upper:
            return "needs at least one upper-case letter";
        case RuleViolation::missing_lower:
            return "needs at least one lower-case letter";
        case RuleViolation::missing_symbol:
            return "needs at least one symbol";
        case RuleViolation::pattern:
            return "does not match the configured rule";
    }
    return "?";
}

bool has_control_character(std::string_view value) {
    for (unsigned char c : value)
        if (c < 0x20 || c == 0x7f) return true;
    return false;
}

RuleViolation check_user_id(std::string_view id) {
    if (has_full_width(id)) return RuleViolation::full_width;
    if (utf8_length(id) < 6) return RuleViolation::too_short;
    if (utf8_length(id) > 12) return RuleViolation::too_long;
    bool letter = false, digit = false;
    for (char c : id) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
            letter = true;
        else if (c >= '0' && c <= '9')
            digit = true;
        else
            return RuleViolation::bad_character;
    }
    if (!letter) return RuleViolation::missing_letter;
    if (!digit) return RuleViolation::missing_digit;
    return RuleViolation::none;
}

RuleViolation check_password(std::string_view pw) {
    if (has_full_width(pw)) return RuleViolation::full_width;
    if (utf8_length(pw) < 8) return RuleViolation::too_short;
    if (utf8_length(pw) > 12) return RuleViolation::too_long;
    bool upper = false, lower = false, digit = false, symbol = false;
    for (char c : pw) {
        if (c >= 'A' && c <= 'Z')
            upper = true;
        else if (c >= 'a' && c <= 'z')
            lower = true;
        else if (c >= '0' && c <= '9')
            digit = true;
        else if (is_symbol(c))
            symbol = true;
        else
            return RuleViolation::bad_character;
    }
    if (!upper) return RuleViolation::missing_upper;
    if (!lower) return RuleViolation::missing_lower;
    if (!digit) return RuleViolation::missing_digit;
    if (!symbol) return RuleViolation::missing_symbol;
    return RuleViolation::none;
}

const std::vector<std::string> kDefaultUserIdRule = {
    "^[A-Za-z0-9]{6,12}\\z",
    "[A-Za-z]",
    "[0-9]",
};

const std::vector<std::string> kDefaultPasswordRule = {
    "^[\\x21-\\x7e]{8,12}\\z", "[A-Z]", "[a-z]", "[0-9]", "[^A-Za-z0-9]",
};

struct PatternRule::Compiled {
    std::vector<pcre2_code*> codes;
    ~Compiled() {
        for (auto* c : codes) pcre2_code_free(c);
    }
};

PatternRule::PatternRule(const std::vector<std::string>& patterns)
    : patterns_(patterns), compiled_(std::make_unique<Compiled>()) {
    for (const auto& p : patterns_) {
        int err = 0;
        PCRE2_SIZE offset = 0;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), 0, &err,
                                         &offset, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw std::runtime_error("pattern \"" + p + "\" at offset " + std::to_string(offset) +
                                     ": " + reinterpret_cast<const char*>(msg));
        }
        compiled_->codes.push_back(code);
    }
}

PatternRule::~PatternRule() = default;
PatternRule::PatternRule(PatternRule&&) noexcept = default;
PatternRule& PatternRule::operator=(PatternRule&&) noexcept = default;

std::optional<size_t> PatternRule::first_failure(std::string_view value) const {
    for (size_t i = 0; i < compiled_->codes.size(); ++i) {
        pcre2_code* code = compiled_->codes[i];
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
        if (!md) throw std::runtime_error("PCRE2: out of memory");
        int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(value.data()), value.size(), 0, 0,
                             md, nullptr);
        pcre2_match_data_free(md);
        if (rc < 0) return i;
    }
    return std::nullopt;
}

}  // namespace certgate
