// The backend-independent part of the store: names of states, the write
// transaction with its retry and the schema check.
#include "core/ports/store.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/base/observe.hpp"
#include "core/ports/clock.hpp"

namespace certgate {

const char* to_string(Role r) { return r == Role::master ? "master" : "general"; }

const char* to_string(UserState s) {
    switch (s) {
        case UserState::must_register:
            return "must_register";
        case UserState::active:
            return "active";
        case UserState::disabled:
            return "disabled";
    }
    return "?";
}

const char* to_string(CertStatus s) {
    switch (s) {
        case CertStatus::issued:
            return "issued";
        case CertStatus::revoked:
            return "revoked";
        case CertStatus::superseded:
            return "superseded";
        case CertStatus::expired:
            return "expired";
        case CertStatus::pending:
            return "pending";
    }
    return "?";
}

const char* to_string(MailState s) {
    switch (s) {
        case MailState::queued:
            return "queued";
        case MailState::sending:
            return "sending";
        case MailState::sent:
            return "sent";
        case MailState::failed:
            return "failed";
    }
    return "?";
}

std::optional<Role> parse_role(const std::string& s) {
    if (s == "master") return Role::master;
    if (s == "general") return Role::general;
    return std::nullopt;
}

std::optional<UserState> parse_user_state(const std::string& s) {
    for (auto v : {UserState::must_register, UserState::active, UserState::disabled})
        if (s == to_string(v)) return v;
    return std::nullopt;
}

std::optional<CertStatus> parse_cert_status(const std::string& s) {
    for (auto v : {CertStatus::issued, CertStatus::revoked, CertStatus::superseded,
                   CertStatus::expired, CertStatus::pending})
        if (s == to_string(v)) return v;
    return std::nullopt;
}

std::optional<MailState> parse_mail_state(const std::string& s) {
    for (auto v : {MailState::queued, MailState::sending, MailState::sent, MailState::failed})
        if (s == to_string(v)) return v;
    return std::nullopt;
}

Store::~Store() = default;

int64_t Store::now() const {
    if (clock_) return clock_();
    return SystemClock().now();
}

void Store::write(const std::function<void()>& body) {
    if (depth_ > 0) {
        body();
        return;
    }
    // busy_timeout already waits inside SQLite; this covers a writer that holds
    // the lock longer than that (a long checkpoint, a slow disk).
    const int attempts = 5;
    for (int attempt = 1;; ++attempt) {
        try {
            begin_write();
        } catch (const StoreBusy&) {
            if (attempt == attempts) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
            continue;
        }
        depth_ = 1;
        try {
            body();
            commit();
            depth_ = 0;
            events_committed();
            return;
        } catch (const StoreBusy&) {
            rollback();
            depth_ = 0;
            written_.clear();
            if (attempt == attempts) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
        } catch (...) {
            rollback();
            depth_ = 0;
            written_.clear();
            throw;
        }
    }
}

void Store::event_written(Event e) {
    written_.push_back(std::move(e));
    if (depth_ == 0) events_committed();
}

void Store::events_committed() noexcept {
    for (const Event& e : written_) note_event(e);
    written_.clear();
}

void check_schema(Store& store) {
    int v = store.schema_version();
    if (v == Store::kSchemaVersion) return;
    const std::string where = store.describe();
    if (v < 0) throw StoreError(where + " is not a certgate store (no certgate schema in it)");
    if (v == 0) throw StoreError(where + " is empty: run certgatectl init");
    if (v < Store::kSchemaVersion)
        throw StoreError(where + " has schema version " + std::to_string(v) +
                         ", this certgate needs " + std::to_string(Store::kSchemaVersion) +
                         ": run certgatectl migrate");
    throw StoreError(where + " has schema version " + std::to_string(v) +
                     ": this certgate is older than the store (it knows version " +
                     std::to_string(Store::kSchemaVersion) + "); upgrade certgate");
}

std::string crl_to_text(const StoredCrl& crl) {
    static const char hex[] = "0123456789abcdef";
    std::string v = std::to_string(crl.number) + " " + std::to_string(crl.this_update) + " " +
                    std::to_string(crl.next_update) + " ";
    v.reserve(v.size() + crl.der.size() * 2);
    for (uint8_t b : crl.der) v += hex[b >> 4], v += hex[b & 15];
    return v;
}

std::optional<StoredCrl> crl_from_text(const std::string& v) {
    StoredCrl crl;
    long long number = 0, this_update = 0, next_update = 0;
    int used = 0;
    if (std::sscanf(v.c_str(), "%lld %lld %lld %n", &number, &this_update, &next_update, &used) !=
            3 ||
        (v.size() - static_cast<size_t>(used)) % 2 != 0)
        return std::nullopt;
    crl.number = number;
    crl.this_update = this_update;
    crl.next_update = next_update;
    auto nibble = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    for (size_t i = static_cast<size_t>(used); i + 1 < v.size(); i += 2) {
        int hi = nibble(v[i]), lo = nibble(v[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        crl.der.push_back(static_cast<uint8_t>(hi << 4 | lo));
    }
    return crl;
}

FeedCursor Store::feed_start() {
    FeedCursor c;
    c.id = last_event_id();
    return c;
}

FeedPage Store::feed_after(const FeedCursor& cursor, int limit) {
    FeedPage page;
    page.next = cursor;
    // Read before the page: a cursor past it is past anything this store had.
    int64_t last = last_event_id();
    if (cursor.id > last) {
        page.gap = true;
        return page;
    }
    page.events = events_since(cursor.id, limit);
    if (!page.events.empty()) page.next.id = page.events.back().id;
    page.more = limit > 0 && static_cast<int>(page.events.size()) >= limit;
    if (last > page.next.id) page.behind = last - page.next.id;
    return page;
}

bool Store::wait_for_feed(int timeout_ms) {
    if (timeout_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
    return false;
}

}  // namespace certgate
