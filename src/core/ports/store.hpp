// certgate's store: what may not be lost (DESIGN.md §3).
//
// One abstract interface, two implementations: SQLite (one node) and
// PostgreSQL (a fleet of nodes sharing one database). Every change of state is
// written together with its event row in one transaction, so the event table is a
// complete audit trail and a reliable feed for the module's revocation set.
//
// A Store object is used by one thread at a time (the module keeps one per
// thread-pool thread); many processes may use the same store at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace certgate {

// The store could not do what was asked: a message a sysadmin can act on.
struct StoreError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// The thing named (organisation, user, certificate, mail) does not exist.
struct StoreNotFound : StoreError {
    using StoreError::StoreError;
};
// The change conflicts with what the store holds: a duplicate, or a state that
// does not allow it (already revoked, organisation already has a master user).
struct StoreConflict : StoreError {
    using StoreError::StoreError;
};
// Another process held the write lock for longer than the busy timeout.
struct StoreBusy : StoreError {
    using StoreError::StoreError;
};

enum class Role { master, general };
enum class UserState { must_register, active, disabled };
// pending: recorded at ⑥, not handed over yet; never passes login. It goes
// live (issued) when its .p12 is downloaded, or is revoked if it never is.
enum class CertStatus { issued, revoked, superseded, expired, pending };
enum class MailState { queued, sending, sent, failed };

const char* to_string(Role);
const char* to_string(UserState);
const char* to_string(CertStatus);
const char* to_string(MailState);
std::optional<Role> parse_role(const std::string&);
std::optional<UserState> parse_user_state(const std::string&);
std::optional<CertStatus> parse_cert_status(const std::string&);
std::optional<MailState> parse_mail_state(const std::string&);

// Times are Unix seconds (UTC); 0 means "not set".
struct Organisation {
    std::string id;
    std::string name;
    int64_t created_at = 0;
};

struct User {
    std::string id;  // R8, case-sensitive
    std::string org;
    Role role = Role::general;
    std::string name;
    std::string mail;
    std::string password_hash;  // argon2id PHC string
    UserState state = UserState::must_register;
    int failure_streak = 0;  // consecutive wrong passwords (mirror of memcached's counter)
    int lock_count = 0;      // locks since the last successful login (R10)
    int64_t locked_until = 0;
    bool blocked = false;             // 閉塞: only an unblock lifts it
    int64_t initial_password_at = 0;  // when the current initial password was issued
    int64_t created_at = 0;
    int64_t last_login_at = 0;
    // The page language the user last chose ("ja", "en"), for their own
    // mails; empty: never chose, certgate_language decides (schema 5).
    std::string language;

    bool locked_at(int64_t now) const { return locked_until > now; }
};

// Notice flags of a certificate (R3): each is sent once.
enum CertNotice : int { kNoticeExpiring = 1, kNoticeExpired = 2 };

struct Certificate {
    std::string serial;  // upper-case hex, as serial_hex() in ca.hpp gives it
    std::string user_id;
    int64_t not_before = 0;
    int64_t not_after = 0;
    CertStatus status = CertStatus::issued;
    int64_t issued_at = 0;
    int64_t revoked_at = 0;
    std::string reason;  // RFC 5280 reason name, e.g. keyCompromise
    int notices = 0;     // CertNotice bits already claimed
};

// One row of the append-only event table.
struct Event {
    int64_t id = 0;  // strictly increasing, never reused
    int64_t at = 0;
    std::string actor;    // "operator:<login>", a master's user ID, or the user's own ID
    std::string kind;     // see the list below
    std::string subject;  // user ID, organisation ID, certificate serial, mail id
    std::string detail;   // short human-readable text, key=value pairs
};

// Event kinds written by the store itself. Other parts may append their own
// (auth.failed, login, logout, code.sent, ...) through append_event().
namespace event_kind {
inline constexpr const char* kStoreInit = "store.init";
inline constexpr const char* kStoreMigrated = "store.migrated";
inline constexpr const char* kOrgAdded = "org.added";
inline constexpr const char* kUserAdded = "user.added";
inline constexpr const char* kUserReset = "user.reset";  // new initial password; sessions end
inline constexpr const char* kPasswordSet = "user.password_set";
inline constexpr const char* kUserRegistered = "user.registered";
inline constexpr const char* kMailChanged = "user.mail_changed";
inline constexpr const char* kLanguageSet = "user.language_set";
inline constexpr const char* kUserLocked = "user.locked";
inline constexpr const char* kUserUnlocked = "user.unlocked";
inline constexpr const char* kUserBlocked = "user.blocked";
inline constexpr const char* kUserUnblocked = "user.unblocked";
inline constexpr const char* kUserDisabled = "user.disabled";
inline constexpr const char* kLogin = "user.login";
inline constexpr const char* kAuthFailed = "auth.failed";
inline constexpr const char* kCertIssued = "cert.issued";
inline constexpr const char* kCertRevoked = "cert.revoked";
inline constexpr const char* kCertSuperseded = "cert.superseded";
inline constexpr const char* kCertPending = "cert.pending";      // recorded, not handed over
inline constexpr const char* kCertAbandoned = "cert.abandoned";  // never handed over: revoked
inline constexpr const char* kCertNotice = "cert.notice";
inline constexpr const char* kMailQueued = "mail.queued";
inline constexpr const char* kMailSent = "mail.sent";
inline constexpr const char* kMailFailed = "mail.failed";
inline constexpr const char* kCrlSigned = "crl.signed";
inline constexpr const char* kLogout = "session.logout";  // detail: session=<id>
}  // namespace event_kind

struct Mail {
    int64_t id = 0;
    std::string to;
    std::string subject;
    std::string body;
    MailState state = MailState::queued;
    int attempts = 0;
    int64_t next_attempt_at = 0;
    int64_t sent_at = 0;
    int64_t created_at = 0;
    std::string last_error;
    int64_t expires_at = 0;  // 0: never
};

// A lock of R10 as the lockout rule decided it (policy/lockout.hpp) and
// save_lock() writes it.
struct LockState {
    int lock_count = 0;    // locks since the last successful login, this one included
    int64_t until = 0;     // when it lifts
    bool blocked = false;  // this lock was the one that blocked the ID
};

// The CRL the portal serves (GET /certgate/crl), shared by every worker and
// node of the store, so that all serve the same one and its number only grows.
struct StoredCrl {
    int64_t number = 0;  // crlNumber: the id of its crl.signed event
    int64_t this_update = 0;
    int64_t next_update = 0;
    std::vector<uint8_t> der;
};

// The failure streak of a typed user ID, real or unknown (R10, R22). The
// store holds it so that losing memcached gives no extra guesses; memcached
// only reserves the race-free slots of the current epoch.
struct AuthStreak {
    int64_t epoch = 0;   // the streak's number: every lock, success, unlock and reset bumps it
    int failures = 0;    // wrong passwords judged in this streak
    int lock_count = 0;  // locks since the last success
    int64_t locked_until = 0;
    bool blocked = false;
};

// One unit taken from a per-window budget (code tries, code mails).
struct BudgetTake {
    bool allowed = false;   // within the limit
    int used = 0;           // units taken in this window, this one included
    int64_t resets_at = 0;  // when the window ends
    bool reached = false;   // this take used the last unit of the window
};

struct CertificateFilter {
    std::string user_id;               // empty: every user
    std::optional<CertStatus> status;  // none: every status
    int64_t not_after_before = 0;      // 0: no bound; else not_after < this
    int64_t not_after_from = 0;        // 0: no bound; else not_after >= this
};

// Where the revocation feed has read the event table up to. Opaque to the
// feed: only the store that gave it interprets it. SQLite serialises its
// writers, so ids commit in order and `id` alone is exact (xid stays 0). On
// PostgreSQL ids commit out of order; there xid is the snapshot xmin up to
// which every transaction has ended, and id the last event read below it,
// so a late-committing event cannot be skipped.
struct FeedCursor {
    int64_t xid = 0;
    int64_t id = 0;
};

struct FeedPage {
    std::vector<Event> events;  // in the order they are to be applied
    FeedCursor next;            // where the next read starts
    bool more = false;          // the page was full: read again at once
    // The store does not continue the cursor (it is ahead of anything this
    // store has: the store was replaced, restored from a backup or failed
    // over to a standby that had not seen it). No events are read then: the
    // feed must load the whole set again.
    bool gap = false;
    int64_t behind = 0;  // events in the store after `next`, not read yet
};

class Store {
  public:
    static constexpr int kSchemaVersion = 5;

    // uri: "sqlite:/path/to/file.db" or a bare path (the file must exist
    // unless create is true: certgatectl init), or "postgresql://..." (or
    // "postgres://"), handed to libpq; it connects at its first use. Throws
    // StoreError saying what to do.
    // Defined with the adapters (adapters/store_open.cpp): it picks one.
    static std::unique_ptr<Store> open(const std::string& uri, bool create = false);

    virtual ~Store();

    virtual int schema_version() = 0;  // 0: an empty store; -1: not a certgate store
    virtual void migrate() = 0;        // create or upgrade to kSchemaVersion
    virtual void ping() = 0;
    virtual std::string describe() const = 0;  // "sqlite:/path" for messages
    // Non-empty when the store's files can be read by other users (the
    // password hashes, the audit trail): nginx -t warns with it.
    virtual std::string permission_warning() const { return ""; }

    // Runs body inside one write transaction; retries it when another process
    // holds the write lock for longer than the busy timeout. Nested calls join
    // the outer transaction. body may throw: the transaction is rolled back.
    void write(const std::function<void()>& body);

    // The clock used for event times and state changes; tests override it.
    void set_clock(std::function<int64_t()> clock) { clock_ = std::move(clock); }
    int64_t now() const;

    // --- organisations ------------------------------------------------------
    virtual void add_org(const Organisation& org, const std::string& actor) = 0;
    virtual std::optional<Organisation> find_org(const std::string& id) = 0;
    virtual std::vector<Organisation> list_orgs() = 0;

    // --- users ----------------------------------------------------------------
    // Adds a user; the org must exist, the ID must be new, an org has at most one
    // master (R16). detail is added to the event (e.g. "password set by operator").
    virtual void add_user(const User& user, const std::string& actor,
                          const std::string& detail = "") = 0;
    virtual std::optional<User> find_user(const std::string& id) = 0;
    // org empty: every user.
    virtual std::vector<User> list_users(const std::string& org = "") = 0;
    // R17: a new initial password; the user must register again, lock, block and
    // counters are cleared, open sessions end (the event feeds the module).
    virtual void reset_user(const std::string& id, const std::string& initial_hash,
                            const std::string& actor) = 0;
    // A new password chosen by the user (or given by automation): state active.
    virtual void set_password(const std::string& id, const std::string& hash,
                              const std::string& actor, const std::string& detail = "") = 0;
    // First registration done: new password and confirmed mail address.
    virtual void complete_registration(const std::string& id, const std::string& hash,
                                       const std::string& mail, const std::string& actor) = 0;
    virtual void set_mail(const std::string& id, const std::string& mail,
                          const std::string& actor) = 0;
    // The language the user chose on the pages ("ja", "en"; "" forgets it),
    // with a user.language_set event. StoreError for any other value.
    virtual void set_language(const std::string& id, const std::string& language,
                              const std::string& actor) = 0;
    // The streak of a typed ID (all zero when it has none yet). For a real
    // user the lock fields are those of its ghost row, unused: users holds them.
    virtual AuthStreak auth_streak(const std::string& id) = 0;
    // The same inside write(), its row held against other writers until the
    // transaction ends (SQLite's write transaction holds the whole file; a
    // server store locks the row). Every change of a user's lock fields ends
    // its streak, so holding this row holds those fields too.
    virtual AuthStreak lock_auth_streak(const std::string& id) = 0;
    // Inside write(): streak `epoch` of the ID now counts `failures` wrong
    // passwords; a real (known) user's failure_streak mirrors it. expires_at:
    // when an unknown ID's row may go (0 for a real user).
    virtual void save_streak_failures(const std::string& id, bool known, int64_t epoch,
                                      int failures, int64_t expires_at) = 0;
    // Inside write(): a lock that the lockout rule decided, written as it is.
    // known: the user's row, with the user.locked (and user.blocked) events;
    // otherwise the unknown ID's row, kept until expires_at (for good once
    // blocked), with an auth.unknown_locked event. Either way the streak ends.
    virtual void save_lock(const std::string& id, bool known, const LockState& lock,
                           int64_t expires_at, const std::string& actor) = 0;
    // Drops the rows of unknown IDs whose window has passed before `now`;
    // blocked ones stay, as a blocked user does.
    virtual void prune_auth_streaks(int64_t now) = 0;
    // Takes one unit of budget `key` (limit units per window_s), race-free
    // across processes. A refused take is not counted.
    virtual BudgetTake take_budget(const std::string& key, int limit, int64_t window_s) = 0;
    // The budget's state without taking from it.
    virtual BudgetTake peek_budget(const std::string& key, int limit, int64_t window_s) = 0;
    // A successful login or authentication: streak and lock count start again.
    virtual void record_login(const std::string& id, const std::string& actor,
                              const std::string& detail = "") = 0;
    virtual void unlock_user(const std::string& id, const std::string& actor) = 0;
    virtual void block_user(const std::string& id, const std::string& actor) = 0;
    virtual void unblock_user(const std::string& id, const std::string& actor) = 0;
    virtual void disable_user(const std::string& id, const std::string& actor) = 0;

    // --- certificates ---------------------------------------------------------
    // Records an issued certificate (cert.status issued, or pending for one
    // whose .p12 is not handed over yet). With supersede, the user's other
    // live certificates become superseded (renewal, R2).
    virtual void add_certificate(const Certificate& cert, bool supersede,
                                 const std::string& actor) = 0;
    // The .p12 of a pending certificate was handed over: it goes live, the
    // user's other live certificate is superseded and any other pending one
    // revoked, all in one transaction. StoreConflict unless it is pending.
    virtual void activate_certificate(const std::string& serial, const std::string& actor) = 0;
    // Revokes (cessationOfOperation) the pending certificates of user_id (empty:
    // every user) recorded before issued_before (0: any time), with a
    // cert.abandoned event saying why. Returns their serials.
    virtual std::vector<std::string> abandon_pending_certificates(const std::string& user_id,
                                                                  int64_t issued_before,
                                                                  const std::string& why,
                                                                  const std::string& actor) = 0;
    virtual std::optional<Certificate> find_certificate(const std::string& serial) = 0;
    // Newest first.
    virtual std::vector<Certificate> list_certificates(const CertificateFilter& filter = {}) = 0;
    // The user's newest certificate with status issued, if any.
    virtual std::optional<Certificate> current_certificate(const std::string& user_id) = 0;
    virtual void revoke_certificate(const std::string& serial, const std::string& reason,
                                    const std::string& actor) = 0;
    // Revokes every issued, pending or superseded certificate of the user; returns the serials.
    virtual std::vector<std::string> revoke_user_certificates(const std::string& user_id,
                                                              const std::string& reason,
                                                              const std::string& actor) = 0;
    // Every revoked certificate, for the CRL.
    virtual std::vector<Certificate> revoked_certificates() = 0;
    // The CRL last signed for the portal, if any.
    virtual std::optional<StoredCrl> current_crl() = 0;
    // Replaces it (inside write(), with the crl.signed event that numbers it).
    virtual void save_crl(const StoredCrl& crl) = 0;
    // True when a certificate was revoked by an event after event_id.
    virtual bool revoked_since(int64_t event_id) = 0;
    // R3: claims a notice for a certificate; true for exactly one caller.
    virtual bool claim_notice(const std::string& serial, CertNotice notice,
                              const std::string& actor) = 0;

    // --- events ---------------------------------------------------------------
    virtual int64_t append_event(const std::string& actor, const std::string& kind,
                                 const std::string& subject, const std::string& detail) = 0;
    // Events with id > after_id, oldest first, at most limit.
    virtual std::vector<Event> events_since(int64_t after_id, int limit) = 0;
    // Events whose subject or actor is the user, id > after_id, oldest first.
    virtual std::vector<Event> events_for_user(const std::string& user_id, int64_t after_id,
                                               int limit) = 0;
    virtual int64_t last_event_id() = 0;
    // The id of the first event at or after time `at` (last_event_id() + 1 if none).
    virtual int64_t first_event_since(int64_t at) = 0;

    // --- the revocation feed ---------------------------------------------------
    // The cursor that skips every event committed now (after an initial load).
    virtual FeedCursor feed_start();
    // Events after cursor, at most limit, none of them ever skipped however
    // the writers' transactions interleave (see FeedCursor).
    virtual FeedPage feed_after(const FeedCursor& cursor, int limit);
    // Blocks up to timeout_ms for a sign that events were committed (on
    // PostgreSQL a NOTIFY certgate_feed); true if one came. Only a wake-up:
    // the feed's poll is the guarantee. Default: sleeps, returns false.
    virtual bool wait_for_feed(int timeout_ms);
    // Whether wait_for_feed can return true (PostgreSQL's LISTEN): only then
    // does each worker keep a listener thread. The default sleeps, so no.
    virtual bool has_feed_notifications() const { return false; }

    // --- mail outbox ----------------------------------------------------------
    // expires_at (0: never): past it the mail is not sent, and its body is
    // wiped (an auth code); a sent mail's body is wiped too, the row stays.
    virtual int64_t enqueue_mail(const std::string& to, const std::string& subject,
                                 const std::string& body, const std::string& actor,
                                 const std::string& about, int64_t expires_at = 0) = 0;
    // Puts a mail in the outbox already claimed by the caller (state sending,
    // one attempt, until now + lease_seconds), who sends it at once: no
    // outbox run can take it first. If the caller dies, the lease runs out
    // and the outbox sends it.
    virtual Mail enqueue_claimed_mail(const std::string& to, const std::string& subject,
                                      const std::string& body, const std::string& actor,
                                      const std::string& about, int lease_seconds,
                                      int64_t expires_at = 0) = 0;
    // Takes up to limit due mails (queued, or sending with an expired lease) and
    // marks them sending until now + lease_seconds, so no one else sends them.
    // Mails past their expires_at end first: failed ("expired"), body wiped.
    virtual std::vector<Mail> claim_due_mails(int limit, int lease_seconds) = 0;
    virtual void mark_mail_sent(int64_t id) = 0;
    // The relay refused or was down: try again at retry_at (0: give up, failed).
    virtual void mark_mail_failed(int64_t id, const std::string& error, int64_t retry_at) = 0;
    virtual std::vector<Mail> list_mails(std::optional<MailState> state = std::nullopt) = 0;
    virtual std::optional<Mail> find_mail(int64_t id) = 0;
    // Makes a queued or failed mail due now.
    virtual void retry_mail(int64_t id, const std::string& actor) = 0;

  protected:
    // An event just written: handed to the observer (core/observe.hpp) once
    // its transaction commits, dropped if it rolls back.
    void event_written(Event e);

    virtual void begin_write() = 0;  // BEGIN IMMEDIATE; throws StoreBusy after the timeout
    virtual void commit() = 0;
    virtual void rollback() noexcept = 0;

  private:
    void events_committed() noexcept;

    int depth_ = 0;
    std::vector<Event> written_;
    std::function<int64_t()> clock_;
};

// How the adapters keep a StoredCrl in certgate_meta (key 'crl'): "<number>
// <thisUpdate> <nextUpdate> <DER in hex>". nullopt: unreadable (signed again).
std::string crl_to_text(const StoredCrl& crl);
std::optional<StoredCrl> crl_from_text(const std::string& text);

// Throws StoreError unless the store's schema is Store::kSchemaVersion.
void check_schema(Store& store);

}  // namespace certgate
