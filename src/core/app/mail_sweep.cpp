// The periodic mail work of R3 and the outbox: due expiry notices are queued,
// then whatever the outbox holds is sent. The module's notify timer and
// `certgatectl notify` run the same sweep; the store's claims keep them from
// sending anything twice.

#include "core/adapters/mail.hpp"
#include "core/app/outbox.hpp"

namespace certgate {

SweepResult sweep_mail(const Settings& settings, Store& store, int64_t now) {
    NoticeSettings ns;
    ns.renew_before_days = settings.renew_before_days;
    ns.timezone = settings.timezone;
    ns.helpdesk = settings.helpdesk;
    ns.portal_url = settings.portal_url;
    ns.language = settings.mail_language;
    ns.bilingual = settings.mail_bilingual;
    SweepResult r;
    r.notices = queue_expiry_notices(store, ns, now, "certgate");
    if (!settings.mail.empty()) r.outbox = deliver_outbox(store, mail_settings(settings), now, 100);
    return r;
}

}  // namespace certgate
