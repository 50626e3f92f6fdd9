// R1 (validity counted in local days) and R11 (file name) for a fixed clock.
// Expected instants were computed with `TZ=<zone> date -d '<local time>' +%s`.
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "core/adapters/ca.hpp"

// cmocka last: it defines macros such as fail() that collide with <ios>. It
// needs the three C headers first, and has no extern "C" of its own.
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}
// clang-format on

using namespace certgate;

namespace {

void expect_not_after(time_t issued, const char* tz, int days, time_t expected) {
    time_t got = certificate_not_after(issued, tz, days);
    if (got != expected)
        fail_msg("issued %lld in %s for %d days: notAfter %lld, expected %lld",
                 static_cast<long long>(issued), tz, days, static_cast<long long>(got),
                 static_cast<long long>(expected));
}

// The example of R1: issued 2026-11-26, valid through 2027-11-26 23:59:59 JST.
void r1_example_from_the_manual(void**) {
    expect_not_after(1795654800 /* 2026-11-26 10:00 JST */, "Asia/Tokyo", 366,
                     1827241199 /* 2027-11-26 23:59:59 JST */);
}

void r1_crossing_a_month_end(void**) {
    expect_not_after(1801353600 /* 2027-01-31 09:00 JST */, "Asia/Tokyo", 366,
                     1832943599 /* 2028-01-31 23:59:59 JST */);
}

// 00:30 JST on 12-31 is still 12-30 in UTC: the local date must decide.
void r1_crossing_a_year_end_uses_the_local_date(void**) {
    expect_not_after(1830180600 /* 2027-12-31 00:30 JST */, "Asia/Tokyo", 366,
                     1861801199 /* 2028-12-30 23:59:59 JST (2028 is a leap year) */);
    expect_not_after(1830263400 /* 2027-12-31 23:30 JST */, "Asia/Tokyo", 366, 1861801199);
}

void r1_leap_days(void**) {
    expect_not_after(1835363400 /* 2028-02-29 00:10 JST */, "Asia/Tokyo", 366,
                     1866985199 /* 2029-02-28 23:59:59 JST */);
    expect_not_after(1803870000 /* 2027-03-01 12:00 JST */, "Asia/Tokyo", 366,
                     1835449199 /* 2028-02-29 23:59:59 JST */);
}

void r1_other_lengths(void**) {
    // One day means "through the end of the issue day".
    expect_not_after(1795654800, "Asia/Tokyo", 1, 1795705199 /* 2026-11-26 23:59:59 JST */);
    expect_not_after(1811808000 /* 2027-06-01 00:00 UTC */, "UTC", 366,
                     1843430399 /* 2028-05-31 23:59:59 UTC */);
}

// Zones with daylight saving, beyond the TZif transition table (POSIX rule).
void r1_in_zones_with_daylight_saving(void**) {
    expect_not_after(2223388800 /* 2040-06-15 12:00 EDT */, "America/New_York", 366,
                     2254967999 /* 2041-06-15 23:59:59 EDT */);
    expect_not_after(1919287800 /* 2030-10-27 01:30 CEST */, "Europe/Berlin", 366,
                     1950908399 /* 2031-10-27 23:59:59 CET */);
    expect_not_after(2209755600 /* 2040-01-10 08:00 AEDT */, "Australia/Sydney", 366,
                     2241349199 /* 2041-01-09 23:59:59 AEDT: 2040 has a Feb 29 */);
}

void local_time_follows_the_zone(void**) {
    LocalTime t = to_local_time(2223388800, "America/New_York");
    assert_int_equal(t.year, 2040);
    assert_int_equal(t.month, 6);
    assert_int_equal(t.day, 15);
    assert_int_equal(t.hour, 12);
    assert_int_equal(t.minute, 0);
    assert_int_equal(t.utc_offset, -4 * 3600);
    t = to_local_time(1795654800, "Asia/Tokyo");
    assert_int_equal(t.hour, 10);
    assert_int_equal(t.utc_offset, 9 * 3600);
}

// The conversion agrees with the C library's localtime_r (which reads the
// same files) over 1950-2100, in zones with odd rules: southern hemisphere,
// negative DST (Dublin), half hours, 45 minutes, rules beyond the table.
void local_time_agrees_with_the_c_library(void**) {
    const char* zones[] = {"Asia/Tokyo",
                           "America/New_York",
                           "Europe/Berlin",
                           "Australia/Sydney",
                           "America/Santiago",
                           "Europe/Dublin",
                           "Asia/Kolkata",
                           "Pacific/Chatham",
                           "Africa/Casablanca",
                           "America/Sao_Paulo",
                           "UTC"};
    for (const char* tz : zones) {
        setenv("TZ", tz, 1);
        tzset();
        for (long long t = -631152000LL; t < 4102444800LL; t += 86400LL * 3 + 3599) {
            time_t tt = static_cast<time_t>(t);
            struct tm want;
            localtime_r(&tt, &want);
            LocalTime got = to_local_time(tt, tz);
            if (got.year != want.tm_year + 1900 || got.month != want.tm_mon + 1 ||
                got.day != want.tm_mday || got.hour != want.tm_hour || got.minute != want.tm_min ||
                got.utc_offset != want.tm_gmtoff)
                fail_msg(
                    "%s at %lld: got %04d-%02d-%02d %02d:%02d (%+d), libc says "
                    "%04d-%02d-%02d %02d:%02d (%+ld)",
                    tz, t, got.year, got.month, got.day, got.hour, got.minute, got.utc_offset,
                    want.tm_year + 1900, want.tm_mon + 1, want.tm_mday, want.tm_hour, want.tm_min,
                    want.tm_gmtoff);
        }
    }
    unsetenv("TZ");
    tzset();
}

void r11_file_name_is_local_time(void**) {
    assert_string_equal(p12_file_name("user01", 1795654800, "Asia/Tokyo").c_str(),
                        "user0120261126100000.p12");
    assert_string_equal(p12_file_name("AB12cd", 1830180600, "Asia/Tokyo").c_str(),
                        "AB12cd20271231003000.p12");
}

// Where daylight saving moves midnight: the day still ends at its last
// 23:59:59 (America/Santiago: 2024-04-06 23:00-24:00 runs twice, and
// 2024-09-08 starts at 01:00).
void r1_when_midnight_moves(void**) {
    expect_not_after(1712415600 /* 2024-04-06 12:00 -03 */, "America/Santiago", 1,
                     1712462399 /* the second 2024-04-06 23:59:59, -04 */);
    expect_not_after(1725724800 /* 2024-09-07 12:00 -04 */, "America/Santiago", 1,
                     1725767999 /* 2024-09-07 23:59:59 -04 */);
}

// The default zone of R1 and a zone with daylight saving, through the
// same conversion the pages and certgatectl use.
void local_time_formats_in_the_zone(void**) {
    assert_string_equal(format_local_time(1795654800, "Asia/Tokyo", "%Y-%m-%d %H:%M:%S %z").c_str(),
                        "2026-11-26 10:00:00 +0900");
    assert_string_equal(
        format_local_time(2223388800, "America/New_York", "%Y-%m-%d %H:%M:%S %z").c_str(),
        "2040-06-15 12:00:00 -0400");
    assert_string_equal(
        format_local_time(2209755600, "America/New_York", "%Y-%m-%d %H:%M:%S %z").c_str(),
        "2040-01-09 16:00:00 -0500");
}

// certgate_timezone takes zone names only: not files of the zoneinfo
// folder that are no zone (zone1970.tab), not paths, not "localtime".
void unknown_zones_are_refused(void**) {
    for (const char* tz :
         {"Asia/Atlantis", "", "../etc/passwd", "/etc/localtime", "zone1970.tab", "zone.tab",
          "iso3166.tab", "localtime", "libc:Asia/Tokyo", "leapseconds", "tzdata.zi", "Asia"}) {
        std::string problem = time_zone_problem(tz);
        if (problem.find("unknown time zone") == std::string::npos)
            fail_msg("zone \"%s\" was accepted", tz);
        try {
            certificate_not_after(1795654800, tz, 366);
            fail_msg("zone \"%s\" was used", tz);
        } catch (const CaError& e) {
            assert_non_null(strstr(e.what(), "time zone"));
        }
    }
    for (const char* tz : {"Asia/Tokyo", "America/New_York", "UTC", "Etc/GMT-9"})
        if (!time_zone_problem(tz).empty()) fail_msg("zone \"%s\" was refused", tz);
    try {
        certificate_not_after(1795654800, "Asia/Tokyo", 0);
        fail_msg("0 days accepted");
    } catch (const CaError&) {
    }
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(r1_example_from_the_manual),
        cmocka_unit_test(r1_crossing_a_month_end),
        cmocka_unit_test(r1_crossing_a_year_end_uses_the_local_date),
        cmocka_unit_test(r1_leap_days),
        cmocka_unit_test(r1_other_lengths),
        cmocka_unit_test(r1_in_zones_with_daylight_saving),
        cmocka_unit_test(local_time_follows_the_zone),
        cmocka_unit_test(local_time_agrees_with_the_c_library),
        cmocka_unit_test(r11_file_name_is_local_time),
        cmocka_unit_test(r1_when_midnight_moves),
        cmocka_unit_test(local_time_formats_in_the_zone),
        cmocka_unit_test(unknown_zones_are_refused),
    };
    return cmocka_run_group_tests_name("validity", tests, nullptr, nullptr);
}
