// How the audit trail and the operator tool write a time.
#pragma once

#include <cstdint>
#include <string>

namespace certgate {

// "2026-11-26T03:00:00Z" (RFC 3339, UTC).
std::string utc_time(int64_t t);

}  // namespace certgate
