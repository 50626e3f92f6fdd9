// The Policy: built from the settings, lengths in characters, the rule
// directives' options, and the pages' words that state its numbers.
#include <cstring>
#include <string>

#include "core/policy/policy.hpp"
#include "core/web/pages.hpp"

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

bool contains(const std::string &text, const char *part) {
    return text.find(part) != std::string::npos;
}

void counts_characters(void **) {
    assert_int_equal(utf8_length(""), 0);
    assert_int_equal(utf8_length("tanaka01"), 8);
    assert_int_equal(utf8_length("ｔａｎａｋａ０１"), 8);  // 24 bytes
    assert_int_equal(utf8_length("日本語"), 3);
    assert_int_equal(utf8_length("\xff\xfe"), 2);   // malformed bytes count one each
    assert_int_equal(utf8_length("a\xe3\x81"), 3);  // a cut-off sequence too
}

void finds_full_width(void **) {
    assert_true(has_full_width("ｔａｎａｋａ０１"));
    assert_true(has_full_width("tanaka０1"));
    assert_true(has_full_width("Pass！word"));
    assert_true(
        has_full_width("a\xe3\x80\x80"
                       "b"));  // the ideographic space
    assert_false(has_full_width("tanaka01"));
    assert_false(has_full_width("たなか01"));  // not a full-width form: another rule refuses it
}

void builtin_rules_name_full_width_and_count_characters(void **) {
    assert_int_equal(check_user_id("ｔａｎａｋａ０１"), RuleViolation::full_width);
    assert_int_equal(check_password("Ｐａｓｓｗ０ｒｄ！"), RuleViolation::full_width);
    // 4 characters, 12 bytes: too short, not "too long".
    assert_int_equal(check_user_id("たなか1"), RuleViolation::too_short);
    assert_int_equal(check_user_id("たなか1234"), RuleViolation::bad_character);
}

void defaults_are_r1_to_r10(void **) {
    const Policy p{Settings{}};
    assert_int_equal(p.validity.certificate_days, 366);
    assert_int_equal(p.validity.renew_before_days, 30);
    assert_true(p.user_id.builtin);
    assert_int_equal(p.user_id.min_chars, 6);
    assert_int_equal(p.user_id.max_chars, 12);
    assert_int_equal(p.user_id.maxlength(), 13);
    assert_int_equal(p.password.min_chars, 8);
    assert_int_equal(p.password.max_chars, 12);
    assert_int_equal(p.lockout.failures, 6);
    assert_int_equal(p.lockout.lock_s, 3600);
    assert_int_equal(p.lockout.locks, 3);
    assert_int_equal(p.codes.digits, 6);
    assert_int_equal(p.codes.lifetime_minutes(), 30);
    assert_int_equal(p.sessions.idle_s, 20 * 60);
}

void settings_reach_the_policy(void **) {
    Settings s;
    s.renew_before_days = 45;
    s.lockout_failures = 4;
    s.lockout_time_s = 120;
    s.lockout_locks = 2;
    s.code_digits = 8;
    s.code_lifetime_s = 45 * 60;
    s.password_rule_args = {"^[\\x21-\\x7e]{10,16}\\z", "[A-Z]"};
    const Policy p(s);
    assert_int_equal(p.validity.renew_before_days, 45);
    assert_int_equal(p.lockout.failures, 4);
    assert_int_equal(p.codes.digits, 8);
    assert_false(p.password.builtin);
    assert_int_equal(p.password.min_chars, 10);  // from the pattern's {10,16}
    assert_int_equal(p.password.max_chars, 16);
    assert_int_equal(p.password.maxlength(), 17);
    assert_true(p.user_id.builtin);  // not configured: R8
}

void rule_options_parse(void **) {
    CredentialRule r = parse_credential_rule({"^[a-z0-9]+\\z", "[0-9]", "min=5", "max=10",
                                              "description=5～10文字", "description_en=5 to 10"});
    assert_int_equal(r.patterns.size(), 2);
    assert_int_equal(r.min_chars, 5);
    assert_int_equal(r.max_chars, 10);
    assert_string_equal(r.description(Language::ja).c_str(), "5～10文字");
    assert_string_equal(r.description(Language::en).c_str(), "5 to 10");

    // min/max given win over the pattern's; one description serves both.
    r = parse_credential_rule({"^.{8,12}\\z", "max=20", "description=説明"});
    assert_int_equal(r.min_chars, 8);
    assert_int_equal(r.max_chars, 20);
    assert_string_equal(r.description(Language::en).c_str(), "説明");

    // Old configurations: patterns only; an escaped brace is no length.
    r = parse_credential_rule({"^a\\{1,2\\}b", "[0-9]"});
    assert_int_equal(r.min_chars, 1);
    assert_int_equal(r.max_chars, 64);
    assert_true(r.description(Language::ja).empty());
}

void bad_rule_options_are_refused(void **) {
    const std::vector<std::vector<std::string>> bad = {
        {},                        // no pattern
        {"min=3"},                 // options only
        {"^a", "min=x"},           // not a number
        {"^a", "min=9", "max=8"},  // min above max
        {"^a", "max=0"},           // nothing fits
        {"^a", "min=3", "[0-9]"},  // a pattern after an option
        {"^a", "min=3", "min=4"},  // twice
    };
    for (const auto &args : bad) {
        bool thrown = false;
        try {
            parse_credential_rule(args);
        } catch (const RuleError &) {
            thrown = true;
        }
        assert_true(thrown);
    }
}

void checks_in_order(void **) {
    Settings s;
    s.userid_rule_args = {"^[A-Za-z0-9]+\\z", "min=5", "max=10"};
    const Policy p(s);
    assert_int_equal(p.check_user_id("ｔａｎａｋａ０１", false), RuleViolation::full_width);
    assert_int_equal(p.check_user_id("abcd", false), RuleViolation::too_short);
    assert_int_equal(p.check_user_id("abcdefghijk", true), RuleViolation::too_long);
    assert_int_equal(p.check_user_id("abc_de", false), RuleViolation::pattern);
    assert_int_equal(p.check_user_id("abcde", true), RuleViolation::none);
    assert_int_equal(p.check_user_id("abc\nde", true), RuleViolation::bad_character);
    // Default rule: the named R9 violations, and 13 characters is too long.
    assert_int_equal(p.check_password("Ab1$efghijklm", false), RuleViolation::too_long);
    assert_int_equal(p.check_password("Ab1defgh", false), RuleViolation::missing_symbol);
    assert_int_equal(p.check_password("Ab1$efgh", true), RuleViolation::none);
    // The patterns refused what the named checks let through: still refused.
    assert_int_equal(p.check_password("Ab1$efgh", false), RuleViolation::pattern);
}

void initial_passwords_fit_the_rule(void **) {
    assert_int_equal(Policy{Settings{}}.initial_password_length(), 12);
    Settings s;
    s.password_rule_args = {"^[\\x21-\\x7e]{14,20}\\z"};
    const Policy p(s);
    assert_int_equal(p.initial_password_length(), 14);
    const std::string pw = generate_initial_password(p.initial_password_length());
    assert_int_equal(pw.size(), 14);
    assert_int_equal(p.check_password(pw, true), RuleViolation::none);
    s.password_rule_args = {"^.{8,10}\\z"};
    assert_int_equal(Policy(s).initial_password_length(), 10);
}

void durations_read_as_a_clerk_reads_them(void **) {
    assert_string_equal(Policy::duration_text(3600, Language::ja).c_str(), "60分");
    assert_string_equal(Policy::duration_text(120, Language::en).c_str(), "2 minutes");
    assert_string_equal(Policy::duration_text(60, Language::en).c_str(), "1 minute");
    assert_string_equal(Policy::duration_text(90, Language::ja).c_str(), "90秒");
}

void default_words_keep_the_manuals_numbers(void **) {
    const Pages pages{Settings{}};
    const auto &ja = pages.words(Language::ja);
    assert_string_equal(
        ja.at("lock_note").c_str(),
        "パスワードを連続して6回間違えた場合は、60分間ログイン不可（ロック）になります。"
        "ロックを3回繰り返した場合はログイン不可（閉塞）となります。");
    assert_true(contains(ja.at("user_id_rule"), "6～12桁で入力します。"));
    assert_true(contains(ja.at("password_rule"), "8～12桁で入力します。"));
    assert_true(contains(ja.at("already_issued_note"), "30日前"));
    assert_true(contains(ja.at("code_rule"), "半角数字6桁"));
    assert_true(contains(ja.at("code_rule"), "有効期限30分"));
}

void configured_words_state_the_configuration(void **) {
    Settings s;
    s.renew_before_days = 45;
    s.lockout_failures = 4;
    s.lockout_time_s = 120;
    s.lockout_locks = 2;
    s.code_digits = 8;
    s.code_lifetime_s = 45 * 60;
    s.userid_rule_args = {"^[a-z0-9]{5,10}\\z", "description=英小文字と数字",
                          "description_en=lower case"};
    s.password_rule_args = {"^[\\x21-\\x7e]{10,16}\\z"};
    const Pages pages(s);
    const auto &ja = pages.words(Language::ja);
    assert_string_equal(
        ja.at("lock_note").c_str(),
        "パスワードを連続して4回間違えた場合は、2分間ログイン不可（ロック）になります。"
        "ロックを2回繰り返した場合はログイン不可（閉塞）となります。");
    assert_true(contains(ja.at("already_issued_note"), "45日前"));
    assert_true(contains(ja.at("code_rule"), "半角数字8桁"));
    assert_true(contains(ja.at("code_rule"), "有効期限45分"));
    assert_string_equal(ja.at("user_id_rule").c_str(), "英小文字と数字");
    assert_true(contains(ja.at("password_rule"), "10～16文字"));
    assert_string_equal(pages.words(Language::en).at("user_id_rule").c_str(), "lower case");
    assert_true(contains(pages.words(Language::en).at("lock_note"), "for 2 minutes"));

    // The refusals name the configured numbers.
    const std::string long_pw =
        pages.rule_message(false, RuleViolation::too_long, "Passw0rd!x1234567", Language::ja);
    assert_true(contains(long_pw, "16文字以内"));
    assert_true(contains(long_pw, "17文字"));
    assert_string_equal(
        pages.rule_message(true, RuleViolation::full_width, "ｔａｎａｋａ０１", Language::ja)
            .c_str(),
        "全角文字は使用できません。半角で入力してください。");
    assert_true(contains(pages.rule_message(true, RuleViolation::pattern, "x", Language::ja),
                         "英小文字と数字"));

    // maxlength in the pages: max + 1.
    PageData data{PageData::type::object};
    data.set("csrf_token", "t");
    const std::string page = pages.render("login", Language::ja, data, "/certgate/");
    assert_true(contains(
        page, "id=\"user_id\" name=\"user_id\" type=\"text\" value=\"\" maxlength=\"11\""));
    assert_true(contains(page, "type=\"password\" maxlength=\"17\""));
    assert_false(contains(page, "maxlength=\"12\""));
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_characters),
        cmocka_unit_test(finds_full_width),
        cmocka_unit_test(builtin_rules_name_full_width_and_count_characters),
        cmocka_unit_test(defaults_are_r1_to_r10),
        cmocka_unit_test(settings_reach_the_policy),
        cmocka_unit_test(rule_options_parse),
        cmocka_unit_test(bad_rule_options_are_refused),
        cmocka_unit_test(checks_in_order),
        cmocka_unit_test(initial_passwords_fit_the_rule),
        cmocka_unit_test(durations_read_as_a_clerk_reads_them),
        cmocka_unit_test(default_words_keep_the_manuals_numbers),
        cmocka_unit_test(configured_words_state_the_configuration),
    };
    return cmocka_run_group_tests_name("policy", tests, nullptr, nullptr);
}
