// The PostgreSQL store: the revocation feed over the event table, read by
// (xid, id) and woken by NOTIFY certgate_feed.

#include <poll.h>

#include "core/adapters/store_pg.hpp"

namespace certgate::pg_store {

// The feed (see FeedCursor): ids are taken at INSERT but commit in any
// order, so the feed reads by (xid, id) and only below the snapshot's xmin,
// under which every transaction has ended: a late commit is read later,
// never skipped. The cursor then moves up to that xmin.
FeedCursor PgStore::feed_start() {
    Statement s(*this, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint");
    s.step();
    FeedCursor c;
    c.xid = s.i64(0);
    c.id = 0;
    return c;
}

FeedPage PgStore::feed_after(const FeedCursor& cursor, int limit) {
    // One statement, so the rows and the xmin come from one snapshot.
    Statement s(*this,
                "WITH snap AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x) "
                "SELECT snap.x::text::bigint, e.id, e.at, e.actor, e.kind, e.subject, e.detail, "
                "e.xid::text::bigint FROM snap LEFT JOIN LATERAL (SELECT * FROM events "
                "WHERE (xid, id) > (?::text::xid8, ?::bigint) AND xid < snap.x "
                "ORDER BY xid, id LIMIT ?) e ON true");
    s.bind(0, cursor.xid).bind(1, cursor.id).bind(2, limit);
    FeedPage page;
    page.next = cursor;
    int64_t xmin = cursor.xid;
    FeedCursor last = cursor;
    while (s.step()) {
        xmin = s.i64(0);
        if (s.null(1)) continue;
        page.events.push_back(
            Event{s.i64(1), s.i64(2), s.text(3), s.text(4), s.text(5), s.text(6)});
        last.xid = s.i64(7);
        last.id = s.i64(1);
    }
    page.more = limit > 0 && static_cast<int>(page.events.size()) >= limit;
    if (page.more) {
        page.next = last;
    } else if (xmin > cursor.xid) {
        page.next.xid = xmin;
        page.next.id = 0;
    }
    return page;
}

bool PgStore::wait_for_feed(int timeout_ms) {
    PGconn* c = connection();
    if (!listening_) {
        exec("LISTEN certgate_feed", "listening for the feed");
        listening_ = true;
    }
    auto drained = [&] {
        bool got = false;
        while (PGnotify* n = PQnotifies(c)) {
            got = true;
            PQfreemem(n);
        }
        return got;
    };
    if (PQconsumeInput(c) == 0) {
        drop_connection();
        return false;
    }
    if (drained()) return true;
    pollfd p{PQsocket(c), POLLIN, 0};
    if (p.fd < 0 || poll(&p, 1, timeout_ms) <= 0) return false;
    if (PQconsumeInput(c) == 0) {
        drop_connection();  // the server went away: the next call connects again
        return false;
    }
    return drained();
}

}  // namespace certgate::pg_store
