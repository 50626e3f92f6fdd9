// Everything one nginx configuration needs at run time, in plain C++: the
// settings, the loaded CA and the client-certificate check. Built once per
// configuration (nginx -t, start, reload) and shared read-only by the event
// loop and the thread-pool tasks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/adapters/ca.hpp"
#include "core/adapters/key_pool.hpp"
#include "core/config/settings.hpp"
#include "core/ports/kv.hpp"
#include "core/ports/store.hpp"
#include "core/web/pages.hpp"

namespace certgate {

struct Runtime {
    Settings settings;
    std::unique_ptr<CaSigner> ca;
    std::unique_ptr<ClientCertCheck> client_check;
    std::unique_ptr<Pages> pages;
    std::unique_ptr<KeyPool> key_pool;  // a worker's, from init_process; null elsewhere

    // A signature through the HSM (an engine key) failed: the PKCS#11
    // session of this process is stale, and only a fresh process gets a
    // fresh one. The worker's timer sees this and has the worker replaced.
    mutable std::atomic<bool> hsm_broken{false};
    bool hsm_key() const { return settings.ca_key.rfind("engine:", 0) == 0; }
};

// Who nginx's workers run as, to check they can use the store.
struct WorkerIdentity {
    std::string name;  // "nobody", for the message
    uint32_t uid = 0;
    std::vector<uint32_t> gids;  // primary group first, then the supplementary ones
};

// What keeps `identity` from using the SQLite store at `store_uri` (its file,
// and its folder, where SQLite makes the -wal and -shm files; those too when
// they exist), or "" when nothing does. Computed from owner, group and mode
// bits, not access(2), which asks for the caller (root, at nginx -t); root
// (uid 0) may write anything. POSIX ACLs are not read. Non-SQLite URIs: "".
std::string store_access_problem(const std::string &store_uri, const WorkerIdentity &identity);

// Reads certgate_secret: at least 32 bytes, not readable by others.
std::string read_secret_file(const std::string &path);

// The store of the calling thread for `uri`, opened on first use and kept;
// a store that failed is dropped so the next call opens it again.
Store &thread_store(const std::string &uri);
void drop_thread_store(const std::string &uri) noexcept;

// The calling pool thread's counters/kv client for certgate_memcached.
Kv &thread_kv(const Settings &settings);

}  // namespace certgate
