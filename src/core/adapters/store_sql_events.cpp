// The SQL stores: the append-only event table (audit trail and feed).

#include "core/adapters/store_sql.hpp"

namespace certgate::sql_store {

// --- events ------------------------------------------------------------------------

int64_t SqlStore::append_event(const std::string& actor, const std::string& kind,
                               const std::string& subject, const std::string& detail) {
    int64_t id = 0;
    int64_t at = now();
    write([&] {
        Statement s(*this,
                    "INSERT INTO events (at, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?)");
        s.bind(0, at).bind(1, actor).bind(2, kind).bind(3, subject).bind(4, detail);
        id = s.insert();
        event_appended();
    });
    event_written(Event{id, at, actor, kind, subject, detail});
    return id;
}

std::vector<Event> SqlStore::read_events(Statement& s) {
    std::vector<Event> out;
    while (s.step())
        out.push_back(Event{s.i64(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.text(5)});
    return out;
}

std::vector<Event> SqlStore::events_since(int64_t after_id, int limit) {
    Statement s(*this,
                "SELECT id, at, actor, kind, subject, detail FROM events WHERE id > ? "
                "ORDER BY id LIMIT ?");
    s.bind(0, after_id).bind(1, limit);
    return read_events(s);
}

std::vector<Event> SqlStore::events_for_user(const std::string& user_id, int64_t after_id,
                                             int limit) {
    // Certificate events name the serial as subject and the user in detail.
    Statement s(*this,
                "SELECT id, at, actor, kind, subject, detail FROM events WHERE id > ? "
                "AND (subject = ? OR actor = ? OR subject IN "
                "(SELECT serial FROM certificates WHERE user_id = ?)) ORDER BY id LIMIT ?");
    s.bind(0, after_id).bind(1, user_id).bind(2, user_id).bind(3, user_id).bind(4, limit);
    return read_events(s);
}

int64_t SqlStore::first_event_since(int64_t at) {
    Statement s(*this, "SELECT coalesce(min(id), 0) FROM events WHERE at >= ?");
    s.bind(0, at);
    s.step();
    int64_t id = s.i64(0);
    return id ? id : last_event_id() + 1;
}

int64_t SqlStore::last_event_id() {
    Statement s(*this, "SELECT coalesce(max(id), 0) FROM events");
    s.step();
    return s.i64(0);
}

}  // namespace certgate::sql_store
