#include "core/app/revocation_feed.hpp"

namespace certgate {

namespace {
RevocationUpdate update(RevocationUpdate::Kind kind, const std::string &key, int64_t at,
                        int64_t event_id) {
    RevocationUpdate u;
    u.kind = kind;
    u.key = key;
    u.at = at;
    u.event_id = event_id;
    return u;
}
}  // namespace

bool interpret_event(const Event &e, RevocationUpdate *u) {
    using K = RevocationUpdate::Kind;
    u->key = e.subject;
    u->at = e.at;
    u->event_id = e.id;
    if (e.kind == event_kind::kCertRevoked || e.kind == event_kind::kCertSuperseded) {
        // A renewal ends the old certificate's sessions like a revocation.
        u->kind = K::serial_revoked;
    } else if (e.kind == event_kind::kUserBlocked || e.kind == event_kind::kUserDisabled) {
        u->kind = K::user_blocked;
    } else if (e.kind == event_kind::kUserUnblocked) {
        u->kind = K::user_unblocked;
    } else if (e.kind == event_kind::kUserReset) {
        u->kind = K::user_invalidated;
    } else if (e.kind == event_kind::kLogout) {
        auto pos = e.detail.find("session=");
        if (pos == std::string::npos) return false;
        auto end = e.detail.find(' ', pos);
        u->kind = K::session_ended;
        u->user_id = e.subject;
        u->key =
            e.detail.substr(pos + 8, end == std::string::npos ? std::string::npos : end - pos - 8);
    } else {
        return false;
    }
    return !u->key.empty();
}

FeedBatch initial_feed(Store &store, int64_t now, long session_absolute_s) {
    FeedBatch batch;
    batch.cursor = store.feed_start();
    batch.last_event_id = store.last_event_id();
    for (const Certificate &c : store.revoked_certificates()) {
        // An expired certificate is refused for its notAfter alone.
        if (c.not_after < now) continue;
        RevocationUpdate u =
            update(RevocationUpdate::Kind::serial_revoked, c.serial, c.revoked_at, 0);
        u.not_after = c.not_after;
        batch.updates.push_back(u);
    }
    CertificateFilter superseded;
    superseded.status = CertStatus::superseded;
    superseded.not_after_from = now;
    for (const Certificate &c : store.list_certificates(superseded)) {
        RevocationUpdate u =
            update(RevocationUpdate::Kind::serial_revoked, c.serial, c.issued_at, 0);
        u.not_after = c.not_after;
        batch.updates.push_back(u);
    }
    // A user blocked or disabled now: every session that exists began before
    // (no login passes for such a user), so all of them end.
    for (const User &u : store.list_users()) {
        if (u.blocked || u.state == UserState::disabled) {
            batch.updates.push_back(
                update(RevocationUpdate::Kind::user_blocked, u.id, now, batch.last_event_id));
        }
    }
    // Resets and logouts matter while a session from before them could live.
    int64_t from = store.first_event_since(now - session_absolute_s - 60);
    for (;;) {
        auto events = store.events_since(from - 1, 1000);
        for (const Event &e : events) {
            RevocationUpdate u;
            if (e.id > batch.last_event_id) break;
            if ((e.kind == event_kind::kUserReset || e.kind == event_kind::kLogout ||
                 e.kind == event_kind::kUserBlocked || e.kind == event_kind::kUserDisabled) &&
                interpret_event(e, &u)) {
                // A block still in force is already above; this keeps its time.
                if (u.kind == RevocationUpdate::Kind::user_blocked) {
                    u.kind = RevocationUpdate::Kind::user_invalidated;
                }
                batch.updates.push_back(u);
            }
        }
        if (events.size() < 1000) break;
        from = events.back().id + 1;
    }
    batch.revocations = true;
    return batch;
}

FeedBatch feed_next(Store &store, const FeedCursor &after, int limit) {
    FeedBatch batch;
    batch.cursor = after;
    FeedPage page = store.feed_after(after, limit);
    if (page.gap) {
        batch.gap = true;
        return batch;
    }
    batch.cursor = page.next;
    batch.more = page.more;
    batch.behind = page.behind;
    for (const Event &e : page.events) {
        RevocationUpdate u;
        if (interpret_event(e, &u)) {
            if (u.kind == RevocationUpdate::Kind::serial_revoked) {
                auto cert = store.find_certificate(u.key);
                if (cert) u.not_after = cert->not_after;
            }
            // Only a revocation changes the CRL; a supersede does not.
            if (e.kind == event_kind::kCertRevoked) batch.revocations = true;
            batch.updates.push_back(u);
            // A block also ends the sessions that started before it.
            if (u.kind == RevocationUpdate::Kind::user_blocked) {
                batch.updates.push_back(
                    update(RevocationUpdate::Kind::user_invalidated, u.key, u.at, u.event_id));
            }
        }
    }
    return batch;
}

FeedReload feed_reload(const FeedState &state, long reload_after_ms) {
    if (!state.loaded) return FeedReload::first;
    if (state.gap) return FeedReload::gap;
    if (state.full) return FeedReload::full;
    long limit = reload_after_ms > 0 ? reload_after_ms : kFeedOutageReloadMs;
    if (state.ok_age_ms > limit) return FeedReload::outage;
    return FeedReload::none;
}

}  // namespace certgate
