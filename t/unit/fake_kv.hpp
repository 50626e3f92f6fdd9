// An in-memory Kv for unit tests of the use cases: memcached's semantics
// (add/touch/incr results, TTLs, 30-day absolute expirations) against a
// clock the test moves, and switches that make it, or some keys, "down".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "core/ports/kv.hpp"

namespace certgate {

class FakeKv final : public Kv {
  public:
    // Seconds since the epoch as the fake sees them; tests set or advance it,
    // or point `clock` at their own fake clock.
    int64_t now = 1800000000;
    std::function<int64_t()> clock = [this] { return now; };
    // Every call throws KvError, as a memcached that is gone.
    bool down = false;
    // Calls on the keys it accepts throw KvError, as one server of several.
    std::function<bool(const std::string &)> down_for;
    int calls = 0;

    void advance(int64_t seconds) { now += seconds; }
    size_t size() {
        purge();
        return items_.size();
    }

    std::string version() override {
        check("version");
        return "fake";
    }
    std::optional<std::string> get(const std::string &key) override {
        Item *item = find(key);
        if (item == nullptr) return std::nullopt;
        return item->value;
    }
    void set(const std::string &key, const std::string &value, long ttl_s) override {
        check(key);
        items_[key] = Item{value, expiry(ttl_s)};
    }
    bool add(const std::string &key, const std::string &value, long ttl_s) override {
        if (find(key) != nullptr) return false;
        items_[key] = Item{value, expiry(ttl_s)};
        return true;
    }
    bool remove(const std::string &key) override {
        if (find(key) == nullptr) return false;
        items_.erase(key);
        return true;
    }
    bool touch(const std::string &key, long ttl_s) override {
        Item *item = find(key);
        if (item == nullptr) return false;
        item->expires = expiry(ttl_s);
        return true;
    }
    std::optional<uint64_t> incr(const std::string &key, uint64_t delta) override {
        Item *item = find(key);
        if (item == nullptr) return std::nullopt;
        return bump(*item, delta);
    }
    uint64_t incr_or_create(const std::string &key, uint64_t delta, long ttl_s) override {
        Item *item = find(key);
        if (item != nullptr) return bump(*item, delta);
        items_[key] = Item{std::to_string(delta), expiry(ttl_s)};
        return delta;
    }

  private:
    struct Item {
        std::string value;
        int64_t expires = 0;  // 0: never
    };

    void check(const std::string &key) {
        ++calls;
        if (down || (down_for && key != "version" && down_for(key))) {
            throw KvError("memcached fake: down");
        }
        if (key != "version" && !valid_kv_key(key)) throw KvError("invalid memcached key");
    }
    // memcached: 0 never expires; more than 30 days is a Unix time.
    int64_t expiry(long ttl_s) const {
        if (ttl_s <= 0) return 0;
        if (ttl_s > 30L * 24 * 3600) return ttl_s;
        return clock() + ttl_s;
    }
    void purge() {
        for (auto it = items_.begin(); it != items_.end();) {
            if (it->second.expires != 0 && it->second.expires <= clock()) {
                it = items_.erase(it);
            } else {
                ++it;
            }
        }
    }
    Item *find(const std::string &key) {
        check(key);
        purge();
        auto it = items_.find(key);
        return it == items_.end() ? nullptr : &it->second;
    }
    // memcached refuses to increment what is not a decimal number.
    static uint64_t bump(Item &item, uint64_t delta) {
        if (item.value.empty() || item.value.find_first_not_of("0123456789") != std::string::npos) {
            throw KvError("memcached fake: incr on a value that is not a number");
        }
        uint64_t v = std::stoull(item.value) + delta;  // wraps at 2^64, as memcached's
        item.value = std::to_string(v);
        return v;
    }

    std::map<std::string, Item> items_;
};

}  // namespace certgate
