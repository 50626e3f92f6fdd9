// certgatectl notify: the mail sweep on demand (R3 expiry notices, then the
// outbox), the same one the module runs on its certgate_notify_interval timer.
#include <iostream>

#include "core/adapters/mail.hpp"
#include "core/app/outbox.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

int cmd_notify(Context& ctx) {
    // What the module would read from the same nginx.conf.
    const Settings& s = ctx.settings();
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
