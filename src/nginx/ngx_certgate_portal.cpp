// The portal: the content handler of the certgate_portal location. It serves
// the pages and endpoints under the location's prefix; anything that would
// block (memcached, the store) runs as a thread task.

#include <openssl/ssl.h>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>

#include "core/app/health.hpp"
#include "core/policy/password.hpp"
#include "core/web/errors.hpp"
#include "core/web/form.hpp"
#include "core/web/portal.hpp"
#include "nginx/ngx_certgate_ctx.hpp"
#include "nginx/ngx_certgate_metrics.hpp"
#include "nginx/ngx_certgate_revocation.hpp"
#include "nginx/ngx_certgate_source.hpp"
#include "nginx/ngx_certgate_task.hpp"

static ngx_certgate_main_conf_t *ngx_certgate_main(ngx_http_request_t *r) {
    return static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
}

static ngx_int_t ngx_certgate_asset(ngx_http_request_t *r, const std::string &name) {
    auto *cmcf = ngx_certgate_main(r);
    const certgate::Pages::Asset *asset = cmcf->runtime->pages->asset(name);
    if (asset == nullptr)
        return ngx_certgate_refuse(r, NGX_HTTP_NOT_FOUND, certgate::ErrorCode::not_found);
    if (ngx_certgate_add_header(r, "Cache-Control", "public, max-age=3600") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return ngx_certgate_send(r, NGX_HTTP_OK, asset->content_type, asset->body, false);
}

// GET health: memcached and the store, probed from the thread pool.
static ngx_int_t ngx_certgate_health(ngx_http_request_t *r) {
    auto *cmcf = ngx_certgate_main(r);
    // The runtime outlives every request of this worker: the configuration
    // pool goes only when the process exits.
    const certgate::Settings *settings = &cmcf->runtime->settings;

    long delay_ms = 0;
    bool issue = false;
    bool crypto = false;
#if (CERTGATE_TEST_HOOKS)
    // Test builds only: hold the task so tests can show the event loop stays free.
    ngx_str_t arg;
    if (ngx_http_arg(r, (u_char *)"delay", 5, &arg) == NGX_OK) {
        ngx_int_t ms = ngx_atoi(arg.data, arg.len);
        if (ms > 0 && ms <= 60000) delay_ms = ms;
    }

    // Test builds only: one real issuance (key pair, certificate, .p12) in
    // the thread pool, the load `make bench` puts beside the protected path.
    if (ngx_http_arg(r, (u_char *)"issue", 5, &arg) == NGX_OK) issue = true;
    if (ngx_http_arg(r, (u_char *)"crypto", 6, &arg) == NGX_OK) crypto = true;
#endif

    const certgate::Runtime *rt = cmcf->runtime;
    auto result = std::make_shared<certgate::Health>();
    return ngx_certgate_post_task(
        r,
        [result, settings, delay_ms, issue, rt]() {
            if (delay_ms > 0) {
                struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000};
                nanosleep(&ts, nullptr);
            }
            if (issue) {
                certgate::IssueRequest req;
                req.user_id = "bench0001";
                req.org_name = "bench";
                req.key_type = *certgate::parse_key_type(settings->key_type);
                req.now = time(nullptr);
                rt->ca->issue(req, "Bench#2026", certgate::P12Encryption::aes256);
            }
            *result = certgate::check_health(*settings);
        },
        [result](ngx_http_request_t *r, const std::string *error) -> ngx_int_t {
            if (error != nullptr) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: health: %s",
                              error->c_str());
                result->memcached_up = result->store_up = false;
            }
            if (!result->memcached_up && !result->memcached_error.empty()) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0, "certgate: memcached: %s",
                              result->memcached_error.c_str());
            }
            if (!result->store_up && !result->store_error.empty()) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0, "certgate: store: %s",
                              result->store_error.c_str());
            }
            long alive = -1;
#if (CERTGATE_TEST_HOOKS)
            // This task is still counted while it finishes.
            alive = ngx_certgate_task_t::alive.load() - 1;
#endif
            std::string body = certgate::health_json(*result, alive);
            return ngx_certgate_send(r, result->ok() ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "application/json", body, true);
        },
        // Test builds: ?issue=1 and ?crypto=1 (a delay held in the crypto
        // pool) are crypto work; the probe alone is I/O.
        issue || crypto ? ngx_certgate_task_kind::crypto : ngx_certgate_task_kind::io);
}

// --- the screens: a PortalRequest built here, answered in the thread pool ----

// The configured rule patterns, run with nginx's regex API.
static certgate::RuleCheck ngx_certgate_check_rule(ngx_array_t *rules, const std::string &value) {
    certgate::RuleCheck check;
    if (rules == nullptr) return check;
    if (certgate::has_control_character(value)) {
        check.ok = false;  // whatever the patterns say
        return check;
    }
    ngx_str_t subject = {value.size(), (u_char *)value.data()};
    auto **re = static_cast<ngx_regex_t **>(rules->elts);
    for (ngx_uint_t i = 0; i < rules->nelts; i++) {
        if (ngx_regex_exec(re[i], &subject, nullptr, 0) < 0) {
            check.ok = false;
            check.failed_pattern = i;
            return check;
        }
    }
    return check;
}

// The POSTs that authenticate (a password or a code): the per-source
// throttle stands in front of them.
static bool ngx_certgate_authenticates(const std::string &path) {
    return path == "login" || path == "issue" || path == "issue/code" ||
           path == "register/master" || path == "register/password";
}

// Writes what the core decided.
static ngx_int_t ngx_certgate_answer(ngx_http_request_t *r, const certgate::PortalResponse &res) {
    if (res.retry_after > 0 && ngx_certgate_retry_after(r, res.retry_after) != NGX_OK) {
        return NGX_ERROR;
    }
    for (const std::string &c : res.set_cookies) {
        if (ngx_certgate_add_header_str(r, "Set-Cookie", c) != NGX_OK) return NGX_ERROR;
    }
    if (!res.log_error.empty()) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", res.log_error.c_str());
    }
    if (!res.location.empty()) {
        ngx_int_t rc = ngx_certgate_redirect(r, res.location);
        if (rc != NGX_HTTP_MOVED_TEMPORARILY) return rc;
        if (ngx_certgate_security_headers(r, false) != NGX_OK) return NGX_ERROR;
        r->headers_out.status = static_cast<ngx_uint_t>(res.status);
        r->headers_out.content_length_n = 0;
        r->header_only = 1;
        return ngx_http_send_header(r);
    }
    if (res.status == 404 && res.body.empty()) {
        return ngx_certgate_refuse(r, NGX_HTTP_NOT_FOUND, certgate::ErrorCode::not_found);
    }
    if (res.status == 405) return NGX_HTTP_NOT_ALLOWED;
    if (!res.attachment.empty()) {
        std::string disposition = "attachment; filename=\"" + res.attachment + "\"";
        if (ngx_certgate_add_header_str(r, "Content-Disposition", disposition) != NGX_OK) {
            return NGX_ERROR;
        }
    }
    // res outlives the call; nginx copies the type into the header it builds.
    return ngx_certgate_send(r, static_cast<ngx_uint_t>(res.status), res.content_type.c_str(),
                             res.body, res.no_store);
}

// Builds the request for the core and posts it to the thread pool.
// The portal's work after an answer (PortalResponse::after: the .p12 keys
// derived ahead), in the crypto pool with no request: a failure costs only
// the derivation at ⑥, so it is logged at info level, never shown.
static void ngx_certgate_post_after(ngx_certgate_main_conf_t *cmcf,
                                    std::function<void()> work) noexcept {
    ngx_thread_pool_t *pool = cmcf->crypto_thread_pool;
    bool posted = ngx_certgate_post_background(
        pool, ngx_cycle->log, std::move(work),
        [](ngx_http_request_t *, const std::string *error) -> ngx_int_t {
            if (error != nullptr)
                ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                              "certgate: the .p12 keys were not derived ahead (%s); ⑥ derives them",
                              error->c_str());
            return NGX_OK;
        },
        pool != cmcf->thread_pool);
    if (!posted)
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "certgate: the .p12 keys were not derived ahead (the crypto pool refused "
                      "the task); ⑥ derives them");
}

static ngx_int_t ngx_certgate_screen(ngx_http_request_t *r, const std::string &path,
                                     const std::string &body) {
    auto *cmcf = ngx_certgate_main(r);
    auto req = std::make_shared<certgate::PortalRequest>();
    req->method =
        r->method == NGX_HTTP_POST ? "POST" : (r->method == NGX_HTTP_HEAD ? "HEAD" : "GET");
    req->path = path;
    if (r->args.len) {
        std::map<std::string, std::string> query;
        if (certgate::parse_form(ngx_certgate_str(r->args), &query)) req->query = std::move(query);
    }
    if (req->method == "POST") {
        ngx_str_t ct = ngx_null_string;
        if (r->headers_in.content_type) ct = r->headers_in.content_type->value;
        static const char urlencoded[] = "application/x-www-form-urlencoded";
        bool form_type = ct.len == 0 || (ct.len >= sizeof(urlencoded) - 1 &&
                                         ngx_strncasecmp(ct.data, (u_char *)urlencoded,
                                                         sizeof(urlencoded) - 1) == 0);
        req->form_malformed = !form_type || !certgate::parse_form(body, &req->form);
        for (const char *name : {"user_id", "password", "new_password"}) {
            auto it = req->form.find(name);
            if (it == req->form.end()) continue;
            ngx_array_t *rules =
                std::string(name) == "user_id" ? cmcf->userid_rules : cmcf->password_rules;
            req->rules[name] = ngx_certgate_check_rule(rules, it->second);
        }
    }
    req->cookies = ngx_certgate_cookie_header(r);
    req->json = ngx_certgate_wants_json(r);
    req->lang = ngx_certgate_language(r, &req->lang_choice);
    req->client = ngx_certgate_str(r->connection->addr_text);
    req->now = ngx_time();
    ngx_certgate_present(r, cmcf, &req->cert);
    if (req->cert.ours && !req->cert.expired) {
        certgate::ErrorCode why;
        req->session = ngx_certgate_live_session(r, cmcf, &why);
    }

    // An address that failed too often waits, whatever the ID (R21).
    ngx_certgate_source_pending_t *pending = nullptr;
    if (req->method == "POST" && ngx_certgate_authenticates(path)) {
        long wait = ngx_certgate_source_check(r, cmcf, &pending);
        if (wait < 0) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        if (wait > 0) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "certgate: too many failed authentications from %V: 429 for %l s",
                          &r->connection->addr_text, wait);
            if (ngx_certgate_retry_after(r, wait) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
            return ngx_certgate_refuse(r, 429, certgate::ErrorCode::too_many_requests);
        }
    }

    const certgate::Runtime *rt = cmcf->runtime;
    auto res = std::make_shared<certgate::PortalResponse>();
    auto seconds = std::make_shared<double>(0);
    return ngx_certgate_post_task(
        r,
        [rt, req, res, seconds]() {
            auto t0 = std::chrono::steady_clock::now();
            *res = certgate::Portal(*rt).handle(*req);
            *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        },
        [res, req, cmcf, seconds, pending](ngx_http_request_t *r,
                                           const std::string *error) -> ngx_int_t {
            if (res->auth_failure) ngx_certgate_source_failed(pending);
            if (req->method == "POST")
                ngx_certgate_metrics_portal(cmcf, req->path, res->outcome, *seconds);
            if (error != nullptr) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", error->c_str());
                return ngx_certgate_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           certgate::ErrorCode::unavailable);
            }
            ngx_int_t rc = ngx_certgate_answer(r, *res);
            if (res->after) ngx_certgate_post_after(cmcf, std::move(res->after));
            return rc;
        },
        certgate::Portal::crypto_bound(req->method, path) ? ngx_certgate_task_kind::crypto
                                                          : ngx_certgate_task_kind::io);
}

// The body of a POST is read in full (it is small: a form) before the task.
static void ngx_certgate_body_read(ngx_http_request_t *r) noexcept {
    try {
        std::string body;
        if (r->request_body != nullptr) {
            for (ngx_chain_t *cl = r->request_body->bufs; cl; cl = cl->next) {
                if (cl->buf->in_file) {
                    ngx_http_finalize_request(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
                    return;
                }
                body.append(reinterpret_cast<char *>(cl->buf->pos),
                            static_cast<size_t>(cl->buf->last - cl->buf->pos));
            }
        }
        auto *lcf = static_cast<ngx_certgate_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_certgate_module));
        std::string path = ngx_certgate_str(r->uri).substr(lcf->portal_prefix.len);
        ngx_http_finalize_request(r, ngx_certgate_screen(r, path, body));
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", e.what());
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

static const off_t ngx_certgate_max_form = 16384;

ngx_int_t ngx_certgate_portal_handler(ngx_http_request_t *r) noexcept {
    try {
        auto *lcf = static_cast<ngx_certgate_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_certgate_module));
        auto *cmcf = ngx_certgate_main(r);
        if (cmcf->runtime == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;

        // The path below the portal's prefix: "", "health", "assets/x.css".
        ngx_str_t rest = ngx_null_string;
        if (r->uri.len >= lcf->portal_prefix.len) {
            rest.data = r->uri.data + lcf->portal_prefix.len;
            rest.len = r->uri.len - lcf->portal_prefix.len;
        }
        std::string path = ngx_certgate_str(rest);
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0, "certgate portal: \"%V\"", &rest);

        if (r->method == NGX_HTTP_POST && certgate::Portal::routes(path)) {
            if (r->headers_in.content_length_n > ngx_certgate_max_form) {
                return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            r->request_body_in_single_buf = 1;
            ngx_int_t rc = ngx_http_read_client_request_body(r, ngx_certgate_body_read);
            if (rc >= NGX_HTTP_SPECIAL_RESPONSE) return rc;
            return NGX_DONE;
        }
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
            return NGX_HTTP_NOT_ALLOWED;
        }
        ngx_int_t rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) return rc;

        if (path == "health") return ngx_certgate_health(r);
        if (path == "health/live") return ngx_certgate_health_live(r);
        if (path == "health/ready") return ngx_certgate_health_ready(r);
        if (path.rfind("assets/", 0) == 0) return ngx_certgate_asset(r, path.substr(7));
        if (certgate::Portal::routes(path)) return ngx_certgate_screen(r, path, "");
        return ngx_certgate_refuse(r, NGX_HTTP_NOT_FOUND, certgate::ErrorCode::not_found);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
