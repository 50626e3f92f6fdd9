// Passwords: argon2id hashes in the PHC string format, the initial passwords the
// bank prints on its letter, and the user ID and password rules (R8, R9).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate {

// The floor the issue sets (m = 19 MiB, t = 2, p = 1); hashes made with
// other parameters still verify.
struct Argon2Params {
    uint32_t memory_kib = 19456;
    uint32_t iterations = 2;
    uint32_t parallelism = 1;
};

// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>", the format Debian's argon2
// command prints with -e. Throws std::runtime_error if hashing fails.
std::string hash_password(std::string_view password, const Argon2Params& params = {});

// True when password matches the PHC string (argon2id only). Malformed strings
// verify false. The comparison is constant-time (CRYPTO_memcmp). Argon2's
// memory is mapped for each call and unmapped after (never malloc's).
bool verify_password(std::string_view password, const std::string& phc);

// A random password of `length` characters (8 to 64; R9: 12) from OpenSSL's
// CSPRNG with at least one upper-case letter, lower-case letter, digit and
// symbol. Letters and digits that look alike on paper (0 O o 1 l I) are left out.
std::string generate_initial_password(size_t length = 12);

// Which rule a user ID or password broke; the names match the JSON error codes.
enum class RuleViolation {
    none,
    too_short,
    too_long,
    bad_character,  // outside the allowed set
    full_width,     // a full-width letter, digit or symbol (ＡＢ１２): type it in 半角
    missing_letter,
    missing_digit,
    missing_upper,
    missing_lower,
    missing_symbol,
    pattern,  // a configured PCRE2 pattern did not match
};
const char* describe(RuleViolation v);  // English, one short phrase

// CR, LF, tab or another C0 control character, or DEL: never part of a user
// ID or a password, whatever certgate_userid_rule / certgate_password_rule say
// (a pattern ending in `$` would let a trailing newline through).
bool has_control_character(std::string_view value);

// R8: 6-12 ASCII letters and digits, at least one of each. Lengths count
// characters, not bytes; full-width input is named as such.
RuleViolation check_user_id(std::string_view id);
// R9: 8-12 printable ASCII characters with upper, lower, digit and symbol.
RuleViolation check_password(std::string_view password);

// The defaults of certgate_userid_rule and certgate_password_rule: PCRE2
// patterns that must all match, equivalent to check_user_id / check_password.
extern const std::vector<std::string> kDefaultUserIdRule;
extern const std::vector<std::string> kDefaultPasswordRule;

// A configured rule: every pattern must match the whole value's worth of checks.
class PatternRule {
  public:
    // Throws std::runtime_error naming the pattern and PCRE2's message.
    explicit PatternRule(const std::vector<std::string>& patterns);
    ~PatternRule();
    PatternRule(PatternRule&&) noexcept;
    PatternRule& operator=(PatternRule&&) noexcept;
    PatternRule(const PatternRule&) = delete;
    PatternRule& operator=(const PatternRule&) = delete;

    // Index of the first pattern that does not match, or nullopt when all match.
    std::optional<size_t> first_failure(std::string_view value) const;
    const std::vector<std::string>& patterns() const { return patterns_; }

  private:
    struct Compiled;
    std::vector<std::string> patterns_;
    std::unique_ptr<Compiled> compiled_;
};

}  // namespace certgate
