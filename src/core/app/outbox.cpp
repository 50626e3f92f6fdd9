// The mail outbox: every mail is a row in the store before it is sent, and is
// claimed there before each try (see deliver_outbox in mail.hpp).

#include "core/app/outbox.hpp"

#include <algorithm>
#include <atomic>
#include <string>

namespace certgate {

namespace {

// The same Message-ID on every try, so a copy sent again after a crash is
// recognisably the same mail.
std::string outbox_message_id(const Mail& mail, const Mailer& mailer) {
    return "<certgate.outbox." + std::to_string(mail.id) + "." + std::to_string(mail.created_at) +
           "@" + mailer.message_id_domain() + ">";
}

}  // namespace

int64_t outbox_backoff(int attempts) {
    int64_t wait = kOutboxFirstRetrySeconds;
    for (int i = 1; i < attempts && wait < kOutboxMaxRetrySeconds; ++i) wait *= 2;
    return std::min(wait, kOutboxMaxRetrySeconds);
}

namespace {

// Refuse a bad recipient or subject now, not at every try later. The sender is
// checked when sending: it comes from the configuration, not from the mail.
void check_before_queueing(const MailMessage& message) {
    MailSettings probe;
    probe.from = "check@certgate.invalid";
    format_mail(probe, message);
}

}  // namespace

int64_t queue_mail(Store& store, const MailMessage& message, const std::string& actor,
                   const std::string& about) {
    check_before_queueing(message);
    return store.enqueue_mail(message.to, message.subject, message.body, actor, about,
                              message.expires_at);
}

namespace {

// The lease must outlast one try, or a slow relay could see the mail twice.
int outbox_lease(const Mailer& mailer) {
    return std::max(kOutboxLeaseSeconds,
                    2 * (mailer.timeout_ms() > 0 ? mailer.timeout_ms() : 0) / 1000);
}

enum class Attempt { sent, retried, failed, unreachable };

// Sends one claimed mail and records the outcome with its event.
Attempt attempt_mail(Store& store, Mailer& mailer, const Mail& mail, int64_t now,
                     std::string* error) {
    MailMessage message;
    message.to = mail.to;
    message.subject = mail.subject;
    message.body = mail.body;
    message.message_id = outbox_message_id(mail, mailer);
    message.date = static_cast<time_t>(mail.created_at);
    try {
        mailer.send(message);
    } catch (const MailError& e) {
        if (error) *error = e.what();
        if (e.permanent()) {
            store.mark_mail_failed(mail.id, e.what(), 0);
            return Attempt::failed;
        }
        if (e.kind() == MailError::Kind::uncertain) {
            // At most once: no blind resend. The relay is slow: the batch stops.
            store.mark_mail_failed(mail.id, e.what(), 0);
            return Attempt::unreachable;
        }
        if (mail.attempts >= kOutboxMaxAttempts) {
            store.mark_mail_failed(
                mail.id, "gave up after " + std::to_string(mail.attempts) + " tries: " + e.what(),
                0);
            return e.kind() == MailError::Kind::unreachable ? Attempt::unreachable
                                                            : Attempt::failed;
        }
        store.mark_mail_failed(mail.id, e.what(), now + outbox_backoff(mail.attempts));
        return e.kind() == MailError::Kind::unreachable ? Attempt::unreachable : Attempt::retried;
    }
    store.mark_mail_sent(mail.id);
    return Attempt::sent;
}

}  // namespace

OutboxResult deliver_outbox(Store& store, const MailSettings& settings, int64_t now,
                            int max_mails) {
    RelayMailer mailer(settings);
    return deliver_outbox(store, mailer, now, max_mails);
}

OutboxResult deliver_outbox(Store& store, Mailer& mailer, int64_t now, int max_mails) {
    OutboxResult result;
    const int lease = outbox_lease(mailer);
    for (int i = 0; i < max_mails; ++i) {
        // One claim per mail, so a claimed mail never waits behind a slow batch.
        const std::vector<Mail> claimed = store.claim_due_mails(1, lease);
        if (claimed.empty()) break;
        Attempt a = attempt_mail(store, mailer, claimed.front(), now, nullptr);
        if (a == Attempt::sent) ++result.sent;
        if (a == Attempt::failed) ++result.failed;
        if (a == Attempt::retried || a == Attempt::unreachable) ++result.retried;
        if (a == Attempt::unreachable) break;
    }
    return result;
}

namespace {

// The pool threads of this process now waiting on the relay inline.
std::atomic<int> inline_senders{0};

struct InlineSlot {
    bool taken;
    InlineSlot() : taken(inline_senders.fetch_add(1) < kMaxInlineMailSenders) {
        if (!taken) inline_senders.fetch_sub(1);
    }
    ~InlineSlot() {
        if (taken) inline_senders.fetch_sub(1);
    }
};

}  // namespace

bool send_mail_now(Store& store, const MailSettings& settings, const MailMessage& message,
                   const std::string& actor, const std::string& about, int64_t now, int64_t* id,
                   std::string* error) {
    check_before_queueing(message);
    InlineSlot slot;
    if (!slot.taken) {
        // Enough threads wait on the relay already (it is slow or hung): this
        // mail goes with the next outbox run instead of holding one more.
        int64_t queued = store.enqueue_mail(message.to, message.subject, message.body, actor, about,
                                            message.expires_at);
        if (id) *id = queued;
        if (error)
            *error = std::to_string(kMaxInlineMailSenders) +
                     " mails are already waiting on the relay; this one waits in the outbox";
        return false;
    }
    MailSettings inline_settings = settings;
    if (inline_settings.timeout_ms <= 0 || inline_settings.timeout_ms > kInlineMailTimeoutMs)
        inline_settings.timeout_ms = kInlineMailTimeoutMs;
    RelayMailer relay(settings);
    RelayMailer inline_relay(inline_settings);
    Mail mail = store.enqueue_claimed_mail(message.to, message.subject, message.body, actor, about,
                                           outbox_lease(relay), message.expires_at);
    if (id) *id = mail.id;
    return attempt_mail(store, inline_relay, mail, now, error) == Attempt::sent;
}

}  // namespace certgate
