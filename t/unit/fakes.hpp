// In-memory fakes of the ports, for unit tests of the use cases: counters
// (FakeKv), mail relay (FakeMailer), CA (FakeSigner), clock (FakeClock).
//
// The store is the one port not faked in memory: its interface is large and
// its transactions are the point, so FakeStore wraps a real SQLite store in a
// temporary file and adds a switch that makes every call fail, as a store
// that is down does.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ports/clock.hpp"
#include "core/ports/kv.hpp"
#include "core/ports/mailer.hpp"
#include "core/ports/signer.hpp"
#include "core/ports/store.hpp"

namespace certgate::fakes {

class FakeClock final : public Clock {
  public:
    explicit FakeClock(int64_t t = 1795680000) : t_(t) {}  // 2026-11-26T03:20:00Z
    int64_t now() const override { return t_; }
    void set(int64_t t) { t_ = t; }
    void advance(int64_t seconds) { t_ += seconds; }

  private:
    int64_t t_;
};

// memcached as a map. TTLs are kept but not enforced: tests lose keys on
// purpose with forget() / forget_all().
class FakeKv final : public Kv {
  public:
    bool down = false;  // every call throws KvError, as a dead server does
    std::map<std::string, std::string> data;
    std::map<std::string, long> ttl;
    int calls = 0;

    std::string version() override { return check(), "fake"; }
    std::optional<std::string> get(const std::string& key) override {
        check();
        auto it = data.find(key);
        if (it == data.end()) return std::nullopt;
        return it->second;
    }
    void set(const std::string& key, const std::string& value, long ttl_s) override {
        check();
        data[key] = value;
        ttl[key] = ttl_s;
    }
    bool add(const std::string& key, const std::string& value, long ttl_s) override {
        check();
        if (data.count(key)) return false;
        data[key] = value;
        ttl[key] = ttl_s;
        return true;
    }
    bool remove(const std::string& key) override { return check(), data.erase(key) > 0; }
    bool touch(const std::string& key, long ttl_s) override {
        check();
        if (!data.count(key)) return false;
        ttl[key] = ttl_s;
        return true;
    }
    std::optional<uint64_t> incr(const std::string& key, uint64_t delta) override {
        check();
        auto it = data.find(key);
        if (it == data.end()) return std::nullopt;
        uint64_t v = std::stoull(it->second) + delta;
        it->second = std::to_string(v);
        return v;
    }
    uint64_t incr_or_create(const std::string& key, uint64_t delta, long ttl_s) override {
        check();
        if (auto v = incr(key, delta)) return *v;
        set(key, std::to_string(delta), ttl_s);
        return delta;
    }

    void forget_all() { data.clear(); }  // a memcached restart

  private:
    void check() {
        ++calls;
        if (down) throw KvError("fake memcached is down");
    }
};

// The relay: keeps what it was given; `fail` makes the next sends throw.
class FakeMailer final : public Mailer {
  public:
    std::vector<MailMessage> sent;
    std::optional<MailError::Kind> fail;

    void send(const MailMessage& message) override {
        if (fail) throw MailError(*fail, "fake relay refused");
        sent.push_back(message);
    }
    std::string message_id_domain() const override { return "bank.example"; }
    int timeout_ms() const override { return 1000; }
};

// The CA: no OpenSSL, a serial counter; `fail` makes issue() throw as an HSM
// whose session broke does (CaKeyError).
class FakeSigner final : public Signer {
  public:
    bool fail = false;
    mutable int issued = 0;
    mutable std::vector<IssueRequest> requests;
    mutable std::vector<std::string> passwords;
    mutable std::vector<P12Encryption> encryptions;

    mutable std::vector<bool> ahead;  // whether each issue() had keys derived ahead
    mutable int derived = 0;

    IssuedCertificate issue(const IssueRequest& req, const std::string& p12_password,
                            P12Encryption enc, const P12Keys* keys = nullptr) const override {
        ahead.push_back(keys != nullptr && keys->iterations == req.p12_iterations &&
                        keys->bag_key == "bag:" + p12_password);
        requests.push_back(req);
        passwords.push_back(p12_password);
        encryptions.push_back(enc);
        if (fail) throw CaKeyError("fake CA key refused to sign");
        IssuedCertificate out;
        char serial[32];
        snprintf(serial, sizeof serial, "5E%04X", ++issued);
        out.serial_hex = serial;
        out.not_before = req.now - 300;
        out.not_after = req.now + static_cast<time_t>(req.validity_days) * 86400;
        out.cert_pem = "-----BEGIN CERTIFICATE-----fake-----END CERTIFICATE-----";
        const std::string p12 = "p12:" + req.user_id + ":" + p12_password;
        out.pkcs12.assign(p12.begin(), p12.end());
        out.file_name = req.user_id + "20261126122000.p12";
        return out;
    }
    // No KDF: the "keys" name the password, so a test sees which one they came from.
    std::optional<P12Keys> derive_p12_keys(const std::string& p12_password, P12Encryption enc,
                                           int iterations) const override {
        if (enc != P12Encryption::aes256) return std::nullopt;
        ++derived;
        P12Keys k;
        k.iterations = iterations;
        k.bag_salt = std::string(16, 's');
        k.bag_key = "bag:" + p12_password;
        k.mac_salt = std::string(16, 'm');
        k.mac_key = "mac:" + p12_password;
        return k;
    }
    std::vector<uint8_t> make_crl_seconds(const std::vector<RevokedEntry>& revoked, time_t, int64_t,
                                          uint64_t number) const override {
        return {static_cast<uint8_t>(revoked.size()), static_cast<uint8_t>(number)};
    }
    bool signed_crl(const std::vector<uint8_t>& der) const override { return der.size() == 2; }
};

// A real, migrated SQLite store in a fresh temporary file, on `clock`. The
// files and their directory go when the test binary exits.
inline std::unique_ptr<Store> temp_sqlite_store(const Clock& clock) {
    static std::string dir;
    static int counter = 0;
    if (dir.empty()) {
        char tmpl[] = "/tmp/certgate-unit-XXXXXX";
        if (!mkdtemp(tmpl)) throw StoreError("mkdtemp failed");
        dir = tmpl;
        std::atexit([] {
            for (int i = 1; i <= counter; ++i)
                for (const char* suffix : {"", "-wal", "-shm"})
                    unlink((dir + "/s" + std::to_string(i) + ".db" + suffix).c_str());
            rmdir(dir.c_str());
        });
    }
    auto s = Store::open("sqlite:" + dir + "/s" + std::to_string(++counter) + ".db", true);
    s->set_clock([&clock] { return clock.now(); });
    s->migrate();
    return s;
}

// The store port over a real store, with a `down` switch.
class FakeStore final : public Store {
  public:
    explicit FakeStore(const Clock& clock) : inner_(temp_sqlite_store(clock)) {
        set_clock([&clock] { return clock.now(); });
    }
    bool down = false;
    Store& inner() { return *inner_; }

    int schema_version() override { return gate(), inner_->schema_version(); }
    void migrate() override { gate(), inner_->migrate(); }
    void ping() override { gate(), inner_->ping(); }
    std::string describe() const override { return "fake " + inner_->describe(); }

    void add_org(const Organisation& org, const std::string& actor) override {
        gate(), inner_->add_org(org, actor);
    }
    std::optional<Organisation> find_org(const std::string& id) override {
        return gate(), inner_->find_org(id);
    }
    std::vector<Organisation> list_orgs() override { return gate(), inner_->list_orgs(); }
    void add_user(const User& user, const std::string& actor, const std::string& detail) override {
        gate(), inner_->add_user(user, actor, detail);
    }
    std::optional<User> find_user(const std::string& id) override {
        return gate(), inner_->find_user(id);
    }
    std::vector<User> list_users(const std::string& org) override {
        return gate(), inner_->list_users(org);
    }
    void reset_user(const std::string& id, const std::string& hash,
                    const std::string& actor) override {
        gate(), inner_->reset_user(id, hash, actor);
    }
    void set_password(const std::string& id, const std::string& hash, const std::string& actor,
                      const std::string& detail) override {
        gate(), inner_->set_password(id, hash, actor, detail);
    }
    void complete_registration(const std::string& id, const std::string& hash,
                               const std::string& mail, const std::string& actor) override {
        gate(), inner_->complete_registration(id, hash, mail, actor);
    }
    void set_mail(const std::string& id, const std::string& mail,
                  const std::string& actor) override {
        gate(), inner_->set_mail(id, mail, actor);
    }
    void set_language(const std::string& id, const std::string& language,
                      const std::string& actor) override {
        gate(), inner_->set_language(id, language, actor);
    }
    AuthStreak auth_streak(const std::string& id) override {
        return gate(), inner_->auth_streak(id);
    }
    AuthStreak lock_auth_streak(const std::string& id) override {
        return gate(), inner_->lock_auth_streak(id);
    }
    void save_streak_failures(const std::string& id, bool known, int64_t epoch, int failures,
                              int64_t expires_at) override {
        gate(), inner_->save_streak_failures(id, known, epoch, failures, expires_at);
    }
    void save_lock(const std::string& id, bool known, const LockState& lock, int64_t expires_at,
                   const std::string& actor) override {
        gate(), inner_->save_lock(id, known, lock, expires_at, actor);
    }
    void prune_auth_streaks(int64_t now) override { gate(), inner_->prune_auth_streaks(now); }
    BudgetTake take_budget(const std::string& key, int limit, int64_t window_s) override {
        return gate(), inner_->take_budget(key, limit, window_s);
    }
    BudgetTake peek_budget(const std::string& key, int limit, int64_t window_s) override {
        return gate(), inner_->peek_budget(key, limit, window_s);
    }
    void record_login(const std::string& id, const std::string& actor,
                      const std::string& detail) override {
        gate(), inner_->record_login(id, actor, detail);
    }
    void unlock_user(const std::string& id, const std::string& actor) override {
        gate(), inner_->unlock_user(id, actor);
    }
    void block_user(const std::string& id, const std::string& actor) override {
        gate(), inner_->block_user(id, actor);
    }
    void unblock_user(const std::string& id, const std::string& actor) override {
        gate(), inner_->unblock_user(id, actor);
    }
    void disable_user(const std::string& id, const std::string& actor) override {
        gate(), inner_->disable_user(id, actor);
    }
    void add_certificate(const Certificate& cert, bool supersede,
                         const std::string& actor) override {
        gate(), inner_->add_certificate(cert, supersede, actor);
    }
    void activate_certificate(const std::string& serial, const std::string& actor) override {
        gate(), inner_->activate_certificate(serial, actor);
    }
    std::vector<std::string> abandon_pending_certificates(const std::string& user_id,
                                                          int64_t issued_before,
                                                          const std::string& why,
                                                          const std::string& actor) override {
        return gate(), inner_->abandon_pending_certificates(user_id, issued_before, why, actor);
    }
    std::optional<Certificate> find_certificate(const std::string& serial) override {
        return gate(), inner_->find_certificate(serial);
    }
    std::vector<Certificate> list_certificates(const CertificateFilter& filter) override {
        return gate(), inner_->list_certificates(filter);
    }
    std::optional<Certificate> current_certificate(const std::string& user_id) override {
        return gate(), inner_->current_certificate(user_id);
    }
    void revoke_certificate(const std::string& serial, const std::string& reason,
                            const std::string& actor) override {
        gate(), inner_->revoke_certificate(serial, reason, actor);
    }
    std::vector<std::string> revoke_user_certificates(const std::string& user_id,
                                                      const std::string& reason,
                                                      const std::string& actor) override {
        return gate(), inner_->revoke_user_certificates(user_id, reason, actor);
    }
    std::vector<Certificate> revoked_certificates() override {
        return gate(), inner_->revoked_certificates();
    }
    std::optional<StoredCrl> current_crl() override { return gate(), inner_->current_crl(); }
    void save_crl(const StoredCrl& crl) override { gate(), inner_->save_crl(crl); }
    bool revoked_since(int64_t event_id) override {
        return gate(), inner_->revoked_since(event_id);
    }
    bool claim_notice(const std::string& serial, CertNotice notice,
                      const std::string& actor) override {
        return gate(), inner_->claim_notice(serial, notice, actor);
    }
    int64_t append_event(const std::string& actor, const std::string& kind,
                         const std::string& subject, const std::string& detail) override {
        return gate(), inner_->append_event(actor, kind, subject, detail);
    }
    std::vector<Event> events_since(int64_t after_id, int limit) override {
        return gate(), inner_->events_since(after_id, limit);
    }
    std::vector<Event> events_for_user(const std::string& user_id, int64_t after_id,
                                       int limit) override {
        return gate(), inner_->events_for_user(user_id, after_id, limit);
    }
    int64_t last_event_id() override { return gate(), inner_->last_event_id(); }
    int64_t first_event_since(int64_t at) override { return gate(), inner_->first_event_since(at); }
    int64_t enqueue_mail(const std::string& to, const std::string& subject, const std::string& body,
                         const std::string& actor, const std::string& about,
                         int64_t expires_at) override {
        return gate(), inner_->enqueue_mail(to, subject, body, actor, about, expires_at);
    }
    Mail enqueue_claimed_mail(const std::string& to, const std::string& subject,
                              const std::string& body, const std::string& actor,
                              const std::string& about, int lease_seconds,
                              int64_t expires_at) override {
        return gate(), inner_->enqueue_claimed_mail(to, subject, body, actor, about, lease_seconds,
                                                    expires_at);
    }
    std::vector<Mail> claim_due_mails(int limit, int lease_seconds) override {
        return gate(), inner_->claim_due_mails(limit, lease_seconds);
    }
    void mark_mail_sent(int64_t id) override { gate(), inner_->mark_mail_sent(id); }
    void mark_mail_failed(int64_t id, const std::string& error, int64_t retry_at) override {
        gate(), inner_->mark_mail_failed(id, error, retry_at);
    }
    std::vector<Mail> list_mails(std::optional<MailState> state) override {
        return gate(), inner_->list_mails(state);
    }
    std::optional<Mail> find_mail(int64_t id) override { return gate(), inner_->find_mail(id); }
    void retry_mail(int64_t id, const std::string& actor) override {
        gate(), inner_->retry_mail(id, actor);
    }

  protected:
    // The inner store's own calls each commit alone: the wrapper adds no
    // transaction of its own (the unit tests run on one thread).
    void begin_write() override { gate(); }
    void commit() override {}
    void rollback() noexcept override {}

  private:
    void gate() const {
        if (down) throw StoreError("fake store is down");
    }
    std::unique_ptr<Store> inner_;
};

}  // namespace certgate::fakes
