// certgate_audit: every audit event also as one JSON line to a file or a
// syslog server (UDP), for the bank's SIEM. Events come from thread-pool
// threads; offer() only queues (bounded: when the writer falls behind, the
// newest events are dropped and counted), and a writer thread of its own
// appends to the file or sends one datagram per event. Nothing waits for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "core/ports/store.hpp"

namespace certgate {

struct AuditTarget {
    enum class Kind { file, syslog } kind = Kind::file;
    std::string path;              // file
    std::string host;              // syslog: an IPv4 or IPv6 address
    int port = 514;                // syslog
    int facility = 16;             // syslog: local0
    std::string tag = "certgate";  // syslog APP-NAME
};

// "file:/var/log/certgate/audit.json" or
// "syslog:server=127.0.0.1:5514[,facility=local0][,tag=certgate]";
// throws std::invalid_argument saying what is wrong.
AuditTarget parse_audit_target(const std::string &spec);

// One line of JSON, without the newline: time, id, kind, actor, subject,
// detail, node. A detail's key=value pair whose key names a secret
// (password, code, token, cookie, secret, key) has its value replaced.
std::string audit_json(const Event &e, const std::string &node);

// The RFC 5424 syslog message carrying `json`.
std::string syslog_message(const AuditTarget &t, const std::string &node, int64_t at,
                           const std::string &json);

class AuditExport {
  public:
    // Counts go to `exported`, `dropped`, `failed` (the glue's
    // shared-memory counters); any may be null.
    AuditExport(AuditTarget target, size_t capacity);
    ~AuditExport();
    AuditExport(const AuditExport &) = delete;
    AuditExport &operator=(const AuditExport &) = delete;

    void start();          // the writer thread (in the worker, after fork)
    void stop() noexcept;  // sends what is queued, then ends the thread
    // From any thread; never blocks on I/O.
    void offer(const Event &e) noexcept;

    std::atomic<uint64_t> *exported = nullptr;
    std::atomic<uint64_t> *dropped = nullptr;
    std::atomic<uint64_t> *failed = nullptr;

  private:
    void run() noexcept;
    bool write_line(const std::string &line, int64_t at) noexcept;

    AuditTarget target_;
    size_t capacity_;
    std::string node_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Event> queue_;
    bool stopping_ = false;
    std::thread writer_;
    int fd_ = -1;
};

}  // namespace certgate
