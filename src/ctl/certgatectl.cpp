// certgatectl: the bank operator's tool (DESIGN.md §4). It works on the same
// store as the nginx module and finds it, and the CA, through nginx.conf.
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <set>

#include "core/adapters/audit_export.hpp"
#include "core/adapters/ca.hpp"
#include "core/base/utc_time.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

const char* const kDefaultConf = "/etc/nginx/nginx.conf";

// Every option any command knows; true when it takes a value.
const std::map<std::string, bool> kOptions = {
    {"-c", true},
    {"--store", true},
    {"--from", true},
    {"--to", true},
    {"--json", false},
    {"--actor", true},
    {"--help", false},
    {"-h", false},
    {"--demo-ca", false},
    {"--ca-cert", true},
    {"--ca-key", true},
    {"--ca-cn", true},
    {"--ca-days", true},
    {"--ca-passphrase-file", true},
    {"--key-type", true},
    {"--name", true},
    {"--mail", true},
    {"--html", false},
    {"--out", true},
    {"--password-stdin", false},
    {"--org", true},
    {"--user", true},
    {"--expiring-within", true},
    {"--status", true},
    {"--reason", true},
    {"--pem", false},
    {"--der", false},
    {"--next-update", true},
    {"--since", true},
    {"--limit", true},
    {"--minutes", true},
    {"--state", true},
    {"--now", true},
    {"--hsm", false},
    {"--pin-file", true},
    {"--pkcs11-module", true},
    {"--until", true},
    {"--jsonl", false},
};
const std::set<std::string> kGlobalOptions = {"-c", "--store", "--json", "--actor", "--help", "-h"};

struct Command {
    std::vector<std::string> words;
    std::string synopsis;
    std::string help;
    std::set<std::string> options;
    int (*run)(Context&);
};

const std::vector<Command> kCommands = {
    {{"init"},
     "init [--demo-ca | --hsm [--pin-file F] [--pkcs11-module SO]] [--ca-cn NAME]\n"
     "     [--ca-days N] [--key-type T] [--ca-cert F --ca-key F]",
     "Creates the store (schema included) if it does not exist; an existing store is\n"
     "migrated. With --demo-ca, also creates a self-signed CA at certgate_ca_certificate\n"
     "and certgate_ca_key (or --ca-cert/--ca-key); existing CA files are kept.\n"
     "With --hsm, certgate_ca_key (or --ca-key) is engine:pkcs11:<pkcs11 URI>: the key\n"
     "is generated inside that token by OpenSC's pkcs11-tool (sensitive, never\n"
     "extractable; a key already there is used), logged in with the PIN of\n"
     "certgate_ca_key_pin_file (--pin-file), through certgate_pkcs11_module\n"
     "(--pkcs11-module); then the self-signed CA certificate is written.",
     {"--demo-ca", "--hsm", "--pin-file", "--pkcs11-module", "--ca-cert", "--ca-key", "--ca-cn",
      "--ca-days", "--key-type"},
     cmd_init},
    {{"migrate"},
     "migrate",
     "Upgrades the store's schema to the version this certgatectl knows.",
     {},
     cmd_migrate},
    {{"status"},
     "status",
     "Shows the store, its schema version and how many organisations, users,\n"
     "certificates and events it holds.",
     {},
     cmd_status},
    {{"store", "copy"},
     "store copy --from sqlite:/path/file.db --to postgresql://user@host/db",
     "Copies a single node's SQLite store into an empty PostgreSQL store (the move to\n"
     "a fleet): every table, ids kept, then the sequences; then reads both sides again\n"
     "and prints the rows and a SHA-256 checksum of every table. Different rows or\n"
     "checksums are an error (exit 4). The target must be empty: a new database (or\n"
     "schema), at most `certgatectl init` run on it. Stop nginx and certgatectl\n"
     "writers on the source first.",
     {"--from", "--to"},
     cmd_store_copy},
    {{"org", "add"},
     "org add ORG_ID [--name NAME]",
     "Adds an organisation (団体). ORG_ID: 1-32 letters, digits, '-' or '_'.",
     {"--name"},
     cmd_org_add},
    {{"org", "list"}, "org list", "Lists the organisations.", {}, cmd_org_list},
    {{"org", "show"}, "org show ORG_ID", "Shows an organisation and its users.", {}, cmd_org_show},
    {{"user", "add-master"},
     "user add-master ORG_ID USER_ID --mail ADDR [--name NAME] [--html] [--out FILE]\n"
     "                [--password-stdin]",
     "Adds the organisation's master user with a random initial password (R9) and\n"
     "prints the letter for the bank to mail (plain text; --html: a printable page;\n"
     "--out: into FILE, mode 0600). The user must register with it.\n"
     "--password-stdin: the password is read from standard input, checked against\n"
     "R9 and set; the user is registered at once (automation, test suites).",
     {"--mail", "--name", "--html", "--out", "--password-stdin"},
     cmd_user_add_master},
    {{"user", "add-general"},
     "user add-general ORG_ID USER_ID --mail ADDR [--name NAME] [--html] [--out FILE]\n"
     "                 [--password-stdin]",
     "The same as add-master, for a general user of the organisation.",
     {"--mail", "--name", "--html", "--out", "--password-stdin"},
     cmd_user_add_general},
    {{"user", "reset"},
     "user reset USER_ID [--html] [--out FILE]",
     "R17: a new initial password and letter; the user must register again, its\n"
     "locks and block are cleared and its open sessions end.",
     {"--html", "--out"},
     cmd_user_reset},
    {{"user", "lock"},
     "user lock USER_ID [--minutes N]",
     "Locks the user for N minutes (default: certgate_lockout's lock time, 60).\n"
     "The lock that reaches certgate_lockout's lock count (3) blocks the user.",
     {"--minutes"},
     cmd_user_lock},
    {{"user", "unlock"},
     "user unlock USER_ID",
     "Releases a lock before its time and clears the failure streak.",
     {},
     cmd_user_unlock},
    {{"user", "block"},
     "user block USER_ID",
     "Blocks (閉塞) the user: no login or issuance until unblocked.",
     {},
     cmd_user_block},
    {{"user", "unblock"},
     "user unblock USER_ID",
     "Lifts a block (R10: the bank does this for master users), with its lock count.",
     {},
     cmd_user_unblock},
    {{"user", "disable"},
     "user disable USER_ID",
     "Disables the user and revokes its certificates (cessationOfOperation).",
     {},
     cmd_user_disable},
    {{"user", "list"},
     "user list [--org ORG_ID]",
     "Lists users with their role, state, lock and block.",
     {"--org"},
     cmd_user_list},
    {{"user", "show"},
     "user show USER_ID",
     "Shows a user and its certificates.",
     {},
     cmd_user_show},
    {{"cert", "list"},
     "cert list [--user USER_ID] [--status S] [--expiring-within 30d]",
     "Lists certificates, newest first. --expiring-within: live certificates whose\n"
     "validity ends within that time (d, h, m or s).",
     {"--user", "--status", "--expiring-within"},
     cmd_cert_list},
    {{"cert", "show"}, "cert show SERIAL", "Shows one certificate.", {}, cmd_cert_show},
    {{"cert", "import"},
     "cert import PEM_FILE [--user USER_ID]",
     "Records a certificate issued outside certgate (the user defaults to its CN).",
     {"--user"},
     cmd_cert_import},
    {{"cert", "revoke"},
     "cert revoke (SERIAL | --user USER_ID) --reason REASON",
     "Revokes a certificate, or every live certificate of a user. REASON: keyCompromise,\n"
     "superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn,\n"
     "certificateHold or unspecified. nginx refuses the certificate within\n"
     "certgate_sync_interval, without a reload.",
     {"--user", "--reason"},
     cmd_cert_revoke},
    {{"crl"},
     "crl --out FILE [--pem | --der] [--next-update 7d] [--ca-cert F --ca-key F]\n"
     "    [--ca-passphrase-file F]",
     "Writes a CRL of every revoked certificate, signed by the CA. The format follows\n"
     "--pem/--der, else the file name (.pem: PEM), else DER.",
     {"--out", "--pem", "--der", "--next-update", "--ca-cert", "--ca-key", "--ca-passphrase-file"},
     cmd_crl},
    {{"audit"},
     "audit [--since N|TIME] [--until TIME] [--user USER_ID] [--limit N] [--jsonl]",
     "Shows the event table (the audit trail) oldest first, after event N or from TIME\n"
     "(2026-12-01T09:00:00Z, 2026-12-01T18:00:00+09:00, 2026-12-01 or @unixtime) until\n"
     "TIME (not included). --jsonl prints one JSON line per event, as certgate_audit\n"
     "sends them (time, id, kind, actor, subject, detail, node; secrets redacted).",
     {"--since", "--until", "--user", "--limit", "--jsonl"},
     cmd_audit},
    {{"mail", "list"},
     "mail list [--state queued|sending|sent|failed]",
     "Shows the mail outbox.",
     {"--state"},
     cmd_mail_list},
    {{"mail", "retry"},
     "mail retry MAIL_ID",
     "Makes a queued or failed mail due now.",
     {},
     cmd_mail_retry},
    {{"notify"},
     "notify [--now EPOCH]",
     "Sends the due expiry notices (R3: 30 days before expiry and once expired, each\n"
     "once per certificate) and then the mails waiting in the outbox, as the module's\n"
     "certgate_notify_interval timer does. Safe to run while nginx runs: a notice or\n"
     "mail is never sent twice. --now (for test suites): run as if the clock said EPOCH.",
     {"--now"},
     cmd_notify},
};

const char* const kGlobalHelp =
    "usage: certgatectl [-c nginx.conf | --store URI] [--json] [--actor NAME] COMMAND ...\n"
    "\n"
    "The bank operator's tool for certgate. It works on the store that nginx uses and\n"
    "finds it, and the CA, from the certgate_* lines of nginx.conf (-c, default\n"
    "/etc/nginx/nginx.conf); --store URI (sqlite:/path/file.db or\n"
    "postgresql://user@host:port/db?sslmode=verify-full) overrides.\n"
    "\n"
    "Options:\n"
    "  -c FILE        nginx.conf to read certgate_store, certgate_ca_* and the rules from\n"
    "  --store URI    the store, overriding certgate_store\n"
    "  --json         machine-readable output\n"
    "  --actor NAME   who the audit trail names (default operator:<login name>)\n"
    "  --help         this text; `certgatectl COMMAND --help` for one command\n"
    "\n"
    "Commands:\n";

const char* const kExitHelp =
    "\n"
    "Exit codes:\n"
    "  0  done\n"
    "  1  bad command line or input (user ID breaks R8, password breaks R9, ...)\n"
    "  2  not found (organisation, user, certificate, mail)\n"
    "  3  conflict (duplicate, already revoked, not locked, ...)\n"
    "  4  store error (missing, unwritable, busy, corrupt, wrong schema version)\n"
    "  5  configuration or CA error (nginx.conf, CA key, output file)\n"
    "On error, one line goes to standard error and the store is left unchanged.\n";

std::string words_of(const Command& c) {
    std::string s;
    for (const auto& w : c.words) s += (s.empty() ? "" : " ") + w;
    return s;
}

void print_global_help() {
    std::cout << kGlobalHelp;
    for (const auto& c : kCommands) {
        std::string syn = c.synopsis.substr(0, c.synopsis.find('\n'));
        std::cout << "  " << syn << "\n";
    }
    std::cout << kExitHelp;
}

void print_command_help(const Command& c) {
    std::cout << "usage: certgatectl [-c nginx.conf | --store URI] [--json] " << c.synopsis
              << "\n\n"
              << c.help << "\n"
              << kExitHelp;
}

Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            for (++i; i < argc; ++i) a.words.push_back(argv[i]);
            break;
        }
        if (arg.size() > 1 && arg[0] == '-') {
            std::string name = arg, value;
            bool inline_value = false;
            auto eq = arg.find('=');
            if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
                name = arg.substr(0, eq);
                value = arg.substr(eq + 1);
                inline_value = true;
            }
            auto opt = kOptions.find(name);
            if (opt == kOptions.end()) throw UsageError("unknown option " + name);
            if (opt->second && !inline_value) {
                if (i + 1 >= argc) throw UsageError("option " + name + " needs a value");
                value = argv[++i];
            } else if (!opt->second && inline_value) {
                throw UsageError("option " + name + " takes no value");
            }
            a.options.emplace(name, value);
        } else {
            a.words.push_back(arg);
        }
    }
    return a;
}

const Command* find_command(const Args& a) {
    const Command* best = nullptr;
    for (const auto& c : kCommands) {
        if (a.words.size() < c.words.size()) continue;
        bool match = true;
        for (size_t i = 0; i < c.words.size(); ++i) match = match && a.words[i] == c.words[i];
        if (match && (!best || c.words.size() > best->words.size())) best = &c;
    }
    return best;
}

std::string login_name() {
    if (const char* sudo = std::getenv("SUDO_USER"); sudo && *sudo) return sudo;
    if (const passwd* pw = getpwuid(geteuid())) return pw->pw_name;
    return std::to_string(geteuid());
}

std::string display_zone = "Asia/Tokyo";

int run(int argc, char** argv) {
    Context ctx;
    ctx.args = parse_args(argc, argv);
    Args& a = ctx.args;
    ctx.json = a.flag("--json");
    if (a.words.empty()) {
        if (a.flag("--help") || a.flag("-h")) {
            print_global_help();
            return kOk;
        }
        throw UsageError("no command given; see certgatectl --help");
    }
    const Command* cmd = find_command(a);
    if (!cmd) {
        std::string what = a.words[0];
        if (a.words.size() > 1 &&
            (what == "org" || what == "user" || what == "cert" || what == "mail"))
            what += " " + a.words[1];
        throw UsageError("unknown command '" + what + "'; see certgatectl --help");
    }
    if (a.flag("--help") || a.flag("-h")) {
        print_command_help(*cmd);
        return kOk;
    }
    for (const auto& [name, value] : a.options)
        if (!kGlobalOptions.count(name) && !cmd->options.count(name))
            throw UsageError(words_of(*cmd) + " does not take " + name);
    a.command_words = cmd->words.size();

    // Times print in the store's time zone (R1's), unless TZ names another.
    display_zone = ctx.settings().timezone;
    if (const char* tz = std::getenv("TZ"); tz && *tz) {
        std::string name = tz[0] == ':' ? tz + 1 : tz;
        if (time_zone_problem(name).empty()) display_zone = name;
    }
    return cmd->run(ctx);
}

}  // namespace

// --- Args and Context -----------------------------------------------------------------

std::string Args::value(const std::string& name, const std::string& fallback) const {
    auto range = options.equal_range(name);
    if (range.first == range.second) return fallback;
    return std::prev(range.second)->second;
}

std::string Args::positional(size_t index, const char* what) const {
    size_t i = command_words + index;
    if (i >= words.size()) throw UsageError(std::string("missing ") + what);
    return words[i];
}

const NginxConf* Context::conf() {
    if (!conf_loaded_) {
        conf_loaded_ = true;
        std::string path = args.value("-c");
        if (path.empty() && access(kDefaultConf, R_OK) == 0 && !args.flag("--store"))
            path = kDefaultConf;
        if (!path.empty()) {
            try {
                conf_ = NginxConf::read(path);
            } catch (const ConfError& e) {
                throw ConfigError(e.what());
            }
        }
    }
    return conf_ ? &*conf_ : nullptr;
}

const Settings& Context::settings() {
    if (!values_) {
        const NginxConf* c = conf();
        try {
            values_ = c ? c->values() : ConfValues();
        } catch (const ConfError& e) {
            throw ConfigError(e.what());
        }
    }
    return values_->settings;
}

bool Context::configured(const std::string& directive) {
    settings();
    return values_->seen.count(directive) > 0;
}

std::string Context::option_or(const std::string& option, const std::string& conf_value) const {
    std::string v = args.value(option);
    return v.empty() ? conf_value : v;
}

std::string Context::store_uri() {
    std::string uri = args.value("--store");
    if (!uri.empty()) return uri;
    if (conf() && configured("certgate_store")) return settings().store_uri;
    std::string where = args.value("-c");
    if (where.empty()) where = access(kDefaultConf, R_OK) == 0 ? kDefaultConf : "";
    if (where.empty()) throw UsageError("no store given: use --store URI or -c nginx.conf");
    throw UsageError(where + " has no certgate_store line: use --store URI or another -c");
}

std::unique_ptr<Store> Context::open_store_raw(bool create) {
    return Store::open(store_uri(), create);
}

Store& Context::store() {
    if (!store_) {
        store_ = open_store_raw(false);
        check_schema(*store_);
    }
    return *store_;
}

std::string Context::actor() {
    std::string a = args.value("--actor");
    return a.empty() ? "operator:" + login_name() : a;
}

// --- output helpers -----------------------------------------------------------------

void print_json(const Json& j) { std::cout << json_body(j); }

std::string format_time(int64_t t) {
    if (t == 0) return "-";
    return format_local_time(static_cast<time_t>(t), display_zone, "%Y-%m-%d %H:%M:%S %z");
}

int64_t parse_number(const std::string& text, const char* what) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end || errno || v < 0)
        throw UsageError(std::string(what) + " must be a non-negative number, not '" + text + "'");
    return v;
}

int64_t parse_duration(const std::string& text) {
    if (text.empty()) throw UsageError("empty duration");
    int64_t unit = 86400;
    std::string digits = text;
    switch (text.back()) {
        case 'd':
            unit = 86400;
            digits.pop_back();
            break;
        case 'h':
            unit = 3600;
            digits.pop_back();
            break;
        case 'm':
            unit = 60;
            digits.pop_back();
            break;
        case 's':
            unit = 1;
            digits.pop_back();
            break;
        default:
            break;
    }
    return parse_number(digits, ("duration '" + text + "'").c_str()) * unit;
}

Json user_json(const User& u) {
    return Json{{"user_id", u.id},
                {"org", u.org},
                {"role", to_string(u.role)},
                {"name", u.name},
                {"mail", u.mail},
                {"state", to_string(u.state)},
                {"failure_streak", u.failure_streak},
                {"lock_count", u.lock_count},
                {"locked_until", u.locked_until},
                {"blocked", u.blocked},
                {"initial_password_at", u.initial_password_at},
                {"created_at", u.created_at},
                {"last_login_at", u.last_login_at}};
}

Json cert_json(const Certificate& c) {
    return Json{
        {"serial", c.serial},         {"user_id", c.user_id},     {"status", to_string(c.status)},
        {"not_before", c.not_before}, {"not_after", c.not_after}, {"issued_at", c.issued_at},
        {"revoked_at", c.revoked_at}, {"reason", c.reason},       {"notices", c.notices}};
}

Json event_json(const Event& e) {
    return Json{{"id", e.id},        {"at", e.at},     {"time", utc_time(e.at)},
                {"actor", e.actor},  {"kind", e.kind}, {"subject", e.subject},
                {"detail", e.detail}};
}

}  // namespace certgate::ctl

int main(int argc, char** argv) {
    using namespace certgate;
    using namespace certgate::ctl;
    const char* prog = "certgatectl: ";
    try {
        return ctl::run(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << prog << e.what() << "\n";
        return kUsage;
    } catch (const StoreNotFound& e) {
        std::cerr << prog << e.what() << "\n";
        return kNotFound;
    } catch (const StoreConflict& e) {
        std::cerr << prog << e.what() << "\n";
        return kConflict;
    } catch (const StoreError& e) {
        std::cerr << prog << e.what() << "\n";
        return kStore;
    } catch (const ConfigError& e) {
        std::cerr << prog << e.what() << "\n";
        return kConfig;
    } catch (const CaError& e) {
        std::cerr << prog << e.what() << "\n";
        return kConfig;
    } catch (const std::exception& e) {
        std::cerr << prog << e.what() << "\n";
        return kConfig;
    }
}
