// The configuration's lifecycle: the shared values made with the main
// conf, checked when http{} ends, and the C++ runtime built from them. The
// checks that need the whole http{} block (the CA key with its passphrase,
// the store's schema) name the line of the directive concerned.

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <exception>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/app/runtime.hpp"
#include "core/config/directives.hpp"
#include "core/ports/store.hpp"
#include "nginx/ngx_certgate.hpp"

static void ngx_certgate_values_cleanup(void *data) noexcept {
    delete static_cast<certgate::ConfValues *>(data);
}

ngx_int_t ngx_certgate_create_values(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr) return NGX_ERROR;
    try {
        cmcf->values = new certgate::ConfValues();
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return NGX_ERROR;
    }
    cln->handler = ngx_certgate_values_cleanup;
    cln->data = cmcf->values;
    return NGX_OK;
}

ngx_int_t ngx_certgate_init_values(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    const certgate::Settings &s = cmcf->values->settings;
    try {
        std::string problem = certgate::check_settings(s);
        if (!problem.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", problem.c_str());
            return NGX_ERROR;
        }
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return NGX_ERROR;
    }
    cmcf->sync_interval = static_cast<ngx_msec_t>(s.sync_interval_ms);
    cmcf->sync_max_lag = static_cast<ngx_msec_t>(s.sync_max_lag_ms);
    cmcf->notify_interval = static_cast<ngx_msec_t>(s.notify_interval_ms);
    cmcf->session_absolute = static_cast<time_t>(s.session_absolute_s);
    return NGX_OK;
}

static void ngx_certgate_place_error(ngx_conf_t *cf, const ngx_certgate_conf_place_t &place,
                                     const char *msg) {
    if (place.line) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%s in %V:%ui", msg, &place.file, place.line);
    } else {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%s", msg);
    }
}

// Who nginx's workers will run as, the way ngx_worker_process_init
// switches: the "user" directive (parsed before http{}, as usual), nginx's
// default nobody (group nobody, else nogroup) when the master runs as root,
// the current user otherwise. False when no switch happens (master_process
// off) or the user is unknown (nginx itself says so).
static bool ngx_certgate_worker_identity(ngx_conf_t *cf, certgate::WorkerIdentity *who) {
    auto *ccf =
        reinterpret_cast<ngx_core_conf_t *>(ngx_get_conf(cf->cycle->conf_ctx, ngx_core_module));
    if (ccf->master == 0) return false;
    gid_t gid;
    if (geteuid() != 0) {
        who->uid = geteuid();
        gid = getegid();
        struct passwd *pw = getpwuid(who->uid);
        who->name = pw ? pw->pw_name : std::to_string(who->uid);
        who->gids.push_back(gid);
        int n = getgroups(0, nullptr);
        std::vector<gid_t> groups(n > 0 ? n : 0);
        if (n > 0 && getgroups(n, groups.data()) == n)
            who->gids.insert(who->gids.end(), groups.begin(), groups.end());
        return true;
    }
    if (ccf->user == (uid_t)NGX_CONF_UNSET_UINT) {
        struct passwd *pw = getpwnam("nobody");
        if (pw == nullptr) return false;
        struct group *gr = getgrnam("nobody");
        if (gr == nullptr) gr = getgrnam("nogroup");
        who->name = "nobody";
        who->uid = pw->pw_uid;
        gid = gr ? gr->gr_gid : pw->pw_gid;
    } else {
        who->name = ccf->username ? ccf->username : std::to_string(ccf->user);
        who->uid = ccf->user;
        gid = ccf->group;
    }
    int n = 64;
    std::vector<gid_t> groups(n);
    if (getgrouplist(who->name.c_str(), gid, groups.data(), &n) < 0) {
        groups.resize(n);
        if (getgrouplist(who->name.c_str(), gid, groups.data(), &n) < 0) n = 0;
    }
    groups.resize(n);
    who->gids.push_back(gid);
    who->gids.insert(who->gids.end(), groups.begin(), groups.end());
    return true;
}

static void ngx_certgate_runtime_cleanup(void *data) noexcept {
    delete static_cast<certgate::Runtime *>(data);
}

static bool ngx_certgate_required(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf,
                                  const char *directive) {
    if (cmcf->values->seen.count(directive)) return true;
    std::string msg = std::string("\"") + directive +
                      "\" is not set; certgate_portal and certgate_require need it";
    ngx_certgate_place_error(cf, cmcf->use_place, msg.c_str());
    return false;
}

ngx_int_t ngx_certgate_init_runtime(ngx_conf_t *cf, ngx_certgate_main_conf_t *cmcf) noexcept {
    for (const char *directive : {"certgate_store", "certgate_memcached", "certgate_secret",
                                  "certgate_ca_certificate", "certgate_ca_key"}) {
        if (!ngx_certgate_required(cf, cmcf, directive)) return NGX_ERROR;
    }

    certgate::Runtime *rt;
    try {
        rt = new certgate::Runtime();
    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return NGX_ERROR;
    }
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr) {
        delete rt;
        return NGX_ERROR;
    }
    cln->handler = ngx_certgate_runtime_cleanup;
    cln->data = rt;
    cmcf->runtime = rt;

    certgate::Settings &s = rt->settings;
    const ngx_certgate_conf_place_t *place = &cmcf->secret_place;
    try {
        s = cmcf->values->settings;
        // The http-level certgate_language: the language of the expiry
        // notices (this runs in init_main_conf, where cf->ctx is http{}'s).
        auto *http_scf = static_cast<ngx_certgate_srv_conf_t *>(
            ngx_http_conf_get_module_srv_conf(cf, ngx_http_certgate_module));
        if (http_scf != nullptr && http_scf->language != NGX_CONF_UNSET_UINT) {
            s.mail_language = http_scf->language == NGX_CERTGATE_LANG_EN ? certgate::Language::en
                                                                         : certgate::Language::ja;
            s.mail_bilingual = http_scf->language == NGX_CERTGATE_LANG_AUTO;
        }
        s.portal_prefix = ngx_certgate_str(cmcf->portal_prefix);

        place = &cmcf->secret_place;
        s.secret = certgate::read_secret_file(s.secret_file);

        place = &cmcf->ca_place;
        certgate::X509Ptr ca_cert = certgate::load_certificate(s.ca_certificate);

        place = &cmcf->ca_key_place;
        certgate::CaKeyOptions key_options;
        key_options.passphrase_file = s.ca_key_passphrase_file;
        key_options.pin_file = s.ca_key_pin_file;
        key_options.pkcs11_module = s.pkcs11_module;
        rt->ca = std::make_unique<certgate::CaSigner>(
            certgate::CaSigner::load(s.ca_certificate, s.ca_key, key_options));

        std::vector<certgate::X509Ptr> previous;
        if (!s.ca_certificate_previous.empty()) {
            place = &cmcf->ca_previous_place;
            previous =
                certgate::load_previous_ca_certificates(s.ca_certificate_previous, ca_cert.get());
        }
        rt->client_check =
            std::make_unique<certgate::ClientCertCheck>(rt->ca->certificate(), previous);

        place = s.templates_dir.empty() ? &cmcf->use_place : &cmcf->templates_place;
        rt->pages = std::make_unique<certgate::Pages>(s);

        // The store must hold the schema this build knows, and nginx's
        // workers must be able to write it, or every portal request would
        // answer 503: nginx -t says so instead. Access is looked at before
        // this process opens it, so the -wal and -shm files seen are not its own.
        place = &cmcf->store_place;
        certgate::WorkerIdentity who;
        if (ngx_certgate_worker_identity(cf, &who)) {
            std::string problem = certgate::store_access_problem(s.store_uri, who);
            if (!problem.empty()) throw std::runtime_error(problem);
        }
        auto store = certgate::Store::open(s.store_uri);
        certgate::check_schema(*store);
        std::string exposed = store->permission_warning();
        if (!exposed.empty() && place->line) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0, "%s in %V:%ui", exposed.c_str(), &place->file,
                          place->line);
        } else if (!exposed.empty()) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0, "%s", exposed.c_str());
        }
    } catch (const std::exception &e) {
        ngx_certgate_place_error(cf, *place, e.what());
        return NGX_ERROR;
    }
    return NGX_OK;
}
