// The revocation set: revoked serials, blocked users, reset users and ended
// sessions, in a shared memory zone that every worker reads on the protected
// path (no I/O there). A timer in each worker ticks every 100 ms; one worker
// at a time polls the store's event table through the thread pool, every
// certgate_sync_interval, at once when a page was full, and at once when the
// worker's feed listener (a PostgreSQL NOTIFY) says events were committed.
// Past certgate_sync_max_lag without a good poll the set is stale and the
// protected path refuses (fail closed).

#include "nginx/ngx_certgate_revocation.hpp"

#include <unistd.h>

#include <exception>
#include <memory>
#include <type_traits>

#include "core/app/feed_listener.hpp"
#include "core/app/revocation_feed.hpp"
#include "nginx/ngx_certgate_metrics.hpp"
#include "nginx/ngx_certgate_task.hpp"

namespace {

enum : u_char { kSerial = 's', kUser = 'u', kSession = 'x' };

// How much later than its session an entry leaves: clocks of the nodes that
// stamp logins, logouts and checks may differ by this much.
#if (CERTGATE_TEST_HOOKS)
const int64_t kClockSlack = 1;  // suites age entries out in seconds
#else
const int64_t kClockSlack = 60;
#endif

struct ngx_certgate_entry_t {
    ngx_rbtree_node_t node;  // node.key: crc32 of the kind and key
    ngx_queue_t queue;       // in sh->timed (sessions, users) or sh->serials, oldest first
    // user: event id; sessions of earlier logins end. session: the logout's event id
    int64_t at;
    // session, user: the event's time (the entry leaves session_absolute
    // later); serial: the certificate's notAfter (the entry leaves then)
    int64_t when;
    u_char kind;
    u_char blocked;   // user: blocked or disabled now (for the record; see session_ended)
    u_char user_len;  // session: the user ID after the key (see entry_evict_sessions)
    u_short len;
    u_char data[1];
};

struct ngx_certgate_shctx_t {
    // What every protected request reads (ngx_certgate_set_now), first and
    // together, so the protected path touches one cache line of the zone.
    ngx_certgate_set_head_t head;

    ngx_rbtree_t rbtree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t timed;    // sessions and users by `when`
    ngx_queue_t serials;  // revoked serials by notAfter
    ngx_uint_t entries;
    certgate::FeedCursor cursor;  // where the next poll reads from
    ngx_uint_t cursor_gen;        // bumped by every batch applied (see apply_batch)
    ngx_msec_t last_poll;         // ngx_current_msec of the last poll started
    ngx_uint_t polling;           // a worker polls now, since polling_since
    ngx_msec_t polling_since;
    ngx_atomic_t wake;   // a listener heard of new events: poll at once
    ngx_uint_t again;    // the last page was full: poll at once
    ngx_uint_t gap;      // the store no longer continues the cursor: load again
    ngx_atomic_t stale;  // the set was found stale (and said so in the log)
    int64_t behind;      // events in the store after the cursor at the last poll
    // An entry could not be stored: fail closed; the next polls load the set
    // again from the store until everything fits.
    ngx_uint_t full;
    ngx_uint_t losses;  // entries that did not fit, ever (see apply_batch)
    // Logouts are kept per user, not per session, for lack of room (a
    // logout then ends every earlier session of its user).
    ngx_uint_t folding;
    ngx_msec_t turns[NGX_CERTGATE_TURNS];  // ngx_certgate_take_turn()
    ngx_uint_t turn_taken[NGX_CERTGATE_TURNS];
};

static_assert(std::is_trivially_destructible<ngx_certgate_shctx_t>::value,
              "lives in shared memory");

struct ngx_certgate_zone_t {
    ngx_certgate_shctx_t *sh;
    ngx_slab_pool_t *shpool;
    ngx_certgate_main_conf_t *cmcf;  // whose zone: its revocation_sh is set with sh
};

uint32_t entry_hash(u_char kind, const std::string &key) {
    uint32_t crc;
    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, &kind, 1);
    ngx_crc32_update(&crc, (u_char *)key.data(), key.size());
    ngx_crc32_final(crc);
    return crc;
}

void entry_insert_value(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
                        ngx_rbtree_node_t *sentinel) {
    ngx_rbtree_node_t **p;
    for (;;) {
        if (node->key < temp->key) {
            p = &temp->left;
        } else if (node->key > temp->key) {
            p = &temp->right;
        } else {
            auto *n = reinterpret_cast<ngx_certgate_entry_t *>(node);
            auto *t = reinterpret_cast<ngx_certgate_entry_t *>(temp);
            int rc = n->kind != t->kind ? n->kind - t->kind
                                        : ngx_memn2cmp(n->data, t->data, n->len, t->len);
            p = rc < 0 ? &temp->left : &temp->right;
        }
        if (*p == sentinel) break;
        temp = *p;
    }
    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}

// Under the zone's mutex.
ngx_certgate_entry_t *entry_find(ngx_certgate_shctx_t *sh, u_char kind, const std::string &key) {
    uint32_t hash = entry_hash(kind, key);
    ngx_rbtree_node_t *node = sh->rbtree.root;
    ngx_rbtree_node_t *sentinel = sh->rbtree.sentinel;
    while (node != sentinel) {
        if (hash < node->key) {
            node = node->left;
            continue;
        }
        if (hash > node->key) {
            node = node->right;
            continue;
        }
        auto *e = reinterpret_cast<ngx_certgate_entry_t *>(node);
        int rc = kind != e->kind ? kind - e->kind
                                 : ngx_memn2cmp((u_char *)key.data(), e->data, key.size(), e->len);
        if (rc == 0) return e;
        node = rc < 0 ? node->left : node->right;
    }
    return nullptr;
}

ngx_certgate_entry_t *entry_of(ngx_queue_t *q) {
    return reinterpret_cast<ngx_certgate_entry_t *>(reinterpret_cast<u_char *>(q) -
                                                    offsetof(ngx_certgate_entry_t, queue));
}

// Keeps each queue ordered by `when`; new entries are nearly always the
// latest, so the walk from the tail stops at once.
void entry_enqueue(ngx_certgate_shctx_t *sh, ngx_certgate_entry_t *e) {
    ngx_queue_t *queue = e->kind == kSerial ? &sh->serials : &sh->timed;
    ngx_queue_t *q = ngx_queue_last(queue);
    while (q != ngx_queue_sentinel(queue) && entry_of(q)->when > e->when) q = ngx_queue_prev(q);
    ngx_queue_insert_after(q, &e->queue);
}

void entry_free(ngx_certgate_zone_t *z, ngx_certgate_entry_t *e) {
    ngx_queue_remove(&e->queue);
    ngx_rbtree_delete(&z->sh->rbtree, &e->node);
    ngx_slab_free_locked(z->shpool, e);
    z->sh->entries--;
}

// Drops what can no longer change a verdict: a session or user entry once
// every session it could end has passed certgate_session_timeout's absolute
// limit, a serial once its certificate's notAfter passed. The change count
// stays: the protected path refuses such sessions and certificates for their
// age alone, so no refusal becomes a pass.
void entry_expire(ngx_certgate_zone_t *z, int64_t now, int64_t session_absolute) {
    ngx_certgate_shctx_t *sh = z->sh;
    while (!ngx_queue_empty(&sh->timed)) {
        ngx_certgate_entry_t *e = entry_of(ngx_queue_head(&sh->timed));
        if (e->when + session_absolute + kClockSlack >= now) break;
        entry_free(z, e);
    }
    while (!ngx_queue_empty(&sh->serials)) {
        ngx_certgate_entry_t *e = entry_of(ngx_queue_head(&sh->serials));
        if (e->when >= now - kClockSlack) break;  // when: INT64_MAX if unknown
        entry_free(z, e);
    }
}

ngx_certgate_entry_t *entry_upsert(ngx_certgate_zone_t *z, u_char kind, const std::string &key,
                                   const std::string &user, int64_t when, bool may_evict = true);

// Makes room for a revocation, block or reset by folding the oldest logouts
// into their users' entries: such a user entry ends the ended session and
// every other session of that user begun before the logout (a re-login).
bool entry_evict_sessions(ngx_certgate_zone_t *z, ngx_uint_t n) {
    ngx_certgate_shctx_t *sh = z->sh;
    ngx_uint_t evicted = 0;
    ngx_queue_t *q = ngx_queue_head(&sh->timed);
    while (evicted < n && q != ngx_queue_sentinel(&sh->timed)) {
        ngx_certgate_entry_t *e = entry_of(q);
        q = ngx_queue_next(q);
        if (e->kind != kSession) continue;
        std::string user(reinterpret_cast<char *>(e->data) + e->len, e->user_len);
        int64_t at = e->at, when = e->when;
        entry_free(z, e);
        evicted++;
        ngx_certgate_entry_t *u = entry_find(sh, kUser, user);
        if (u == nullptr) {
            // The room just freed takes the user entry (smaller than a session's).
            u = entry_upsert(z, kUser, user, "", when, false);
            if (u == nullptr) return false;
            q = ngx_queue_head(&sh->timed);  // the queue changed under the walk
        }
        if (at > u->at) u->at = at;
        if (when > u->when) {
            u->when = when;
            ngx_queue_remove(&u->queue);
            entry_enqueue(sh, u);
            q = ngx_queue_head(&sh->timed);
        }
    }
    return evicted > 0;
}

// Finds or makes the entry; nullptr when it does not fit. A session entry
// never pushes anything out; anything else pushes out old logouts.
ngx_certgate_entry_t *entry_upsert(ngx_certgate_zone_t *z, u_char kind, const std::string &key,
                                   const std::string &user, int64_t when, bool may_evict) {
    ngx_certgate_entry_t *e = entry_find(z->sh, kind, key);
    if (e) return e;
    if (key.size() + user.size() > 256 || user.size() > 255) return nullptr;
    size_t size = offsetof(ngx_certgate_entry_t, data) + key.size() + user.size();
    for (;;) {
        e = static_cast<ngx_certgate_entry_t *>(ngx_slab_alloc_locked(z->shpool, size));
        if (e != nullptr) break;
        if (kind == kSession || !may_evict || !entry_evict_sessions(z, 16)) return nullptr;
    }
    e->node.key = entry_hash(kind, key);
    e->kind = kind;
    e->blocked = 0;
    e->at = 0;
    e->when = when;
    e->len = static_cast<u_short>(key.size());
    e->user_len = static_cast<u_char>(user.size());
    ngx_memcpy(e->data, key.data(), key.size());
    if (!user.empty()) ngx_memcpy(e->data + key.size(), user.data(), user.size());
    ngx_rbtree_insert(&z->sh->rbtree, &e->node);
    entry_enqueue(z->sh, e);
    z->sh->entries++;
    return e;
}

ngx_int_t ngx_certgate_zone_init(ngx_shm_zone_t *shm_zone, void *data) noexcept {
    auto *z = static_cast<ngx_certgate_zone_t *>(shm_zone->data);
    if (data) {
        // A reload with the same size: the set lives on. Another size makes
        // a new zone, which the workers load from the store.
        auto *old = static_cast<ngx_certgate_zone_t *>(data);
        z->sh = old->sh;
        z->shpool = old->shpool;
        z->cmcf->revocation_sh = &z->sh->head;
        return NGX_OK;
    }
    z->shpool = reinterpret_cast<ngx_slab_pool_t *>(shm_zone->shm.addr);
    if (shm_zone->shm.exists) {
        z->sh = static_cast<ngx_certgate_shctx_t *>(z->shpool->data);
        z->cmcf->revocation_sh = &z->sh->head;
        return NGX_OK;
    }
    z->sh = static_cast<ngx_certgate_shctx_t *>(
        ngx_slab_calloc(z->shpool, sizeof(ngx_certgate_shctx_t)));
    if (z->sh == nullptr) return NGX_ERROR;
    z->shpool->data = z->sh;
    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel, entry_insert_value);
    ngx_queue_init(&z->sh->timed);
    ngx_queue_init(&z->sh->serials);
    z->shpool->log_nomem = 0;
    static const char ctx[] = " in certgate revocation zone";
    z->shpool->log_ctx = static_cast<u_char *>(ngx_slab_alloc(z->shpool, sizeof(ctx)));
    if (z->shpool->log_ctx == nullptr) return NGX_ERROR;
    ngx_memcpy(z->shpool->log_ctx, ctx, sizeof(ctx));
    z->cmcf->revocation_sh = &z->sh->head;
    return NGX_OK;
}

ngx_certgate_zone_t *zone_of(ngx_certgate_main_conf_t *cmcf) {
    if (cmcf->revocation_zone == nullptr) return nullptr;
    auto *z = static_cast<ngx_certgate_zone_t *>(cmcf->revocation_zone->data);
    return z->sh ? z : nullptr;
}

// A store that no longer continues the cursor numbers its events anew: a
// user entry's event id would end sessions that began after it. Serials and
// logged-out sessions are keyed by what they are and stay.
void entry_drop_users(ngx_certgate_zone_t *z) {
    ngx_certgate_shctx_t *sh = z->sh;
    ngx_queue_t *q = ngx_queue_head(&sh->timed);
    while (q != ngx_queue_sentinel(&sh->timed)) {
        ngx_certgate_entry_t *e = entry_of(q);
        q = ngx_queue_next(q);
        if (e->kind == kUser) entry_free(z, e);
    }
}

// What a poll started from: the zone's state when it was posted.
struct ngx_certgate_poll_t {
    certgate::FeedReload reload;
    certgate::FeedCursor after;
    ngx_uint_t gen;     // sh->cursor_gen
    ngx_uint_t losses;  // sh->losses
    ngx_msec_t started;
};

// Applies a batch from the store (event loop, under the mutex). An initial
// batch is also what a full zone loads again, to recover what did not fit.
// `poll.losses` is sh->losses when the poll began: an entry lost since then
// may be missing from the batch read, so the zone stays full until the next
// one. The cursor moves only if no other batch was applied since the poll
// began (a poll whose lease ran out may end late); updates apply anyway,
// twice changes nothing.
void apply_batch(ngx_certgate_main_conf_t *cmcf, const certgate::FeedBatch &batch,
                 const ngx_certgate_poll_t &poll, ngx_log_t *log) {
    ngx_certgate_zone_t *z = zone_of(cmcf);
    if (z == nullptr) return;
    int64_t now = static_cast<int64_t>(ngx_time());
    using K = certgate::RevocationUpdate::Kind;
    bool initial = poll.reload != certgate::FeedReload::none;
    ngx_uint_t losses = poll.losses;
    ngx_shmtx_lock(&z->shpool->mutex);
    ngx_certgate_shctx_t *sh = z->sh;
    if (poll.reload == certgate::FeedReload::gap) entry_drop_users(z);
    entry_expire(z, now, cmcf->session_absolute);
    ngx_uint_t was_full = sh->full, was_folding = sh->folding;
    if (initial && sh->losses == losses) sh->full = 0;
    bool folded_now = false, session_fit = false;
    for (const auto &u : batch.updates) {
        u_char kind = u.kind == K::serial_revoked  ? kSerial
                      : u.kind == K::session_ended ? kSession
                                                   : kUser;
        int64_t when = u.kind == K::serial_revoked ? u.not_after : u.at;
        if (u.kind == K::serial_revoked && u.not_after != 0 && u.not_after < now - kClockSlack) {
            continue;  // expired already: refused for that alone
        }
        if (u.kind == K::user_unblocked && entry_find(sh, kUser, u.key) == nullptr) {
            continue;  // nothing to lift
        }
        ngx_certgate_entry_t *e =
            entry_upsert(z, kind, u.key, kind == kSession ? u.user_id : std::string(), when);
        if (e == nullptr && kind == kSession && !u.user_id.empty()) {
            // No room for one more session: end the user's sessions up to
            // this logout instead (one entry per user, however many logouts).
            e = entry_upsert(z, kUser, u.user_id, "", u.at);
            if (e != nullptr) {
                folded_now = true;
                if (u.event_id > e->at) e->at = u.event_id;
                if (u.at > e->when) {
                    e->when = u.at;
                    ngx_queue_remove(&e->queue);
                    entry_enqueue(sh, e);
                }
                continue;
            }
        }
        if (e == nullptr) {
            sh->full = 1;
            sh->losses++;
            continue;
        }
        switch (u.kind) {
            case K::serial_revoked:
                break;
            case K::session_ended:
                e->at = u.event_id;
                session_fit = true;
                break;
            case K::user_blocked:
                e->blocked = 1;
                if (u.event_id > e->at) e->at = u.event_id;
                break;
            case K::user_unblocked:
                e->blocked = 0;
                break;
            case K::user_invalidated:
                if (u.event_id > e->at) e->at = u.event_id;
                break;
        }
        if (kind == kUser && when > e->when) {
            e->when = when;
            ngx_queue_remove(&e->queue);
            entry_enqueue(sh, e);
        }
    }
    if (folded_now) sh->folding = 1;
    if (session_fit && !folded_now) sh->folding = 0;
    if (sh->cursor_gen == poll.gen) {
        sh->cursor = batch.cursor;
        if (initial) sh->gap = 0;
    }
    sh->cursor_gen++;
    sh->behind = batch.behind;
    if (batch.more) sh->again = 1;
    if (static_cast<ngx_msec_int_t>(poll.started - sh->head.last_ok) > 0 || !sh->head.loaded) {
        sh->head.last_ok = poll.started;
    }
    if (initial) sh->head.loaded = 1;
    if (initial || !batch.updates.empty()) {
        // After the entries: a reader that sees the new count looks again.
        ngx_memory_barrier();
        sh->head.changes = sh->head.changes + 1;
    }
    ngx_uint_t full = sh->full, folding = sh->folding, entries = sh->entries;
    ngx_shmtx_unlock(&z->shpool->mutex);
    if (full && !was_full) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "certgate: the revocation zone is full (%ui entries): protected locations "
                      "refuse every request until entries age out or certgate_revocation_zone "
                      "is made larger",
                      entries);
    } else if (!full && was_full) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "certgate: the revocation zone has room again (%ui entries): protected "
                      "locations serve again",
                      entries);
    }
    if (folding && !was_folding) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "certgate: the revocation zone is full of logouts (%ui entries): a logout "
                      "now ends every earlier session of its user; make certgate_revocation_zone "
                      "larger",
                      entries);
    } else if (!folding && was_folding) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "certgate: the revocation zone keeps logouts per session again "
                      "(%ui entries)",
                      entries);
    }
}

struct ngx_certgate_sync_t {
    ngx_event_t timer;  // first: sync_tick finds the rest from it
    ngx_certgate_main_conf_t *cmcf;
    ngx_cycle_t *cycle;
    bool busy;
    bool listener_failing;
};

// The tick: how soon a listener's wake-up, a full page or a poll due is seen.
const ngx_msec_t kTick = 100;
// A poll that ran this long is taken for lost (its worker died): another
// worker may poll.
const ngx_msec_t kPollLease = 30000;
// How many events one poll reads; a full page is followed by another at once.
const int kPage = 1000;

#if (CERTGATE_TEST_HOOKS)
// Test builds: while a file <path>.feed-down lies next to a SQLite store,
// the feed's polls fail as they do with the store out of reach (an open
// SQLite connection keeps reading a file made unreadable or moved away).
void test_feed_down(const std::string &uri) {
    if (uri.rfind("sqlite:", 0) != 0) return;
    std::string flag = uri.substr(7) + ".feed-down";
    if (access(flag.c_str(), F_OK) == 0) {
        throw certgate::StoreError("test hook: " + flag + " exists");
    }
}
#endif

// This worker's feed listener (PostgreSQL's LISTEN), started once a poll
// found the store able to notify; stopped in exit_process.
certgate::FeedListener *g_listener = nullptr;

void sync_arm(ngx_certgate_sync_t *sync, ngx_msec_t after = kTick) {
    if (ngx_exiting || ngx_terminate || ngx_quit) return;
    // A reload in single-process mode (master_process off) makes a new cycle
    // without a new worker: this cycle's timer stops (see docs/operations.md).
    if (ngx_cycle != sync->cycle) return;
    ngx_add_timer(&sync->timer, after);
}

void listener_start(ngx_certgate_sync_t *sync, ngx_log_t *log) {
    if (g_listener != nullptr) return;
    try {
        auto listener =
            std::make_unique<certgate::FeedListener>(sync->cmcf->runtime->settings.store_uri);
        listener->start();
        g_listener = listener.release();
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "certgate: revocation feed: the store notifies; this worker listens");
    } catch (const std::exception &e) {
        // Polls alone then, as on SQLite.
        ngx_log_error(NGX_LOG_ERR, log, 0, "certgate: revocation feed: no listener: %s", e.what());
    }
}

// The listener's state, in the log once per change.
void listener_check(ngx_certgate_sync_t *sync, ngx_log_t *log) {
    if (g_listener == nullptr) return;
    std::string failure = g_listener->failure();
    if (!failure.empty() && !sync->listener_failing) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "certgate: revocation feed: the listener cannot reach the store (%s): "
                      "polls every certgate_sync_interval alone until it can",
                      failure.c_str());
    } else if (failure.empty() && sync->listener_failing) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "certgate: revocation feed: the listener listens again");
    }
    sync->listener_failing = !failure.empty();
}

// Stale: in the log once per change (whichever worker sees it first), and
// a metric. The way back is in sync_done.
void stale_check(ngx_certgate_zone_t *z, ngx_certgate_main_conf_t *cmcf, ngx_log_t *log) {
    ngx_certgate_shctx_t *sh = z->sh;
    if (!sh->head.loaded || sh->stale) return;
    ngx_msec_int_t age = ngx_certgate_msec_since(sh->head.last_ok);
    if (!certgate::feed_stale(age, static_cast<long>(cmcf->sync_max_lag))) return;
    if (!ngx_atomic_cmp_set(&sh->stale, 0, 1)) return;
    ngx_certgate_metrics_feed_stale();
    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "certgate: revocation feed: no good read of the store for %M ms "
                  "(certgate_sync_max_lag %M ms): the revocation set is stale, protected "
                  "locations answer 503 until the store is read again",
                  static_cast<ngx_msec_t>(age), cmcf->sync_max_lag);
}

void sync_done(ngx_certgate_zone_t *z, const ngx_certgate_poll_t &poll, bool ok, ngx_log_t *log) {
    ngx_certgate_shctx_t *sh = z->sh;
    ngx_shmtx_lock(&z->shpool->mutex);
    if (sh->polling && sh->polling_since == poll.started) sh->polling = 0;
    ngx_shmtx_unlock(&z->shpool->mutex);
    if (ok && sh->stale && ngx_atomic_cmp_set(&sh->stale, 1, 0)) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "certgate: revocation feed: the store was read again: protected locations "
                      "serve again");
    }
}

void reload_log(const ngx_certgate_poll_t &poll, ngx_msec_int_t age, ngx_log_t *log) {
    using R = certgate::FeedReload;
    if (poll.reload == R::gap) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "certgate: revocation feed: the store's events do not continue from where "
                      "the feed read (event %L, transaction %L; the store was replaced, restored "
                      "from a backup or failed over to a standby that was behind): loading the "
                      "revocation set again; blocks, resets and revocations recorded only in the "
                      "store before it must be redone",
                      poll.after.id, poll.after.xid);
    } else if (poll.reload == R::outage) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "certgate: revocation feed: no good read of the store for %M ms: loading "
                      "the revocation set again instead of continuing",
                      static_cast<ngx_msec_t>(age));
    }
}

void sync_tick(ngx_event_t *ev) noexcept {
    auto *sync = reinterpret_cast<ngx_certgate_sync_t *>(ev);
    ngx_certgate_main_conf_t *cmcf = sync->cmcf;
    ngx_certgate_zone_t *z = zone_of(cmcf);
    if (z == nullptr) {
        sync_arm(sync);
        return;
    }
    ngx_certgate_shctx_t *sh = z->sh;
    if (g_listener != nullptr && g_listener->take_wake()) sh->wake = 1;
    listener_check(sync, ev->log);
    stale_check(z, cmcf, ev->log);
    if (sync->busy) {
        sync_arm(sync);
        return;
    }

    // One poll at a time across the workers, at least one per interval.
    ngx_certgate_poll_t poll;
    ngx_msec_int_t age;
    ngx_shmtx_lock(&z->shpool->mutex);
    bool other = sh->polling && ngx_certgate_msec_since(sh->polling_since) <
                                    static_cast<ngx_msec_int_t>(kPollLease);
    bool due = !other && (!sh->head.loaded || sh->wake || sh->again ||
                          ngx_certgate_msec_since(sh->last_poll) >=
                              static_cast<ngx_msec_int_t>(cmcf->sync_interval));
    if (due) {
        certgate::FeedState state;
        state.loaded = sh->head.loaded;
        state.full = sh->full;
        state.gap = sh->gap;
        age = ngx_certgate_msec_since(sh->head.last_ok);
        state.ok_age_ms = age;
        poll.reload = certgate::feed_reload(state, static_cast<long>(cmcf->sync_max_lag));
        poll.after = sh->cursor;
        poll.gen = sh->cursor_gen;
        poll.losses = sh->losses;
        poll.started = ngx_current_msec;
        sh->last_poll = ngx_current_msec;
        sh->polling = 1;
        sh->polling_since = ngx_current_msec;
        sh->wake = 0;
        sh->again = 0;
    }
    ngx_shmtx_unlock(&z->shpool->mutex);
    if (!due) {
        sync_arm(sync);
        return;
    }
    reload_log(poll, age, ev->log);

    const certgate::Settings *s = &cmcf->runtime->settings;
    auto batch = std::make_shared<certgate::FeedBatch>();
    auto notifies = std::make_shared<bool>(false);
    int64_t now = ngx_time();
    bool initial = poll.reload != certgate::FeedReload::none;
    sync->busy = true;
    bool posted = ngx_certgate_post_background(
        cmcf->thread_pool, ev->log,
        [s, batch, notifies, initial, poll, now]() {
            try {
#if (CERTGATE_TEST_HOOKS)
                test_feed_down(s->store_uri);
#endif
                certgate::Store &store = certgate::thread_store(s->store_uri);
                *batch = initial ? certgate::initial_feed(store, now, s->session_absolute_s)
                                 : certgate::feed_next(store, poll.after, kPage);
                *notifies = store.has_feed_notifications();
            } catch (...) {
                certgate::drop_thread_store(s->store_uri);
                throw;
            }
        },
        [sync, batch, notifies, initial, poll, ev](ngx_http_request_t *,
                                                   const std::string *error) -> ngx_int_t {
            sync->busy = false;
            ngx_certgate_zone_t *z = zone_of(sync->cmcf);
            bool ok = error == nullptr && !batch->gap;
            if (error) {
                ngx_certgate_metrics_feed(false, nullptr);
                ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                              "certgate: revocation feed: cannot read the store: %s",
                              error->c_str());
            } else if (batch->gap) {
                // Loaded again at the next tick (see reload_log).
                ngx_shmtx_lock(&z->shpool->mutex);
                z->sh->gap = 1;
                ngx_shmtx_unlock(&z->shpool->mutex);
            } else {
                ngx_certgate_metrics_feed(true, initial ? nullptr : batch.get());
                if (poll.reload == certgate::FeedReload::gap ||
                    poll.reload == certgate::FeedReload::outage) {
                    ngx_certgate_metrics_feed_reload();
                }
                apply_batch(sync->cmcf, *batch, poll, ev->log);
                if (*notifies) listener_start(sync, ev->log);
            }
            if (z != nullptr) sync_done(z, poll, ok, ev->log);
            // A full page or a gap: the next poll at once.
            sync_arm(sync, batch->more || batch->gap ? 1 : kTick);
            return NGX_OK;
        },
        false, true);  // periodic: not a burst for the memory trim
    if (!posted) {
        sync->busy = false;
        sync_done(z, poll, false, ev->log);
        sync_arm(sync);
    }
}

}  // namespace

ngx_int_t ngx_certgate_revocation_zone(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    static ngx_str_t name = ngx_string("certgate_revocation");
    auto *z =
        static_cast<ngx_certgate_zone_t *>(ngx_pcalloc(cf->pool, sizeof(ngx_certgate_zone_t)));
    if (z == nullptr) return NGX_ERROR;
    z->cmcf = cmcf;
    cmcf->revocation_zone =
        ngx_shared_memory_add(cf, &name, cmcf->revocation_zone_size, &ngx_http_certgate_module);
    if (cmcf->revocation_zone == nullptr) return NGX_ERROR;
    cmcf->revocation_zone->init = ngx_certgate_zone_init;
    cmcf->revocation_zone->data = z;
    return NGX_OK;
}

ngx_int_t ngx_certgate_revocation_start(ngx_cycle_t *cycle,
                                        ngx_certgate_main_conf_t *cmcf) noexcept {
    auto *sync =
        static_cast<ngx_certgate_sync_t *>(ngx_pcalloc(cycle->pool, sizeof(ngx_certgate_sync_t)));
    if (sync == nullptr) return NGX_ERROR;
    sync->cmcf = cmcf;
    sync->cycle = cycle;
    sync->timer.handler = sync_tick;
    sync->timer.data = ngx_certgate_timer_ident();
    sync->timer.log = cycle->log;
    sync->timer.cancelable = 1;
    if (ngx_certgate_timer_cleanup(cycle->pool, &sync->timer) != NGX_OK) return NGX_ERROR;
    // The first poll at once: until the set is loaded, protected locations
    // refuse (fail closed).
    ngx_add_timer(&sync->timer, 1);
    return NGX_OK;
}

ngx_certgate_set_state_e ngx_certgate_revocation_state(ngx_certgate_main_conf_t *cmcf) noexcept {
    ngx_certgate_zone_t *z = zone_of(cmcf);
    if (z == nullptr) return NGX_CERTGATE_SET_NOT_READY;
    ngx_shmtx_lock(&z->shpool->mutex);
    ngx_certgate_set_state_e state = !z->sh->head.loaded ? NGX_CERTGATE_SET_NOT_READY
                                     : z->sh->full       ? NGX_CERTGATE_SET_FULL
                                                         : NGX_CERTGATE_SET_READY;
    ngx_shmtx_unlock(&z->shpool->mutex);
    if (state == NGX_CERTGATE_SET_READY && ngx_certgate_feed_stale(cmcf)) {
        state = NGX_CERTGATE_SET_STALE;
    }
    return state;
}

bool ngx_certgate_feed_stale(ngx_certgate_main_conf_t *cmcf) noexcept {
    bool stale;
    (void)ngx_certgate_set_now(cmcf, &stale);  // the protected path's own reading
    return stale;
}

ngx_certgate_feed_info_t ngx_certgate_feed_info(ngx_certgate_main_conf_t *cmcf) noexcept {
    ngx_certgate_feed_info_t info{};
    info.age_ms = -1;
    ngx_certgate_zone_t *z = zone_of(cmcf);
    if (z == nullptr) return info;
    ngx_shmtx_lock(&z->shpool->mutex);
    info.loaded = z->sh->head.loaded != 0;
    info.age_ms = info.loaded ? ngx_certgate_msec_since(z->sh->head.last_ok) : -1;
    info.behind = z->sh->behind;
    ngx_shmtx_unlock(&z->shpool->mutex);
    info.stale = ngx_certgate_feed_stale(cmcf);
    return info;
}

void ngx_certgate_revocation_stop() noexcept {
    if (g_listener == nullptr) return;
    g_listener->stop();
    delete g_listener;
    g_listener = nullptr;
}

bool ngx_certgate_serial_revoked(ngx_certgate_main_conf_t *cmcf,
                                 const std::string &serial) noexcept {
    ngx_certgate_zone_t *z = zone_of(cmcf);
    if (z == nullptr) return true;
    ngx_shmtx_lock(&z->shpool->mutex);
    bool revoked = entry_find(z->sh, kSerial, serial) != nullptr;
    ngx_shmtx_unlock(&z->shpool->mutex);
    return revoked;
}

bool ngx_certgate_session_ended(ngx_certgate_main_conf_t *cmcf, const std::string &session_id,
                                const std::string &user_id, int64_t epoch) noexcept {
    ngx_certgate_zone_t *z = zone_of(cmcf);
    if (z == nullptr) return true;
    ngx_shmtx_lock(&z->shpool->mutex);
    bool ended = entry_find(z->sh, kSession, session_id) != nullptr;
    if (!ended) {
        ngx_certgate_entry_t *u = entry_find(z->sh, kUser, user_id);
        // Sessions that began before the user's latest reset, block or
        // disable end; a login after an unblock starts a good one (no login
        // passes while the user is blocked, so none can be newer than a block
        // still in force).
        ended = u != nullptr && u->at > epoch;
    }
    ngx_shmtx_unlock(&z->shpool->mutex);
    return ended;
}

bool ngx_certgate_take_turn(ngx_certgate_main_conf_t *cmcf, ngx_certgate_turn_e turn,
                            ngx_msec_t interval) noexcept {
    ngx_certgate_zone_t *z = zone_of(cmcf);
    if (z == nullptr) return false;
    ngx_shmtx_lock(&z->shpool->mutex);
    bool mine = !z->sh->turn_taken[turn] || ngx_current_msec - z->sh->turns[turn] >= interval;
    if (mine) {
        z->sh->turns[turn] = ngx_current_msec;
        z->sh->turn_taken[turn] = 1;
    }
    ngx_shmtx_unlock(&z->shpool->mutex);
    return mine;
}
