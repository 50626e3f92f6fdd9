#include "core/policy/lockout.hpp"

namespace certgate {

LockState LockoutRule::next_lock(int previous_locks, int64_t until) const {
    LockState lock;
    lock.lock_count = previous_locks + 1;
    lock.until = until;
    lock.blocked = locks > 0 && lock.lock_count >= locks;
    return lock;
}

}  // namespace certgate
