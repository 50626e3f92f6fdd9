// The PostgreSQL store: the revocation feed over the event table, read by
// (xid, id) and woken by NOTIFY certgate_feed.

#include <poll.h>

#include <algorithm>

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

// A gap: the cursor's xmin is ahead of this server's. Within one cluster
// the xmin never goes back, so the store was restored from a backup, copied,
// or failed over to a standby that had not replayed up to the cursor: its
// new events may have lower xids than the cursor, and only a full load is
// sure to see them.
FeedPage PgStore::feed_after(const FeedCursor& cursor, int limit) {
    // One statement, so the rows, the xmin and the count come from one
    // snapshot; the count (events after the cursor, also those at or above
    // the xmin that are not readable yet) is only counted, never read.
    Statement s(*this,
                "WITH snap AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x, "
                "(SELECT count(*) FROM events WHERE (xid, id) > (?::text::xid8, ?::bigint)) AS n) "
                "SELECT snap.x::text::bigint, snap.n, e.id, e.at, e.actor, e.kind, e.subject, "
                "e.detail, e.xid::text::bigint FROM snap LEFT JOIN LATERAL (SELECT * FROM events "
                "WHERE (xid, id) > (?::text::xid8, ?::bigint) AND xid < snap.x "
                "AND snap.x >= ?::text::xid8 ORDER BY xid, id LIMIT ?) e ON true");
    s.bind(0, cursor.xid).bind(1, cursor.id).bind(2, cursor.xid).bind(3, cursor.id);
    s.bind(4, cursor.xid).bind(5, limit);
    FeedPage page;
    page.next = cursor;
    int64_t xmin = cursor.xid;
    int64_t after = 0;
    FeedCursor last = cursor;
    while (s.step()) {
        xmin = s.i64(0);
        after = s.i64(1);
        if (s.null(2)) continue;
        page.events.push_back(
            Event{s.i64(2), s.i64(3), s.text(4), s.text(5), s.text(6), s.text(7)});
        last.xid = s.i64(8);
        last.id = s.i64(2);
    }
    if (xmin < cursor.xid) {
        page.gap = true;
        return page;
    }
    page.more = limit > 0 && static_cast<int>(page.events.size()) >= limit;
    page.behind = std::max<int64_t>(0, after - static_cast<int64_t>(page.events.size()));
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
