// certgatectl notify: the mail sweep on demand (R3 expiry notices, then the
// outbox), the same one the module runs on its certgate_notify_interval timer.
#include <iostream>

#include "core/adapters/mail.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

// What the sweep needs from nginx.conf, as the module would read it.
Settings mail_conf(Context& ctx) {
    Settings s;
    s.mail = ctx.setting("", "certgate_mail");
    s.mail_from = ctx.setting("", "certgate_mail_from");
    std::string tz = ctx.setting("", "certgate_timezone");
    if (!tz.empty()) s.timezone = tz;
    // The http-level certgate_language, as the module reads it for notices.
    const NginxConf* conf = ctx.conf();
    const std::string lang = conf ? conf->get_http_level("certgate_language") : "";
    if (lang == "en") s.mail_language = Language::en;
    s.mail_bilingual = lang == "auto";
    std::string renew = ctx.setting("", "certgate_renew_before");
    if (!renew.empty()) s.renew_before_days = static_cast<long>(parse_duration(renew) / 86400);
    if (const NginxConf* conf = ctx.conf(); conf && conf->has("certgate_helpdesk")) {
        auto a = conf->args("certgate_helpdesk");
        a.resize(3);
        s.helpdesk = HelpDesk{a[0], a[1], a[2]};
    }
    return s;
}

}  // namespace

int cmd_notify(Context& ctx) {
    Settings s = mail_conf(ctx);
    Store& store = ctx.store();
    // --now is for test suites: the sweep runs as if the clock said so.
    if (ctx.args.flag("--now")) {
        const int64_t at = parse_number(ctx.args.value("--now"), "--now");
        store.set_clock([at] { return at; });
    }
    const int64_t now = store.now();
    if (s.mail.empty())
        std::cerr << "certgatectl: no certgate_mail in the configuration: notices are queued, "
                     "not sent\n";
    SweepResult r = sweep_mail(s, store, now);
    for (const auto& p : r.notices.problems) std::cerr << "certgatectl: passed over " << p << "\n";
    if (ctx.json) {
        print_json(Json{{"expiring", r.notices.expiring},
                        {"expired", r.notices.expired},
                        {"sent", r.outbox.sent},
                        {"retried", r.outbox.retried},
                        {"failed", r.outbox.failed}});
        return kOk;
    }
    std::cout << "queued " << r.notices.expiring << " expiring and " << r.notices.expired
              << " expired notices; sent " << r.outbox.sent << " mails, " << r.outbox.retried
              << " to retry, " << r.outbox.failed << " failed\n";
    return kOk;
}

}  // namespace certgate::ctl
