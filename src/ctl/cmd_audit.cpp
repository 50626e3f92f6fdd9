// certgatectl audit and mail: the event table and the outbox.
#include <iomanip>
#include <iostream>

#include "ctl/ctl.hpp"

namespace certgate::ctl {

int cmd_audit(Context& ctx) {
    const int64_t since = parse_number(ctx.args.value("--since", "0"), "--since");
    const int64_t limit = parse_number(ctx.args.value("--limit", "100000"), "--limit");
    const std::string user = ctx.args.value("--user");
    Store& store = ctx.store();
    if (!user.empty() && !store.find_user(user))
        throw StoreNotFound("user " + user + " does not exist");
    auto events = user.empty() ? store.events_since(since, static_cast<int>(limit))
                               : store.events_for_user(user, since, static_cast<int>(limit));
    if (ctx.json) {
        std::vector<std::string> items;
        for (const auto& e : events) items.push_back(event_json(e).str());
        std::cout << json_array(items) << "\n";
        return kOk;
    }
    for (const auto& e : events)
        std::cout << std::left << std::setw(7) << e.id << format_time(e.at) << "  " << std::setw(21)
                  << e.actor << " " << std::setw(17) << e.kind << " " << std::setw(19) << e.subject
                  << " " << e.detail << "\n";
    return kOk;
}

int cmd_mail_list(Context& ctx) {
    std::optional<MailState> state;
    if (ctx.args.flag("--state")) {
        state = parse_mail_state(ctx.args.value("--state"));
        if (!state)
            throw UsageError("unknown --state '" + ctx.args.value("--state") +
                             "' (queued, sending, sent, failed)");
    }
    auto mails = ctx.store().list_mails(state);
    if (ctx.json) {
        std::vector<std::string> items;
        for (const auto& m : mails)
            items.push_back(JsonObject()
                                .add("id", m.id)
                                .add("to", m.to)
                                .add("subject", m.subject)
                                .add("state", to_string(m.state))
                                .add("attempts", m.attempts)
                                .add("next_attempt_at", m.next_attempt_at)
                                .add("sent_at", m.sent_at)
                                .add("created_at", m.created_at)
                                .add("last_error", m.last_error)
                                .str());
        std::cout << json_array(items) << "\n";
        return kOk;
    }
    std::cout << std::left << std::setw(7) << "ID" << std::setw(9) << "STATE" << std::setw(9)
              << "TRIES" << std::setw(30) << "TO"
              << "SUBJECT\n";
    for (const auto& m : mails)
        std::cout << std::setw(7) << m.id << std::setw(9) << to_string(m.state) << std::setw(9)
                  << m.attempts << std::setw(30) << m.to << m.subject
                  << (m.last_error.empty() ? "" : "  [" + m.last_error + "]") << "\n";
    return kOk;
}

int cmd_mail_retry(Context& ctx) {
    const int64_t id = parse_number(ctx.args.positional(0, "MAIL_ID"), "MAIL_ID");
    ctx.store().retry_mail(id, ctx.actor());
    if (ctx.json)
        std::cout << JsonObject().add("id", id).add("state", "queued").str() << "\n";
    else
        std::cout << "mail " << id << " is due now\n";
    return kOk;
}

}  // namespace certgate::ctl
