// The SQL stores: the mail outbox. On PostgreSQL several nodes sweep it at
// once: a due mail is taken with FOR UPDATE SKIP LOCKED, so exactly one of
// them claims it and the others pass on to the next.

#include "core/adapters/store_sql.hpp"

namespace certgate::sql_store {

// --- outbox ------------------------------------------------------------------------

Mail SqlStore::read_mail(const Statement& s) {
    Mail m;
    m.id = s.i64(0);
    m.to = s.text(1);
    m.subject = s.text(2);
    m.body = s.text(3);
    m.state = parse_mail_state(s.text(4)).value_or(MailState::failed);
    m.attempts = s.i32(5);
    m.next_attempt_at = s.i64(6);
    m.sent_at = s.i64(7);
    m.created_at = s.i64(8);
    m.last_error = s.text(9);
    m.expires_at = s.i64(10);
    return m;
}

int64_t SqlStore::enqueue_mail(const std::string& to, const std::string& subject,
                               const std::string& body, const std::string& actor,
                               const std::string& about, int64_t expires_at) {
    int64_t id = 0;
    write([&] {
        const int64_t t = now();
        Statement s(*this,
                    "INSERT INTO outbox (recipient, subject, body, state, next_attempt_at, "
                    "created_at, expires_at) VALUES (?, ?, ?, 'queued', ?, ?, ?)");
        s.bind(0, to).bind(1, subject).bind(2, body).bind(3, t).bind(4, t).bind(5, expires_at);
        id = s.insert();
        append_event(actor, event_kind::kMailQueued, about,
                     "mail=" + std::to_string(id) + " to=" + to);
    });
    return id;
}

Mail SqlStore::enqueue_claimed_mail(const std::string& to, const std::string& subject,
                                    const std::string& body, const std::string& actor,
                                    const std::string& about, int lease_seconds,
                                    int64_t expires_at) {
    Mail m;
    write([&] {
        const int64_t t = now();
        Statement s(
            *this,
            "INSERT INTO outbox (recipient, subject, body, state, attempts, "
            "next_attempt_at, created_at, expires_at) VALUES (?, ?, ?, 'sending', 1, ?, ?, ?)");
        s.bind(0, to).bind(1, subject).bind(2, body).bind(3, t + lease_seconds).bind(4, t);
        s.bind(5, expires_at);
        m = Mail{};
        m.id = s.insert();
        m.to = to;
        m.subject = subject;
        m.body = body;
        m.state = MailState::sending;
        m.attempts = 1;
        m.next_attempt_at = t + lease_seconds;
        m.created_at = t;
        m.expires_at = expires_at;
        append_event(actor, event_kind::kMailQueued, about,
                     "mail=" + std::to_string(m.id) + " to=" + to);
    });
    return m;
}

std::vector<Mail> SqlStore::claim_due_mails(int limit, int lease_seconds) {
    std::vector<Mail> out;
    write([&] {
        out.clear();
        const int64_t t = now();
        // Past its use (an auth code after its lifetime): never sent, the
        // secret wiped; the row and its events stay for the audit.
        Statement gone(*this, std::string("SELECT id FROM outbox WHERE expires_at > 0 AND "
                                          "expires_at <= ? AND (state IN ('queued', 'sending') "
                                          "AND next_attempt_at <= ? OR state = 'failed' AND "
                                          "body <> '')") +
                                  for_update(" ORDER BY id", true));
        gone.bind(0, t).bind(1, t);
        std::vector<int64_t> expired;
        while (gone.step()) expired.push_back(gone.i64(0));
        for (int64_t id : expired) {
            Statement up(*this,
                         "UPDATE outbox SET body = '', last_error = CASE WHEN state = 'failed' "
                         "THEN last_error ELSE 'expired before delivery' END, state = 'failed' "
                         "WHERE id = ?");
            up.bind(0, id).run();
            append_event("certgate", event_kind::kMailFailed, "mail:" + std::to_string(id),
                         "expired: body wiped");
        }
        std::string sql = std::string("SELECT ") + kMailColumns +
                          " FROM outbox WHERE state IN ('queued', 'sending') "
                          "AND next_attempt_at <= ? ORDER BY id LIMIT ?" +
                          for_update("", true);
        Statement s(*this, sql);
        s.bind(0, t).bind(1, limit);
        while (s.step()) out.push_back(read_mail(s));
        for (auto& m : out) {
            Statement up(*this,
                         "UPDATE outbox SET state = 'sending', attempts = attempts + 1, "
                         "next_attempt_at = ? WHERE id = ?");
            up.bind(0, t + lease_seconds).bind(1, m.id).run();
            m.state = MailState::sending;
            m.attempts += 1;
            m.next_attempt_at = t + lease_seconds;
        }
    });
    return out;
}

void SqlStore::mark_mail_sent(int64_t id) {
    write([&] {
        Statement s(*this,
                    "UPDATE outbox SET state = 'sent', sent_at = ?, last_error = '', body = '' "
                    "WHERE id = ?");
        s.bind(0, now()).bind(1, id);
        if (s.changes() != 1)
            throw StoreNotFound("mail " + std::to_string(id) + " is not in the outbox");
        append_event("certgate", event_kind::kMailSent, "mail:" + std::to_string(id), "");
    });
}

void SqlStore::mark_mail_failed(int64_t id, const std::string& error, int64_t retry_at) {
    write([&] {
        Statement s(*this,
                    "UPDATE outbox SET state = ?, next_attempt_at = ?, last_error = ? "
                    "WHERE id = ?");
        s.bind(0, std::string(retry_at ? "queued" : "failed")).bind(1, retry_at);
        s.bind(2, error).bind(3, id);
        if (s.changes() != 1)
            throw StoreNotFound("mail " + std::to_string(id) + " is not in the outbox");
        append_event("certgate", event_kind::kMailFailed, "mail:" + std::to_string(id),
                     (retry_at ? "retry_at=" + utc_time(retry_at) + " " : "gave up ") + error);
    });
}

std::vector<Mail> SqlStore::list_mails(std::optional<MailState> state) {
    std::string sql = std::string("SELECT ") + kMailColumns + " FROM outbox" +
                      (state ? " WHERE state = ?" : "") + " ORDER BY id";
    Statement s(*this, sql);
    if (state) s.bind(0, std::string(to_string(*state)));
    std::vector<Mail> out;
    while (s.step()) out.push_back(read_mail(s));
    return out;
}

std::optional<Mail> SqlStore::find_mail(int64_t id) {
    std::string sql = std::string("SELECT ") + kMailColumns + " FROM outbox WHERE id = ?";
    Statement s(*this, sql);
    s.bind(0, id);
    if (!s.step()) return std::nullopt;
    return read_mail(s);
}

void SqlStore::retry_mail(int64_t id, const std::string& actor) {
    write([&] {
        Statement s(*this,
                    "UPDATE outbox SET state = 'queued', next_attempt_at = ? "
                    "WHERE id = ? AND state IN ('queued', 'failed')");
        s.bind(0, now()).bind(1, id);
        if (s.changes() != 1)
            throw StoreNotFound("mail " + std::to_string(id) +
                                " is not waiting in the outbox (unknown, sending or sent)");
        append_event(actor, "mail.retry", "mail:" + std::to_string(id), "");
    });
}

}  // namespace certgate::sql_store
