// certgatectl audit and mail: the event table and the outbox.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <iomanip>
#include <iostream>

#include "core/adapters/audit_export.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

bool all_digits(const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// A moment for --since/--until: RFC 3339 (2026-12-01T09:00:00Z, ...+09:00),
// a date (2026-12-01, midnight UTC) or @<unix time>.
int64_t parse_moment(const std::string& text, const char* what) {
    if (text.size() > 1 && text[0] == '@' && all_digits(text.substr(1)))
        return parse_number(text.substr(1), what);
    struct tm tm {};
    const char* rest = strptime(text.c_str(), "%Y-%m-%d", &tm);
    int64_t offset = 0;
    if (rest != nullptr && (*rest == 'T' || *rest == 't' || *rest == ' ')) {
        rest = strptime(rest + 1, "%H:%M:%S", &tm);
        if (rest != nullptr && *rest == '.')
            while (std::isdigit(static_cast<unsigned char>(*++rest))) {
            }
        if (rest != nullptr && (*rest == 'Z' || *rest == 'z')) {
            ++rest;
        } else if (rest != nullptr && (*rest == '+' || *rest == '-') && std::strlen(rest) == 6 &&
                   rest[3] == ':') {
            int sign = *rest == '+' ? 1 : -1;
            int h = std::atoi(std::string(rest + 1, 2).c_str());
            int m = std::atoi(std::string(rest + 4, 2).c_str());
            offset = sign * (h * 3600 + m * 60);
            rest += 6;
        } else {
            rest = nullptr;  // a time needs its zone
        }
    }
    if (rest == nullptr || *rest != '\0')
        throw UsageError(std::string(what) + " '" + text +
                         "' is not an event number, a time (2026-12-01T09:00:00Z or +09:00), a "
                         "date (2026-12-01, UTC) or @unixtime");
    return static_cast<int64_t>(timegm(&tm)) - offset;
}

std::string hostname() {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) return "localhost";
    return host;
}

}  // namespace

int cmd_audit(Context& ctx) {
    const std::string since_arg = ctx.args.value("--since", "0");
    const int64_t limit = parse_number(ctx.args.value("--limit", "100000"), "--limit");
    const std::string user = ctx.args.value("--user");
    const bool until_given = ctx.args.flag("--until");
    const int64_t until = until_given ? parse_moment(ctx.args.value("--until"), "--until") : 0;
    Store& store = ctx.store();
    if (!user.empty() && !store.find_user(user))
        throw StoreNotFound("user " + user + " does not exist");
    // --since N: after event N (as before); --since TIME: from that moment on.
    const int64_t since = all_digits(since_arg)
                              ? parse_number(since_arg, "--since")
                              : store.first_event_since(parse_moment(since_arg, "--since")) - 1;
    std::vector<Event> events;
    for (int64_t after = since; static_cast<int64_t>(events.size()) < limit;) {
        int batch = static_cast<int>(std::min<int64_t>(limit - events.size(), 10000));
        auto got = user.empty() ? store.events_since(after, batch)
                                : store.events_for_user(user, after, batch);
        bool past_until = false;
        for (auto& e : got) {
            if (until_given && e.at >= until) {
                past_until = true;
                break;
            }
            events.push_back(std::move(e));
        }
        if (past_until || static_cast<int>(got.size()) < batch) break;
        after = got.back().id;
    }
    if (ctx.args.flag("--jsonl")) {
        // The lines certgate_audit sends, for a SIEM's batch import.
        const std::string node = hostname();
        for (const auto& e : events) std::cout << audit_json(e, node) << "\n";
        return kOk;
    }
    if (ctx.json) {
        Json items = Json::array();
        for (const auto& e : events) items.push_back(event_json(e));
        print_json(items);
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
        Json items = Json::array();
        for (const auto& m : mails)
            items.push_back(Json{{"id", m.id},
                                 {"to", m.to},
                                 {"subject", m.subject},
                                 {"state", to_string(m.state)},
                                 {"attempts", m.attempts},
                                 {"next_attempt_at", m.next_attempt_at},
                                 {"sent_at", m.sent_at},
                                 {"created_at", m.created_at},
                                 {"last_error", m.last_error}});
        print_json(items);
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
        print_json(Json{{"id", id}, {"state", "queued"}});
    else
        std::cout << "mail " << id << " is due now\n";
    return kOk;
}

}  // namespace certgate::ctl
