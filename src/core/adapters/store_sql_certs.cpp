// The SQL stores: certificates, their notices and the portal's CRL.
#include "core/adapters/store_sql.hpp"

namespace certgate::sql_store {

// --- certificates ------------------------------------------------------------------

Certificate SqlStore::read_cert(const Statement& s) {
    Certificate c;
    c.serial = s.text(0);
    c.user_id = s.text(1);
    c.not_before = s.i64(2);
    c.not_after = s.i64(3);
    c.status = parse_cert_status(s.text(4)).value_or(CertStatus::revoked);
    c.issued_at = s.i64(5);
    c.revoked_at = s.i64(6);
    c.reason = s.text(7);
    c.notices = s.i32(8);
    return c;
}

void SqlStore::add_certificate(const Certificate& cert, bool supersede, const std::string& actor) {
    const std::string serial = serial_key(cert.serial);
    if (serial.empty()) throw StoreError("certificate serial '" + cert.serial + "' is not hex");
    write([&] {
        require_user(cert.user_id);  // locked: see activate_certificate
        if (find_certificate(serial))
            throw StoreConflict("certificate " + serial + " is already recorded");
        const bool pending = cert.status == CertStatus::pending;
        if (supersede && !pending) supersede_live(cert.user_id, serial, actor);
        std::string sql = std::string("INSERT INTO certificates (") + kCertColumns +
                          ") VALUES (?, ?, ?, ?, ?, ?, 0, '', 0)";
        Statement s(*this, sql);
        s.bind(0, serial).bind(1, cert.user_id).bind(2, cert.not_before).bind(3, cert.not_after);
        s.bind(4, std::string(pending ? "pending" : "issued"));
        s.bind(5, cert.issued_at ? cert.issued_at : now()).run();
        append_event(actor, pending ? event_kind::kCertPending : event_kind::kCertIssued, serial,
                     "user=" + cert.user_id + " not_before=" + utc_time(cert.not_before) +
                         " not_after=" + utc_time(cert.not_after));
    });
}

// Renewal: the user's live certificates give way to `by` (the event feed ends
// their sessions, like a revocation).
void SqlStore::supersede_live(const std::string& user_id, const std::string& by,
                              const std::string& actor) {
    Statement old(*this,
                  "SELECT serial FROM certificates WHERE user_id = ? AND status = 'issued' "
                  "AND serial <> ?");
    old.bind(0, user_id).bind(1, by);
    std::vector<std::string> serials;
    while (old.step()) serials.push_back(old.text(0));
    for (const auto& s : serials) {
        Statement up(*this, "UPDATE certificates SET status = 'superseded' WHERE serial = ?");
        up.bind(0, s).run();
        append_event(actor, event_kind::kCertSuperseded, s, "user=" + user_id + " by=" + by);
    }
}

void SqlStore::activate_certificate(const std::string& serial_text, const std::string& actor) {
    const std::string serial = serial_key(serial_text);
    write([&] {
        auto c = find_certificate(serial);
        if (!c) throw StoreNotFound("certificate " + serial_text + " is not in the store");
        // The user's row, locked: two certificates of one user going live at
        // once on two nodes are handled one after the other; then re-read.
        if (locks_rows()) {
            require_user(c->user_id);
            c = find_certificate(serial);
        }
        if (c->status != CertStatus::pending)
            throw StoreConflict("certificate " + serial + " is " + to_string(c->status) +
                                ", not pending: it cannot go live");
        // At most one live certificate per user: another pending one (a
        // parallel flow) will never be handed over now.
        Statement others(*this,
                         "SELECT serial FROM certificates WHERE user_id = ? AND status = 'pending' "
                         "AND serial <> ?");
        others.bind(0, c->user_id).bind(1, serial);
        std::vector<std::string> pending;
        while (others.step()) pending.push_back(others.text(0));
        for (const auto& p : pending)
            abandon(p, c->user_id, "another certificate went live", actor);
        supersede_live(c->user_id, serial, actor);
        Statement up(*this, "UPDATE certificates SET status = 'issued' WHERE serial = ?");
        up.bind(0, serial).run();
        append_event(actor, event_kind::kCertIssued, serial,
                     "user=" + c->user_id + " not_before=" + utc_time(c->not_before) +
                         " not_after=" + utc_time(c->not_after) + " handed_over=yes");
    });
}

void SqlStore::abandon(const std::string& serial, const std::string& user_id,
                       const std::string& why, const std::string& actor) {
    const std::string reason = "cessationOfOperation";
    Statement s(*this,
                "UPDATE certificates SET status = 'revoked', revoked_at = ?, reason = ? "
                "WHERE serial = ? AND status = 'pending'");
    s.bind(0, now()).bind(1, reason).bind(2, serial);
    if (s.changes() != 1) return;
    append_event(actor, event_kind::kCertRevoked, serial, "user=" + user_id + " reason=" + reason);
    append_event(actor, event_kind::kCertAbandoned, serial, "user=" + user_id + " why=" + why);
}

std::vector<std::string> SqlStore::abandon_pending_certificates(const std::string& user_id,
                                                                int64_t issued_before,
                                                                const std::string& why,
                                                                const std::string& actor) {
    std::vector<std::string> serials;
    write([&] {
        serials.clear();
        std::string sql = "SELECT serial, user_id FROM certificates WHERE status = 'pending'";
        if (!user_id.empty()) sql += " AND user_id = ?";
        if (issued_before) sql += " AND issued_at < ?";
        sql += for_update(" ORDER BY serial");
        Statement s(*this, sql);
        int i = 0;
        if (!user_id.empty()) s.bind(i++, user_id);
        if (issued_before) s.bind(i++, issued_before);
        std::vector<std::pair<std::string, std::string>> rows;
        while (s.step()) rows.emplace_back(s.text(0), s.text(1));
        for (const auto& [serial, user] : rows) {
            abandon(serial, user, why, actor);
            serials.push_back(serial);
        }
    });
    return serials;
}

std::optional<Certificate> SqlStore::find_certificate(const std::string& serial) {
    std::string sql = std::string("SELECT ") + kCertColumns + " FROM certificates WHERE serial = ?";
    Statement s(*this, sql);
    s.bind(0, serial_key(serial));
    if (!s.step()) return std::nullopt;
    return read_cert(s);
}

std::vector<Certificate> SqlStore::list_certificates(const CertificateFilter& f) {
    std::string sql = std::string("SELECT ") + kCertColumns + " FROM certificates WHERE 1 = 1";
    if (!f.user_id.empty()) sql += " AND user_id = ?";
    if (f.status) sql += " AND status = ?";
    if (f.not_after_before) sql += " AND not_after < ?";
    if (f.not_after_from) sql += " AND not_after >= ?";
    sql += " ORDER BY issued_at DESC, serial";
    Statement s(*this, sql);
    int i = 0;
    if (!f.user_id.empty()) s.bind(i++, f.user_id);
    if (f.status) s.bind(i++, std::string(to_string(*f.status)));
    if (f.not_after_before) s.bind(i++, f.not_after_before);
    if (f.not_after_from) s.bind(i++, f.not_after_from);
    std::vector<Certificate> out;
    while (s.step()) out.push_back(read_cert(s));
    return out;
}

std::optional<Certificate> SqlStore::current_certificate(const std::string& user_id) {
    std::string sql = std::string("SELECT ") + kCertColumns +
                      " FROM certificates WHERE user_id = ? AND status = 'issued' "
                      "ORDER BY not_after DESC LIMIT 1";
    Statement s(*this, sql);
    s.bind(0, user_id);
    if (!s.step()) return std::nullopt;
    return read_cert(s);
}

void SqlStore::revoke_certificate(const std::string& serial, const std::string& reason,
                                  const std::string& actor) {
    write([&] {
        std::string sql = std::string("SELECT ") + kCertColumns +
                          " FROM certificates WHERE serial = ?" + for_update();
        Statement lock(*this, sql);
        lock.bind(0, serial_key(serial));
        std::optional<Certificate> c;
        if (lock.step()) c = read_cert(lock);
        if (!c) throw StoreNotFound("certificate " + serial + " is not in the store");
        if (c->status == CertStatus::revoked)
            throw StoreConflict("certificate " + c->serial + " is already revoked");
        Statement s(*this,
                    "UPDATE certificates SET status = 'revoked', revoked_at = ?, reason = ? "
                    "WHERE serial = ?");
        s.bind(0, now()).bind(1, reason).bind(2, c->serial).run();
        append_event(actor, event_kind::kCertRevoked, c->serial,
                     "user=" + c->user_id + " reason=" + reason);
    });
}

std::vector<std::string> SqlStore::revoke_user_certificates(const std::string& user_id,
                                                            const std::string& reason,
                                                            const std::string& actor) {
    std::vector<std::string> serials;
    write([&] {
        serials.clear();
        require_user(user_id);
        Statement s(*this, std::string("SELECT serial FROM certificates WHERE user_id = ? "
                                       "AND status IN ('issued', 'pending', 'superseded') "
                                       "AND not_after >= ?") +
                               for_update(" ORDER BY serial"));
        s.bind(0, user_id).bind(1, now());
        while (s.step()) serials.push_back(s.text(0));
        for (const auto& serial : serials) revoke_certificate(serial, reason, actor);
    });
    return serials;
}

std::vector<Certificate> SqlStore::revoked_certificates() {
    std::string sql = std::string("SELECT ") + kCertColumns +
                      " FROM certificates WHERE status = 'revoked' ORDER BY revoked_at, serial";
    Statement s(*this, sql);
    std::vector<Certificate> out;
    while (s.step()) out.push_back(read_cert(s));
    return out;
}

bool SqlStore::claim_notice(const std::string& serial, CertNotice notice,
                            const std::string& actor) {
    bool claimed = false;
    write([&] {
        Statement s(*this,
                    "UPDATE certificates SET notices = notices | ? "
                    "WHERE serial = ? AND (notices & ?) = 0");
        s.bind(0, static_cast<int>(notice)).bind(1, serial_key(serial));
        s.bind(2, static_cast<int>(notice));
        claimed = s.changes() == 1;
        if (claimed)
            append_event(actor, event_kind::kCertNotice, serial_key(serial),
                         notice == kNoticeExpiring ? "expiring" : "expired");
    });
    return claimed;
}

// The CRL is a row of certgate_meta (key 'crl'): "<number> <thisUpdate>
// <nextUpdate> <DER in hex>". One for the whole fleet on PostgreSQL.
std::optional<StoredCrl> SqlStore::current_crl() {
    Statement s(*this, "SELECT value FROM certgate_meta WHERE key = 'crl'");
    if (!s.step()) return std::nullopt;
    return crl_from_text(s.text(0));
}

bool SqlStore::revoked_since(int64_t event_id) {
    Statement s(*this, "SELECT 1 FROM events WHERE id > ? AND kind = ? LIMIT 1");
    s.bind(0, event_id).bind(1, std::string(event_kind::kCertRevoked));
    return s.step();
}

}  // namespace certgate::sql_store
