// authenticate() (R10, R2, R22) over fakes of its ports: the counters in a
// map, the clock fixed, the store a real SQLite file that can be switched off.
#include <string>
#include <vector>

#include "core/app/authentication.hpp"
#include "core/app/outbox.hpp"
#include "core/policy/password.hpp"
#include "fakes.hpp"

// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;
using namespace certgate::fakes;

namespace {

const char* const kPassword = "Secret#2026";
const char* const kWrong = "Wrong#20260";

// One hash for every user: argon2id at production cost is slow.
const std::string& password_hash() {
    static const std::string hash = hash_password(kPassword);
    return hash;
}

struct World {
    FakeClock clock;
    FakeStore store{clock};
    FakeKv kv;
    Settings settings;

    World() {
        settings.mail = "smtp://127.0.0.1:1";  // lock mails are queued, never sent here
        settings.mail_from = "noreply@bank.example";
        store.add_org({"ORG1", "Org One", 0}, "op");
    }

    void add_user(const std::string& id, UserState state = UserState::active,
                  Role role = Role::general) {
        User u;
        u.id = id;
        u.org = "ORG1";
        u.role = role;
        u.mail = id + "@example.com";
        u.password_hash = password_hash();
        u.state = state;
        store.add_user(u, "op", "");
    }

    AuthResult auth(const std::string& id, const std::string& password,
                    AuthPurpose purpose = AuthPurpose::login) {
        AuthRequest req;
        req.user_id = id;
        req.password = password;
        req.purpose = purpose;
        req.now = clock.now();
        req.client = "192.0.2.1";
        return authenticate(settings, store, kv, req);
    }

    int events_of(const char* kind) {
        int n = 0;
        for (const Event& e : store.inner().events_since(0, 100000))
            if (e.kind == kind) ++n;
        return n;
    }
};

const char* to_string(AuthStatus s) {
    switch (s) {
        case AuthStatus::ok:
            return "ok";
        case AuthStatus::bad_credentials:
            return "bad_credentials";
        case AuthStatus::locked:
            return "locked";
        case AuthStatus::blocked:
            return "blocked";
        case AuthStatus::already_issued:
            return "already_issued";
        case AuthStatus::initial_password_expired:
            return "initial_password_expired";
        case AuthStatus::unavailable:
            return "unavailable";
    }
    return "?";
}

void assert_status(const AuthResult& r, AuthStatus want) {
    if (r.status != want)
        fail_msg("status %s, want %s (%s)", to_string(r.status), to_string(want), r.error.c_str());
}

// What a client can see of an answer: it must not tell real IDs from others.
std::string visible(const AuthResult& r) {
    return std::string(to_string(r.status)) + " until=" + std::to_string(r.locked_until) +
           " initial=" + std::to_string(r.initial_password) +
           " renewal=" + std::to_string(r.renewal_opens) +
           " not_after=" + std::to_string(r.cert_not_after) +
           " user=" + std::to_string(r.user.has_value());
}

void right_password_passes(void**) {
    World w;
    w.add_user("general01");
    AuthResult r = w.auth("general01", kPassword);
    assert_status(r, AuthStatus::ok);
    assert_true(r.user.has_value());
    assert_string_equal(r.user->id.c_str(), "general01");
    assert_false(r.initial_password);
    assert_int_equal(w.events_of(event_kind::kLogin), 1);
}

void wrong_password_is_counted_once(void**) {
    World w;
    w.add_user("general01");
    AuthResult r = w.auth("general01", kWrong);
    assert_status(r, AuthStatus::bad_credentials);
    assert_false(r.user.has_value());
    assert_int_equal(r.locked_until, 0);
    assert_int_equal(w.store.auth_streak("general01").failures, 1);
    assert_int_equal(w.store.find_user("general01")->failure_streak, 1);
    assert_int_equal(w.events_of(event_kind::kAuthFailed), 1);
    assert_int_equal(w.events_of(event_kind::kLogin), 0);
}

// R10: the sixth wrong password locks, not the fifth; the lock refuses even
// the right password until locked_until, then lifts by itself.
void sixth_failure_locks_until_the_lock_time(void**) {
    World w;
    w.add_user("general01");
    for (int i = 1; i <= 5; ++i)
        assert_status(w.auth("general01", kWrong), AuthStatus::bad_credentials);
    assert_false(w.store.find_user("general01")->locked_at(w.clock.now()));
    AuthResult r = w.auth("general01", kWrong);
    assert_status(r, AuthStatus::locked);
    const int64_t until = w.clock.now() + 3600;
    assert_true(r.locked_until == until);
    auto u = w.store.find_user("general01");
    assert_true(u->locked_until == until);
    assert_int_equal(u->lock_count, 1);
    assert_false(u->blocked);
    assert_int_equal(w.events_of(event_kind::kUserLocked), 1);

    w.clock.advance(3599);
    r = w.auth("general01", kPassword);
    assert_status(r, AuthStatus::locked);
    assert_true(r.locked_until == until);
    assert_int_equal(w.events_of(event_kind::kLogin), 0);
    w.clock.advance(1);
    assert_status(w.auth("general01", kPassword), AuthStatus::ok);
}

void a_success_ends_the_streak(void**) {
    World w;
    w.add_user("general01");
    for (int i = 0; i < 5; ++i) w.auth("general01", kWrong);
    assert_status(w.auth("general01", kPassword), AuthStatus::ok);
    for (int i = 0; i < 5; ++i)
        assert_status(w.auth("general01", kWrong), AuthStatus::bad_credentials);
    assert_int_equal(w.store.find_user("general01")->lock_count, 0);
}

// R10: the third lock without a success in between blocks (閉塞), and the
// block outlasts any lock time. Each lock queues its mail; the last says blocked.
void third_lock_blocks(void**) {
    World w;
    w.add_user("general01");
    for (int lock = 1; lock <= 3; ++lock) {
        AuthResult r;
        for (int i = 0; i < 6; ++i) r = w.auth("general01", kWrong);
        assert_status(r, lock < 3 ? AuthStatus::locked : AuthStatus::blocked);
        assert_int_equal(w.store.find_user("general01")->lock_count, lock);
        w.clock.advance(3600);
    }
    assert_true(w.store.find_user("general01")->blocked);
    assert_int_equal(w.events_of(event_kind::kUserBlocked), 1);
    w.clock.advance(365 * 86400);
    assert_status(w.auth("general01", kPassword), AuthStatus::blocked);

    auto mails = w.store.list_mails(std::nullopt);
    assert_int_equal(mails.size(), 3);
    for (const Mail& m : mails) assert_string_equal(m.to.c_str(), "general01@example.com");
    assert_true(mails[0].subject == mails[1].subject);
    assert_true(mails[2].subject != mails[0].subject);

    // The mails go out through the mailer port.
    FakeMailer relay;
    OutboxResult sent = deliver_outbox(w.store, relay, w.clock.now(), 10);
    assert_int_equal(sent.sent, 3);
    assert_int_equal(relay.sent.size(), 3);
    assert_true(relay.sent[0].message_id.find("@bank.example>") != std::string::npos);
    assert_int_equal(w.store.list_mails(MailState::sent).size(), 3);
}

// R22: an unknown ID answers exactly like a real one through tries, locks
// and the block; a disabled user like an unknown one.
void unknown_id_is_indistinguishable(void**) {
    World w;
    w.add_user("general01");
    w.add_user("disabled1");
    w.store.disable_user("disabled1", "op");
    std::vector<std::string> real, unknown, disabled;
    for (int lock = 1; lock <= 3; ++lock) {
        for (int i = 0; i < 7; ++i) {
            real.push_back(visible(w.auth("general01", kWrong)));
            unknown.push_back(visible(w.auth("nosuch01", kWrong)));
            disabled.push_back(visible(w.auth("disabled1", kPassword)));
        }
        w.clock.advance(3600);
    }
    real.push_back(visible(w.auth("general01", kPassword)));
    unknown.push_back(visible(w.auth("nosuch01", kPassword)));
    disabled.push_back(visible(w.auth("disabled1", kPassword)));
    for (size_t i = 0; i < real.size(); ++i) {
        if (real[i] != unknown[i] || real[i] != disabled[i])
            fail_msg("answer %zu: real %s, unknown %s, disabled %s", i, real[i].c_str(),
                     unknown[i].c_str(), disabled[i].c_str());
    }
    assert_true(real.back().rfind("blocked", 0) == 0);
    // Only the real user gets mail.
    assert_int_equal(w.store.list_mails(std::nullopt).size(), 3);
}

// memcached down: fail closed, and nothing is judged or counted.
void kv_down_is_unavailable_and_counts_nothing(void**) {
    World w;
    w.add_user("general01");
    w.kv.down = true;
    for (int i = 0; i < 10; ++i) {
        assert_status(w.auth("general01", kWrong), AuthStatus::unavailable);
        assert_status(w.auth("general01", kPassword), AuthStatus::unavailable);
    }
    assert_false(w.auth("general01", kPassword).error.empty());
    assert_int_equal(w.store.auth_streak("general01").failures, 0);
    assert_int_equal(w.events_of(event_kind::kAuthFailed), 0);
    assert_int_equal(w.events_of(event_kind::kLogin), 0);
    w.kv.down = false;
    assert_status(w.auth("general01", kPassword), AuthStatus::ok);
}

void store_down_is_unavailable(void**) {
    World w;
    w.add_user("general01");
    w.store.down = true;
    assert_status(w.auth("general01", kPassword), AuthStatus::unavailable);
    assert_status(w.auth("general01", kWrong), AuthStatus::unavailable);
    assert_status(w.auth("nosuch01", kWrong), AuthStatus::unavailable);
    w.store.down = false;
    assert_int_equal(w.events_of(event_kind::kLogin), 0);
    assert_status(w.auth("general01", kPassword), AuthStatus::ok);
}

// A memcached restart loses the reservation counter: it starts again from
// the store's streak, so the attacker gets no fresh six guesses.
void lost_counter_is_reseeded_from_the_store(void**) {
    World w;
    w.add_user("general01");
    for (int i = 0; i < 4; ++i) w.auth("general01", kWrong);
    w.kv.forget_all();
    assert_status(w.auth("general01", kWrong), AuthStatus::bad_credentials);
    const std::string key =
        failure_counter_key("general01", w.store.auth_streak("general01").epoch);
    assert_string_equal(w.kv.data.at(key).c_str(), "5");
    assert_status(w.auth("general01", kWrong), AuthStatus::locked);
}

// Slots are taken before the hash is checked: attempts beyond the limit (in
// flight in parallel) are refused without a check, even with the right password.
void reserved_slots_beyond_the_limit_are_not_checked(void**) {
    World w;
    w.add_user("general01");
    const std::string key =
        failure_counter_key("general01", w.store.auth_streak("general01").epoch);
    w.kv.set(key, "6", 3600);  // six guesses in flight, none judged yet
    AuthResult r = w.auth("general01", kPassword);
    assert_status(r, AuthStatus::locked);
    assert_int_equal(w.events_of(event_kind::kLogin), 0);
    assert_int_equal(w.events_of(event_kind::kAuthFailed), 0);
}

// A judged failure of a streak that ended meanwhile (a success) does not count.
void late_failure_of_an_ended_streak_is_not_counted(void**) {
    World w;
    w.add_user("general01");
    const int64_t old_epoch = w.store.auth_streak("general01").epoch;
    assert_status(w.auth("general01", kPassword), AuthStatus::ok);
    StreakFailure f = record_wrong_password(w.store, LockoutRule::from(w.settings), "general01",
                                            true, old_epoch, w.clock.now(), "late", nullptr);
    assert_false(f.counted);
    assert_int_equal(w.store.auth_streak("general01").failures, 0);
}

// The rule's numbers come from the settings (certgate_lockout 3 10m 2).
void lockout_numbers_follow_the_settings(void**) {
    World w;
    w.settings.lockout_failures = 3;
    w.settings.lockout_time_s = 600;
    w.settings.lockout_locks = 2;
    w.add_user("general01");
    w.auth("general01", kWrong);
    w.auth("general01", kWrong);
    AuthResult r = w.auth("general01", kWrong);
    assert_status(r, AuthStatus::locked);
    assert_true(r.locked_until == w.clock.now() + 600);
    w.clock.advance(600);
    for (int i = 0; i < 3; ++i) r = w.auth("general01", kWrong);
    assert_status(r, AuthStatus::blocked);
}

// An initial password is good for 30 days; then it no longer logs in.
void initial_password_expires(void**) {
    World w;
    w.add_user("general02", UserState::must_register);
    AuthResult r = w.auth("general02", kPassword, AuthPurpose::issuance);
    assert_status(r, AuthStatus::ok);
    assert_true(r.initial_password);
    w.clock.advance(kInitialPasswordLifetime + 1);
    r = w.auth("general02", kPassword, AuthPurpose::issuance);
    assert_status(r, AuthStatus::initial_password_expired);
    // The password was right: the user comes back, for the advice of its role.
    assert_true(r.user.has_value() && r.user->role == Role::general);
    assert_int_equal(w.events_of(event_kind::kLogin), 1);
}

// R2: issuance authentication refuses a user whose certificate is valid and
// more than renew_before days from expiry, and says when renewal opens.
void already_issued_until_renewal_opens(void**) {
    World w;
    w.add_user("general01");
    Certificate c;
    c.serial = "0A01";
    c.user_id = "general01";
    c.not_before = w.clock.now() - 86400;
    c.not_after = w.clock.now() + 100 * 86400;
    c.status = CertStatus::issued;
    w.store.add_certificate(c, false, "op");

    AuthResult r = w.auth("general01", kPassword, AuthPurpose::issuance);
    assert_status(r, AuthStatus::already_issued);
    assert_true(r.cert_not_after == c.not_after);
    assert_true(r.renewal_opens == c.not_after - 30 * 86400);
    // The password was right; R20 may replace the live certificate.
    assert_true(r.user.has_value());
    assert_true(r.live_certificate && r.live_certificate->serial == "0A01");
    // Login is not issuance: it passes.
    assert_status(w.auth("general01", kPassword, AuthPurpose::login), AuthStatus::ok);
    // From the first moment of the window, issuance passes too.
    w.clock.set(r.renewal_opens);
    assert_status(w.auth("general01", kPassword, AuthPurpose::issuance), AuthStatus::ok);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(right_password_passes),
        cmocka_unit_test(wrong_password_is_counted_once),
        cmocka_unit_test(sixth_failure_locks_until_the_lock_time),
        cmocka_unit_test(a_success_ends_the_streak),
        cmocka_unit_test(third_lock_blocks),
        cmocka_unit_test(unknown_id_is_indistinguishable),
        cmocka_unit_test(kv_down_is_unavailable_and_counts_nothing),
        cmocka_unit_test(store_down_is_unavailable),
        cmocka_unit_test(lost_counter_is_reseeded_from_the_store),
        cmocka_unit_test(reserved_slots_beyond_the_limit_are_not_checked),
        cmocka_unit_test(late_failure_of_an_ended_streak_is_not_counted),
        cmocka_unit_test(lockout_numbers_follow_the_settings),
        cmocka_unit_test(initial_password_expires),
        cmocka_unit_test(already_issued_until_renewal_opens),
    };
    return cmocka_run_group_tests_name("authenticate", tests, nullptr, nullptr);
}
