// Passwords: argon2id hashing and verification (including hashes made by
// Debian's argon2 command), the R9 initial-password generator, and the R8/R9
// checks with their PCRE2 twins.
#include <argon2.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/policy/password.hpp"

// cmocka last: it needs the three C headers first and has no extern "C".
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;

namespace {

// Made with:
//   printf %s 'Passw0rd!' | argon2 certgateSaltValue01 -id -t 2 -k 19456 -p 1 -e
const char* const kDebianHash =
    "$argon2id$v=19$m=19456,t=2,p=1$Y2VydGdhdGVTYWx0VmFsdWUwMQ$"
    "Ek6FXmg2AwR4cqGcojTnNyEr6aD8kF6M59XUL6IO5F4";

// Runs Debian's argon2 with the password on stdin; "" if the tool is missing.
std::string argon2_cli(const std::string& password, const std::string& salt,
                       const std::string& params) {
    if (access("/usr/bin/argon2", X_OK) != 0) return "";
    std::string cmd =
        "printf %s '" + password + "' | /usr/bin/argon2 " + salt + " -id " + params + " -e";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return "";
    char buf[512] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    pclose(p);
    std::string out(buf, n);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

std::string base64_decode_nopad(const std::string& in) {
    static const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned buf = 0;
    int bits = 0;
    for (char c : in) {
        auto v = alphabet.find(c);
        if (v == std::string::npos) break;
        buf = (buf << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buf >> bits) & 0xff));
        }
    }
    return out;
}

void hash_and_verify(void**) {
    std::string h = hash_password("Passw0rd!");
    assert_true(h.rfind("$argon2id$v=19$m=19456,t=2,p=1$", 0) == 0);
    assert_true(verify_password("Passw0rd!", h));
    assert_false(verify_password("passw0rd!", h));
    assert_false(verify_password("Passw0rd", h));
    assert_false(verify_password("", h));
    // Two hashes of one password differ: the salt is random.
    assert_string_not_equal(h.c_str(), hash_password("Passw0rd!").c_str());
}

void verifies_debian_hash(void**) {
    assert_true(verify_password("Passw0rd!", kDebianHash));
    assert_false(verify_password("Passw0rd?", kDebianHash));
    // And one made now, with other parameters, still verifies.
    std::string fresh = argon2_cli("Xy7#abcD", "anotherSalt99", "-t 3 -k 32768 -p 1");
    if (fresh.empty()) {
        print_message("argon2 command not installed: checked the embedded hash only\n");
        return;
    }
    assert_true(verify_password("Xy7#abcD", fresh));
    assert_false(verify_password("Xy7#abcd", fresh));
}

// An operator can recompute one of our hashes by hand with Debian's tool.
void debian_tool_recomputes_our_hash(void**) {
    std::string ours = hash_password("Ab3$efgh");
    // $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
    size_t s1 = ours.find('$', std::strlen("$argon2id$v=19$m=19456,t=2,p=1"));
    size_t s2 = ours.find('$', s1 + 1);
    std::string salt = base64_decode_nopad(ours.substr(s1 + 1, s2 - s1 - 1));
    assert_int_equal(salt.size(), 22);
    std::string theirs = argon2_cli("Ab3$efgh", salt, "-t 2 -k 19456 -p 1");
    if (theirs.empty()) {
        print_message("argon2 command not installed: skipped\n");
        return;
    }
    assert_string_equal(theirs.c_str(), ours.c_str());
}

void rejects_other_and_malformed_hashes(void**) {
    // argon2i (the CLI's default type) is not what we store.
    std::string argon2i =
        "$argon2i$v=19$m=19456,t=2,p=1$Y2VydGdhdGVTYWx0VmFsdWUwMQ$"
        "Ek6FXmg2AwR4cqGcojTnNyEr6aD8kF6M59XUL6IO5F4";
    assert_false(verify_password("Passw0rd!", argon2i));
    assert_false(verify_password("Passw0rd!", ""));
    assert_false(verify_password("Passw0rd!", "$argon2id$garbage"));
    assert_false(verify_password("Passw0rd!", "Passw0rd!"));
}

// Ours read by libargon2, and libargon2's (v=19, v=16 and the old form
// without v=) read by ours: the PHC string is now written and parsed here.
void libargon2_reads_ours_and_we_read_libargon2s(void**) {
    std::string ours = hash_password("Passw0rd!", Argon2Params{4096, 1, 1});
    assert_int_equal(argon2id_verify(ours.c_str(), "Passw0rd!", 9), ARGON2_OK);
    assert_int_not_equal(argon2id_verify(ours.c_str(), "Passw0rd?", 9), ARGON2_OK);
    for (uint32_t version : {ARGON2_VERSION_13, ARGON2_VERSION_10}) {
        char encoded[160];
        const char salt[] = "someSaltOfSixteen";
        unsigned char raw[32];
        assert_int_equal(argon2_hash(2, 4096, 2, "Xy7#abcD", 8, salt, 17, raw, sizeof raw, encoded,
                                     sizeof encoded, Argon2_id, version),
                         ARGON2_OK);
        assert_true(verify_password("Xy7#abcD", encoded));
        assert_false(verify_password("Xy7#abcd", encoded));
        if (version == ARGON2_VERSION_10) {
            std::string old = encoded;
            size_t v = old.find("v=16$");
            assert_true(v != std::string::npos);
            old.erase(v, 5);
            assert_true(verify_password("Xy7#abcD", old));
        }
    }
}

// A store row is input: every way it can be wrong verifies false (and
// never asks for more than it says).
void rejects_malformed_phc_strings(void**) {
    std::string good = hash_password("Passw0rd!", Argon2Params{4096, 1, 1});
    assert_true(verify_password("Passw0rd!", good));
    size_t s1 = good.find('$', std::strlen("$argon2id$v=19$m=4096,t=1,p=1"));
    size_t s2 = good.find('$', s1 + 1);
    std::string salt = good.substr(s1 + 1, s2 - s1 - 1), hash = good.substr(s2 + 1);
    auto with = [&](const std::string& head, const std::string& sa, const std::string& h) {
        return verify_password("Passw0rd!", head + "$" + sa + "$" + h);
    };
    const std::string head = "$argon2id$v=19$m=4096,t=1,p=1";
    assert_true(with(head, salt, hash));
    for (const char* bad_head :
         {"$argon2id$v=18$m=4096,t=1,p=1", "$argon2id$v=019$m=4096,t=1,p=1",
          "$argon2id$v=19$m=04096,t=1,p=1", "$argon2id$v=19$m=4096,t=+1,p=1",
          "$argon2id$v=19$m=4096,t=1", "$argon2id$v=19$t=1,m=4096,p=1",
          "$argon2id$v=19$m=4096,t=1,p=1,k=2", "$argon2id$v=19$m=99999999999,t=1,p=1",
          "$argon2id$v=19$m=4294967296,t=1,p=1", "$argon2id$v=19$m=4096,t=0,p=1",
          "$argon2id$v=19$m=4096,t=1,p=0", "$argon2id$v=19$m=4,t=1,p=1",
          "$argon2i$v=19$m=4096,t=1,p=1", "$argon2id$v=19$m=4096,t=1,p=1 ",
          "$argon2id$v=19$m=,t=1,p=1",
          // Bounded: a row must not map gigabytes or take a thread for hours.
          "$argon2id$v=19$m=1048577,t=1,p=1", "$argon2id$v=19$m=4096,t=65,p=1",
          "$argon2id$v=19$m=4096,t=1,p=17", "$argon2id$v=19$m=4000000000,t=1,p=1",
          "$argon2id$v=19$m=8,t=4000000000,p=1"})
        assert_false(with(bad_head, salt, hash));
    assert_false(with(head, salt, hash + "="));  // padding
    assert_false(with(head, salt + "=", hash));
    assert_false(with(head, salt, hash + "$"));                            // a field too many
    assert_false(with(head, salt, hash.substr(0, hash.size() - 1)));       // a byte short
    assert_false(with(head, salt, hash.substr(0, 4)));                     // 3 bytes: too short
    assert_false(with(head, "c2FsdA", hash));                              // "salt": too short
    assert_false(with(head, salt, std::string(hash).replace(3, 1, "*")));  // not the alphabet
    // Unused trailing bits set: another spelling of the same bytes.
    std::string last = hash.substr(hash.size() - 1);
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string twin = hash.substr(0, hash.size() - 1) + alphabet[alphabet.find(last) | 1];
    assert_false(with(head, salt, twin));
    assert_false(with(head, salt, std::string(hash.size() % 4 == 1 ? 0 : 1, 'A') + hash));
    assert_false(verify_password("Passw0rd!", good + "x"));
    assert_false(verify_password("Passw0rd!", std::string(good).insert(20, 1, '\0')));
}

// Argon2's memory comes from mmap for each hash and goes back after: none
// of it stays in malloc's arenas (with libargon2's malloc, the second hash
// of 19 MiB took it from the arena, which then held it for good).
void argon2_memory_is_not_kept(void**) {
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 3; ++i) {
        std::string h = hash_password("Passw0rd!");
        assert_true(verify_password("Passw0rd!", h));
    }
    struct mallinfo2 after = mallinfo2();
    assert_true(after.arena < before.arena + 1024 * 1024);
    assert_true(after.hblkhd < before.hblkhd + 1024 * 1024);
    assert_true(after.uordblks < before.uordblks + 256 * 1024);
}

void weaker_hashes_still_verify(void**) {
    std::string weak = hash_password("Passw0rd!", Argon2Params{4096, 1, 1});
    assert_true(verify_password("Passw0rd!", weak));
}

void generated_passwords_meet_r9(void**) {
    for (int i = 0; i < 2000; ++i) {
        std::string pw = generate_initial_password();
        assert_int_equal(pw.size(), 12);
        assert_int_equal(static_cast<int>(check_password(pw)),
                         static_cast<int>(RuleViolation::none));
        assert_true(pw.find_first_of("0O1lIo") == std::string::npos);
    }
    assert_int_equal(generate_initial_password(8).size(), 8);
    assert_int_equal(check_password(generate_initial_password(8)), RuleViolation::none);
}

void user_id_rule_r8(void**) {
    assert_int_equal(check_user_id("abc12"), RuleViolation::too_short);
    assert_int_equal(check_user_id("abc123"), RuleViolation::none);
    assert_int_equal(check_user_id("abcdef123456"), RuleViolation::none);
    assert_int_equal(check_user_id("abcdef1234567"), RuleViolation::too_long);
    assert_int_equal(check_user_id("abcdefgh"), RuleViolation::missing_digit);
    assert_int_equal(check_user_id("12345678"), RuleViolation::missing_letter);
    assert_int_equal(check_user_id("abc_1234"), RuleViolation::bad_character);
    assert_int_equal(check_user_id("ABC123"), RuleViolation::none);
}

void password_rule_r9(void**) {
    assert_int_equal(check_password("Ab1$efg"), RuleViolation::too_short);
    assert_int_equal(check_password("Ab1$efgh"), RuleViolation::none);
    assert_int_equal(check_password("Ab1$efghijkl"), RuleViolation::none);
    assert_int_equal(check_password("Ab1$efghijklm"), RuleViolation::too_long);
    assert_int_equal(check_password("ab1$efgh"), RuleViolation::missing_upper);
    assert_int_equal(check_password("AB1$EFGH"), RuleViolation::missing_lower);
    assert_int_equal(check_password("Abc$efgh"), RuleViolation::missing_digit);
    assert_int_equal(check_password("Ab1defgh"), RuleViolation::missing_symbol);
    assert_int_equal(check_password("Ab1$ef h"), RuleViolation::bad_character);
    assert_int_equal(check_password("Ab1$efgé"), RuleViolation::bad_character);
}

// The default PCRE2 patterns decide exactly as the built-in checks.
void default_patterns_agree(void**) {
    PatternRule ids(kDefaultUserIdRule), pws(kDefaultPasswordRule);
    const char* id_samples[] = {"abc12",    "abc123", "abcdef123456", "abcdef1234567",
                                "abcdefgh", "123456", "abc_1234",     "A1B2C3"};
    for (const char* s : id_samples)
        assert_int_equal(!ids.first_failure(s).has_value(),
                         check_user_id(s) == RuleViolation::none);
    const char* pw_samples[] = {"Ab1$efg",  "Ab1$efgh", "Ab1$efghijkl", "Ab1$efghijklm",
                                "ab1$efgh", "AB1$EFGH", "Abc$efgh",     "Ab1defgh",
                                "Ab1$ef h", "Zz9~Zz9~"};
    for (const char* s : pw_samples)
        assert_int_equal(!pws.first_failure(s).has_value(),
                         check_password(s) == RuleViolation::none);
    assert_int_equal(*pws.first_failure("ab1$efgh"), 1);  // the [A-Z] pattern
    // `$` would match before a final newline; the defaults end in \z (12.7).
    assert_true(ids.first_failure("alice001\n").has_value());
    assert_true(pws.first_failure("Ab1$efgh\n").has_value());
    assert_true(has_control_character("alice001\n"));
    assert_true(has_control_character(std::string("a\0b", 3)));
    assert_true(has_control_character("a\x7f"));
    assert_false(has_control_character("Ab1$efgh~"));
}

void bad_pattern_is_reported(void**) {
    bool thrown = false;
    try {
        PatternRule r({"[a-z"});
    } catch (const std::runtime_error& e) {
        thrown = std::strstr(e.what(), "[a-z") != nullptr;
    }
    assert_true(thrown);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_and_verify),
        cmocka_unit_test(verifies_debian_hash),
        cmocka_unit_test(debian_tool_recomputes_our_hash),
        cmocka_unit_test(rejects_other_and_malformed_hashes),
        cmocka_unit_test(weaker_hashes_still_verify),
        cmocka_unit_test(libargon2_reads_ours_and_we_read_libargon2s),
        cmocka_unit_test(rejects_malformed_phc_strings),
        cmocka_unit_test(argon2_memory_is_not_kept),
        cmocka_unit_test(generated_passwords_meet_r9),
        cmocka_unit_test(user_id_rule_r8),
        cmocka_unit_test(password_rule_r9),
        cmocka_unit_test(default_patterns_agree),
        cmocka_unit_test(bad_pattern_is_reported),
    };
    return cmocka_run_group_tests_name("password", tests, nullptr, nullptr);
}
