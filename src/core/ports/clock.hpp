// The clock port: what time the use cases take as "now" (Unix seconds, UTC).
// Requests carry their own `now`; this is for code that asks on its own
// (the store's event times, the issuance use case), so tests can fix it.
#pragma once

#include <chrono>
#include <cstdint>

namespace certgate {

class Clock {
  public:
    virtual ~Clock() = default;
    virtual int64_t now() const = 0;
};

class SystemClock final : public Clock {
  public:
    int64_t now() const override {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
};

}  // namespace certgate
