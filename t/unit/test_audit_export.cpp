// The audit export's pure parts: certgate_audit targets (and their errors),
// the JSON line and its redaction, the RFC 5424 frame, the file writer, the
// bounded queue, and that only committed events reach the observer.
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/adapters/audit_export.hpp"
#include "core/base/observe.hpp"
#include "core/base/utc_time.hpp"
#include "core/ports/store.hpp"

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

std::string dir;

std::string refused(const std::string &spec) {
    try {
        parse_audit_target(spec);
    } catch (const std::invalid_argument &e) {
        return e.what();
    }
    return "";
}

void targets(void **) {
    AuditTarget f = parse_audit_target("file:/var/log/certgate/audit.json");
    assert_true(f.kind == AuditTarget::Kind::file);
    assert_string_equal(f.path.c_str(), "/var/log/certgate/audit.json");

    AuditTarget s = parse_audit_target("syslog:server=127.0.0.1:5514,facility=local3,tag=cg-1");
    assert_true(s.kind == AuditTarget::Kind::syslog);
    assert_string_equal(s.host.c_str(), "127.0.0.1");
    assert_int_equal(s.port, 5514);
    assert_int_equal(s.facility, 19);
    assert_string_equal(s.tag.c_str(), "cg-1");

    AuditTarget d = parse_audit_target("syslog:server=[::1]");
    assert_string_equal(d.host.c_str(), "::1");
    assert_int_equal(d.port, 514);
    assert_int_equal(d.facility, 16);
    assert_string_equal(d.tag.c_str(), "certgate");

    assert_non_null(strstr(refused("udp://x").c_str(), "neither file:"));
    assert_non_null(strstr(refused("file:rel.log").c_str(), "absolute path"));
    assert_non_null(
        strstr(refused("syslog:facility=local0").c_str(), "server=host:port is missing"));
    assert_non_null(strstr(refused("syslog:server=siem.example:514").c_str(), "not an IP address"));
    assert_non_null(strstr(refused("syslog:server=127.0.0.1:0").c_str(), "invalid port"));
    assert_non_null(
        strstr(refused("syslog:server=127.0.0.1,facility=local8").c_str(), "unknown facility"));
    assert_non_null(strstr(refused("syslog:server=127.0.0.1,tag=a b").c_str(), "tag may hold"));
    assert_non_null(
        strstr(refused("syslog:server=127.0.0.1,colour=red").c_str(), "unknown parameter"));
}

void json_line_and_redaction(void **) {
    Event e{42,         1795680000,
            "rokin001", "user.login",
            "rokin001", "client=10.0.0.1 password=Secr3t! code=123456 token=abc \"quoted\""};
    std::string j = audit_json(e, "proxy1");
    assert_string_equal(
        j.c_str(),
        "{\"time\":\"2026-11-26T08:00:00Z\",\"id\":42,\"kind\":\"user.login\","
        "\"actor\":\"rokin001\",\"subject\":\"rokin001\",\"detail\":\"client=10.0.0.1 "
        "password=[redacted] code=[redacted] token=[redacted] \\\"quoted\\\"\","
        "\"node\":\"proxy1\"}");
    assert_string_equal(utc_time(0).c_str(), "1970-01-01T00:00:00Z");

    AuditTarget t = parse_audit_target("syslog:server=127.0.0.1,facility=local0,tag=certgate");
    std::string m = syslog_message(t, "proxy1", e.at, j);
    std::string want =
        "<134>1 2026-11-26T08:00:00Z proxy1 certgate " + std::to_string(getpid()) + " audit - " + j;
    assert_string_equal(m.c_str(), want.c_str());
}

void file_export_and_bounded_queue(void **) {
    std::string path = dir + "/audit.json";
    std::atomic<uint64_t> exported{0}, dropped{0}, failed{0};
    {
        AuditExport x(parse_audit_target("file:" + path), 3);
        x.exported = &exported;
        x.dropped = &dropped;
        x.failed = &failed;
        // Not started: the queue fills, the fourth and fifth are dropped.
        for (int i = 1; i <= 5; ++i) x.offer(Event{i, 1795680000, "a", "k", "s", "d"});
        assert_int_equal(dropped.load(), 2);
        x.start();
        x.stop();  // sends what is queued
    }
    assert_int_equal(exported.load(), 3);
    assert_int_equal(failed.load(), 0);
    std::ifstream in(path);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        assert_non_null(strstr(line.c_str(), ("\"id\":" + std::to_string(n) + ",").c_str()));
    }
    assert_int_equal(n, 3);

    // logrotate moves the file away: the next line goes to a new file.
    std::string rotated = path + ".1";
    assert_int_equal(rename(path.c_str(), rotated.c_str()), 0);
    {
        AuditExport x(parse_audit_target("file:" + path), 10);
        x.start();
        x.offer(Event{6, 1795680000, "a", "k", "s", "d"});
        for (int i = 0; i < 200 && access(path.c_str(), F_OK) != 0; ++i) usleep(5000);
        assert_int_equal(rename(path.c_str(), rotated.c_str()), 0);  // rotated while open
        x.offer(Event{7, 1795680000, "a", "k", "s", "d"});
        x.stop();
    }
    std::ifstream fresh(path);
    assert_true(static_cast<bool>(std::getline(fresh, line)));
    assert_non_null(strstr(line.c_str(), "\"id\":7,"));

    AuditExport bad(parse_audit_target("file:" + dir + "/no/such/dir/audit.json"), 10);
    bad.failed = &failed;
    bad.start();
    bad.offer(Event{1, 1, "a", "k", "s", "d"});
    bad.stop();
    assert_int_equal(failed.load(), 1);
}

struct Recorder : Observer {
    std::vector<std::string> kinds;
    void event(const Event &e) noexcept override { kinds.push_back(e.kind); }
    void dependency_error(Dependency) noexcept override {}
};

void only_committed_events_are_observed(void **) {
    auto s = Store::open("sqlite:" + dir + "/obs.db", true);
    s->migrate();
    Recorder r;
    set_observer(&r);
    s->append_event("a", "one", "s", "");
    try {
        s->write([&] {
            s->append_event("a", "rolled.back", "s", "");
            throw std::runtime_error("no");
        });
    } catch (const std::runtime_error &) {
    }
    s->write([&] {
        s->append_event("a", "two", "s", "");
        assert_int_equal(r.kinds.size(), 1);  // not before the commit
        s->append_event("a", "three", "s", "");
    });
    set_observer(nullptr);
    assert_int_equal(r.kinds.size(), 3);
    assert_string_equal(r.kinds[0].c_str(), "one");
    assert_string_equal(r.kinds[1].c_str(), "two");
    assert_string_equal(r.kinds[2].c_str(), "three");
}

int setup(void **) {
    char tmpl[] = "/tmp/certgate-audit-XXXXXX";
    if (!mkdtemp(tmpl)) return -1;
    dir = tmpl;
    return 0;
}

int teardown(void **) {
    std::string cmd = "rm -rf '" + dir + "'";
    return std::system(cmd.c_str()) == 0 ? 0 : -1;
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(targets),
        cmocka_unit_test(json_line_and_redaction),
        cmocka_unit_test(file_export_and_bounded_queue),
        cmocka_unit_test(only_committed_events_are_observed),
    };
    return cmocka_run_group_tests_name("audit_export", tests, setup, teardown);
}
