#include "core/policy/policy.hpp"

#include <cctype>
#include <cstdint>

namespace certgate {

namespace {

// The next code point of `s` at `*i`, advancing `*i`; a malformed byte is
// returned as itself (0x80-0xff), one byte on.
uint32_t next_code_point(std::string_view s, size_t *i) {
    const auto b = static_cast<unsigned char>(s[*i]);
    size_t len = b < 0x80           ? 1
                 : (b >> 5) == 0x6  ? 2
                 : (b >> 4) == 0xe  ? 3
                 : (b >> 3) == 0x1e ? 4
                                    : 0;
    if (len == 0 || *i + len > s.size()) {
        ++*i;
        return b;
    }
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);
    for (size_t k = 1; k < len; ++k) {
        const auto c = static_cast<unsigned char>(s[*i + k]);
        if ((c & 0xc0) != 0x80) {
            ++*i;
            return b;
        }
        cp = (cp << 6) | (c & 0x3f);
    }
    *i += len;
    return cp;
}

bool parse_count(const std::string &text, size_t *out) {
    if (text.empty() || text.size() > 4) return false;
    size_t n = 0;
    for (char c : text) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
        n = n * 10 + static_cast<size_t>(c - '0');
    }
    *out = n;
    return true;
}

// The first {m,n} quantifier of the patterns, as the rule's length.
bool length_from_patterns(const std::vector<std::string> &patterns, size_t *min, size_t *max) {
    for (const std::string &p : patterns) {
        for (size_t open = p.find('{'); open != std::string::npos; open = p.find('{', open + 1)) {
            if (open > 0 && p[open - 1] == '\\') continue;
            const size_t comma = p.find(',', open);
            const size_t close = p.find('}', open);
            if (comma == std::string::npos || close == std::string::npos || comma > close) continue;
            size_t m = 0, n = 0;
            if (parse_count(p.substr(open + 1, comma - open - 1), &m) &&
                parse_count(p.substr(comma + 1, close - comma - 1), &n) && m <= n) {
                *min = m;
                *max = n;
                return true;
            }
        }
    }
    return false;
}

RuleViolation check(const CredentialRule &rule, std::string_view value, bool patterns_ok,
                    RuleViolation (*classes)(std::string_view)) {
    if (has_control_character(value)) return RuleViolation::bad_character;
    if (has_full_width(value)) return RuleViolation::full_width;
    const size_t n = utf8_length(value);
    if (n < rule.min_chars) return RuleViolation::too_short;
    if (n > rule.max_chars) return RuleViolation::too_long;
    if (rule.builtin) {
        const RuleViolation v = classes(value);
        // The glue's patterns and the named checks agree (a unit test says
        // so); should they ever differ, the value is refused.
        if (v != RuleViolation::none) return v;
    }
    return patterns_ok ? RuleViolation::none : RuleViolation::pattern;
}

}  // namespace

size_t utf8_length(std::string_view s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++n) next_code_point(s, &i);
    return n;
}

bool has_full_width(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const uint32_t cp = next_code_point(s, &i);
        if ((cp >= 0xff01 && cp <= 0xff5e) || (cp >= 0xffe0 && cp <= 0xffe6) || cp == 0x3000)
            return true;
    }
    return false;
}

CredentialRule builtin_user_id_rule() {
    CredentialRule r;
    r.patterns = kDefaultUserIdRule;
    r.min_chars = 6;
    r.max_chars = 12;
    r.builtin = true;
    return r;
}

CredentialRule builtin_password_rule() {
    CredentialRule r;
    r.patterns = kDefaultPasswordRule;
    r.min_chars = 8;
    r.max_chars = 12;
    r.builtin = true;
    return r;
}

CredentialRule parse_credential_rule(const std::vector<std::string> &args) {
    CredentialRule r;
    bool min_given = false, max_given = false;
    for (const std::string &a : args) {
        if (a.rfind("min=", 0) == 0) {
            if (min_given || !parse_count(a.substr(4), &r.min_chars))
                throw RuleError("invalid \"" + a + "\"");
            min_given = true;
        } else if (a.rfind("max=", 0) == 0) {
            if (max_given || !parse_count(a.substr(4), &r.max_chars) || r.max_chars == 0)
                throw RuleError("invalid \"" + a + "\"");
            max_given = true;
        } else if (a.rfind("description=", 0) == 0) {
            r.description_ja = a.substr(12);
        } else if (a.rfind("description_en=", 0) == 0) {
            r.description_en = a.substr(15);
        } else if (min_given || max_given || !r.description_ja.empty() ||
                   !r.description_en.empty()) {
            throw RuleError("pattern \"" + a + "\" after the rule's options");
        } else {
            r.patterns.push_back(a);
        }
    }
    if (r.patterns.empty()) throw RuleError("needs at least one pattern");
    size_t pmin = r.min_chars, pmax = r.max_chars;
    if (length_from_patterns(r.patterns, &pmin, &pmax)) {
        if (!min_given) r.min_chars = pmin;
        if (!max_given) r.max_chars = pmax;
    }
    if (r.min_chars > r.max_chars) throw RuleError("min is greater than max");
    // One language given: the other says the same rather than nothing.
    if (r.description_en.empty()) r.description_en = r.description_ja;
    if (r.description_ja.empty()) r.description_ja = r.description_en;
    return r;
}

Policy::Policy(const Settings &s)
    : validity{s.cert_validity_days, s.renew_before_days},
      user_id(s.userid_rule_args.empty() ? builtin_user_id_rule()
                                         : parse_credential_rule(s.userid_rule_args)),
      password(s.password_rule_args.empty() ? builtin_password_rule()
                                            : parse_credential_rule(s.password_rule_args)),
      lockout{s.lockout_failures, s.lockout_time_s, s.lockout_locks},
      codes{s.code_digits, s.code_lifetime_s, s.code_attempts},
      sessions{s.session_idle_s, s.session_absolute_s} {}

RuleViolation Policy::check_user_id(std::string_view value, bool patterns_ok) const {
    return check(user_id, value, patterns_ok, certgate::check_user_id);
}

RuleViolation Policy::check_password(std::string_view value, bool patterns_ok) const {
    return check(password, value, patterns_ok, certgate::check_password);
}

size_t Policy::initial_password_length() const {
    size_t n = 12;
    if (n < password.min_chars) n = password.min_chars;
    if (n > password.max_chars) n = password.max_chars;
    return n;
}

std::string Policy::duration_text(long seconds, Language lang) {
    const bool ja = lang == Language::ja;
    long n = seconds;
    const char *unit_ja = "秒", *unit_en = " second";
    if (seconds > 0 && seconds % 60 == 0) {
        n = seconds / 60;
        unit_ja = "分";
        unit_en = " minute";
    }
    if (ja) return std::to_string(n) + unit_ja;
    return std::to_string(n) + unit_en + (n == 1 ? "" : "s");
}

}  // namespace certgate
