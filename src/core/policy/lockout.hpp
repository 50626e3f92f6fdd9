// R10's rule, in one place: N wrong passwords in a row lock an ID for the
// lock time; M locks without a successful login in between block (閉塞) it.
// Pure decisions: the store only keeps the rows (ports/store.hpp), and the
// authentication use case applies these inside its transaction.
#pragma once

#include <cstdint>

#include "core/config/settings.hpp"
#include "core/ports/store.hpp"

namespace certgate {

struct LockoutRule {
    int failures = 6;            // certgate_lockout: wrong passwords in a row that lock
    int64_t lock_time_s = 3600;  // how long a lock lasts
    int locks = 3;               // locks that block; 0: never

    static LockoutRule from(const Settings& s) {
        return LockoutRule{s.lockout_failures, s.lockout_time_s, s.lockout_locks};
    }

    // True when a streak of `failures` judged wrong passwords locks the ID.
    bool locks_at(int streak_failures) const { return streak_failures >= failures; }

    // The lock that follows `previous_locks` locks since the last success,
    // lifting at `until`: it blocks when it is the M-th.
    LockState next_lock(int previous_locks, int64_t until) const;
};

}  // namespace certgate
