// certgatectl's shared parts: parsed arguments, where the store and CA are,
// output (text or JSON), and the exceptions that map to exit codes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/base/json.hpp"
#include "core/config/nginx_conf_reader.hpp"
#include "core/ports/store.hpp"

namespace certgate::ctl {

// Exit codes, documented in `certgatectl --help` and docs/operations.md.
enum Exit : int {
    kOk = 0,
    kUsage = 1,     // bad command line or bad input (R8, R9, unknown reason, ...)
    kNotFound = 2,  // unknown organisation, user, certificate, mail
    kConflict = 3,  // duplicate, or a state that does not allow the change
    kStore = 4,     // store cannot be opened, is busy, corrupt or of another version
    kConfig = 5,    // nginx.conf, CA files, CRL, letter file
};

// Bad command line or input: exit 1.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// nginx.conf, CA or an output file: exit 5.
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Args {
    std::vector<std::string> words;  // the command and its positional arguments
    std::multimap<std::string, std::string> options;

    bool flag(const std::string& name) const { return options.count(name) > 0; }
    std::string value(const std::string& name, const std::string& fallback = "") const;
    // The positional argument after the command words, or a UsageError naming it.
    std::string positional(size_t index, const char* what) const;
    size_t command_words = 1;
};

class Context {
  public:
    Args args;
    bool json = false;

    // The nginx.conf given with -c (or /etc/nginx/nginx.conf when it exists).
    const NginxConf* conf();
    // What that nginx.conf sets, read by the module's own parsers, relative
    // paths against its directory as nginx does; the defaults without one.
    const Settings& settings();
    // The conf has this directive.
    bool configured(const std::string& directive);
    // --store, else certgate_store from the conf.
    std::string store_uri();
    // Opens the store and checks its schema.
    Store& store();
    // Opens (and with create, makes) the store without the schema check.
    std::unique_ptr<Store> open_store_raw(bool create);
    // "operator:<login>" unless --actor says otherwise.
    std::string actor();
    // A command-line option, else the conf's value for it.
    std::string option_or(const std::string& option, const std::string& conf_value) const;

  private:
    bool conf_loaded_ = false;
    std::optional<NginxConf> conf_;
    std::optional<ConfValues> values_;
    std::unique_ptr<Store> store_;
};

// --- output ---------------------------------------------------------------------

// --json: the answer as one line of JSON on stdout.
void print_json(const Json& j);

// Local time in certgate_timezone, or in TZ when that is set
// ("2026-11-26 09:00:00 +0900"); "-" for 0.
std::string format_time(int64_t t);
// "30d", "12h", "90m", "45s" or plain days.
int64_t parse_duration(const std::string& text);
// A positive number, or UsageError naming the option.
int64_t parse_number(const std::string& text, const char* what);

Json user_json(const User& u);
Json cert_json(const Certificate& c);
Json event_json(const Event& e);

// --- commands ----------------------------------------------------------------------

int cmd_init(Context&);
int cmd_migrate(Context&);
int cmd_status(Context&);
int cmd_store_copy(Context&);
int cmd_org_add(Context&);
int cmd_org_list(Context&);
int cmd_org_show(Context&);
int cmd_user_add_master(Context&);
int cmd_user_add_general(Context&);
int cmd_user_reset(Context&);
int cmd_user_lock(Context&);
int cmd_user_unlock(Context&);
int cmd_user_block(Context&);
int cmd_user_unblock(Context&);
int cmd_user_disable(Context&);
int cmd_user_list(Context&);
int cmd_user_show(Context&);
int cmd_cert_list(Context&);
int cmd_cert_show(Context&);
int cmd_cert_import(Context&);
int cmd_cert_revoke(Context&);
int cmd_crl(Context&);
int cmd_audit(Context&);
int cmd_mail_list(Context&);
int cmd_mail_retry(Context&);
int cmd_notify(Context&);

}  // namespace certgate::ctl
