// Threads of our own inside an nginx worker (the key pool's refill, the
// feed listener) start with every signal blocked, as nginx's thread pools
// do, so a signal for the worker always interrupts its event loop.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace certgate {

template <class F>
std::thread thread_with_signals_blocked(F &&body) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        std::thread t(std::forward<F>(body));
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return t;
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        throw;
    }
}

}  // namespace certgate
