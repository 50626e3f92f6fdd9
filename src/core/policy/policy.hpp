// The rules of DESIGN.md §1 as one set of numbers, built once from the
// settings: every number a clerk reads on a page or in a mail comes from here,
// so a bank that changes a directive gets pages that agree with it.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/settings.hpp"
#include "core/policy/password.hpp"

namespace certgate {

// Characters (UTF-8 code points) in `s`; a byte that starts no valid
// sequence counts as one.
size_t utf8_length(std::string_view s);

// A full-width form (ＡＢＣ, ０１２, ！, ￥) or the ideographic space: what a
// Japanese input method types when the clerk forgot to switch to 半角.
bool has_full_width(std::string_view s);

// A user-ID or password rule (R8, R9, or certgate_userid_rule /
// certgate_password_rule): patterns that must all match, and a length in
// characters.
struct CredentialRule {
    std::vector<std::string> patterns;  // PCRE2; the glue runs them with nginx's regex
    size_t min_chars = 1;
    size_t max_chars = 64;
    // The rule in words, from the directive; empty: the pages' own words.
    std::string description_ja;
    std::string description_en;
    // R8/R9 themselves: a violation can be named (missing digit, ...).
    bool builtin = false;

    // The form field's maxlength: one more than the rule allows, so a value
    // that is too long reaches the server and is refused as such, never cut.
    size_t maxlength() const { return max_chars + 1; }
    const std::string &description(Language lang) const {
        return lang == Language::en ? description_en : description_ja;
    }
};

struct RuleError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// R8 and R9.
CredentialRule builtin_user_id_rule();
CredentialRule builtin_password_rule();

// The arguments of certgate_userid_rule / certgate_password_rule: PCRE2
// patterns, then optionally min=N, max=N (characters), "description=..."
// and "description_en=...". Without min/max the first {m,n} of the patterns
// gives them (old configurations keep their meaning). Throws RuleError with
// a short phrase for nginx to print with the file and line.
CredentialRule parse_credential_rule(const std::vector<std::string> &args);

struct ValidityPolicy {
    long certificate_days;   // R1
    long renew_before_days;  // R2, R3
};

struct LockoutPolicy {
    int failures;  // R10: wrong passwords in a row that lock
    long lock_s;   // how long a lock lasts
    int locks;     // locks without a good login in between that block
};

struct CodePolicy {
    int digits;       // R6 ⑤
    long lifetime_s;  // how long a mailed code is good
    int attempts;     // wrong codes per code
    long lifetime_minutes() const { return (lifetime_s + 59) / 60; }
};

struct SessionPolicy {
    long idle_s;
    long absolute_s;
};

class Policy {
  public:
    // Throws RuleError when a rule in the settings does not parse.
    explicit Policy(const Settings &settings);

    ValidityPolicy validity;
    CredentialRule user_id;
    CredentialRule password;
    LockoutPolicy lockout;
    CodePolicy codes;
    SessionPolicy sessions;

    // What is wrong with a user ID or a password, checked in this order: a
    // control character, a full-width character, the length in characters,
    // then R8/R9's character classes (builtin rules) or the patterns, whose
    // verdict the glue gives as `patterns_ok`.
    RuleViolation check_user_id(std::string_view value, bool patterns_ok) const;
    RuleViolation check_password(std::string_view value, bool patterns_ok) const;

    // The length of the initial passwords made for the bank's letter and the
    // master's page: R9's 12, within the configured password length.
    size_t initial_password_length() const;

    // A span of time as a clerk reads it: "60分" / "60 minutes", "90秒".
    static std::string duration_text(long seconds, Language lang);
};

}  // namespace certgate
