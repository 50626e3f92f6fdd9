#include "core/app/issuance.hpp"

#include "core/adapters/mail.hpp"
#include "core/app/outbox.hpp"

namespace certgate {

IssuedCertificate issue_pending(const Settings &s, Store &store, const Signer &signer,
                                const std::string &user_id, const std::string &p12_password,
                                int64_t now, const P12Keys *p12_keys_ahead) {
    auto user = store.find_user(user_id);
    if (!user || user->state != UserState::active || user->blocked)
        throw IssuanceRefused("user " + user_id + " cannot be issued a certificate now");
    store.abandon_pending_certificates(user->id, 0, "a new issuance began", user->id);

    auto org = store.find_org(user->org);
    IssueRequest req;
    req.user_id = user->id;
    req.org_name = org && !org->name.empty() ? org->name : user->org;
    req.mail = user->mail;
    auto key_type = parse_key_type(s.key_type);
    if (!key_type) throw CaError("certgate_key_type \"" + s.key_type + "\" is not a key type");
    req.key_type = *key_type;
    req.now = static_cast<time_t>(now);
    req.timezone = s.timezone;
    req.validity_days = static_cast<int>(s.cert_validity_days);
    req.crl_url = s.crl_url;
    req.p12_iterations = s.p12_iterations;
    IssuedCertificate issued =
        signer.issue(req, p12_password,
                     s.p12_legacy ? P12Encryption::legacy : P12Encryption::aes256, p12_keys_ahead);

    Certificate cert;
    cert.serial = issued.serial_hex;
    cert.user_id = user->id;
    cert.not_before = issued.not_before;
    cert.not_after = issued.not_after;
    cert.status = CertStatus::pending;
    cert.issued_at = now;
    store.add_certificate(cert, false, user->id);
    return issued;
}

void hand_over(Store &store, const std::string &serial, const std::string &user_id) {
    store.activate_certificate(serial, user_id);
}

std::vector<std::string> abandon_issuance(Store &store, const std::string &user_id,
                                          const std::string &why) {
    return store.abandon_pending_certificates(user_id, 0, why, user_id);
}

bool revoke_if_pending(Store &store, const std::string &serial, const std::string &user_id,
                       const std::string &why) {
    bool revoked = false;
    store.write([&] {
        // Read inside the transaction: a download answered meanwhile has made it live.
        auto now = store.find_certificate(serial);
        revoked = now && now->status == CertStatus::pending;
        if (!revoked) return;
        store.revoke_certificate(now->serial, "cessationOfOperation", user_id);
        store.append_event(user_id, event_kind::kCertAbandoned, now->serial,
                           "user=" + user_id + " why=" + why);
    });
    return revoked;
}

namespace {

// The self_revoked mail to `to` (the user, or its master), in that reader's
// language; nothing when there is no address or no relay.
void queue_self_revoked_mail(const Settings &s, Store &store, const User &reader,
                             const std::string &user_id, const std::string &serial, int64_t at) {
    if (reader.mail.empty() || s.mail.empty()) return;
    MailFields f;
    f.to = reader.mail;
    f.user_id = user_id;
    f.serial = serial;
    f.until = static_cast<time_t>(at);
    f.to_master = reader.id != user_id;
    f.timezone = s.timezone;
    f.helpdesk = s.helpdesk;
    queue_mail(store,
               compose_user_mail(MailKind::self_revoked, reader.language, s.mail_language,
                                 s.mail_bilingual, f),
               user_id, serial);
}

}  // namespace

bool self_revoke(const Settings &s, Store &store, const std::string &user_id,
                 const std::string &serial) {
    bool revoked = false;
    store.write([&] {
        auto cert = store.current_certificate(user_id);
        if (!cert || cert->serial != serial) return;
        auto user = store.find_user(user_id);
        if (!user) return;
        store.revoke_certificate(serial, "superseded", user_id);
        store.append_event(user_id, "cert.self_revoked", serial,
                           "user=" + user_id + " why=reissue");
        const int64_t at = store.now();
        queue_self_revoked_mail(s, store, *user, user_id, serial, at);
        if (user->role == Role::general) {
            for (const User &u : store.list_users(user->org)) {
                if (u.role == Role::master && u.state == UserState::active)
                    queue_self_revoked_mail(s, store, u, user_id, serial, at);
            }
        }
        revoked = true;
    });
    return revoked;
}

}  // namespace certgate
