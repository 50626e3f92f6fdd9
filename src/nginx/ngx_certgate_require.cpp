// certgate_require: the protected path. It decides from the TLS result, the
// session cookie and the shared-memory revocation set alone (no I/O): a
// logged-in user, whose session is bound to the client certificate it
// presents, that certificate ours, valid at this request (not only at the
// handshake) and not revoked.

#include <immintrin.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <exception>
#include <string>

#include "core/app/session.hpp"
#include "core/web/errors.hpp"
#include "core/web/form.hpp"
#include "core/web/portal.hpp"
#include "nginx/ngx_certgate_ctx.hpp"
#include "nginx/ngx_certgate_identity.hpp"
#include "nginx/ngx_certgate_revocation.hpp"

static ngx_uint_t ngx_certgate_status(certgate::ErrorCode code) {
    switch (code) {
        case certgate::ErrorCode::forbidden:
            return NGX_HTTP_FORBIDDEN;
        case certgate::ErrorCode::unavailable:
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        default:
            return NGX_HTTP_UNAUTHORIZED;
    }
}

// --- the gate's state, kept across internal and named redirects ----------------

// nginx zeroes r->ctx on every internal or named redirect (try_files, index,
// error_page, X-Accel-Redirect); the gate's state also hangs on the request
// pool as a cleanup, which those redirects keep, and is found there again.
static void ngx_certgate_gate_mark(void *) noexcept {}

NGX_CERTGATE_HOT ngx_certgate_ctx_t *ngx_certgate_find_ctx(ngx_http_request_t *r) noexcept {
    auto *ctx =
        static_cast<ngx_certgate_ctx_t *>(ngx_http_get_module_ctx(r, ngx_http_certgate_module));
    if (ctx != nullptr) return ctx;
    for (ngx_pool_cleanup_t *cln = r->pool->cleanup; cln != nullptr; cln = cln->next) {
        if (cln->handler != ngx_certgate_gate_mark) continue;
        ctx = static_cast<ngx_certgate_ctx_t *>(cln->data);
        if (ctx->r != r) continue;  // a subrequest's state: subrequests share the main pool
        ngx_http_set_ctx(r, ctx, ngx_http_certgate_module);
        return ctx;
    }
    return nullptr;
}

// A new gate state for a request that has none (find_ctx said so), with
// its pool cleanup in the same allocation (as ngx_pool_cleanup_add would
// make them, in one call instead of two).
static inline __attribute__((always_inline)) ngx_certgate_ctx_t *ngx_certgate_new_ctx(
    ngx_http_request_t *r) noexcept {
    struct state_t {
        ngx_pool_cleanup_t cln;
        ngx_certgate_ctx_t ctx;
    };
    auto *st = static_cast<state_t *>(ngx_palloc(r->pool, sizeof(state_t)));
    if (st == nullptr) return nullptr;
    ngx_certgate_ctx_t *ctx = &st->ctx;
    ngx_memzero(ctx, sizeof(ngx_certgate_ctx_t));
    ctx->r = r;
    st->cln.handler = ngx_certgate_gate_mark;
    st->cln.data = ctx;
    st->cln.next = r->pool->cleanup;
    r->pool->cleanup = &st->cln;
    ngx_http_set_ctx(r, ctx, ngx_http_certgate_module);
    return ctx;
}

// --- refusals -------------------------------------------------------------------

// The refusal as the client gets it: JSON or a page with its status, or for a
// browser that only needs to log in a 302 to the login screen. Sent from here,
// never left to a later phase, so no error_page, try_files, mirror or content
// handler of the location can turn it into something else.
static ngx_int_t ngx_certgate_send_refusal(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                           certgate::ErrorCode code) {
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) return rc;
    if (ngx_certgate_wants_json(r) || code == certgate::ErrorCode::forbidden ||
        code == certgate::ErrorCode::unavailable) {
        return ngx_certgate_refuse(r, ngx_certgate_status(code), code);
    }
    // A browser goes to the login screen and comes back after login.
    std::string to = cmcf->runtime->settings.portal_prefix;
    if (code == certgate::ErrorCode::login_required) {
        std::string back = ngx_certgate_str(r->uri);
        if (r->args.len) back += "?" + ngx_certgate_str(r->args);
        to += "?return=" + certgate::url_encode(back);
    } else {
        to += "?error=" + std::string(certgate::error_name(code));
    }
    rc = ngx_certgate_redirect(r, to);
    if (rc != NGX_HTTP_MOVED_TEMPORARILY) return rc;
    return ngx_certgate_send(r, NGX_HTTP_MOVED_TEMPORARILY, "text/html; charset=utf-8", "", false);
}

// Ends a refused request here. The phase checkers take NGX_DONE as "the
// request is handled", so neither `satisfy any` nor a later phase can let it
// on; a subrequest (auth_request, SSI) ends with the status alone.
__attribute__((noinline, cold)) static ngx_int_t ngx_certgate_deny(ngx_http_request_t *r,
                                                                   ngx_certgate_main_conf_t *cmcf,
                                                                   certgate::ErrorCode code) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "certgate: access refused: %s",
                  certgate::error_name(code));
    ngx_int_t rc = r == r->main ? ngx_certgate_send_refusal(r, cmcf, code)
                                : static_cast<ngx_int_t>(ngx_certgate_status(code));
    ngx_http_finalize_request(r, rc);
    return NGX_DONE;
}

// --- the decision ---------------------------------------------------------------

// The request's identity for the variables: the connection's, which
// outlives the request; a copy in the request pool when the connection has
// kept too many (see ngx_certgate_keep_pass).
static bool ngx_certgate_set_identity(ngx_http_request_t *r, ngx_certgate_ctx_t *ctx,
                                      const ngx_certgate_owned_identity_t *id, bool copy) {
    if (ctx->identity != nullptr) return true;
    if (!copy) {
        ctx->identity = &id->strs;
        return true;
    }
    auto *mine = static_cast<ngx_certgate_identity_t *>(
        ngx_palloc(r->pool, sizeof(ngx_certgate_identity_t) + id->text.size()));
    if (mine == nullptr) return false;
    auto *data = reinterpret_cast<u_char *>(mine + 1);
    ngx_memcpy(data, id->text.data(), id->text.size());
    auto moved = [&](const ngx_str_t &s) {
        if (s.data == nullptr || s.len == 0) return s;
        const char *base = id->text.data();
        return ngx_str_t{s.len, data + (reinterpret_cast<const char *>(s.data) - base)};
    };
    mine->user = moved(id->strs.user);
    mine->org = moved(id->strs.org);
    mine->serial = moved(id->strs.serial);
    mine->days_left = moved(id->strs.days_left);
    mine->role = id->strs.role;  // a literal
    ctx->identity = mine;
    return true;
}

// The request passed the gate (as a master user when `master`).
static void ngx_certgate_mark_passed(ngx_certgate_ctx_t *ctx, bool master) {
    if (master) ctx->passed_master = 1;
    ctx->passed = 1;
}

// Identities a connection keeps for requests that may still point to them.
// The user and serial are the certificate's, so only the days left (once a
// day) and the organisation (moved by an administrator) make new ones; past
// this, a request gets its own copy.
static constexpr size_t kRetiredIdentities = 8;

// Whether a and b, n bytes each, are the same: 16 at a time, and a last 16
// that overlaps the ones before instead of a byte loop.
// (Out of line: the keep-alive request's code calls it only on a CPU
// without AVX2 or for a header under 32 bytes.)
__attribute__((noinline)) static bool ngx_certgate_same_bytes_sse2(const u_char *a, const u_char *b,
                                                                   size_t n) {
    auto differ = [&](size_t at) {
        __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i *>(a + at));
        __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + at));
        return _mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) != 0xffff;
    };
    if (n < 16) {
        unsigned diff = 0;
        for (size_t i = 0; i < n; i++) diff |= a[i] ^ b[i];
        return diff == 0;
    }
    for (size_t i = 0; i + 16 < n; i += 16) {
        if (differ(i)) return false;
    }
    return !differ(n - 16);
}

// The same for n >= 32 on a CPU with AVX2: 32 at a time, the differences
// gathered and tested once at the end (a session cookie is 150-250 bytes:
// 5-8 rounds instead of 10-16).
NGX_CERTGATE_HOT __attribute__((target("avx2"))) static bool ngx_certgate_same_bytes_avx2(
    const u_char *a, const u_char *b, size_t n) {
    // (no lambda: it would not inherit the target)
    const auto *pa = reinterpret_cast<const __m256i *>(a + n - 32);
    const auto *pb = reinterpret_cast<const __m256i *>(b + n - 32);
    __m256i acc = _mm256_xor_si256(_mm256_loadu_si256(pa), _mm256_loadu_si256(pb));
    for (size_t i = 0; i + 32 < n; i += 32) {
        pa = reinterpret_cast<const __m256i *>(a + i);
        pb = reinterpret_cast<const __m256i *>(b + i);
        acc =
            _mm256_or_si256(acc, _mm256_xor_si256(_mm256_loadu_si256(pa), _mm256_loadu_si256(pb)));
    }
    return _mm256_testz_si256(acc, acc) != 0;
}

// Whether this CPU has AVX2 (ngx_certgate_require_cpu, at configuration).
static bool ngx_certgate_avx2 = false;

void ngx_certgate_require_cpu(ngx_log_t *log) noexcept {
    __builtin_cpu_init();
    ngx_certgate_avx2 = __builtin_cpu_supports("avx2") != 0;
#if (CERTGATE_TEST_HOOKS)
    // Test builds: CERTGATE_TEST_NO_AVX2 in nginx's environment takes the
    // SSE2 comparison, so the suites cover it on a CPU with AVX2 too.
    if (getenv("CERTGATE_TEST_NO_AVX2") != nullptr) {
        ngx_certgate_avx2 = false;
        ngx_log_error(NGX_LOG_NOTICE, log, 0, "certgate: test hook: the pass compares with SSE2");
    }
#else
    (void)log;
#endif
}

static inline bool ngx_certgate_same_bytes(const u_char *a, const u_char *b, size_t n) {
    if (n >= 32 && ngx_certgate_avx2) return ngx_certgate_same_bytes_avx2(a, b, n);
    return ngx_certgate_same_bytes_sse2(a, b, n);
}

// Whether a request may pass on the connection's last pass (see
// ngx_certgate_peer_t::Pass): true when nothing the full checks read can
// differ; false when they must run.
static inline __attribute__((always_inline)) bool ngx_certgate_pass_holds(
    ngx_http_request_t *r, const ngx_certgate_main_conf_t *cmcf, bool master,
    ngx_atomic_uint_t changes, const ngx_certgate_peer_t *peer) {
    const ngx_certgate_peer_t::Pass &p = peer->pass;
    if (p.conf != cmcf || changes == 0 || p.changes != changes || (master && !p.master)) {
        return false;
    }
    time_t now = ngx_time();
    if (now < p.from || now >= p.until) return false;
    // The bytes this client itself sent on this connection before, so a
    // plain comparison tells nobody anything they did not send.
    const ngx_str_t *cookie = ngx_certgate_one_cookie(r);
    return cookie != nullptr && cookie->len == p.cookie_len &&
           ngx_certgate_same_bytes(cookie->data, p.cookie_data(), cookie->len);
}

// Keeps what a request that passed every check read, for the next requests
// of the connection; `reusable` false when they must check again (the
// session cookie was just renewed, or the request had no single Cookie
// header). Returns the request's identity when it is not the pass's (the
// connection keeps no more; the caller copies it).
static std::unique_ptr<ngx_certgate_owned_identity_t> ngx_certgate_keep_pass(
    ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf, ngx_certgate_peer_t *peer,
    const certgate::Session &session, ngx_atomic_uint_t changes, time_t now, bool reusable) {
    const certgate::Settings &s = cmcf->runtime->settings;
    ngx_certgate_peer_t::Pass &p = peer->pass;
    const ngx_str_t *cookie = reusable ? ngx_certgate_one_cookie(r) : nullptr;
    // No pass while it is being changed (an exception leaves none), and
    // one at the end only when the next request may use it.
    p.conf = nullptr;
    p.changes = changes;
    p.master = session.role == certgate::Role::master;
    p.cookie_len = 0;
    p.long_cookie.clear();
    if (cookie != nullptr && cookie->len <= ngx_certgate_peer_t::kInlineCookie) {
        ngx_memcpy(p.cookie, cookie->data, cookie->len);
        p.cookie_len = cookie->len;
    } else if (cookie != nullptr) {
        p.long_cookie.assign(reinterpret_cast<const char *>(cookie->data), cookie->len);
        p.cookie_len = cookie->len;
    }
    const certgate::CertificateIdentity &id = peer->id;
    long days = id.not_after > now ? static_cast<long>((id.not_after - now) / 86400) : 0;
    std::string days_text = std::to_string(days);
    const char *role = certgate::to_string(session.role);
    std::string text;
    text.append(session.user_id).append(session.org).append(id.serial_hex).append(days_text);
    if (p.identity == nullptr || p.identity->text != text ||
        p.identity->strs.role.data != (const u_char *)role) {
        auto made = std::make_unique<ngx_certgate_owned_identity_t>();
        made->text = std::move(text);
        auto *base = reinterpret_cast<u_char *>(made->text.data());
        size_t at = 0;
        auto next = [&](size_t len) {
            ngx_str_t out{len, len ? base + at : nullptr};
            at += len;
            return out;
        };
        made->strs.user = next(session.user_id.size());
        made->strs.org = next(session.org.size());
        made->strs.serial = next(id.serial_hex.size());
        made->strs.days_left = next(days_text.size());
        made->strs.role = {ngx_strlen(role), (u_char *)role};
        if (p.identity != nullptr && peer->retired.size() >= kRetiredIdentities) {
            // Too many already: this request gets its own copy, and the
            // next ones of the connection are checked in full.
            return made;
        }
        if (p.identity != nullptr) peer->retired.push_back(std::move(p.identity));
        p.identity = std::move(made);
    }
    // [from, until): the certificate's dates, the session's start, its
    // timeouts and next refresh, and the second the days left go down.
    p.from = std::max<time_t>(id.not_before, session.started_at);
    time_t until = id.not_after + 1;
    until = std::min<time_t>(
        until, certgate::session_recheck_at(session, s.session_idle_s, s.session_absolute_s));
    until = std::min<time_t>(until, id.not_after - static_cast<time_t>(days) * 86400 + 1);
    p.until = until;
    if (cookie != nullptr) p.conf = cmcf;
    return nullptr;
}

static bool ngx_certgate_decide_full(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                     ngx_certgate_ctx_t *ctx, bool master,
                                     ngx_atomic_uint_t changes, ngx_certgate_peer_t *peer,
                                     certgate::ErrorCode *refusal) __attribute__((noinline, cold));

// Whether this request, as it stands, may pass: the checks of the protected
// path (no I/O). True with the identity kept in ctx, or false and the refusal.
static bool ngx_certgate_decide(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                ngx_certgate_ctx_t *ctx, bool master,
                                certgate::ErrorCode *refusal) {
    using certgate::ErrorCode;

    // The set's change count, read before anything is decided: a change
    // after this read makes the next request check again.
    bool stale;
    ngx_atomic_uint_t changes = ngx_certgate_set_now(cmcf, &stale);
    // A stale set may miss a revocation, block or logout of another node:
    // refused even on a connection that passed before.
    if (stale) {
        *refusal = ErrorCode::unavailable;
        return false;
    }
    ngx_certgate_peer_t *peer = ngx_certgate_peer(r, cmcf);
    if (peer != nullptr && ngx_certgate_pass_holds(r, cmcf, master, changes, peer) &&
        ngx_certgate_set_identity(r, ctx, peer->pass.identity.get(), false)) {
        ngx_certgate_mark_passed(ctx, master);
        return true;
    }
    return ngx_certgate_decide_full(r, cmcf, ctx, master, changes, peer, refusal);
}

// The full checks, for a request that cannot pass on its connection's last
// pass (the first of a connection, a new cookie, a change of the set, a
// renewal due). Apart from the request's path and never inlined into it, so
// that the code every keep-alive request runs stays in few cache lines.
static bool ngx_certgate_decide_full(ngx_http_request_t *r, ngx_certgate_main_conf_t *cmcf,
                                     ngx_certgate_ctx_t *ctx, bool master,
                                     ngx_atomic_uint_t changes, ngx_certgate_peer_t *peer,
                                     certgate::ErrorCode *refusal) {
    using certgate::ErrorCode;

    // This connection's certificate passed the set at this count already.
    bool known_clean = changes != 0 && peer != nullptr && peer->clean_changes == changes;

    // Until the set is loaded, nothing proves a certificate is not revoked.
    if (!known_clean && ngx_certgate_revocation_state(cmcf) != NGX_CERTGATE_SET_READY) {
        *refusal = ErrorCode::unavailable;
        return false;
    }
    if (peer == nullptr) {
        *refusal = ErrorCode::no_certificate;
        return false;
    }
    if (!peer->ours) {
        *refusal = ErrorCode::certificate_mismatch;
        return false;
    }
    time_t now = ngx_time();
    if (now > peer->id.not_after || now < peer->id.not_before) {
        *refusal = ErrorCode::certificate_expired;
        return false;
    }
    if (!known_clean && ngx_certgate_serial_revoked(cmcf, peer->id.serial_hex)) {
        *refusal = ErrorCode::certificate_revoked;
        return false;
    }

    ErrorCode why;
    const certgate::Session *session = ngx_certgate_session(r, cmcf, peer, &why, changes);
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "certgate require: certificate ok, session %s (%s)", session ? "live" : "none",
                   session ? "" : certgate::error_name(why));
    if (session == nullptr) {
        *refusal = why;
        return false;
    }
    if (session->user_id != peer->id.common_name) {
        *refusal = ErrorCode::certificate_mismatch;
        return false;
    }
    if (master && session->role != certgate::Role::master) {
        *refusal = ErrorCode::forbidden;
        return false;
    }

    const certgate::Settings &s = cmcf->runtime->settings;
    bool refreshed = false;
    if (r == r->main && certgate::session_needs_refresh(*session, now, s.session_idle_s)) {
        peer->session.last_seen = now;
        peer->session_value = certgate::encode_session(s.secret, peer->session);
        if (ngx_certgate_set_cookie(r, certgate::kSessionCookie, peer->session_value) != NGX_OK) {
            *refusal = ErrorCode::unavailable;
            return false;
        }
        refreshed = true;
    }

    // Every check against the set passed at `changes`.
    peer->clean_changes = changes;
    // The cookie this request carries is the old one once it was renewed:
    // the next request checks again (with the new one, or refreshes again).
    auto own = ngx_certgate_keep_pass(r, cmcf, peer, *session, changes, now, !refreshed);
    bool set = own != nullptr ? ngx_certgate_set_identity(r, ctx, own.get(), true)
                              : ngx_certgate_set_identity(r, ctx, peer->pass.identity.get(), false);
    if (!set) {
        *refusal = ErrorCode::unavailable;
        return false;
    }
    ngx_certgate_mark_passed(ctx, master);
    return true;
}

// The gate, run in the rewrite phase (before the location's own rewrite,
// return and set directives) and again in the access phase. A request that
// entered a protected location stays protected wherever a rewrite or an
// internal redirect takes it; once it passed, the later checks are free.
// `ctx`: the request's gate state if it has one yet.
static ngx_int_t ngx_certgate_gate(ngx_http_request_t *r, const ngx_certgate_loc_conf_t *lcf,
                                   ngx_certgate_ctx_t *ctx) noexcept {
    try {
        auto *cmcf = static_cast<ngx_certgate_main_conf_t *>(
            ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
        if (cmcf->runtime == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        if (ctx == nullptr) ctx = ngx_certgate_new_ctx(r);
        if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        if (lcf->require) {
            ctx->required = 1;
            if (lcf->require_master) ctx->required_master = 1;
        }
        bool master = ctx->required_master;
        if (ctx->passed && (!master || ctx->passed_master)) return NGX_DECLINED;

        certgate::ErrorCode refusal;
        if (!ngx_certgate_decide(r, cmcf, ctx, master, &refusal)) {
            return ngx_certgate_deny(r, cmcf, refusal);
        }
        return NGX_DECLINED;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

static const ngx_certgate_loc_conf_t *ngx_certgate_lcf(ngx_http_request_t *r) {
    return static_cast<const ngx_certgate_loc_conf_t *>(
        ngx_http_get_module_loc_conf(r, ngx_http_certgate_module));
}

// The keep-alive request's way through: a request with no gate state yet
// that enters a protected location on a connection whose last pass holds
// (ngx_certgate_pass_holds) passes here, with what ngx_certgate_decide
// would find and nothing else. False: it did not (nothing changed), and the
// caller takes the full way.
static inline __attribute__((always_inline)) bool ngx_certgate_try_pass(
    ngx_http_request_t *r, const ngx_certgate_loc_conf_t *lcf) {
    auto *cmcf = static_cast<const ngx_certgate_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
    bool stale;
    ngx_atomic_uint_t changes = ngx_certgate_set_now(cmcf, &stale);
    if (__builtin_expect(stale || cmcf->runtime == nullptr, 0)) return false;
    const ngx_certgate_peer_t *peer = ngx_certgate_known_peer(cmcf, r->connection);
    bool master = lcf->require_master;
    if (peer == nullptr || !ngx_certgate_pass_holds(r, cmcf, master, changes, peer)) return false;
    ngx_certgate_ctx_t *ctx = ngx_certgate_new_ctx(r);
    if (__builtin_expect(ctx == nullptr, 0)) return false;
    ctx->required = 1;
    if (master) ctx->required_master = 1;
    ctx->identity = &peer->pass.identity->strs;  // a new state: none yet (set_identity, no copy)
    ngx_certgate_mark_passed(ctx, master);
    return true;
}

// The rewrite phase's way for every other request: one whose gate state
// may be on its pool (an internal or named redirect cleared r->ctx), one
// that entered a protected location before, a connection's first request,
// a new cookie, a change of the set. Apart from the keep-alive request's
// code, so that it stays in few cache lines.
__attribute__((noinline, cold)) static ngx_int_t ngx_certgate_rewrite_full(
    ngx_http_request_t *r, const ngx_certgate_loc_conf_t *lcf) noexcept {
    ngx_certgate_ctx_t *ctx = ngx_certgate_find_ctx(r);
    if (ctx == nullptr && lcf->require) {
        if (r->pool->cleanup != nullptr && ngx_certgate_try_pass(r, lcf)) return NGX_DECLINED;
        return ngx_certgate_gate(r, lcf, nullptr);
    }
    if (!lcf->require && (ctx == nullptr || !ctx->required)) return NGX_DECLINED;
    return ngx_certgate_gate(r, lcf, ctx);
}

// With no gate state in r->ctx and none on the pool (no cleanup at all: the
// usual case), the request never entered a protected location: an
// unprotected one lets it on, a protected one tries its connection's pass.
NGX_CERTGATE_HOT ngx_int_t ngx_certgate_require_rewrite_handler(ngx_http_request_t *r) noexcept {
    const ngx_certgate_loc_conf_t *lcf = ngx_certgate_lcf(r);
    if (ngx_http_get_module_ctx(r, ngx_http_certgate_module) == nullptr &&
        r->pool->cleanup == nullptr) {
        if (!lcf->require) return NGX_DECLINED;
        if (ngx_certgate_try_pass(r, lcf)) return NGX_DECLINED;
    }
    return ngx_certgate_rewrite_full(r, lcf);
}

__attribute__((noinline, cold)) static ngx_int_t ngx_certgate_access_full(
    ngx_http_request_t *r, const ngx_certgate_loc_conf_t *lcf) noexcept {
    ngx_certgate_ctx_t *ctx = ngx_certgate_find_ctx(r);
    if (!lcf->require && (ctx == nullptr || !ctx->required)) return NGX_DECLINED;
    ngx_int_t rc = ngx_certgate_gate(r, lcf, ctx);
    if (rc != NGX_DECLINED) return rc;
    ctx = ngx_certgate_find_ctx(r);
    return ctx != nullptr && ctx->passed ? NGX_OK : NGX_DECLINED;
}

// In the access phase a request that passed the gate counts as allowed, so
// under `satisfy any` the gate is one of the ways in; it is never skipped.
// The rewrite phase of this location ran first: a request that passed
// there, with the role this location asks, is allowed at once.
NGX_CERTGATE_HOT ngx_int_t ngx_certgate_require_handler(ngx_http_request_t *r) noexcept {
    const ngx_certgate_loc_conf_t *lcf = ngx_certgate_lcf(r);
    auto *ctx =
        static_cast<ngx_certgate_ctx_t *>(ngx_http_get_module_ctx(r, ngx_http_certgate_module));
    if (ctx != nullptr && ctx->passed && (ctx->required || !lcf->require) &&
        (ctx->passed_master || !(ctx->required_master || lcf->require_master))) {
        return NGX_OK;
    }
    // no gate state anywhere (as in the rewrite phase): nothing to check
    if (ctx == nullptr && r->pool->cleanup == nullptr && !lcf->require) return NGX_DECLINED;
    return ngx_certgate_access_full(r, lcf);
}
