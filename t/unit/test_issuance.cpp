// The issuance use case (R6 ⑥ → ⑧) over fakes of its ports: the signer
// without OpenSSL, the clock fixed, the store a real SQLite file.
#include <string>
#include <vector>

#include "core/app/issuance.hpp"
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

struct World {
    FakeClock clock;
    FakeStore store{clock};
    FakeSigner signer;
    Settings settings;

    World() {
        store.add_org({"ORG1", "Org One", 0}, "op");
        add_user("general01");
    }

    void add_user(const std::string& id, UserState state = UserState::active) {
        User u;
        u.id = id;
        u.org = "ORG1";
        u.mail = id + "@example.com";
        u.password_hash = "$argon2id$unused";
        u.state = state;
        store.add_user(u, "op", "");
    }

    IssuedCertificate issue(const std::string& id = "general01") {
        return issue_pending(settings, store, signer, id, "Secret#2026", clock.now());
    }

    CertStatus status_of(const std::string& serial) {
        auto c = store.find_certificate(serial);
        if (!c) fail_msg("certificate %s is not in the store", serial.c_str());
        return c->status;
    }

    // A certificate that is live already (an earlier issuance, handed over).
    std::string live_certificate() {
        IssuedCertificate old = issue();
        hand_over(store, old.serial_hex, "general01");
        return old.serial_hex;
    }

    int count(CertStatus status) {
        CertificateFilter f;
        f.user_id = "general01";
        f.status = status;
        return static_cast<int>(store.list_certificates(f).size());
    }
};

#define assert_status(got, want) assert_int_equal(static_cast<int>(got), static_cast<int>(want))

// ⑥ records the certificate pending: not live, no current certificate,
// until the hand-over (the download) makes it live.
void pending_until_handed_over(void**) {
    World w;
    IssuedCertificate issued = w.issue();
    assert_status(w.status_of(issued.serial_hex), CertStatus::pending);
    assert_false(w.store.current_certificate("general01").has_value());

    hand_over(w.store, issued.serial_hex, "general01");
    assert_status(w.status_of(issued.serial_hex), CertStatus::issued);
    auto current = w.store.current_certificate("general01");
    assert_true(current.has_value());
    assert_string_equal(current->serial.c_str(), issued.serial_hex.c_str());
    assert_true(current->not_after == issued.not_after);
    assert_true(current->issued_at == w.clock.now());
}

// Renewal: the old certificate stays live while the new one is pending
// (the user can still log in), and gives way at the hand-over.
void hand_over_supersedes_the_previous(void**) {
    World w;
    const std::string old = w.live_certificate();
    w.clock.advance(340 * 86400);
    IssuedCertificate renewed = w.issue();
    assert_status(w.status_of(old), CertStatus::issued);
    assert_status(w.status_of(renewed.serial_hex), CertStatus::pending);
    hand_over(w.store, renewed.serial_hex, "general01");
    assert_status(w.status_of(old), CertStatus::superseded);
    assert_status(w.status_of(renewed.serial_hex), CertStatus::issued);
    assert_int_equal(w.count(CertStatus::issued), 1);
}

// The signer fails (an HSM session broke): nothing new is recorded, an
// earlier attempt's pending certificate is gone, the live one stays.
void signer_failure_leaves_nothing_pending(void**) {
    World w;
    const std::string live = w.live_certificate();
    IssuedCertificate stranded = w.issue();  // recorded, never handed over
    w.signer.fail = true;
    bool threw = false;
    try {
        w.issue();
    } catch (const CaKeyError&) {
        threw = true;
    }
    assert_true(threw);
    assert_int_equal(w.count(CertStatus::pending), 0);
    assert_status(w.status_of(stranded.serial_hex), CertStatus::revoked);
    assert_status(w.status_of(live), CertStatus::issued);
    assert_int_equal(w.store.list_certificates({}).size(), 2);
}

// A second ⑥ (another flow of the same user) revokes the first one's
// pending certificate: at most one can go live.
void a_new_issuance_abandons_the_pending_one(void**) {
    World w;
    IssuedCertificate first = w.issue();
    IssuedCertificate second = w.issue();
    assert_status(w.status_of(first.serial_hex), CertStatus::revoked);
    assert_status(w.status_of(second.serial_hex), CertStatus::pending);
    bool conflict = false;
    try {
        hand_over(w.store, first.serial_hex, "general01");
    } catch (const StoreConflict&) {
        conflict = true;
    }
    assert_true(conflict);
    assert_false(w.store.current_certificate("general01").has_value());
}

// Users who may not have a certificate never reach the signer.
void refused_users_reach_no_signer(void**) {
    World w;
    w.add_user("general02", UserState::must_register);
    w.add_user("general03");
    w.store.block_user("general03", "op");
    for (const char* id : {"general02", "general03", "nosuch01"}) {
        bool refused = false;
        try {
            w.issue(id);
        } catch (const IssuanceRefused&) {
            refused = true;
        }
        assert_true(refused);
    }
    assert_int_equal(w.signer.requests.size(), 0);
    assert_int_equal(w.store.list_certificates({}).size(), 0);
}

// The .p12 could not reach the user: what was recorded is revoked; and a
// lost download link revokes only while the certificate is still pending.
void abandoned_hand_over_is_revoked(void**) {
    World w;
    IssuedCertificate a = w.issue();
    std::vector<std::string> gone = abandon_issuance(w.store, "general01", "test");
    assert_int_equal(gone.size(), 1);
    assert_string_equal(gone[0].c_str(), a.serial_hex.c_str());
    assert_status(w.status_of(a.serial_hex), CertStatus::revoked);

    IssuedCertificate b = w.issue();
    assert_true(revoke_if_pending(w.store, b.serial_hex, "general01", "link expired"));
    assert_status(w.status_of(b.serial_hex), CertStatus::revoked);

    IssuedCertificate c = w.issue();
    hand_over(w.store, c.serial_hex, "general01");
    assert_false(revoke_if_pending(w.store, c.serial_hex, "general01", "link expired"));
    assert_status(w.status_of(c.serial_hex), CertStatus::issued);
}

// What the signer is asked for comes from the user, the organisation and
// the settings (R1's validity, the key type, the .p12 protection).
void the_request_follows_user_and_settings(void**) {
    World w;
    w.settings.cert_validity_days = 30;
    w.settings.key_type = "ec:P-256";
    w.settings.p12_legacy = true;
    w.settings.crl_url = "https://bank.example/certgate/crl";
    IssuedCertificate issued = w.issue();
    assert_int_equal(w.signer.requests.size(), 1);
    const IssueRequest& r = w.signer.requests[0];
    assert_string_equal(r.user_id.c_str(), "general01");
    assert_string_equal(r.org_name.c_str(), "Org One");
    assert_string_equal(r.mail.c_str(), "general01@example.com");
    assert_int_equal(r.validity_days, 30);
    assert_true(r.key_type.alg == KeyAlgorithm::ec);
    assert_string_equal(r.crl_url.c_str(), "https://bank.example/certgate/crl");
    assert_true(r.now == w.clock.now());
    assert_string_equal(w.signer.passwords[0].c_str(), "Secret#2026");
    assert_true(w.signer.encryptions[0] == P12Encryption::legacy);
    auto c = w.store.find_certificate(issued.serial_hex);
    assert_true(c->not_after == issued.not_after);
}

// The store down at ⑥: the error reaches the caller, nothing was signed.
void store_down_signs_nothing(void**) {
    World w;
    w.store.down = true;
    bool threw = false;
    try {
        w.issue();
    } catch (const StoreError&) {
        threw = true;
    }
    assert_true(threw);
    assert_int_equal(w.signer.requests.size(), 0);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pending_until_handed_over),
        cmocka_unit_test(hand_over_supersedes_the_previous),
        cmocka_unit_test(signer_failure_leaves_nothing_pending),
        cmocka_unit_test(a_new_issuance_abandons_the_pending_one),
        cmocka_unit_test(refused_users_reach_no_signer),
        cmocka_unit_test(abandoned_hand_over_is_revoked),
        cmocka_unit_test(the_request_follows_user_and_settings),
        cmocka_unit_test(store_down_signs_nothing),
    };
    return cmocka_run_group_tests_name("issuance", tests, nullptr, nullptr);
}
