// Requests and answers in nginx terms, shared by the portal and the
// protected path: headers, language, cookies, pages and refusals.

#include "core/web/errors.hpp"
#include "core/web/form.hpp"
#include "core/web/portal.hpp"
#include "nginx/ngx_certgate.hpp"

static ngx_certgate_main_conf_t *ngx_certgate_main(ngx_http_request_t *r) {
    return static_cast<ngx_certgate_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_certgate_module));
}

ngx_str_t ngx_certgate_pstr(ngx_pool_t *pool, const std::string &s) noexcept {
    ngx_str_t out = ngx_null_string;
    if (s.empty()) return out;
    out.data = static_cast<u_char *>(ngx_pnalloc(pool, s.size()));
    if (out.data == nullptr) return out;
    ngx_memcpy(out.data, s.data(), s.size());
    out.len = s.size();
    return out;
}

// The value of request header `name` (lower case), or an empty string.
static ngx_str_t ngx_certgate_header(ngx_http_request_t *r, const char *name) {
    ngx_str_t found = ngx_null_string;
    ngx_certgate_each_header(r, name, [&](const ngx_str_t &v) {
        found = v;
        return true;
    });
    return found;
}

bool ngx_certgate_wants_json(ngx_http_request_t *r) noexcept {
    ngx_str_t accept = ngx_certgate_header(r, "accept");
    return accept.len &&
           ngx_strlcasestrn(accept.data, accept.data + accept.len, (u_char *)"application/json",
                            sizeof("application/json") - 2) != nullptr;
}

// ?lang= (a choice made now), then the language cookie (a choice made
// before), then certgate_language.
certgate::Language ngx_certgate_language(ngx_http_request_t *r,
                                         certgate::LangChoice *choice) noexcept {
    if (choice != nullptr) *choice = certgate::LangChoice::none;
    ngx_str_t arg;
    if (ngx_http_arg(r, (u_char *)"lang", 4, &arg) == NGX_OK && arg.len == 2) {
        for (auto l : {certgate::Language::en, certgate::Language::ja}) {
            if (ngx_strncmp(arg.data, certgate::language_name(l), 2) != 0) continue;
            if (choice != nullptr) *choice = certgate::LangChoice::query;
            return l;
        }
    }
    try {
        std::optional<certgate::Language> l = certgate::parse_page_language(
            certgate::find_cookie(ngx_certgate_cookie_header(r), certgate::kLangCookie));
        if (l) {
            if (choice != nullptr) *choice = certgate::LangChoice::cookie;
            return *l;
        }
    } catch (const std::exception &) {
        // no memory for the header copy: the configured language
    }
    auto *cscf = static_cast<ngx_certgate_srv_conf_t *>(
        ngx_http_get_module_srv_conf(r, ngx_http_certgate_module));
    if (cscf->language == NGX_CERTGATE_LANG_EN) return certgate::Language::en;
    if (cscf->language == NGX_CERTGATE_LANG_JA) return certgate::Language::ja;

    // auto: the first of ja/en that Accept-Language names.
    ngx_str_t al = ngx_certgate_header(r, "accept-language");
    u_char *ja = al.len ? ngx_strlcasestrn(al.data, al.data + al.len, (u_char *)"ja", 1) : nullptr;
    u_char *en = al.len ? ngx_strlcasestrn(al.data, al.data + al.len, (u_char *)"en", 1) : nullptr;
    if (en != nullptr && (ja == nullptr || en < ja)) return certgate::Language::en;
    return certgate::Language::ja;
}

ngx_int_t ngx_certgate_add_header(ngx_http_request_t *r, const char *key, const char *value) {
    ngx_table_elt_t *h = static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) return NGX_ERROR;
    h->hash = 1;
    h->key.data = (u_char *)key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *)value;
    h->value.len = ngx_strlen(value);
    return NGX_OK;
}

// Headers every portal answer carries: no framing, no sniffing, scripts and
// styles only from the portal itself.
ngx_int_t ngx_certgate_security_headers(ngx_http_request_t *r, bool no_store) {
    if (ngx_certgate_add_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self'; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'") != NGX_OK ||
        ngx_certgate_add_header(r, "X-Content-Type-Options", "nosniff") != NGX_OK ||
        ngx_certgate_add_header(r, "X-Frame-Options", "DENY") != NGX_OK ||
        ngx_certgate_add_header(r, "Referrer-Policy", "no-referrer") != NGX_OK) {
        return NGX_ERROR;
    }
    if (no_store && ngx_certgate_add_header(r, "Cache-Control", "no-store") != NGX_OK) {
        return NGX_ERROR;
    }
    return NGX_OK;
}

ngx_int_t ngx_certgate_send(ngx_http_request_t *r, ngx_uint_t status, const char *content_type,
                            const std::string &body, bool no_store) noexcept {
    if (ngx_certgate_security_headers(r, no_store) != NGX_OK) return NGX_ERROR;

    r->headers_out.status = status;
    r->headers_out.content_type.data = (u_char *)content_type;
    r->headers_out.content_type.len = ngx_strlen(content_type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());

    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) return rc;

    ngx_buf_t *b = ngx_create_temp_buf(r->pool, body.size() ? body.size() : 1);
    if (b == nullptr) return NGX_ERROR;
    b->last = ngx_cpymem(b->pos, body.data(), body.size());
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    if (body.empty()) b->temporary = 0;  // an empty last buffer: "special", not zero-size data

    ngx_chain_t out = {b, nullptr};
    return ngx_http_output_filter(r, &out);
}

ngx_int_t ngx_certgate_redirect(ngx_http_request_t *r, const std::string &location) noexcept {
    ngx_str_t loc = ngx_certgate_pstr(r->pool, location);
    if (loc.len == 0) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    ngx_http_clear_location(r);
    r->headers_out.location =
        static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
    if (r->headers_out.location == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    r->headers_out.location->hash = 1;
    ngx_str_set(&r->headers_out.location->key, "Location");
    r->headers_out.location->value = loc;
    if (ngx_certgate_add_header(r, "Cache-Control", "no-store") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return NGX_HTTP_MOVED_TEMPORARILY;
}

static std::string ngx_certgate_self_path(ngx_http_request_t *r) {
    return ngx_certgate_str(r->uri);
}

static ngx_int_t ngx_certgate_page(ngx_http_request_t *r, ngx_uint_t status, const char *name,
                                   const std::string &title, certgate::PageData data) {
    auto *cmcf = ngx_certgate_main(r);
    certgate::Language lang = ngx_certgate_language(r);
    data.set("title", title);
    std::string html =
        cmcf->runtime->pages->render(name, lang, std::move(data), ngx_certgate_self_path(r));
    return ngx_certgate_send(r, status, "text/html; charset=utf-8", html, true);
}

ngx_int_t ngx_certgate_refuse(ngx_http_request_t *r, ngx_uint_t status,
                              certgate::ErrorCode code) noexcept {
    try {
        certgate::Language lang = ngx_certgate_language(r);
        const std::string &message = certgate::error_message(code, lang);
        if (ngx_certgate_wants_json(r)) {
            return ngx_certgate_send(r, status, "application/json",
                                     certgate::refusal_json(code, message), true);
        }
        certgate::PageData data{certgate::PageData::type::object};
        data.set("message", message);
        data.set("error", certgate::error_name(code));
        const auto &words = certgate::page_words(lang);
        return ngx_certgate_page(r, status, "error", words.at("error_title"), std::move(data));
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "certgate: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

// Every Cookie header of the request, joined.
std::string ngx_certgate_cookie_header(ngx_http_request_t *r) {
    std::string out;
    ngx_certgate_each_cookie(r, [&](const ngx_str_t &v) {
        if (!out.empty()) out += "; ";
        out += ngx_certgate_str(v);
        return false;
    });
    return out;
}

ngx_int_t ngx_certgate_add_header_str(ngx_http_request_t *r, const char *key,
                                      const std::string &value) {
    ngx_str_t v = ngx_certgate_pstr(r->pool, value);
    if (v.len == 0 && !value.empty()) return NGX_ERROR;
    auto *h = static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) return NGX_ERROR;
    h->hash = 1;
    h->key.data = (u_char *)key;
    h->key.len = ngx_strlen(key);
    h->value = v;
    return NGX_OK;
}

ngx_int_t ngx_certgate_set_cookie(ngx_http_request_t *r, const char *name,
                                  const std::string &value) {
    return ngx_certgate_add_header_str(r, "Set-Cookie",
                                       certgate::set_cookie_value(name, value, -1));
}

// Retry-After: seconds (429).
ngx_int_t ngx_certgate_retry_after(ngx_http_request_t *r, long seconds) {
    return ngx_certgate_add_header_str(r, "Retry-After", std::to_string(seconds));
}
