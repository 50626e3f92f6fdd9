// R3: one mail 30 days before a certificate expires and one once it has
// expired, each claimed in the store so it goes out once (see mail.hpp).

#include <string>
#include <vector>

#include "core/adapters/mail.hpp"
#include "core/app/outbox.hpp"

namespace certgate {

namespace {

const int64_t kDay = 24 * 60 * 60;

// Claims the notice and queues its mail in one transaction; true if this
// caller was the one to claim it.
bool queue_notice(Store& store, const NoticeSettings& settings, const Certificate& cert,
                  CertNotice notice, const std::string& actor, std::vector<std::string>* problems) {
    const std::optional<User> user = store.find_user(cert.user_id);
    if (!user || user->mail.empty() || user->state == UserState::disabled) return false;

    MailFields f;
    f.to = user->mail;
    f.user_id = user->id;
    f.role = user->role;
    f.expiry = static_cast<time_t>(cert.not_after);
    f.timezone = settings.timezone;
    f.portal_url = settings.portal_url;
    f.helpdesk = settings.helpdesk;
    try {
        const MailKind kind = notice == kNoticeExpiring ? MailKind::expiry_soon : MailKind::expired;
        const MailMessage m =
            compose_user_mail(kind, user->language, settings.language, settings.bilingual, f);
        bool claimed = false;
        store.write([&] {
            claimed = store.claim_notice(cert.serial, notice, actor);
            if (claimed) queue_mail(store, m, actor, cert.serial);
        });
        return claimed;
    } catch (const MailError& e) {
        // A bad address in one user's record must not stop the sweep; nothing
        // was claimed, so the notice goes once the address is fixed.
        problems->push_back("certificate " + cert.serial + " of user " + user->id + ": " +
                            e.what());
        return false;
    }
}

}  // namespace

NoticeResult queue_expiry_notices(Store& store, const NoticeSettings& settings, int64_t now,
                                  const std::string& actor) {
    NoticeResult result;

    // not_after is the last second of validity: expired means not_after < now.
    CertificateFilter soon;
    soon.status = CertStatus::issued;
    soon.not_after_from = now;
    soon.not_after_before = now + settings.renew_before_days * kDay + 1;
    for (const Certificate& c : store.list_certificates(soon))
        if (!(c.notices & kNoticeExpiring) &&
            queue_notice(store, settings, c, kNoticeExpiring, actor, &result.problems))
            ++result.expiring;

    for (CertStatus status : {CertStatus::issued, CertStatus::expired}) {
        CertificateFilter gone;
        gone.status = status;
        gone.not_after_from = now - settings.expired_within_days * kDay;
        gone.not_after_before = now;
        for (const Certificate& c : store.list_certificates(gone))
            if (!(c.notices & kNoticeExpired) &&
                queue_notice(store, settings, c, kNoticeExpired, actor, &result.problems))
                ++result.expired;
    }
    return result;
}

}  // namespace certgate
