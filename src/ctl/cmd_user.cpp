// certgatectl user ...: master and general users, the initial-password letter,
// reset (R17), lock, unlock, block, unblock (R10).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <kainjow/mustache.hpp>

#include "core/adapters/ca.hpp"
#include "core/adapters/mail.hpp"
#include "core/adapters/tz.hpp"
#include "core/app/authentication.hpp"
#include "core/policy/password.hpp"
#include "core/policy/policy.hpp"
#include "core/web/resources.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

// A value for a message: control characters as \xNN, so a CR cannot hide
// the rest of the line on a terminal.
std::string shown(const std::string& value) {
    std::string out;
    for (unsigned char c : value) {
        if (c < 0x20 || c == 0x7f) {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

// certgate_userid_rule / certgate_password_rule when nginx.conf sets them, else R8 / R9.
void check_rule(Context& ctx, const std::string& directive, const std::string& value,
                const std::string& what, RuleViolation (*builtin)(std::string_view)) {
    if (has_control_character(value))
        throw UsageError(what + " holds a control character (CR, LF, tab or similar)");
    const Settings& settings = ctx.settings();
    const std::vector<std::string>& args = directive == "certgate_userid_rule"
                                               ? settings.userid_rule_args
                                               : settings.password_rule_args;
    if (!args.empty()) {
        const CredentialRule rule = parse_credential_rule(args);
        if (has_full_width(value))
            throw UsageError(what + " " + describe(RuleViolation::full_width));
        const size_t n = utf8_length(value);
        if (n < rule.min_chars || n > rule.max_chars)
            throw UsageError(
                what + " " +
                describe(n < rule.min_chars ? RuleViolation::too_short : RuleViolation::too_long) +
                " (" + std::to_string(n) + " characters; " + directive + " says " +
                std::to_string(rule.min_chars) + " to " + std::to_string(rule.max_chars) + ")");
        PatternRule patterns(rule.patterns);
        if (auto bad = patterns.first_failure(value))
            throw UsageError(what + " does not match " + directive + " pattern \"" +
                             patterns.patterns()[*bad] + "\"");
        return;
    }
    RuleViolation v = builtin(value);
    if (v != RuleViolation::none) throw UsageError(what + " " + describe(v));
}

// The rule a refusal names: the configured directive, else R8 / R9 in words.
std::string rule_name(Context& ctx, const char* directive, const char* builtin) {
    return ctx.conf() && ctx.conf()->has(directive) ? directive : builtin;
}

void check_user_id_rule(Context& ctx, const std::string& id) {
    check_rule(ctx, "certgate_userid_rule", id,
               "user ID '" + shown(id) + "' breaks " +
                   rule_name(ctx, "certgate_userid_rule",
                             "R8 (6-12 letters and digits, at least one of each)") +
                   ":",
               check_user_id);
}

// The mailer's rule (check_mail_address), so every address it stores can be sent.
void check_mail(const std::string& mail) {
    MailAddressProblem problem = check_mail_address(mail);
    if (problem != MailAddressProblem::none)
        throw UsageError("mail address '" + shown(mail) + "' is not a valid address: " +
                         mail_address_message(problem, Language::en));
}

std::string read_password_stdin() {
    std::string pw;
    std::getline(std::cin, pw);
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    if (pw.empty()) throw UsageError("--password-stdin: no password on standard input");
    return pw;
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

struct LetterFacts {
    std::string org_id, org_name, user_id, name, mail, password;
    Role role;
    bool reset;
    int64_t issued_at;
};

// What the letter says besides the user's facts, from nginx.conf: where the
// system is (certgate_portal_url), until when the initial password works
// (kInitialPasswordLifetime, in certgate_timezone) and who helps
// (certgate_helpdesk).
void set_letter_settings(kainjow::mustache::data& d, const LetterFacts& f, const Settings& s) {
    if (!s.portal_url.empty()) d.set("url", s.portal_url);
    const LocalTime lt =
        to_local_time(static_cast<time_t>(f.issued_at + kInitialPasswordLifetime), s.timezone);
    char day[32];
    std::snprintf(day, sizeof day, "%04d-%02d-%02d", lt.year, lt.month, lt.day);
    d.set("expires", std::string(day));
    if (!s.helpdesk.name.empty()) d.set("helpdesk_name", s.helpdesk.name);
    if (!s.helpdesk.phone.empty()) d.set("helpdesk_phone", s.helpdesk.phone);
    if (!s.helpdesk.hours.empty()) d.set("helpdesk_hours", s.helpdesk.hours);
}

std::string day_of(int64_t t) { return format_time(t).substr(0, 10); }

// The letter the bank mails: what the user needs for 初期登録 and nothing else
// (resources/letter/initial_password.{txt,html}.mustache).
std::string render_letter(const LetterFacts& f, const Settings& s, bool html) {
    kainjow::mustache::data d;
    set_letter_settings(d, f, s);
    d.set("date", day_of(f.issued_at));
    d.set("org_name", f.org_name);
    d.set("org_id", f.org_id);
    if (!f.name.empty()) d.set("name", f.name);
    d.set("master", f.role == Role::master);
    d.set("button",
          f.role == Role::master ? "マスターユーザーの初期登録" : "一般ユーザーの初期登録");
    d.set("user_id", f.user_id);
    d.set("password", f.password);
    d.set("reset", f.reset);
    kainjow::mustache::mustache tmpl{std::string(embedded_resource(
        html ? "letter/initial_password.html.mustache" : "letter/initial_password.txt.mustache"))};
    if (html)
        tmpl.set_custom_escape(html_escape);
    else
        tmpl.set_custom_escape([](const std::string& s) { return s; });
    std::string out = tmpl.render(d);
    if (!tmpl.is_valid()) throw std::runtime_error("letter template: " + tmpl.error_message());
    return out;
}

std::string render_letter(Context& ctx, const LetterFacts& f) {
    return render_letter(f, ctx.settings(), ctx.args.flag("--html"));
}

// Writes the letter to --out (0600: it holds a password); the caller does this
// inside the store transaction, so a file that cannot be written changes nothing.
void write_letter_file(const std::string& path, const std::string& text) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw ConfigError("cannot write letter " + path + ": " + std::strerror(errno));
    ssize_t n = ::write(fd, text.data(), text.size());
    int err = errno;
    if (::close(fd) != 0 && n >= 0) err = errno, n = -1;
    if (n != static_cast<ssize_t>(text.size()))
        throw ConfigError("cannot write letter " + path + ": " + std::strerror(err));
}

// Prints (or writes) the letter, or with --json the facts as one object.
void deliver_letter(Context& ctx, const LetterFacts& f, const std::string& rendered) {
    const std::string out = ctx.args.value("--out");
    if (ctx.json) {
        Json o{{"user_id", f.user_id},
               {"org", f.org_id},
               {"role", to_string(f.role)},
               {"initial_password", f.password}};
        if (!out.empty()) o["letter"] = out;
        print_json(o);
    } else if (out.empty()) {
        std::cout << rendered;
    } else {
        std::cout << "letter for " << f.user_id << " written to " << out << "\n";
    }
}

int add_user(Context& ctx, Role role) {
    const std::string org_id = ctx.args.positional(0, "ORG_ID");
    const std::string user_id = ctx.args.positional(1, "USER_ID");
    check_user_id_rule(ctx, user_id);
    const std::string mail = ctx.args.value("--mail");
    if (mail.empty()) throw UsageError("--mail ADDR is required");
    check_mail(mail);
    const bool from_stdin = ctx.args.flag("--password-stdin");
    if (from_stdin && (ctx.args.flag("--html") || ctx.args.flag("--out")))
        throw UsageError("--password-stdin prints no letter: drop --html and --out");

    std::string password = from_stdin ? read_password_stdin() : generate_initial_password();
    if (from_stdin)
        check_rule(ctx, "certgate_password_rule", password,
                   "the password breaks " +
                       rule_name(ctx, "certgate_password_rule",
                                 "R9 (8-12 characters with upper, lower, digit and symbol)") +
                       ":",
                   check_password);

    Store& store = ctx.store();
    auto org = store.find_org(org_id);
    if (!org) throw StoreNotFound("organisation " + org_id + " does not exist");

    User u;
    u.id = user_id;
    u.org = org_id;
    u.role = role;
    u.name = ctx.args.value("--name");
    u.mail = mail;
    u.password_hash = hash_password(password);
    u.state = from_stdin ? UserState::active : UserState::must_register;

    LetterFacts facts{org_id, org->name, user_id, u.name, mail, password, role, false, store.now()};
    const std::string rendered = render_letter(ctx, facts);
    store.write([&] {
        store.add_user(u, ctx.actor(),
                       from_stdin ? "password set from standard input (--password-stdin); "
                                    "registered without initial password"
                                  : "initial password issued");
        if (ctx.args.flag("--out")) write_letter_file(ctx.args.value("--out"), rendered);
    });
    if (from_stdin) {
        if (ctx.json)
            print_json(Json{{"user_id", user_id},
                            {"org", org_id},
                            {"role", to_string(role)},
                            {"state", "active"}});
        else
            std::cout << "added " << to_string(role) << " user " << user_id << " to " << org_id
                      << " (registered, password from standard input)\n";
        return kOk;
    }
    deliver_letter(ctx, facts, rendered);
    return kOk;
}

User require_user(Store& store, const std::string& id) {
    auto u = store.find_user(id);
    if (!u) throw StoreNotFound("user " + id + " does not exist");
    return *u;
}

std::string user_state_words(const User& u, int64_t now) {
    std::string s = to_string(u.state);
    if (u.blocked) s += ",blocked";
    if (u.locked_at(now)) s += ",locked";
    return s;
}

// Prints the user's new state after a lock-family command.
int report_user(Context& ctx, const std::string& id, const std::string& done) {
    User u = require_user(ctx.store(), id);
    if (ctx.json)
        print_json(user_json(u));
    else
        std::cout << done << " " << id << " (now " << user_state_words(u, ctx.store().now())
                  << ")\n";
    return kOk;
}

// certgate_lockout's lock time and locks, as the module reads them.
std::pair<int64_t, int> lockout_settings(Context& ctx) {
    return {ctx.settings().lockout_time_s, ctx.settings().lockout_locks};
}

}  // namespace

void print_user_table(const std::vector<User>& users, int64_t now) {
    std::cout << std::left << std::setw(14) << "USER" << std::setw(16) << "ORG" << std::setw(9)
              << "ROLE" << std::setw(28) << "STATE"
              << "MAIL\n";
    for (const auto& u : users)
        std::cout << std::setw(14) << u.id << std::setw(16) << u.org << std::setw(9)
                  << to_string(u.role) << std::setw(28) << user_state_words(u, now) << u.mail
                  << "\n";
}

int cmd_user_add_master(Context& ctx) { return add_user(ctx, Role::master); }
int cmd_user_add_general(Context& ctx) { return add_user(ctx, Role::general); }

int cmd_user_reset(Context& ctx) {
    const std::string id = ctx.args.positional(0, "USER_ID");
    Store& store = ctx.store();
    User u = require_user(store, id);
    auto org = store.find_org(u.org);
    const std::string password = generate_initial_password();
    LetterFacts facts{
        u.org, org ? org->name : u.org, id, u.name, u.mail, password, u.role, true, store.now()};
    const std::string rendered = render_letter(ctx, facts);
    const std::string hash = hash_password(password);
    store.write([&] {
        store.reset_user(id, hash, ctx.actor());
        if (ctx.args.flag("--out")) write_letter_file(ctx.args.value("--out"), rendered);
    });
    deliver_letter(ctx, facts, rendered);
    return kOk;
}

int cmd_user_lock(Context& ctx) {
    const std::string id = ctx.args.positional(0, "USER_ID");
    auto [lock_time, locks] = lockout_settings(ctx);
    if (ctx.args.flag("--minutes"))
        lock_time = parse_number(ctx.args.value("--minutes"), "--minutes") * 60;
    if (lock_time <= 0) throw UsageError("--minutes must be at least 1");
    Store& store = ctx.store();
    LockoutRule rule;
    rule.locks = locks;
    LockState r = lock_user(store, rule, id, store.now() + lock_time, ctx.actor());
    return report_user(ctx, id, r.blocked ? "locked and blocked" : "locked");
}

int cmd_user_unlock(Context& ctx) {
    const std::string id = ctx.args.positional(0, "USER_ID");
    ctx.store().unlock_user(id, ctx.actor());
    return report_user(ctx, id, "unlocked");
}

int cmd_user_block(Context& ctx) {
    const std::string id = ctx.args.positional(0, "USER_ID");
    ctx.store().block_user(id, ctx.actor());
    return report_user(ctx, id, "blocked");
}

int cmd_user_unblock(Context& ctx) {
    const std::string id = ctx.args.positional(0, "USER_ID");
    ctx.store().unblock_user(id, ctx.actor());
    return report_user(ctx, id, "unblocked");
}

int cmd_user_disable(Context& ctx) {
    const std::string id = ctx.args.positional(0, "USER_ID");
    Store& store = ctx.store();
    std::vector<std::string> revoked;
    store.write([&] {
        store.disable_user(id, ctx.actor());
        revoked = store.revoke_user_certificates(id, "cessationOfOperation", ctx.actor());
    });
    if (!ctx.json)
        for (const auto& s : revoked) std::cout << "revoked certificate " << s << "\n";
    return report_user(ctx, id, "disabled");
}

int cmd_user_list(Context& ctx) {
    Store& store = ctx.store();
    const std::string org = ctx.args.value("--org");
    if (!org.empty() && !store.find_org(org))
        throw StoreNotFound("organisation " + org + " does not exist");
    auto users = store.list_users(org);
    if (ctx.json) {
        Json items = Json::array();
        for (const auto& u : users) items.push_back(user_json(u));
        print_json(items);
        return kOk;
    }
    print_user_table(users, store.now());
    return kOk;
}

int cmd_user_show(Context& ctx) {
    const std::string id = ctx.args.positional(0, "USER_ID");
    Store& store = ctx.store();
    User u = require_user(store, id);
    CertificateFilter f;
    f.user_id = id;
    auto certs = store.list_certificates(f);
    if (ctx.json) {
        Json j = user_json(u);
        j["certificates"] = Json::array();
        for (const auto& c : certs) j["certificates"].push_back(cert_json(c));
        print_json(j);
        return kOk;
    }
    const int64_t now = store.now();
    std::cout << "user             " << u.id << "\n"
              << "organisation     " << u.org << "\n"
              << "role             " << to_string(u.role) << "\n"
              << "name             " << (u.name.empty() ? "-" : u.name) << "\n"
              << "mail             " << u.mail << "\n"
              << "language         " << (u.language.empty() ? "- (certgate_language)" : u.language)
              << "\n"
              << "state            " << user_state_words(u, now) << "\n"
              << "failure streak   " << u.failure_streak << "\n"
              << "locks            " << u.lock_count << "\n"
              << "locked until     " << (u.locked_at(now) ? format_time(u.locked_until) : "-")
              << "\n"
              << "initial password " << format_time(u.initial_password_at) << "\n"
              << "last login       " << format_time(u.last_login_at) << "\n"
              << "created          " << format_time(u.created_at) << "\n"
              << "certificates     " << (certs.empty() ? "none" : "") << "\n";
    for (const auto& c : certs)
        std::cout << "  " << c.serial << "  " << to_string(c.status) << "  until "
                  << format_time(c.not_after) << "\n";
    return kOk;
}

}  // namespace certgate::ctl
