// certgate's mail: the auth-code, lock, block and expiry mails (R3, R6 ⑤, R10),
// sent through an SMTP relay with libcurl or written into a Maildir, and the
// outbox in the store that makes sure none is lost (issue 7).
//
// Everything here blocks: call it from an nginx thread-pool thread or from
// certgatectl, never from an event loop. No nginx types.
#pragma once

#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config/settings.hpp"
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

struct MailMessage {
    std::string to;  // a bare address: user@example.jp
    std::string subject;
    std::string body;  // UTF-8 plain text, lines end in \n
    // Empty: one is made up. The outbox gives each mail a fixed one, so a mail
    // sent twice after a crash can be recognised as the same mail.
    std::string message_id;
    time_t date = 0;  // 0: now
    // When the mail is no use any more (an auth code's end): not sent after
    // it, and its body wiped from the outbox. 0: never.
    int64_t expires_at = 0;
};

// A mail could not be sent. what() names the relay, the step and the relay's
// answer, e.g. "SMTP relay 127.0.0.1:2525 refused RCPT TO:<x@y>: 550 5.1.1 ...".
class MailError : public std::runtime_error {
  public:
    enum class Kind {
        temporary,    // try again later: 4xx, a timeout, a dropped connection
        permanent,    // this mail will never go: 5xx for the recipient or message
        unreachable,  // the relay (or Maildir) cannot take any mail now: connect,
                      // TLS, login or MAIL FROM failed; the rest of a batch waits
        uncertain,    // the message went out but its acceptance never came back in
                      // time: it may have been delivered, so it is not sent again
    };
    MailError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
    Kind kind() const { return kind_; }
    bool permanent() const { return kind_ == Kind::permanent; }

  private:
    Kind kind_;
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

// ---- templates -----------------------------------------------------------------

enum class MailKind {
    auth_code,    // R6 ⑤ and first registration: code, minutes
    locked,       // R10: until, failures
    blocked,      // R10: role (who unblocks)
    expiry_soon,  // R3, 30 days before: expiry, portal_url
    expired,      // R3: expiry, portal_url
    code_budget,  // R21: the day's code tries or code mails are used up; until
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
};

// The mail of that kind in that language, addressed to fields.to. Dates are
// shown in fields.timezone. Throws MailError for a field the kind needs that
// is missing, CaError for an unknown time zone.
MailMessage compose_mail(MailKind kind, Language lang, const MailFields& fields);

// The Japanese and the English mail in one, for a reader whose language
// nobody knows (expiry notices with certgate_language auto): subject
// "<ja> / <en>", the Japanese body, a divider, the English body.
MailMessage compose_bilingual_mail(MailKind kind, const MailFields& fields);

// ---- outbox ----------------------------------------------------------------------

// A claimed mail is "sending" for this long; if the process dies meanwhile, the
// mail becomes due again after it. It outlasts any one try (the SMTP timeout).
inline constexpr int kOutboxLeaseSeconds = 5 * 60;
// A mail that failed this many times (temporarily) ends as failed, with its reason.
inline constexpr int kOutboxMaxAttempts = 8;
// A mail sent inline from a request (the auth code, a lock notice) waits for
// the relay at most this long; the outbox (in the background) waits
// MailSettings::timeout_ms.
inline constexpr int kInlineMailTimeoutMs = 4000;
// At most this many pool threads of a worker wait on the relay inline at once;
// a request beyond them leaves its mail to the outbox instead of waiting, so a
// hung relay cannot take the thread pool (and /health, ④ for others) with it.
inline constexpr int kMaxInlineMailSenders = 4;
// Backoff after a temporary failure: 30 s, 1 m, 2 m, 4 m, ... at most 30 m.
inline constexpr int64_t kOutboxFirstRetrySeconds = 30;
inline constexpr int64_t kOutboxMaxRetrySeconds = 30 * 60;

// Seconds to wait before the next try, after `attempts` tries failed.
int64_t outbox_backoff(int attempts);

// Checks the message like format_mail() does and puts it in the outbox; the
// mail's id. actor and about go into the mail.queued event (about: the user
// ID or certificate serial the mail is about).
int64_t queue_mail(Store& store, const MailMessage& message, const std::string& actor,
                   const std::string& about);

struct OutboxResult {
    int sent = 0;
    int retried = 0;  // temporary failure: queued again with backoff
    int failed = 0;   // permanent failure: given up
};

// Sends up to max_mails due mails from the outbox, one claim at a time.
//
// Delivery guarantee: a mail is claimed atomically in the store (state
// "sending" with a lease) before it is sent, so two workers, two nodes or
// certgatectl never send it at the same time. Each outcome is written with its
// event (mail.sent; mail.failed with the retry time or "gave up"). The one
// window left is a crash after the relay accepted the mail and before the store
// records it: the lease then runs out and the mail is sent again (at least
// once after such a crash, exactly once otherwise; both copies carry the same
// Message-ID). The other choice, marking it sent before sending, would lose
// mails instead.
//
// When the relay is unreachable the batch stops after the first mail, which is
// retried with backoff; the others wait for the next run. `now` is the time
// the backoff counts from; which mails are due is decided by the store's clock.
// A StoreError propagates (the claimed mail is retried after its lease).
OutboxResult deliver_outbox(Store& store, const MailSettings& settings, int64_t now, int max_mails);

// Puts the message in the outbox already claimed (queue_mail's checks and
// event) and sends it at once: an auth code or a lock notice, which a
// concurrent outbox run must not take first. true when the relay took it; on
// failure the mail stays in the outbox with its backoff and `error` says why.
// Returns the mail's id in *id.
bool send_mail_now(Store& store, const MailSettings& settings, const MailMessage& message,
                   const std::string& actor, const std::string& about, int64_t now, int64_t* id,
                   std::string* error);

// certgate_mail and certgate_mail_from, as MailSettings.
MailSettings mail_settings(const Settings& settings);

// ---- expiry notices (R3) ------------------------------------------------------------

struct NoticeSettings {
    long renew_before_days = 30;  // certgate_renew_before: the first notice
    // An expired notice goes out only for a certificate that expired less than
    // this long ago, so a first sweep over an old store does not mail about
    // certificates that ran out years ago.
    long expired_within_days = 30;
    std::string timezone = "Asia/Tokyo";
    std::string portal_url;  // where to renew; empty: the mail names the button
    HelpDesk helpdesk;
    Language language = Language::ja;
    bool bilingual = false;  // both languages in one mail (language is ignored)
};

struct NoticeResult {
    int expiring = 0;  // "expires soon" mails queued
    int expired = 0;   // "has expired" mails queued
    // One line per certificate passed over because its mail could not be made
    // (a bad address in the user's record), for the caller to log.
    std::vector<std::string> problems;
};

// The sweep of R3: for each certificate within renew_before_days of expiry,
// and each that has expired (issued or marked expired; not revoked, not
// superseded), queues its mail once. The notice is claimed in the store and
// the mail queued in the same transaction, so two workers, two nodes and
// certgatectl never queue it twice and a crash never claims it without the
// mail. Users without a mail address or disabled are passed over. The mails
// are only queued: deliver_outbox() sends them.
NoticeResult queue_expiry_notices(Store& store, const NoticeSettings& settings, int64_t now,
                                  const std::string& actor);

// ---- the sweep --------------------------------------------------------------------

struct SweepResult {
    NoticeResult notices;
    OutboxResult outbox;
};

// One run of the mail sweep (the module's certgate_notify_interval timer,
// `certgatectl notify`): queues the expiry notices now due (R3), then sends
// up to 100 due mails from the outbox. Safe to run from many workers, nodes
// and certgatectl at once. Blocks: a thread-pool thread or the CLI only.
SweepResult sweep_mail(const Settings& settings, Store& store, int64_t now);

}  // namespace certgate
