#include "core/app/feed_listener.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <utility>

#include "core/base/threads.hpp"
#include "core/ports/store.hpp"

namespace certgate {

FeedListener::FeedListener(std::string store_uri, int wait_ms,
                           std::chrono::milliseconds max_backoff)
    : uri_(std::move(store_uri)), wait_ms_(wait_ms), max_backoff_(max_backoff) {}

FeedListener::~FeedListener() { stop(); }

void FeedListener::start() {
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = thread_with_signals_blocked([this] { run(); });
}

void FeedListener::stop() noexcept {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::string FeedListener::failure() const {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_;
}

bool FeedListener::pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void FeedListener::run() noexcept {
    using std::chrono::milliseconds;
    std::unique_ptr<Store> store;
    milliseconds backoff(1000);
    // A wait that ends sooner than this without a notification is not a
    // wait (an adapter that cannot block): the rest is slept, never spun.
    const milliseconds shortest(wait_ms_ / 10 > 0 ? wait_ms_ / 10 : 1);
    while (!stopping_) {
        try {
            if (!store) store = Store::open(uri_);
            auto began = std::chrono::steady_clock::now();
            bool woke = store->wait_for_feed(wait_ms_);
            if (woke) woken_ = true;
            bool was_failing;
            {
                std::lock_guard<std::mutex> lock(mu_);
                was_failing = !failure_.empty();
                failure_.clear();
            }
            // Notifications sent while it was away are lost: poll at once.
            if (was_failing) {
                recoveries_++;
                woken_ = true;
            }
            backoff = milliseconds(1000);
            auto took =
                std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - began);
            if (!woke && took < shortest && !pause(shortest - took)) break;
        } catch (const std::exception &e) {
            store.reset();
            {
                std::lock_guard<std::mutex> lock(mu_);
                failure_ = e.what();
                if (failure_.empty()) failure_ = "unknown error";
            }
            if (!pause(backoff)) break;
            backoff = std::min(backoff * 2, max_backoff_);
        } catch (...) {
            store.reset();
            if (!pause(backoff)) break;
            backoff = std::min(backoff * 2, max_backoff_);
        }
    }
}

}  // namespace certgate
