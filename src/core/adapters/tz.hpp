// Local time in an IANA zone, through cctz (the tz database under
// /usr/share/zoneinfo): R1's validity, R11's file name, the dates on the
// pages, mails and certgatectl's listings all convert here. cctz never
// touches the process-wide TZ, so pool threads may call it while nginx's own
// thread stamps its log.
#pragma once

#include <ctime>
#include <stdexcept>
#include <string>

namespace certgate {

struct TimeZoneError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A wall-clock time in some zone, for R11's file name and the dates on ⑧.
struct LocalTime {
    int year, month, day;  // month 1-12
    int hour, minute, second;
    int utc_offset;  // seconds east of UTC in force at that moment
};

// "" when `name` is a zone of the tz database (Asia/Tokyo, UTC), else a
// message for the sysadmin. Not a path, not "localtime", not a table file.
std::string time_zone_problem(const std::string& name);

// Throw TimeZoneError for an unknown zone.
LocalTime to_local_time(time_t t, const std::string& tz);
// strftime-like (cctz::format): "%Y-%m-%d %H:%M:%S %z".
std::string format_local_time(time_t t, const std::string& tz, const std::string& format);
// The last second of the local day `days` days after the one holding `t`
// (days = 0: the end of t's own day), whatever daylight saving does at midnight.
time_t end_of_local_day(time_t t, const std::string& tz, int days);

}  // namespace certgate
