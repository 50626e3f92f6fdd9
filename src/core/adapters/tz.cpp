#include "core/adapters/tz.hpp"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <algorithm>
#include <cctype>
#include <chrono>

namespace certgate {

namespace {

using Seconds = cctz::time_point<cctz::seconds>;

// Zone names only: cctz would also take "localtime" (the host's zone),
// "libc:..." and, for any name, the file under zoneinfo it names.
bool plausible_zone_name(const std::string& tz) {
    if (tz.empty() || tz.front() == '/' || tz.find("..") != std::string::npos || tz == "localtime")
        return false;
    return std::all_of(tz.begin(), tz.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' ||
               ch == '-' || ch == '+';
    });
}

cctz::time_zone zone_named(const std::string& tz) {
    cctz::time_zone zone;
    const std::string problem = time_zone_problem(tz);
    if (!problem.empty() || !cctz::load_time_zone(tz, &zone)) throw TimeZoneError(problem);
    return zone;
}

Seconds at(time_t t) {
    return std::chrono::time_point_cast<cctz::seconds>(std::chrono::system_clock::from_time_t(t));
}

}  // namespace

std::string time_zone_problem(const std::string& name) {
    cctz::time_zone zone;
    // load_time_zone caches what it loaded, so later calls cost a map lookup.
    if (plausible_zone_name(name) && cctz::load_time_zone(name, &zone)) return "";
    return "unknown time zone \"" + name + "\": expected an IANA name such as Asia/Tokyo";
}

LocalTime to_local_time(time_t t, const std::string& tz) {
    const cctz::time_zone zone = zone_named(tz);
    const auto info = zone.lookup(at(t));
    const cctz::civil_second cs = info.cs;
    return LocalTime{static_cast<int>(cs.year()),
                     cs.month(),
                     cs.day(),
                     cs.hour(),
                     cs.minute(),
                     cs.second(),
                     info.offset};
}

std::string format_local_time(time_t t, const std::string& tz, const std::string& format) {
    return cctz::format(format, at(t), zone_named(tz));
}

time_t end_of_local_day(time_t t, const std::string& tz, int days) {
    const cctz::time_zone zone = zone_named(tz);
    const cctz::civil_day next = cctz::civil_day(cctz::convert(at(t), zone)) + days + 1;
    // The next day starts at its first 00:00:00, or where the clock jumped
    // over midnight; the day before ends one second earlier.
    const auto start = zone.lookup(cctz::civil_second(next));
    const Seconds first =
        start.kind == cctz::time_zone::civil_lookup::SKIPPED ? start.trans : start.pre;
    return std::chrono::system_clock::to_time_t(first) - 1;
}

}  // namespace certgate
