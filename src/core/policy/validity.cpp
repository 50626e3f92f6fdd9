// R1 (a certificate is valid through the end of its last local day) and
// R11 (the .p12 is named after the local issue time), in the configured zone.
#include <cstdio>

#include "core/adapters/ca.hpp"
#include "core/adapters/tz.hpp"

namespace certgate {

time_t certificate_not_after(time_t issue_time, const std::string& tz, int validity_days) {
    if (validity_days < 1) throw CaError("certificate validity must be at least one day");
    try {
        // The issue day counts as the first of validity_days.
        return end_of_local_day(issue_time, tz, validity_days - 1);
    } catch (const TimeZoneError& e) {
        throw CaError(e.what());  // issuance reports the CA's errors as such
    }
}

std::string p12_file_name(const std::string& user_id, time_t issue_time, const std::string& tz) {
    LocalTime lt;
    try {
        lt = to_local_time(issue_time, tz);
    } catch (const TimeZoneError& e) {
        throw CaError(e.what());
    }
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%04d%02d%02d%02d%02d%02d", lt.year, lt.month, lt.day,
                  lt.hour, lt.minute, lt.second);
    return user_id + stamp + ".p12";
}

}  // namespace certgate
