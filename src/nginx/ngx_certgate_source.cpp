// The per-source throttle (R21): failed authentications per client
// address ($remote_addr, so nginx's realip module decides it behind a load
// balancer), in a shared-memory zone that every worker sees, in the manner of
// ngx_http_limit_req_module: an rbtree keyed by the address, an LRU queue,
// bounded by the zone's size.
//
// Each address has a leaky bucket: every failure pours one in, the bucket
// drains at <failures> per <window>, and an address whose bucket (plus the
// attempts it has in flight) is full gets 429 until one failure has drained.
// The check runs on the event loop in microseconds before the task is posted;
// the request's pool cleanup takes the attempt off the in-flight count and
// adds the failure if the core said so, so parallel requests cannot slip past.
// The zone lives in nginx, so a memcached restart loses nothing.

#include "nginx/ngx_certgate_source.hpp"

#include <cstddef>
#include <type_traits>

// What a request in flight takes back when its pool goes.
struct ngx_certgate_source_pending_t {
    ngx_certgate_main_conf_t *cmcf;
    ngx_str_t addr;
    ngx_uint_t failure;
};

static_assert(std::is_trivially_destructible<ngx_certgate_source_pending_t>::value,
              "lives in the request pool");

namespace {

struct ngx_certgate_source_node_t {
    ngx_rbtree_node_t node;  // key: crc32 of the address
    ngx_queue_t queue;       // LRU, the newest at the head
    ngx_msec_t last;         // when level was last drained
    ngx_msec_t inflight_at;  // when inflight last changed
    int64_t level;           // failures × 1000
    ngx_uint_t inflight;     // attempts posted, not yet finished
    u_short len;
    u_char data[1];
};

struct ngx_certgate_source_shctx_t {
    ngx_rbtree_t rbtree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t queue;
};

struct ngx_certgate_source_zone_t {
    ngx_certgate_source_shctx_t *sh;
    ngx_slab_pool_t *shpool;
};

ngx_certgate_source_node_t *node_of(ngx_rbtree_node_t *n) {
    return reinterpret_cast<ngx_certgate_source_node_t *>(n);
}

void source_insert_value(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
                         ngx_rbtree_node_t *sentinel) {
    ngx_rbtree_node_t **p;
    for (;;) {
        if (node->key < temp->key) {
            p = &temp->left;
        } else if (node->key > temp->key) {
            p = &temp->right;
        } else {
            auto *a = node_of(node);
            auto *b = node_of(temp);
            p = ngx_memn2cmp(a->data, b->data, a->len, b->len) < 0 ? &temp->left : &temp->right;
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

ngx_certgate_source_node_t *source_find(ngx_certgate_source_zone_t *z, const ngx_str_t &addr,
                                        uint32_t hash) {
    ngx_rbtree_node_t *n = z->sh->rbtree.root;
    ngx_rbtree_node_t *sentinel = z->sh->rbtree.sentinel;
    while (n != sentinel) {
        if (hash != n->key) {
            n = hash < n->key ? n->left : n->right;
            continue;
        }
        auto *s = node_of(n);
        ngx_int_t rc = ngx_memn2cmp(addr.data, s->data, addr.len, s->len);
        if (rc == 0) return s;
        n = rc < 0 ? n->left : n->right;
    }
    return nullptr;
}

// Drains the bucket up to now. Time that drained less than one unit is kept
// for the next call: a steady stream of requests must not stop the draining.
void source_drain(ngx_certgate_main_conf_t *cmcf, ngx_certgate_source_node_t *s) {
    ngx_msec_int_t elapsed = static_cast<ngx_msec_int_t>(ngx_current_msec - s->last);
    if (elapsed < 0) elapsed = 0;
    int64_t drained = static_cast<int64_t>(elapsed) * static_cast<int64_t>(cmcf->source_failures) /
                      static_cast<int64_t>(cmcf->source_window);
    if (drained == 0 && s->level > 0) return;
    s->level = drained >= s->level ? 0 : s->level - drained;
    s->last = ngx_current_msec;
}

// No attempt runs this long (every dependency has a timeout): an address whose
// attempts are still "in flight" after it lost them with a killed worker.
const ngx_msec_t kStaleInflight = 10 * 60 * 1000;

// Frees the oldest idle entries whose bucket drained empty (at most two, as
// limit_req does); forced, up to 16 of the oldest idle ones whatever their
// level. Entries with attempts in flight are passed over, not waited for.
void source_expire(ngx_certgate_main_conf_t *cmcf, ngx_certgate_source_zone_t *z, bool force) {
    int freed = 0;
    ngx_queue_t *q = ngx_queue_last(&z->sh->queue);
    for (int looked = 0;
         q != ngx_queue_sentinel(&z->sh->queue) && looked < 64 && freed < (force ? 16 : 2);
         looked++) {
        auto *s = ngx_queue_data(q, ngx_certgate_source_node_t, queue);
        ngx_queue_t *prev = ngx_queue_prev(q);
        if (s->inflight > 0 && ngx_current_msec - s->inflight_at > kStaleInflight) s->inflight = 0;
        if (s->inflight > 0) {
            q = prev;
            continue;
        }
        source_drain(cmcf, s);
        if (!force && s->level > 0) return;
        ngx_queue_remove(q);
        ngx_rbtree_delete(&z->sh->rbtree, &s->node);
        ngx_slab_free_locked(z->shpool, s);
        freed++;
        q = prev;
    }
}

ngx_certgate_source_zone_t *source_zone_of(ngx_certgate_main_conf_t *cmcf) {
    if (cmcf->source_zone == nullptr) return nullptr;
    auto *z = static_cast<ngx_certgate_source_zone_t *>(cmcf->source_zone->data);
    return z->sh ? z : nullptr;
}

void source_pending_done(void *data) noexcept {
    auto *p = static_cast<ngx_certgate_source_pending_t *>(data);
    ngx_certgate_source_zone_t *z = source_zone_of(p->cmcf);
    if (z == nullptr) return;
    uint32_t hash = ngx_crc32_short(p->addr.data, p->addr.len);
    ngx_shmtx_lock(&z->shpool->mutex);
    ngx_certgate_source_node_t *s = source_find(z, p->addr, hash);
    if (s != nullptr) {
        if (s->inflight > 0) s->inflight--;
        s->inflight_at = ngx_current_msec;
        source_drain(p->cmcf, s);
        if (p->failure) s->level += 1000;
    }
    ngx_shmtx_unlock(&z->shpool->mutex);
}

ngx_int_t source_zone_init(ngx_shm_zone_t *shm_zone, void *data) noexcept {
    auto *z = static_cast<ngx_certgate_source_zone_t *>(shm_zone->data);
    if (data) {
        // A reload: the counts live on.
        auto *old = static_cast<ngx_certgate_source_zone_t *>(data);
        z->sh = old->sh;
        z->shpool = old->shpool;
        return NGX_OK;
    }
    z->shpool = reinterpret_cast<ngx_slab_pool_t *>(shm_zone->shm.addr);
    if (shm_zone->shm.exists) {
        z->sh = static_cast<ngx_certgate_source_shctx_t *>(z->shpool->data);
        return NGX_OK;
    }
    z->sh = static_cast<ngx_certgate_source_shctx_t *>(
        ngx_slab_calloc(z->shpool, sizeof(ngx_certgate_source_shctx_t)));
    if (z->sh == nullptr) return NGX_ERROR;
    z->shpool->data = z->sh;
    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel, source_insert_value);
    ngx_queue_init(&z->sh->queue);
    z->shpool->log_nomem = 0;
    static const char ctx[] = " in certgate source limit zone";
    z->shpool->log_ctx = static_cast<u_char *>(ngx_slab_alloc(z->shpool, sizeof(ctx)));
    if (z->shpool->log_ctx == nullptr) return NGX_ERROR;
    ngx_memcpy(z->shpool->log_ctx, ctx, sizeof(ctx));
    return NGX_OK;
}

}  // namespace

ngx_int_t ngx_certgate_source_zone(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    if (cmcf->source_failures == 0) return NGX_OK;  // off
    auto *z = static_cast<ngx_certgate_source_zone_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_certgate_source_zone_t)));
    if (z == nullptr) return NGX_ERROR;
    ngx_str_t name = ngx_string("certgate_sources");
    cmcf->source_zone =
        ngx_shared_memory_add(cf, &name, cmcf->source_zone_size, &ngx_http_certgate_module);
    if (cmcf->source_zone == nullptr) return NGX_ERROR;
    cmcf->source_zone->init = source_zone_init;
    cmcf->source_zone->data = z;
    return NGX_OK;
}

long ngx_certgate_source_check(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                               ngx_certgate_source_pending_t **pending) noexcept {
    *pending = nullptr;
    if (cmcf->source_failures == 0) return 0;
    ngx_certgate_source_zone_t *z = source_zone_of(cmcf);
    if (z == nullptr) return 0;
    const ngx_str_t &addr = r->connection->addr_text;
    if (addr.len == 0 || addr.len > 255) return 0;

    // The cleanup first: without it the attempt could not be taken back.
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_certgate_source_pending_t));
    if (cln == nullptr) return -1;
    auto *p = static_cast<ngx_certgate_source_pending_t *>(cln->data);
    p->cmcf = cmcf;
    p->addr = addr;  // the connection outlives its requests
    p->failure = 0;
    cln->handler = nullptr;

    const int64_t limit = static_cast<int64_t>(cmcf->source_failures) * 1000;
    uint32_t hash = ngx_crc32_short(addr.data, addr.len);
    long retry = 0;
    ngx_shmtx_lock(&z->shpool->mutex);
    source_expire(cmcf, z, false);
    ngx_certgate_source_node_t *s = source_find(z, addr, hash);
    if (s == nullptr) {
        size_t size = offsetof(ngx_certgate_source_node_t, data) + addr.len;
        s = static_cast<ngx_certgate_source_node_t *>(ngx_slab_alloc_locked(z->shpool, size));
        if (s == nullptr) {
            source_expire(cmcf, z, true);
            s = static_cast<ngx_certgate_source_node_t *>(ngx_slab_alloc_locked(z->shpool, size));
        }
        if (s == nullptr) {
            // Full of addresses with attempts in flight: fail closed, briefly
            // (a slot frees as soon as one of them finishes).
            ngx_shmtx_unlock(&z->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "certgate: the source limit zone is full; make it larger with "
                          "certgate_source_limit ... zone=<size>");
            return 5;
        }
        s->node.key = hash;
        s->len = static_cast<u_short>(addr.len);
        ngx_memcpy(s->data, addr.data, addr.len);
        s->last = ngx_current_msec;
        s->level = 0;
        s->inflight = 0;
        s->inflight_at = ngx_current_msec;
        ngx_rbtree_insert(&z->sh->rbtree, &s->node);
        ngx_queue_insert_head(&z->sh->queue, &s->queue);
    } else {
        ngx_queue_remove(&s->queue);
        ngx_queue_insert_head(&z->sh->queue, &s->queue);
        source_drain(cmcf, s);
    }
    int64_t used = s->level + static_cast<int64_t>(s->inflight) * 1000;
    if (used + 1000 > limit) {
        // Until enough has drained for one more attempt.
        int64_t excess = used + 1000 - limit;
        int64_t ms = excess * static_cast<int64_t>(cmcf->source_window) /
                     static_cast<int64_t>(cmcf->source_failures);
        retry = static_cast<long>(ms / 1000 + 1);
    } else {
        s->inflight++;
        s->inflight_at = ngx_current_msec;
        cln->handler = source_pending_done;
        *pending = p;
    }
    ngx_shmtx_unlock(&z->shpool->mutex);
    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "certgate source limit: \"%V\" level %L, retry after %l s", &addr,
                   static_cast<long long>(used), retry);
    return retry;
}

void ngx_certgate_source_failed(ngx_certgate_source_pending_t *pending) noexcept {
    if (pending != nullptr) pending->failure = 1;
}
