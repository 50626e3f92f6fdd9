// GET <portal>/health: does memcached answer, does the store answer. Runs in
// the thread pool; each probe is bounded by the memcached timeout or the
// store's busy timeout.
#pragma once

#include <cstdint>
#include <string>

#include "core/config/settings.hpp"

namespace certgate {

struct Health {
    bool memcached_up = false;
    std::string memcached_error;
    bool store_up = false;
    std::string store_error;

    bool ok() const { return memcached_up && store_up; }
};

// check_file: also that the SQLite file is still there and readable and
// writable (an open connection keeps working on a file moved away).
Health check_health(const Settings &settings, bool check_file = false);

// {"status":"ok"|"unavailable","memcached":{"up":true},"store":{"up":false}}
// tasks_alive >= 0 adds "tasks_alive" (test builds).
std::string health_json(const Health &health, long tasks_alive);

// <portal>/health/live: {"status":"ok","pid":N}
std::string live_json(long pid);

// The revocation feed as the worker sees it (no I/O).
struct FeedHealth {
    bool fresh = false;         // loaded, nothing lost, read within certgate_sync_max_lag
    int64_t lag_seconds = -1;   // since the last good read; -1: never
    int64_t behind_events = 0;  // events the last read left for the next
};

// <portal>/health/ready: the probes plus what the worker knows without I/O:
// {"status":"ready"|"unavailable","memcached":{"up":..},"store":{"up":..},
//  "feed":{"fresh":..,"lag_seconds":N,"behind_events":N},"ca_key":{"up":..}}
bool ready(const Health &health, bool feed_fresh, bool ca_up);
std::string ready_json(const Health &health, const FeedHealth &feed, bool ca_up);

}  // namespace certgate
