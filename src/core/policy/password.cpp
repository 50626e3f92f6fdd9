#include "core/policy/password.hpp"

#include "core/policy/policy.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <argon2.h>
#include <openssl/rand.h>
#include <pcre2.h>

#include <cstdio>
#include <cstring>
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

}  // namespace

std::string hash_password(std::string_view password, const Argon2Params& p) {
    // A printable salt, so `argon2 SALT -id ...` from Debian can recompute the
    // hash by hand (the PHC string holds it base64-encoded). 22 chars ≈ 131 bits.
    char salt[23];
    for (size_t i = 0; i < 22; ++i) salt[i] = pick(kSaltChars);
    salt[22] = '\0';
    const size_t hash_len = 32;
    size_t enc_len =
        argon2_encodedlen(p.iterations, p.memory_kib, p.parallelism, 22, hash_len, Argon2_id);
    std::string encoded(enc_len, '\0');
    int rc = argon2id_hash_encoded(p.iterations, p.memory_kib, p.parallelism, password.data(),
                                   password.size(), salt, 22, hash_len, &encoded[0], enc_len);
    if (rc != ARGON2_OK)
        throw std::runtime_error(std::string("argon2id hashing failed: ") +
                                 argon2_error_message(rc));
    encoded.resize(std::strlen(encoded.c_str()));
    return encoded;
}

bool verify_password(std::string_view password, const std::string& phc) {
    if (phc.rfind("$argon2id$", 0) != 0) return false;
    return argon2_verify(phc.c_str(), password.data(), password.size(), Argon2_id) == ARGON2_OK;
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
