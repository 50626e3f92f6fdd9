// certgatectl init, migrate, status: the store itself and the demo CA.
#include <unistd.h>

#include <iostream>

#include "core/ca.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

// Creates the demo CA unless both files exist already (a rerun of init keeps them).
std::string make_demo_ca(Context& ctx) {
    const std::string cert = ctx.setting("--ca-cert", "certgate_ca_certificate");
    const std::string key = ctx.setting("--ca-key", "certgate_ca_key");
    if (cert.empty() || key.empty())
        throw UsageError(
            "--demo-ca needs the CA paths: certgate_ca_certificate and "
            "certgate_ca_key in nginx.conf, or --ca-cert and --ca-key");
    if (key.rfind("engine:", 0) == 0)
        throw UsageError("--demo-ca writes a PEM key file; certgate_ca_key is an HSM key (" + key +
                         ")");
    const bool have_cert = access(cert.c_str(), F_OK) == 0;
    const bool have_key = access(key.c_str(), F_OK) == 0;
    if (have_cert && have_key) return "kept the existing CA " + cert;
    if (have_cert != have_key)
        throw ConfigError("only one of " + cert + " and " + key +
                          " exists; remove it or give both files");
    std::string type_spec = ctx.setting("--key-type", "certgate_key_type");
    if (type_spec.empty()) type_spec = "rsa:2048";
    auto type = parse_key_type(type_spec);
    if (!type)
        throw UsageError("unknown key type '" + type_spec + "' (rsa:2048, rsa:3072, ec:P-256)");
    std::string cn = ctx.args.value("--ca-cn", "certgate demo CA");
    int days = static_cast<int>(parse_number(ctx.args.value("--ca-days", "3650"), "--ca-days"));
    if (days < 1) throw UsageError("--ca-days must be at least 1");
    const std::string passfile = ctx.setting("", "certgate_ca_key_passphrase_file");
    std::string passphrase;
    if (!passfile.empty())
        throw UsageError(
            "--demo-ca makes an unencrypted key; remove "
            "certgate_ca_key_passphrase_file or create the CA yourself");
    create_ca(cert, key, cn, *type, days, passphrase);
    return "created demo CA " + cert + " (key " + key + ", " + type->name() + ")";
}

}  // namespace

int cmd_init(Context& ctx) {
    const bool demo = ctx.args.flag("--demo-ca");
    if (!demo && (ctx.args.flag("--ca-cn") || ctx.args.flag("--ca-days")))
        throw UsageError("--ca-cn and --ca-days only go with --demo-ca");
    const std::string uri = ctx.store_uri();
    auto store = ctx.open_store_raw(true);
    const int before = store->schema_version();
    store->migrate();
    std::string ca_note;
    if (demo) ca_note = make_demo_ca(ctx);
    std::string what = before == 0                      ? "created"
                       : before < Store::kSchemaVersion ? "migrated"
                                                        : "already initialised";
    if (ctx.json) {
        JsonObject o;
        o.add("store", uri).add("schema_version", Store::kSchemaVersion).add("result", what);
        if (demo) o.add("ca", ca_note);
        std::cout << o.str() << "\n";
    } else {
        std::cout << store->describe() << ": " << what << " (schema version "
                  << Store::kSchemaVersion << ")\n";
        if (demo) std::cout << ca_note << "\n";
    }
    return kOk;
}

int cmd_migrate(Context& ctx) {
    auto store = ctx.open_store_raw(false);
    const int before = store->schema_version();
    store->migrate();
    if (ctx.json) {
        std::cout << JsonObject().add("from", before).add("to", Store::kSchemaVersion).str()
                  << "\n";
    } else if (before == Store::kSchemaVersion) {
        std::cout << store->describe() << " is already at schema version " << before << "\n";
    } else {
        std::cout << store->describe() << ": schema version " << before << " -> "
                  << Store::kSchemaVersion << "\n";
    }
    return kOk;
}

int cmd_status(Context& ctx) {
    Store& store = ctx.store();
    store.ping();
    const size_t orgs = store.list_orgs().size();
    const size_t users = store.list_users().size();
    const size_t certs = store.list_certificates().size();
    const int64_t last = store.last_event_id();
    const size_t queued = store.list_mails(MailState::queued).size();
    if (ctx.json) {
        JsonObject o;
        o.add("store", ctx.store_uri()).add("schema_version", store.schema_version());
        o.add("organisations", static_cast<int64_t>(orgs))
            .add("users", static_cast<int64_t>(users));
        o.add("certificates", static_cast<int64_t>(certs)).add("last_event", last);
        o.add("mails_queued", static_cast<int64_t>(queued));
        std::cout << o.str() << "\n";
        return kOk;
    }
    std::cout << store.describe() << "\n"
              << "  schema version  " << store.schema_version() << "\n"
              << "  organisations   " << orgs << "\n"
              << "  users           " << users << "\n"
              << "  certificates    " << certs << "\n"
              << "  last event      " << last << "\n"
              << "  mails queued    " << queued << "\n";
    return kOk;
}

}  // namespace certgate::ctl
