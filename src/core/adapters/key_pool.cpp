#include "core/adapters/key_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <exception>

#include "core/base/threads.hpp"

namespace certgate {

namespace {
std::atomic<KeyPool *> g_pool{nullptr};

bool same_type(const KeyType &a, const KeyType &b) {
    return a.alg == b.alg && a.bits == b.bits && a.curve == b.curve;
}
}  // namespace

KeyPool::KeyPool(KeyType type, size_t capacity, std::chrono::milliseconds pause)
    : type_(std::move(type)), capacity_(capacity), pause_(pause) {}

KeyPool::~KeyPool() { stop(); }

void KeyPool::start() {
    if (thread_.joinable() || capacity_ == 0) return;
    stopping_ = false;
    thread_ = thread_with_signals_blocked([this] { refill(); });
}

void KeyPool::stop() noexcept {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    keys_.clear();  // EVP_PKEY_free clears the private numbers
}

std::optional<PKey> KeyPool::take(const KeyType &type) {
    std::optional<PKey> key;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!same_type(type, type_) || keys_.empty()) {
            missed_++;
            return std::nullopt;
        }
        key = std::move(keys_.front());
        keys_.pop_front();
        taken_++;
    }
    wake_.notify_one();
    return key;
}

KeyPoolStats KeyPool::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return KeyPoolStats{keys_.size(), taken_, missed_, generated_};
}

void KeyPool::refill() noexcept {
    // SCHED_IDLE (Linux): below every nice level; lowering is always allowed.
    sched_param param{};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
        if (keys_.size() >= capacity_) {
            wake_.wait(lock, [this] { return stopping_ || keys_.size() < capacity_; });
            continue;
        }
        lock.unlock();
        std::optional<PKey> key;
        try {
            key = generate_key(type_, &stopping_);
        } catch (const std::exception &) {
            // cancelled, or OpenSSL refused: try again after the pause
        }
        lock.lock();
        if (key && !stopping_) {
            keys_.push_back(std::move(*key));
            generated_++;
        }
        wake_.wait_for(lock, pause_, [this] { return stopping_.load(); });
    }
}

void set_key_pool(KeyPool *pool) noexcept { g_pool.store(pool); }
KeyPool *key_pool() noexcept { return g_pool.load(); }

PKey pooled_or_new_key(const KeyType &type) {
    if (KeyPool *pool = key_pool()) {
        if (auto key = pool->take(type)) return std::move(*key);
    }
    return generate_key(type);
}

}  // namespace certgate
