// Unit tests for the pure parts of the flows and sessions: base64url, HMAC
// comparison, AES-256-GCM sealing, codes, flow state and cookies, CSRF,
// sessions, form and cookie parsing, and the revocation feed's reading of
// events.

#include <map>
#include <optional>
#include <set>
#include <string>

#include "core/app/flow.hpp"
#include "core/app/revocation_feed.hpp"
#include "core/app/session.hpp"
#include "core/base/encoding.hpp"
#include "core/base/secrets.hpp"
#include "core/web/form.hpp"

// cmocka last: its macros (fail, ...) clash with the C++ library.
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;

static const std::string kSecret(40, 's');

static void base64url_round_trips(void **) {
    for (size_t n = 0; n < 40; ++n) {
        std::string raw = random_bytes(n), back;
        std::string text = base64url_encode(raw);
        assert_true(text.find_first_of("+/=") == std::string::npos);
        assert_true(base64url_decode(text, &back));
        assert_true(back == raw);
    }
    std::string out;
    assert_false(base64url_decode("a", &out));     // impossible length
    assert_false(base64url_decode("ab+c", &out));  // not the url alphabet
    assert_false(base64url_decode("ab=c", &out));
    assert_false(base64url_decode("AB", &out));  // non-zero leftover bits
}

static void hmac_known_answer(void **) {
    // RFC 4231, test case 2; twice, and with another key between, for the
    // per-thread keyed context.
    const char *expect = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    assert_string_equal(hex_encode(hmac_sha256("Jefe", "what do ya want for nothing?")).c_str(),
                        expect);
    assert_false(hex_encode(hmac_sha256("Jeff", "what do ya want for nothing?")) == expect);
    assert_string_equal(hex_encode(hmac_sha256("Jefe", "what do ya want for nothing?")).c_str(),
                        expect);
}

static void sealing_needs_the_key(void **) {
    std::string key = random_bytes(32), other = random_bytes(32), out;
    std::string box = seal(key, "Passw0rd!");
    assert_true(box.find("Passw0rd!") == std::string::npos);
    assert_true(unseal(key, box, &out));
    assert_string_equal(out.c_str(), "Passw0rd!");
    assert_false(unseal(other, box, &out));
    std::string tampered = box;
    tampered[14] ^= 1;
    assert_false(unseal(key, tampered, &out));
    assert_false(unseal(key, box.substr(0, 10), &out));
    assert_true(seal(key, "x") != seal(key, "x"));  // a fresh nonce each time
}

// The .p12 keys derived ahead: readable only with the cookie's key, and only
// for the sealed password they were derived from (a flow whose password was
// replaced since, the registration's initial one, gets nothing).
static void p12_keys_are_sealed_and_bound(void **) {
    std::string key = random_bytes(32), other = random_bytes(32);
    std::string sealed = seal(key, "Passw0rd!"), resealed = seal(key, "Passw0rd!");
    P12Keys k;
    k.iterations = 100000;
    k.bag_salt = random_bytes(16);
    k.bag_key = random_bytes(32);
    k.mac_salt = random_bytes(16);
    k.mac_key = random_bytes(32);
    std::string box = seal_p12_keys(key, sealed, k);
    assert_true(box.find(base64url_encode(k.bag_key)) == std::string::npos);
    std::optional<P12Keys> back = unseal_p12_keys(key, sealed, box);
    assert_true(back.has_value());
    assert_int_equal(back->iterations, 100000);
    assert_true(back->bag_salt == k.bag_salt && back->bag_key == k.bag_key);
    assert_true(back->mac_salt == k.mac_salt && back->mac_key == k.mac_key);
    assert_false(unseal_p12_keys(other, sealed, box).has_value());
    assert_false(unseal_p12_keys(key, resealed, box).has_value());
    std::string tampered = box;
    tampered[20] ^= 1;
    assert_false(unseal_p12_keys(key, sealed, tampered).has_value());
    assert_false(unseal_p12_keys(key, sealed, seal(key, "p12keys1\n1\nx")).has_value());
    k.iterations = 0;
    assert_false(unseal_p12_keys(key, sealed, seal_p12_keys(key, sealed, k)).has_value());
    assert_true(flow_p12_keys_key("abc") == "cg:flow:abc:p12keys");
}

static void digits_are_digits_and_vary(void **) {
    std::set<std::string> seen;
    int counts[10] = {0};
    for (int i = 0; i < 2000; ++i) {
        std::string code = random_digits(6);
        assert_int_equal(code.size(), 6);
        for (char ch : code) {
            assert_true(ch >= '0' && ch <= '9');
            counts[ch - '0']++;
        }
        seen.insert(code);
    }
    assert_true(seen.size() > 1990);
    for (int c : counts) assert_true(c > 900 && c < 1500);  // 1200 expected each
}

static void flow_state_round_trips(void **) {
    Flow f;
    f.id = base64url_encode(random_bytes(16));
    f.kind = FlowKind::register_master;
    f.step = FlowStep::issued;
    f.user_id = "alice001";
    f.lang = Language::en;
    f.created_at = 1795698000;
    f.expires_at = 1795701600;
    f.code_hash = code_hash(kSecret, f.id, "123456");
    f.sealed_password = seal(random_bytes(32), "pw\n|with lines");
    f.mail = "a@b.example";
    f.serial = "4A1F";
    f.file_name = "alice00120261126120000.p12";
    f.download_token = "tok";
    f.not_before = 1;
    f.not_after = 2;
    Flow g;
    assert_true(parse_flow(serialize_flow(f), &g));
    assert_true(g.id == f.id && g.kind == f.kind && g.step == f.step && g.user_id == f.user_id);
    assert_true(g.lang == Language::en && g.code_hash == f.code_hash);
    assert_true(g.sealed_password == f.sealed_password && g.mail == f.mail);
    assert_true(g.serial == f.serial && g.file_name == f.file_name && g.not_after == 2);
    assert_false(parse_flow("garbage", &g));
    assert_false(parse_flow("certgate-flow 1\nid !!!\n", &g));
}

static void flow_cookies_are_signed_and_expire(void **) {
    FlowCookie c = new_flow_cookie(2000);
    std::string value = encode_flow_cookie(kSecret, c);
    auto back = decode_flow_cookie(kSecret, value, 1000);
    assert_true(back.has_value());
    assert_true(back->id == c.id && back->key == c.key && back->expires_at == 2000);
    assert_false(decode_flow_cookie(kSecret, value, 2000).has_value());  // expired
    assert_false(decode_flow_cookie(std::string(40, 't'), value, 1000).has_value());
    std::string forged = value;
    forged[3] = forged[3] == 'A' ? 'B' : 'A';
    assert_false(decode_flow_cookie(kSecret, forged, 1000).has_value());
    assert_false(decode_flow_cookie(kSecret, "", 1000).has_value());
    assert_false(decode_flow_cookie(kSecret, "a.b", 1000).has_value());
}

static void codes_are_bound_to_their_flow(void **) {
    assert_true(code_hash(kSecret, "flowA", "123456") == code_hash(kSecret, "flowA", "123456"));
    assert_false(code_hash(kSecret, "flowA", "123456") == code_hash(kSecret, "flowB", "123456"));
    assert_false(code_hash(kSecret, "flowA", "123456") == code_hash(kSecret, "flowA", "123457"));
}

static void csrf_tokens(void **) {
    std::string seed = new_csrf_seed();
    assert_int_equal(seed.size(), 24);
    std::string token = csrf_token(kSecret, seed);
    assert_true(csrf_valid(kSecret, seed, token));
    assert_false(csrf_valid(kSecret, new_csrf_seed(), token));
    assert_false(csrf_valid(kSecret, seed, ""));
    assert_false(csrf_valid(kSecret, "", token));
    assert_false(csrf_valid(std::string(40, 'x'), seed, token));
}

static void sessions(void **) {
    User u;
    u.id = "master01";
    u.org = "ORG|001";
    u.role = Role::master;
    Session s = new_session(u, "4A1F", 5000, 1000);
    s.epoch = 4242;
    std::string value = encode_session(kSecret, s);
    auto back = decode_session(kSecret, value);
    assert_true(back.has_value());
    assert_true(back->id == s.id && back->user_id == "master01" && back->org == "ORG|001");
    assert_true(back->role == Role::master && back->serial == "4A1F");
    assert_true(back->started_at == 1000 && back->cert_not_after == 5000 && back->epoch == 4242);

    assert_int_equal(static_cast<int>(check_session(s, "4A1F", 1100, 1200, 28800)),
                     static_cast<int>(SessionCheck::ok));
    assert_int_equal(static_cast<int>(check_session(s, "BEEF", 1100, 1200, 28800)),
                     static_cast<int>(SessionCheck::wrong_certificate));
    assert_int_equal(static_cast<int>(check_session(s, "", 1100, 1200, 28800)),
                     static_cast<int>(SessionCheck::wrong_certificate));
    assert_int_equal(static_cast<int>(check_session(s, "4A1F", 2300, 1200, 28800)),
                     static_cast<int>(SessionCheck::expired));  // idle
    s.last_seen = 29000;
    assert_int_equal(static_cast<int>(check_session(s, "4A1F", 29900, 1200, 28800)),
                     static_cast<int>(SessionCheck::expired));  // absolute
    assert_false(decode_session(std::string(40, 'x'), value).has_value());
    std::string forged = value;
    forged[5] = forged[5] == 'A' ? 'B' : 'A';
    assert_false(decode_session(kSecret, forged).has_value());
    assert_true(session_needs_refresh(*back, 1000 + 120, 1200));
    assert_false(session_needs_refresh(*back, 1000 + 10, 1200));
}

// session_recheck_at: before it, check_session and session_needs_refresh
// answer as they do at the session's start; at it, one of them does not.
static void session_recheck_time(void **) {
    for (long idle : {1L, 5L, 30L, 1200L, 7200L}) {
        for (long absolute : {3L, 40L, 600L, 86400L}) {
            Session s;
            s.serial = "0A";
            s.started_at = 1000;
            s.last_seen = 1000 + (absolute > 40 ? 17 : 0);
            int64_t at = session_recheck_at(s, idle, absolute);
            assert_true(at > s.last_seen);
            auto answer = [&](int64_t now) {
                return std::make_pair(check_session(s, "0A", now, idle, absolute),
                                      session_needs_refresh(s, now, idle));
            };
            auto first = answer(s.last_seen);
            assert_int_equal(static_cast<int>(first.first), static_cast<int>(SessionCheck::ok));
            assert_false(first.second);
            for (int64_t now = s.last_seen; now < at; ++now) assert_true(answer(now) == first);
            assert_false(answer(at) == first);
        }
    }
}

static void forms_and_cookies(void **) {
    std::map<std::string, std::string> f;
    assert_true(parse_form("user_id=abc123&password=P%40ss+w0rd%21&empty=", &f));
    assert_string_equal(f["user_id"].c_str(), "abc123");
    assert_string_equal(f["password"].c_str(), "P@ss w0rd!");
    assert_string_equal(f["empty"].c_str(), "");
    assert_false(parse_form("a=1&a=2", &f));  // repeated
    assert_false(parse_form("a=%zz", &f));    // bad escape
    assert_false(parse_form("a=%4", &f));     // cut escape
    assert_false(parse_form("=x", &f));       // no name
    assert_true(parse_form("", &f) && f.empty());
    std::string many;
    for (int i = 0; i < 40; ++i) many += "f" + std::to_string(i) + "=1&";
    assert_false(parse_form(many, &f));  // too many fields
    assert_false(parse_form("a=" + std::string(5000, 'x'), &f));

    assert_string_equal(find_cookie("a=1; __Host-x=v; b=2", "__Host-x").c_str(), "v");
    assert_string_equal(find_cookie("a=1;b=\"q\"", "b").c_str(), "q");
    assert_string_equal(find_cookie("ab=1", "a").c_str(), "");
    assert_string_equal(url_encode("/app/x?m=1").c_str(), "%2Fapp%2Fx%3Fm%3D1");
}

static void revocation_feed_reads_events(void **) {
    RevocationUpdate u;
    Event e;
    e.kind = event_kind::kCertRevoked;
    e.subject = "4A1F";
    e.at = 77;
    assert_true(interpret_event(e, &u));
    e.id = 99;
    assert_true(interpret_event(e, &u));
    assert_true(u.kind == RevocationUpdate::Kind::serial_revoked && u.key == "4A1F" && u.at == 77);
    assert_int_equal(u.event_id, 99);
    e.kind = event_kind::kUserReset;
    e.subject = "alice001";
    assert_true(interpret_event(e, &u) && u.kind == RevocationUpdate::Kind::user_invalidated);
    e.kind = event_kind::kUserDisabled;
    assert_true(interpret_event(e, &u) && u.kind == RevocationUpdate::Kind::user_blocked);
    e.kind = event_kind::kUserUnblocked;
    assert_true(interpret_event(e, &u) && u.kind == RevocationUpdate::Kind::user_unblocked);
    e.kind = event_kind::kLogout;
    e.detail = "session=abcDEF client=127.0.0.1";
    assert_true(interpret_event(e, &u));
    assert_true(u.kind == RevocationUpdate::Kind::session_ended && u.key == "abcDEF");
    e.detail = "no session here";
    assert_false(interpret_event(e, &u));
    e.kind = event_kind::kAuthFailed;
    assert_false(interpret_event(e, &u));
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64url_round_trips),
        cmocka_unit_test(hmac_known_answer),
        cmocka_unit_test(sealing_needs_the_key),
        cmocka_unit_test(p12_keys_are_sealed_and_bound),
        cmocka_unit_test(digits_are_digits_and_vary),
        cmocka_unit_test(flow_state_round_trips),
        cmocka_unit_test(flow_cookies_are_signed_and_expire),
        cmocka_unit_test(codes_are_bound_to_their_flow),
        cmocka_unit_test(csrf_tokens),
        cmocka_unit_test(sessions),
        cmocka_unit_test(session_recheck_time),
        cmocka_unit_test(forms_and_cookies),
        cmocka_unit_test(revocation_feed_reads_events),
    };
    return cmocka_run_group_tests_name("flow", tests, nullptr, nullptr);
}
