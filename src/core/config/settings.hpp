// What nginx.conf said, as plain C++ values: the core and the thread-pool
// tasks read these without touching nginx's configuration structures.
#pragma once

#include <string>
#include <vector>

namespace certgate {

enum class Language { ja, en };

struct HelpDesk {
    std::string name;
    std::string phone;
    std::string hours;
};

// One certgate_memcached server: a host (name, IPv4, or IPv6 without the
// brackets) and port, or a unix socket (port 0, host is its path).
struct MemcachedServer {
    std::string host;
    int port = 11211;
    bool operator==(const MemcachedServer &o) const { return host == o.host && port == o.port; }
};

struct Settings {
    std::string store_uri;
    // certgate_memcached: the servers (ketama over all of them) and the
    // deadline of each connect, send and receive.
    std::vector<MemcachedServer> memcached_servers;
    int memcached_timeout_ms = 500;

    std::string secret_file;  // certgate_secret
    std::string secret;       // raw bytes read from it, never logged

    std::string ca_certificate;
    std::string ca_certificate_previous;  // CAs being retired: still trusted, never signing
    std::string ca_key;
    std::string ca_key_passphrase_file;
    std::string ca_key_pin_file;
    std::string pkcs11_module;
    std::string key_type = "rsa:2048";
    // certgate_key_pool: keys made ahead per worker (0: off), and the pause
    // after each, a bound on the refill's rate.
    int key_pool_size = 8;
    long key_pool_pause_ms = 100;
    bool p12_legacy = false;
    int p12_iterations = 100000;  // certgate_p12_iterations
    std::string crl_url;

    long sync_interval_ms = 1000;
    // certgate_sync_max_lag: past this long without a good read of the
    // event table the protected path refuses (0: off).
    long sync_max_lag_ms = 10000;
    long notify_interval_ms = 3600 * 1000;  // 0: off
    long cert_validity_days = 366;
    long renew_before_days = 30;
    // The portal's CRL: valid this long, signed again at half of it.
    long crl_validity_seconds = 24 * 3600;
    std::string timezone = "Asia/Tokyo";
    // certgate_language at the http level, for mails no page asks for (the
    // expiry notices): ja, en, or with auto both (Japanese first).
    Language mail_language = Language::ja;
    bool mail_bilingual = false;

    int lockout_failures = 6;
    long lockout_time_s = 60 * 60;
    int lockout_locks = 3;

    // The arguments of certgate_userid_rule / certgate_password_rule as
    // written (patterns, then min=, max=, description=); empty: R8 / R9.
    std::vector<std::string> userid_rule_args;
    std::vector<std::string> password_rule_args;

    int code_digits = 6;
    long code_lifetime_s = 30 * 60;
    int code_attempts = 5;
    // R21: per user and window, code tries (judged codes) and code mails.
    int code_budget_tries = 30;
    int code_budget_mails = 10;
    long code_budget_window_s = 24 * 60 * 60;
    // An issuance flow lives this long (④ to ⑧); a certificate recorded and
    // not handed over within it is revoked.
    long flow_lifetime_s() const { return code_lifetime_s + 30 * 60; }

    std::string mail;
    std::string mail_from;

    long session_idle_s = 20 * 60;
    long session_absolute_s = 8 * 3600;

    // certgate_userid_rule / certgate_password_rule; empty: R8 / R9.
    std::vector<std::string> userid_rules;
    std::vector<std::string> password_rules;

    std::string templates_dir;
    HelpDesk helpdesk;
    // R20, certgate_self_revoke: a user who passes ④ and ⑤ while holding a
    // live certificate may revoke it and reissue in the same flow.
    bool self_revoke = true;
    // certgate_footer_note: a line under the help desk on every page (the
    // manual's ※1月1日～1月3日、12月31日はご利用いただけません), per language.
    std::string footer_note_ja;
    std::string footer_note_en;
    // certgate_portal_url: the system's address as users type it, for the
    // initial-password letter and the expiry mails; empty: they name the button.
    std::string portal_url;
    std::string portal_prefix = "/certgate/";
    // certgate_home: where a login goes when no (site-local) return= says.
    std::string home = "/";
};

}  // namespace certgate
