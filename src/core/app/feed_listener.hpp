// The revocation feed's wake-up (issue 15): a thread of its own per worker,
// with a store connection of its own, that waits for the store's sign that
// events were committed (PostgreSQL's NOTIFY) and then raises a flag the
// worker's timer reads. Only a wake-up: the poll every certgate_sync_interval
// stays the guarantee, so a lost notification or a listener that cannot
// reach the store costs latency, never an event.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace certgate {

class FeedListener {
  public:
    // wait_ms: how long one wait_for_feed blocks, which bounds how long
    // stop() takes. Backoff after a failure: from 1 s, doubling, up to max_backoff.
    explicit FeedListener(std::string store_uri, int wait_ms = 1000,
                          std::chrono::milliseconds max_backoff = std::chrono::seconds(30));
    ~FeedListener();
    FeedListener(const FeedListener &) = delete;
    FeedListener &operator=(const FeedListener &) = delete;

    // Starts the thread with every signal blocked (as nginx's thread pools).
    void start();
    // Within about wait_ms.
    void stop() noexcept;

    // True once per wake-up since the last call (the worker's timer).
    bool take_wake() noexcept { return woken_.exchange(false); }
    // The store failed since the listener last reached it: the reason (no
    // secrets: the adapter's message); "" while it listens.
    std::string failure() const;
    // Times the listener came back after a failure.
    long recoveries() const noexcept { return recoveries_.load(); }

  private:
    void run() noexcept;
    // Sleeps `d` unless stopped first; false when stopped.
    bool pause(std::chrono::milliseconds d);

    std::string uri_;
    int wait_ms_;
    std::chrono::milliseconds max_backoff_;
    std::thread thread_;
    std::atomic<bool> woken_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<long> recoveries_{0};
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string failure_;
};

}  // namespace certgate
