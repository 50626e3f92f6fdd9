// Local time in a named zone, for validity rule R1 and file names (R11).
//
// Why not setenv("TZ") + localtime_r: TZ is process-wide, so while a pool
// thread had Asia/Tokyo set, nginx's own thread would stamp its logs (and
// any other library would compute dates) in that zone. Instead the TZif file
// of the zone is read once (RFC 8536: transitions, then the POSIX TZ string
// for times after the last one) and kept, immutable, for every thread.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>

#include "core/adapters/ca.hpp"

namespace certgate {

namespace {

constexpr const char zoneinfo_dir[] = "/usr/share/zoneinfo/";
constexpr int64_t day_seconds = 86400;

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int& y, int& m, int& d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    y = static_cast<int>(yoe + era * 400 + (m <= 2));
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// ---- the POSIX TZ string at the end of a TZif file ("JST-9", "CET-1CEST,M3.5.0,M10.5.0/3")

struct PosixRule {
    enum Kind { julian_no_leap, julian_zero, month_week_day } kind = month_week_day;
    int day = 0, week = 0, month = 0;
    int32_t time = 7200;  // local seconds after midnight; 02:00 by default
};

struct PosixZone {
    int32_t std_offset = 0;  // seconds east of UTC
    bool has_dst = false;
    int32_t dst_offset = 0;
    PosixRule start, end;

    // Seconds since the epoch, UTC, at which `rule` fires in `year`.
    int64_t transition(const PosixRule& rule, int year, int32_t offset_before) const {
        int64_t day;
        if (rule.kind == PosixRule::julian_no_leap) {
            day = days_from_civil(year, 1, 1) + rule.day - 1 +
                  (is_leap(year) && rule.day >= 60 ? 1 : 0);
        } else if (rule.kind == PosixRule::julian_zero) {
            day = days_from_civil(year, 1, 1) + rule.day;
        } else {
            int64_t first = days_from_civil(year, rule.month, 1);
            int64_t next = rule.month == 12 ? days_from_civil(year + 1, 1, 1)
                                            : days_from_civil(year, rule.month + 1, 1);
            int first_weekday = static_cast<int>(((first % 7) + 11) % 7);  // 0 = Sunday
            day = first + (rule.day - first_weekday + 7) % 7 + (rule.week - 1) * 7;
            while (day >= next) day -= 7;  // week 5 = the last one of the month
        }
        return day * day_seconds + rule.time - offset_before;
    }

    int32_t offset_at(int64_t t) const {
        if (!has_dst) return std_offset;
        int y, m, d;
        civil_from_days(floor_div(t + std_offset, day_seconds), y, m, d);
        int64_t on = transition(start, y, std_offset);
        int64_t off = transition(end, y, dst_offset);
        bool dst = on < off ? (t >= on && t < off) : !(t >= off && t < on);
        return dst ? dst_offset : std_offset;
    }
};

class PosixParser {
  public:
    explicit PosixParser(std::string_view s) : s_(s) {}

    bool parse(PosixZone& z) {
        int32_t west;
        if (!name() || !offset(west)) return false;
        z.std_offset = -west;
        if (at_end()) return true;
        if (!name()) return false;
        z.has_dst = true;
        z.dst_offset = z.std_offset + 3600;
        if (!at_end() && s_[i_] != ',') {
            if (!offset(west)) return false;
            z.dst_offset = -west;
        }
        return take(',') && rule(z.start) && take(',') && rule(z.end) && at_end();
    }

  private:
    bool at_end() const { return i_ >= s_.size(); }
    bool take(char c) {
        if (at_end() || s_[i_] != c) return false;
        ++i_;
        return true;
    }
    bool name() {
        if (take('<')) {
            size_t close = s_.find('>', i_);
            if (close == std::string_view::npos) return false;
            i_ = close + 1;
            return true;
        }
        size_t start = i_;
        while (!at_end() && std::isalpha(static_cast<unsigned char>(s_[i_]))) ++i_;
        return i_ - start >= 3;
    }
    bool number(int& out, int max) {
        size_t start = i_;
        out = 0;
        while (!at_end() && std::isdigit(static_cast<unsigned char>(s_[i_])) && out <= max)
            out = out * 10 + (s_[i_++] - '0');
        return i_ > start && out <= max;
    }
    // [+-]hh[:mm[:ss]], in seconds; positive means west of Greenwich.
    bool offset(int32_t& out) {
        int sign = 1;
        if (take('-'))
            sign = -1;
        else
            take('+');
        int h, m = 0, sec = 0;
        if (!number(h, 167)) return false;
        if (take(':') && !number(m, 59)) return false;
        if (take(':') && !number(sec, 59)) return false;
        out = sign * (h * 3600 + m * 60 + sec);
        return true;
    }
    bool rule(PosixRule& r) {
        if (take('J')) {
            r.kind = PosixRule::julian_no_leap;
            if (!number(r.day, 365) || r.day < 1) return false;
        } else if (take('M')) {
            r.kind = PosixRule::month_week_day;
            if (!number(r.month, 12) || r.month < 1 || !take('.') || !number(r.week, 5) ||
                r.week < 1 || !take('.') || !number(r.day, 6))
                return false;
        } else {
            r.kind = PosixRule::julian_zero;
            if (!number(r.day, 365)) return false;
        }
        if (take('/')) return offset(r.time);
        return true;
    }

    std::string_view s_;
    size_t i_ = 0;
};

// ---- one zone from its TZif file ------------------------------------------------

struct Zone {
    std::vector<int64_t> transitions;
    std::vector<uint8_t> type_of_transition;
    std::vector<int32_t> type_offsets;
    bool has_footer = false;
    PosixZone footer;

    int32_t offset_at(int64_t t) const {
        if (has_footer && (transitions.empty() || t >= transitions.back()))
            return footer.offset_at(t);
        if (transitions.empty() || t < transitions.front()) return type_offsets.at(0);
        auto after = std::upper_bound(transitions.begin(), transitions.end(), t);
        size_t i = static_cast<size_t>(after - transitions.begin()) - 1;
        return type_offsets.at(type_of_transition[i]);
    }

    // The UTC instant of a local wall-clock second (the later reading if the
    // clock was turned back, the shifted one if it jumped over it).
    int64_t to_utc(int64_t local) const {
        int64_t t = local - offset_at(local);
        return local - offset_at(t);
    }
};

uint32_t be32(const std::string& b, size_t at) {
    return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) |
           (uint32_t(uint8_t(b[at + 2])) << 8) | uint32_t(uint8_t(b[at + 3]));
}

int64_t be64(const std::string& b, size_t at) {
    return static_cast<int64_t>((uint64_t(be32(b, at)) << 32) | be32(b, at + 4));
}

struct TzifCounts {
    size_t isut, isstd, leap, time, type, chars;
};

std::shared_ptr<const Zone> parse_tzif(const std::string& b, const std::string& path) {
    auto bad = [&]() -> CaError {
        return CaError("time zone file " + path + " is not a valid TZif file");
    };
    auto header = [&](size_t at) {
        if (b.size() < at + 44 || b.compare(at, 4, "TZif") != 0) throw bad();
        return TzifCounts{be32(b, at + 20), be32(b, at + 24), be32(b, at + 28),
                          be32(b, at + 32), be32(b, at + 36), be32(b, at + 40)};
    };
    TzifCounts c = header(0);
    size_t time_size = 4;
    size_t at = 44;
    if (b[4] >= '2') {
        // Skip the 32-bit block; the 64-bit one after it is the full story.
        at += c.time * 5 + c.type * 6 + c.chars + c.leap * 8 + c.isstd + c.isut;
        c = header(at);
        at += 44;
        time_size = 8;
    }
    size_t data_end = at + c.time * (time_size + 1) + c.type * 6 + c.chars +
                      c.leap * (time_size + 4) + c.isstd + c.isut;
    if (c.type == 0 || b.size() < data_end) throw bad();

    auto zone = std::make_shared<Zone>();
    for (size_t i = 0; i < c.time; ++i)
        zone->transitions.push_back(time_size == 8 ? be64(b, at + i * 8)
                                                   : static_cast<int32_t>(be32(b, at + i * 4)));
    at += c.time * time_size;
    for (size_t i = 0; i < c.time; ++i) {
        uint8_t type = static_cast<uint8_t>(b[at + i]);
        if (type >= c.type) throw bad();
        zone->type_of_transition.push_back(type);
    }
    at += c.time;
    for (size_t i = 0; i < c.type; ++i)
        zone->type_offsets.push_back(static_cast<int32_t>(be32(b, at + i * 6)));

    if (time_size == 8 && b.size() > data_end + 1 && b[data_end] == '\n') {
        size_t end = b.find('\n', data_end + 1);
        if (end == std::string::npos) throw bad();
        std::string_view tz(b.data() + data_end + 1, end - data_end - 1);
        if (!tz.empty()) {
            if (!PosixParser(tz).parse(zone->footer)) throw bad();
            zone->has_footer = true;
        }
    }
    return zone;
}

// Zone names are config values, but still never a path out of zoneinfo.
bool plausible_zone_name(const std::string& tz) {
    if (tz.empty() || tz.front() == '/' || tz.find("..") != std::string::npos) return false;
    return std::all_of(tz.begin(), tz.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' ||
               ch == '-' || ch == '+';
    });
}

std::shared_ptr<const Zone> zone_named(const std::string& tz) {
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<const Zone>> zones;
    std::lock_guard<std::mutex> lock(mutex);
    auto found = zones.find(tz);
    if (found != zones.end()) return found->second;

    if (!plausible_zone_name(tz)) throw CaError("invalid time zone name \"" + tz + "\"");
    std::string path = zoneinfo_dir + tz;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw CaError("unknown time zone \"" + tz + "\": cannot read " + path + ": " +
                      std::strerror(errno) + " (is the tzdata package installed?)");
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto zone = parse_tzif(bytes, path);
    zones.emplace(tz, zone);
    return zone;
}

}  // namespace

LocalTime to_local_time(time_t t, const std::string& tz) {
    int32_t offset = zone_named(tz)->offset_at(t);
    int64_t local = static_cast<int64_t>(t) + offset;
    int64_t days = floor_div(local, day_seconds);
    int64_t secs = local - days * day_seconds;
    LocalTime lt{};
    civil_from_days(days, lt.year, lt.month, lt.day);
    lt.hour = static_cast<int>(secs / 3600);
    lt.minute = static_cast<int>(secs / 60 % 60);
    lt.second = static_cast<int>(secs % 60);
    lt.utc_offset = offset;
    return lt;
}

void check_time_zone(const std::string& tz) { zone_named(tz); }

time_t certificate_not_after(time_t issue_time, const std::string& tz, int validity_days) {
    if (validity_days < 1) throw CaError("certificate validity must be at least one day");
    auto zone = zone_named(tz);
    int64_t issue_day =
        floor_div(static_cast<int64_t>(issue_time) + zone->offset_at(issue_time), day_seconds);
    int64_t last_second = (issue_day + validity_days - 1) * day_seconds + day_seconds - 1;
    return static_cast<time_t>(zone->to_utc(last_second));
}

std::string p12_file_name(const std::string& user_id, time_t issue_time, const std::string& tz) {
    LocalTime lt = to_local_time(issue_time, tz);
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%04d%02d%02d%02d%02d%02d", lt.year, lt.month, lt.day,
                  lt.hour, lt.minute, lt.second);
    return user_id + stamp + ".p12";
}

}  // namespace certgate
