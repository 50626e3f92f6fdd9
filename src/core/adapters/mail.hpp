// certgate's mail adapter: the auth-code, lock, block and expiry mails (R3,
// R6 ⑤, R10), sent through an SMTP relay with libcurl or written into a
// Maildir. The outbox that makes sure none is lost is app/outbox.hpp.
//
// Everything here blocks: call it from an nginx thread-pool thread or from
// certgatectl, never from an event loop. No nginx types.
#pragma once

#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/config/settings.hpp"
#include "core/ports/mailer.hpp"
#include "core/ports/store.hpp"

namespace certgate {

// What certgate_mail and certgate_mail_from say.
struct MailSettings {
    // smtp://host:port (STARTTLS when the relay offers it), smtps://host:port
    // (implicit TLS), or maildir:/path. smtp://user:pass@host:port logs in.
    std::string relay;
    std::string from;  // "noreply@bank.example" or "Name <noreply@bank.example>"
    int timeout_ms = 10000;
    std::string ca_file;  // CA bundle for the relay's certificate; empty: system default
    bool tls_verify = true;
};

// The one rule for a mail address, wherever one enters (registration, the
// master's add-user page, certgatectl, certgate_mail_from, the mailer): a bare
// user@domain that the mailer can put into RCPT TO and To: without quoting.
// The local part is an RFC 5322 dot-atom (letters, digits and
// !#$%&'*+-/=?^_`{|}~, dots between them, at most 64 characters), the domain
// is dot-separated labels of letters, digits and hyphens (no hyphen at either
// end, at most 63 each), one @, at most 254 characters in all. Quoted local
// parts, comments, address literals, spaces and control characters are
// refused.
enum class MailAddressProblem {
    none,
    empty,
    too_long,
    no_at,       // no @, or more than one
    local_part,  // empty, too long, or a character or dot that is not allowed
    domain,      // empty, too long, or a label that is not letters, digits and hyphens
};
MailAddressProblem check_mail_address(const std::string& address);
// What is wrong, one sentence for the user (or the operator, in English).
std::string mail_address_message(MailAddressProblem problem, Language lang);

// curl_global_init, once per process. send_mail() calls it too; call it early
// (before the thread pool starts) to keep it off the request path.
void mail_global_init();

// Builds the RFC 5322 message: Date, From, To, Subject (RFC 2047 UTF-8 when
// needed), Message-ID, MIME-Version, Content-Type text/plain; charset=UTF-8,
// the body base64 in lines of 76. Lines end in CRLF. Throws MailError
// (permanent) when to, from or subject hold CR, LF or other control
// characters, or an address is not user@domain.
std::string format_mail(const MailSettings& settings, const MailMessage& message);

// Sends one mail now, blocking for at most about settings.timeout_ms.
// Throws MailError.
void send_mail(const MailSettings& settings, const MailMessage& message);

// The mailer port over the relay of certgate_mail (SMTP, SMTPS or a Maildir).
class RelayMailer final : public Mailer {
  public:
    explicit RelayMailer(MailSettings settings) : settings_(std::move(settings)) {}
    void send(const MailMessage& message) override { send_mail(settings_, message); }
    std::string message_id_domain() const override;
    int timeout_ms() const override { return settings_.timeout_ms; }
    const MailSettings& settings() const { return settings_; }

  private:
    MailSettings settings_;
};

// certgate_mail and certgate_mail_from, as MailSettings.
MailSettings mail_settings(const Settings& settings);

// ---- templates -----------------------------------------------------------------

enum class MailKind {
    auth_code,     // R6 ⑤ and first registration: code, minutes
    locked,        // R10: until, failures
    blocked,       // R10: role (who unblocks)
    expiry_soon,   // R3, 30 days before: expiry, portal_url
    expired,       // R3: expiry, portal_url
    code_budget,   // R21: the day's code tries or code mails are used up; until
    self_revoked,  // R20: the user revoked a live certificate to reissue; serial, until
};

struct MailFields {
    std::string to;
    std::string user_id;
    std::string code;           // auth_code
    long minutes = 0;           // auth_code: how long the code is valid
    time_t until = 0;           // locked: when the lock lifts
    int failures = 0;           // locked: wrong passwords in a row
    Role role = Role::general;  // blocked: a master asks the bank, a general user its master
    time_t expiry = 0;          // expiry_soon, expired: the certificate's not_after
    std::string timezone = "Asia/Tokyo";
    std::string portal_url;  // expiry_soon, expired: where to renew
    HelpDesk helpdesk;
    std::string serial;      // self_revoked: the revoked certificate
    bool to_master = false;  // self_revoked: the mail tells the master of a general user
};

// The mail of that kind in that language, addressed to fields.to. Dates are
// shown in fields.timezone. Throws MailError for a field the kind needs that
// is missing, CaError for an unknown time zone.
MailMessage compose_mail(MailKind kind, Language lang, const MailFields& fields);

// The Japanese and the English mail in one, for a reader whose language
// nobody knows (expiry notices with certgate_language auto): subject
// "<ja> / <en>", the Japanese body, a divider, the English body.
MailMessage compose_bilingual_mail(MailKind kind, const MailFields& fields);

// The mail of a user: in the language they last chose on the pages
// (User::language, "ja" or "en"), else in `fallback` (certgate_language),
// or both languages when that is auto (`bilingual`).
MailMessage compose_user_mail(MailKind kind, const std::string& user_language, Language fallback,
                              bool bilingual, const MailFields& fields);

}  // namespace certgate
