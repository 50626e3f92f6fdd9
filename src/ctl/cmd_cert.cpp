// certgatectl cert ... and crl: certificates, revocation (R5, R12) and the CRL.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iomanip>
#include <iostream>

#include "core/adapters/ca.hpp"
#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

void print_cert_table(const std::vector<Certificate>& certs) {
    std::cout << std::left << std::setw(42) << "SERIAL" << std::setw(14) << "USER" << std::setw(12)
              << "STATUS" << std::setw(27) << "NOT AFTER"
              << "REASON\n";
    for (const auto& c : certs)
        std::cout << std::setw(41) << c.serial << " " << std::setw(14) << c.user_id << std::setw(12)
                  << to_string(c.status) << std::setw(27) << format_time(c.not_after)
                  << (c.reason.empty() ? "-" : c.reason) << "\n";
}

std::string require_serial(const std::string& text) {
    auto serial = normalize_serial_hex(text);
    if (!serial) throw UsageError("'" + text + "' is not a certificate serial (hex digits)");
    return *serial;
}

// Writes next to the target and renames, so nginx or a web server never reads
// half a CRL.
void write_file_atomically(const std::string& path, const void* data, size_t size) {
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw ConfigError("cannot write " + path + ": " + std::strerror(errno));
    ssize_t n = ::write(fd, data, size);
    int err = errno;
    bool ok = n == static_cast<ssize_t>(size) && ::fsync(fd) == 0;
    if (!ok && n == static_cast<ssize_t>(size)) err = errno;
    if (::close(fd) != 0 && ok) ok = false, err = errno;
    if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) ok = false, err = errno;
    if (!ok) {
        ::unlink(tmp.c_str());
        throw ConfigError("cannot write " + path + ": " + std::strerror(err));
    }
}

}  // namespace

int cmd_cert_list(Context& ctx) {
    Store& store = ctx.store();
    CertificateFilter f;
    f.user_id = ctx.args.value("--user");
    if (!f.user_id.empty() && !store.find_user(f.user_id))
        throw StoreNotFound("user " + f.user_id + " does not exist");
    if (ctx.args.flag("--status")) {
        f.status = parse_cert_status(ctx.args.value("--status"));
        if (!f.status)
            throw UsageError("unknown --status '" + ctx.args.value("--status") +
                             "' (issued, revoked, superseded, expired)");
    }
    if (ctx.args.flag("--expiring-within")) {
        const int64_t now = store.now();
        f.status = CertStatus::issued;
        f.not_after_from = now;
        f.not_after_before = now + parse_duration(ctx.args.value("--expiring-within")) + 1;
    }
    auto certs = store.list_certificates(f);
    if (ctx.json) {
        Json items = Json::array();
        for (const auto& c : certs) items.push_back(cert_json(c));
        print_json(items);
        return kOk;
    }
    print_cert_table(certs);
    return kOk;
}

int cmd_cert_show(Context& ctx) {
    const std::string serial = require_serial(ctx.args.positional(0, "SERIAL"));
    auto c = ctx.store().find_certificate(serial);
    if (!c) throw StoreNotFound("certificate " + serial + " is not in the store");
    if (ctx.json) {
        print_json(cert_json(*c));
        return kOk;
    }
    std::cout << "serial       " << c->serial << "\n"
              << "user         " << c->user_id << "\n"
              << "status       " << to_string(c->status) << "\n"
              << "not before   " << format_time(c->not_before) << "\n"
              << "not after    " << format_time(c->not_after) << "\n"
              << "issued       " << format_time(c->issued_at) << "\n"
              << "revoked      " << format_time(c->revoked_at) << "\n"
              << "reason       " << (c->reason.empty() ? "-" : c->reason) << "\n";
    return kOk;
}

int cmd_cert_import(Context& ctx) {
    const std::string file = ctx.args.positional(0, "PEM_FILE");
    X509Ptr cert;
    try {
        cert = load_certificate(file);
    } catch (const CaError& e) {
        throw UsageError(e.what());
    }
    CertificateIdentity id = certificate_identity(cert.get());
    Certificate c;
    c.serial = id.serial_hex;
    c.user_id = ctx.args.value("--user", id.common_name);
    c.not_before = id.not_before;
    c.not_after = id.not_after;
    ctx.store().add_certificate(c, false, ctx.actor());
    if (ctx.json)
        print_json(cert_json(*ctx.store().find_certificate(c.serial)));
    else
        std::cout << "recorded certificate " << c.serial << " of " << c.user_id << "\n";
    return kOk;
}

int cmd_cert_revoke(Context& ctx) {
    const std::string reason = ctx.args.value("--reason");
    if (reason.empty()) throw UsageError("--reason is required (e.g. keyCompromise, superseded)");
    if (!parse_revocation_reason(reason))
        throw UsageError("unknown --reason '" + reason +
                         "' (keyCompromise, superseded, cessationOfOperation, "
                         "affiliationChanged, privilegeWithdrawn, certificateHold, unspecified)");
    const std::string user = ctx.args.value("--user");
    const bool by_serial = ctx.args.words.size() > ctx.args.command_words;
    if (by_serial == !user.empty()) throw UsageError("give either a SERIAL or --user USER_ID");
    Store& store = ctx.store();
    std::vector<std::string> revoked;
    if (by_serial) {
        const std::string serial = require_serial(ctx.args.positional(0, "SERIAL"));
        store.revoke_certificate(serial, reason, ctx.actor());
        revoked.push_back(serial);
    } else {
        revoked = store.revoke_user_certificates(user, reason, ctx.actor());
        if (revoked.empty())
            throw StoreNotFound("user " + user + " has no live certificate to revoke");
    }
    if (ctx.json) {
        print_json(Json{{"revoked", revoked}, {"reason", reason}});
    } else {
        for (const auto& s : revoked)
            std::cout << "revoked certificate " << s << " (" << reason << ")\n";
    }
    return kOk;
}

int cmd_crl(Context& ctx) {
    const std::string out = ctx.args.value("--out");
    if (out.empty()) throw UsageError("--out FILE is required");
    if (ctx.args.flag("--pem") && ctx.args.flag("--der"))
        throw UsageError("give --pem or --der, not both");
    const bool pem = ctx.args.flag("--pem") || (!ctx.args.flag("--der") && out.size() > 4 &&
                                                out.compare(out.size() - 4, 4, ".pem") == 0);
    const int64_t next_update = parse_duration(ctx.args.value("--next-update", "7d"));
    if (next_update < 3600) throw UsageError("--next-update must be at least 1h");

    const std::string cert = ctx.option_or("--ca-cert", ctx.settings().ca_certificate);
    const std::string key = ctx.option_or("--ca-key", ctx.settings().ca_key);
    if (cert.empty() || key.empty())
        throw UsageError(
            "no CA: set certgate_ca_certificate and certgate_ca_key in nginx.conf "
            "(-c) or give --ca-cert and --ca-key");
    CaKeyOptions options;
    options.passphrase_file =
        ctx.option_or("--ca-passphrase-file", ctx.settings().ca_key_passphrase_file);
    options.pin_file = ctx.settings().ca_key_pin_file;
    options.pkcs11_module = ctx.settings().pkcs11_module;

    Store& store = ctx.store();
    CaSigner signer = CaSigner::load(cert, key, options);
    size_t count = 0;
    store.write([&] {
        std::vector<RevokedEntry> entries;
        for (const auto& c : store.revoked_certificates())
            entries.push_back(RevokedEntry{c.serial, static_cast<time_t>(c.revoked_at), c.reason});
        count = entries.size();
        // The event id is the CRL number: it only grows, across nodes too.
        const int64_t number =
            store.append_event(ctx.actor(), event_kind::kCrlSigned, "crl",
                               "entries=" + std::to_string(count) + " out=" + out);
        auto der =
            signer.make_crl(entries, static_cast<time_t>(store.now()),
                            static_cast<int>(next_update / 3600), static_cast<uint64_t>(number));
        if (pem) {
            const std::string text = crl_der_to_pem(der);
            write_file_atomically(out, text.data(), text.size());
        } else {
            write_file_atomically(out, der.data(), der.size());
        }
    });
    if (ctx.json)
        print_json(Json{{"out", out},
                        {"format", pem ? "pem" : "der"},
                        {"revoked", static_cast<int64_t>(count)}});
    else
        std::cout << "wrote CRL " << out << " (" << (pem ? "PEM" : "DER") << ", " << count
                  << " revoked)\n";
    return kOk;
}

}  // namespace certgate::ctl
