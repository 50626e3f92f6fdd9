// The mail use cases: the outbox in the store that makes sure no mail is
// lost, the expiry notices of R3 and the sweep that runs both. They send
// through the mailer port; the mails are made by compose_mail (mail.hpp).
//
// Everything here blocks: call it from an nginx thread-pool thread or from
// certgatectl, never from an event loop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/adapters/mail.hpp"
#include "core/config/settings.hpp"
#include "core/ports/mailer.hpp"
#include "core/ports/store.hpp"

namespace certgate {

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
OutboxResult deliver_outbox(Store& store, Mailer& mailer, int64_t now, int max_mails);
// The same through the relay of `settings`.
OutboxResult deliver_outbox(Store& store, const MailSettings& settings, int64_t now, int max_mails);

// Puts the message in the outbox already claimed (queue_mail's checks and
// event) and sends it at once: an auth code or a lock notice, which a
// concurrent outbox run must not take first. true when the relay took it; on
// failure the mail stays in the outbox with its backoff and `error` says why.
// Returns the mail's id in *id.
bool send_mail_now(Store& store, const MailSettings& settings, const MailMessage& message,
                   const std::string& actor, const std::string& about, int64_t now, int64_t* id,
                   std::string* error);

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
