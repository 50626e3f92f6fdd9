// Mail: the message format (headers, RFC 2047 subject, base64 body in lines of
// 76), header-injection refusal, delivery into a Maildir and to a real SMTP
// server (Debian's aiosmtpd, started here on a loopback port), the errors a
// sysadmin sees when the relay refuses or is down, the Japanese and English
// templates, and the outbox: backoff, leases, and two workers sending each mail
// exactly once.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/adapters/mail.hpp"
#include "core/app/outbox.hpp"
#include "core/ports/store.hpp"

// cmocka last: it needs the three C headers first and has no extern "C".
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

std::string dir;  // this run's scratch directory
int counter = 0;
std::atomic<int64_t> fake_now{1795663200};  // 2026-11-26T03:20:00Z, 12:20 in Tokyo

std::string smtpd_dir;  // aiosmtpd's Maildir

const char* const kPython = "/usr/bin/python3";

// A handler that refuses some recipients, so the tests see 5xx and 4xx answers.
const char* const kPickyHandler = R"(from aiosmtpd.handlers import Mailbox

class Picky(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith('nobody@'):
            return '550 5.1.1 <%s>: Recipient address rejected: User unknown' % address
        if address.startswith('later@'):
            return '451 4.3.0 Mailbox busy, try again later'
        envelope.rcpt_tos.append(address)
        return '250 OK'
)";

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

#define assert_contains(hay, needle)                                                   \
    do {                                                                               \
        const std::string h_ = (hay);                                                  \
        if (!contains(h_, needle))                                                     \
            fail_msg("\"%s\"\nlacks \"%s\"", h_.c_str(), std::string(needle).c_str()); \
    } while (0)

std::string fresh_dir(const std::string& name) {
    return dir + "/" + name + std::to_string(++counter);
}

std::unique_ptr<Store> open_store(const std::string& path, bool create) {
    auto s = Store::open("sqlite:" + path, create);
    s->set_clock([] { return fake_now.load(); });
    if (create) s->migrate();
    return s;
}

std::vector<std::string> files_in(const std::string& d) {
    std::vector<std::string> out;
    DIR* dp = opendir(d.c_str());
    if (!dp) return out;
    while (dirent* e = readdir(dp))
        if (e->d_name[0] != '.') out.push_back(d + "/" + e->d_name);
    closedir(dp);
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Base64 through OpenSSL; characters outside the alphabet (line ends) skipped.
std::string b64decode(const std::string& in) {
    std::string clean;
    for (char c : in)
        if (isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=') clean += c;
    std::string out(clean.size() / 4 * 3 + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                                  reinterpret_cast<const unsigned char*>(clean.data()),
                                  static_cast<int>(clean.size()));
    assert_true(n >= 0);
    out.resize(static_cast<size_t>(n));
    for (size_t i = clean.size(); i > 0 && clean[i - 1] == '='; --i) out.pop_back();
    return out;
}

// A message split into unfolded headers and the raw body.
struct Parsed {
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string header(const std::string& name) const {
        for (auto& h : headers)
            if (strcasecmp(h.first.c_str(), name.c_str()) == 0) return h.second;
        return "";
    }
};

Parsed parse(const std::string& text) {
    std::string t;
    for (size_t i = 0; i < text.size(); ++i)
        if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) t += text[i];
    Parsed p;
    const auto end = t.find("\n\n");
    assert_true(end != std::string::npos);
    std::istringstream in(t.substr(0, end));
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
            assert_false(p.headers.empty());
            p.headers.back().second += "\n" + line;  // keep the fold to check words
            continue;
        }
        auto colon = line.find(':');
        assert_true(colon != std::string::npos);
        std::string value = line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        p.headers.emplace_back(line.substr(0, colon), value);
    }
    p.body = t.substr(end + 2);
    return p;
}

// Decodes a folded header of RFC 2047 B words; checks every word holds whole
// UTF-8 characters.
std::string decode_words(const std::string& value) {
    std::string out;
    size_t pos = 0;
    while ((pos = value.find("=?UTF-8?B?", pos)) != std::string::npos) {
        const auto end = value.find("?=", pos + 10);
        assert_true(end != std::string::npos);
        const std::string word = b64decode(value.substr(pos + 10, end - pos - 10));
        assert_false(word.empty());
        assert_true((static_cast<unsigned char>(word[0]) & 0xc0) != 0x80);
        const unsigned char last = static_cast<unsigned char>(word.back());
        if (last >= 0x80) {  // ends a multi-byte character, not inside one
            size_t lead = word.size() - 1;
            while (lead > 0 && (static_cast<unsigned char>(word[lead]) & 0xc0) == 0x80) --lead;
            const unsigned char c = static_cast<unsigned char>(word[lead]);
            const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            assert_int_equal(word.size() - lead, len);
        }
        out += word;
        pos = end + 2;
    }
    return out.empty() ? value : out;
}

std::string body_text(const Parsed& p) {
    std::string raw = b64decode(p.body), out;
    for (size_t i = 0; i < raw.size(); ++i)
        if (!(raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n')) out += raw[i];
    return out;
}

MailSettings maildir_settings(const std::string& path) {
    MailSettings s;
    s.relay = "maildir:" + path;
    s.from = "noreply@bank.example";
    return s;
}

MailSettings smtp_settings(int port) {
    MailSettings s;
    s.relay = "smtp://127.0.0.1:" + std::to_string(port);
    s.from = "ろうきん <noreply@bank.example>";
    s.timeout_ms = 5000;
    return s;
}

MailMessage sample(const std::string& to = "user1@example.jp") {
    MailMessage m;
    m.to = to;
    m.subject = "【賃金控除事務支援システム】認証コードのお知らせ";
    m.body = "ユーザーID：user01 様\n\n　認証コード：123456\n\n" + std::string(300, 'x') + "\n";
    return m;
}

template <class F>
MailError mail_error_of(F f) {
    try {
        f();
    } catch (const MailError& e) {
        return e;
    }
    fail_msg("no MailError");
    return MailError(MailError::Kind::temporary, "");
}

long elapsed_ms(std::chrono::steady_clock::time_point since) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - since)
                                 .count());
}

// A loopback port nothing listens on (for a moment).
int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

bool port_answers(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
}

// One aiosmtpd on a loopback port, storing into smtpd_dir.
struct Smtpd {
    pid_t pid = -1;
    int port = 0;
    bool running() const { return pid > 0; }

    void start(const std::vector<std::string>& tls_args) {
        port = free_port();
        const std::string listen = "127.0.0.1:" + std::to_string(port);
        std::vector<std::string> args = {kPython, "-m",   "aiosmtpd", "-n",
                                         "-l",    listen, "-c",       "cg_picky.Picky"};
        args.insert(args.end(), tls_args.begin(), tls_args.end());
        args.push_back(smtpd_dir);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(&a[0]);
        argv.push_back(nullptr);
        pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test
            setenv("PYTHONPATH", dir.c_str(), 1);
            const int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            execv(kPython, argv.data());
            _exit(127);
        }
    }

    // Waits until the port answers; stops the server if it never does.
    void wait() {
        if (pid <= 0) return;
        for (int i = 0; pid > 0 && i < 200; ++i) {
            if (port_answers(port)) return;
            if (waitpid(pid, nullptr, WNOHANG) == pid) {
                pid = -1;
                break;
            }
            usleep(50 * 1000);
        }
        fprintf(stderr, "aiosmtpd did not start on port %d; its tests fail\n", port);
        stop();
    }

    void stop() {
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, nullptr, 0);
        }
        pid = -1;
    }
};

Smtpd smtpd;           // plain SMTP, no STARTTLS on offer
Smtpd smtpd_starttls;  // offers STARTTLS and requires it before MAIL FROM
Smtpd smtpd_smtps;     // implicit TLS
std::string tls_cert;  // self-signed for IP 127.0.0.1, the CA bundle of the TLS tests

int start_smtpd(void**) {
    if (access(kPython, X_OK) != 0) return 0;  // the SMTP tests skip
    smtpd_dir = dir + "/smtpd-maildir";
    {
        std::ofstream h(dir + "/cg_picky.py");
        h << kPickyHandler;
    }
    smtpd.start({});
    tls_cert = dir + "/relay-cert.pem";
    const std::string key = dir + "/relay-key.pem";
    const std::string req =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1"
        " -addext subjectAltName=IP:127.0.0.1 -keyout '" +
        key + "' -out '" + tls_cert + "' 2>/dev/null";
    if (std::system(req.c_str()) == 0) {
        smtpd_starttls.start({"--tlscert", tls_cert, "--tlskey", key});
        smtpd_smtps.start({"--smtpscert", tls_cert, "--smtpskey", key});
    }
    smtpd.wait();
    smtpd_starttls.wait();
    smtpd_smtps.wait();
    return 0;
}

int stop_smtpd(void**) {
    smtpd.stop();
    smtpd_starttls.stop();
    smtpd_smtps.stop();
    return 0;
}

// A mail that aiosmtpd stored for `to`, or "" after a second of waiting.
std::string smtpd_mail_for(const std::string& to) {
    for (int i = 0; i < 100; ++i) {
        for (auto& f : files_in(smtpd_dir + "/new")) {
            std::string text = read_file(f);
            if (contains(text, "X-RcptTo: " + to)) return text;
        }
        usleep(10 * 1000);
    }
    return "";
}

// ---- the message format -------------------------------------------------------------

void headers_and_body(void**) {
    MailMessage m = sample();
    m.date = 1795663200;
    const std::string text = format_mail(smtp_settings(25), m);

    // Every line ends in CRLF and is at most 76 characters long.
    size_t pos = 0;
    while (pos < text.size()) {
        const auto eol = text.find("\r\n", pos);
        assert_true(eol != std::string::npos);
        assert_true(eol - pos <= 76);
        assert_true(text.find('\n', pos) == eol + 1);
        pos = eol + 2;
    }

    const Parsed p = parse(text);
    assert_string_equal(p.header("Date").c_str(), "Thu, 26 Nov 2026 03:20:00 +0000");
    assert_string_equal(p.header("To").c_str(), "user1@example.jp");
    assert_contains(p.header("From"), "=?UTF-8?B?");
    assert_contains(p.header("From"), "<noreply@bank.example>");
    assert_string_equal(decode_words(p.header("From")).c_str(), "ろうきん");
    assert_contains(p.header("Subject"), "=?UTF-8?B?");
    assert_string_equal(decode_words(p.header("Subject")).c_str(), m.subject.c_str());
    assert_contains(p.header("Message-ID"), "@bank.example>");
    assert_string_equal(p.header("MIME-Version").c_str(), "1.0");
    assert_string_equal(p.header("Content-Type").c_str(), "text/plain; charset=UTF-8");
    assert_string_equal(p.header("Content-Transfer-Encoding").c_str(), "base64");
    assert_string_equal(body_text(p).c_str(), m.body.c_str());
    // The body on the wire has CRLF line ends (RFC 2046 canonical text).
    assert_contains(b64decode(p.body), "様\r\n\r\n");
}

void long_subject_folds_between_characters(void**) {
    MailMessage m = sample();
    // 1-, 2-, 3- and 4-byte characters, long enough for several words.
    m.subject = "Ab é 認証コード 🔑 " + std::string("電子証明書の有効期限のお知らせ") +
                "、ユーザー様の電子証明書の有効期限が近づいています";
    const std::string text = format_mail(maildir_settings("/nonexistent"), m);
    const Parsed p = parse(text);
    const std::string subject = p.header("Subject");
    assert_true(std::count(subject.begin(), subject.end(), '\n') >= 3);
    assert_string_equal(decode_words(subject).c_str(), m.subject.c_str());

    // A short ASCII subject is left as it is; two Message-IDs differ.
    m.subject = "Your authentication code";
    const Parsed q = parse(format_mail(maildir_settings("/x"), m));
    assert_string_equal(q.header("Subject").c_str(), "Your authentication code");
    assert_string_not_equal(
        q.header("Message-ID").c_str(),
        parse(format_mail(maildir_settings("/x"), m)).header("Message-ID").c_str());

    // An ASCII display name is quoted.
    MailSettings s = maildir_settings("/x");
    s.from = "Rokin \"Help\" <noreply@bank.example>";
    assert_string_equal(parse(format_mail(s, m)).header("From").c_str(),
                        "\"Rokin \\\"Help\\\"\" <noreply@bank.example>");
}

void header_injection_refused(void**) {
    const std::string md = fresh_dir("inject");
    const MailSettings s = maildir_settings(md);

    MailMessage m = sample("victim@example.jp\r\nBcc: everyone@example.jp");
    MailError e = mail_error_of([&] { send_mail(s, m); });
    assert_true(e.permanent());
    assert_contains(e.what(), "recipient holds a control character");

    m = sample();
    m.subject = "hello\nBcc: everyone@example.jp";
    e = mail_error_of([&] { send_mail(s, m); });
    assert_true(e.permanent());
    assert_contains(e.what(), "subject holds a control character");

    m.subject = "hello\rX-Evil: 1";
    assert_true(mail_error_of([&] { send_mail(s, m); }).permanent());

    // The sender comes from the configuration: every mail waits until it is fixed.
    MailSettings bad = s;
    bad.from = "noreply@bank.example\r\nBcc: everyone@example.jp";
    e = mail_error_of([&] { send_mail(bad, sample()); });
    assert_false(e.permanent());
    assert_contains(e.what(), "sender (certgate_mail_from) holds a control character");

    // Not an address at all.
    for (const char* to : {"", "user", "@example.jp", "user@", "a b@example.jp", "<a@example.jp>",
                           "a@example.jp,b@example.jp"}) {
        e = mail_error_of([&] { send_mail(s, sample(to)); });
        assert_true(e.permanent());
        assert_contains(e.what(), "is not of the form user@domain");
    }
    assert_int_equal(files_in(md + "/new").size(), 0);
}

// One rule for every address (13.8): what the store takes, the mailer sends.
void one_address_rule(void**) {
    const std::string md = fresh_dir("rule");
    const MailSettings s = maildir_settings(md);
    const std::string long_local(65, 'x'), label(63, 'b');
    const std::string long_domain = label + "." + label + "." + label + "." + label + ".jp";
    for (const std::string& bad :
         {std::string("a;b@c.d"), std::string("a b@c.d"), std::string("a@b@c.d"),
          std::string("\"quoted\"@c.d"), std::string("a@c..d"), std::string(".a@c.d"),
          std::string("a.@c.d"), std::string("a..b@c.d"), std::string("a@-c.d"),
          std::string("a@c_d.e"), std::string("a@[127.0.0.1]"), std::string("a(x)@c.d"),
          long_local + "@c.d", "a@" + long_domain}) {
        assert_int_not_equal(static_cast<int>(check_mail_address(bad)),
                             static_cast<int>(MailAddressProblem::none));
        MailError e = mail_error_of([&] { send_mail(s, sample(bad)); });
        assert_true(e.permanent());
        assert_false(mail_address_message(check_mail_address(bad), Language::ja).empty());
    }
    for (const char* good : {"a.b+tag@example.jp", "o'brien@example.jp", "x_y-z@sub.example.jp",
                             "!#$%&'*+-/=?^_`{|}~@example.jp", "user@localhost"}) {
        assert_int_equal(static_cast<int>(check_mail_address(good)),
                         static_cast<int>(MailAddressProblem::none));
        send_mail(s, sample(good));
    }
    assert_int_equal(files_in(md + "/new").size(), 5);
}

// ---- Maildir -----------------------------------------------------------------------------

void maildir_delivery(void**) {
    const std::string md = fresh_dir("md") + "/deep/Maildir";  // nothing exists yet
    const MailSettings s = maildir_settings(md);
    send_mail(s, sample());
    send_mail(s, sample("user2@example.jp"));

    auto files = files_in(md + "/new");
    assert_int_equal(files.size(), 2);
    assert_int_equal(files_in(md + "/tmp").size(), 0);
    assert_int_equal(files_in(md + "/cur").size(), 0);
    std::set<std::string> to;
    for (auto& f : files) {
        const std::string text = read_file(f);
        assert_false(contains(text, "\r"));  // local files: LF line ends
        const Parsed p = parse(text);
        to.insert(p.header("To"));
        assert_string_equal(decode_words(p.header("Subject")).c_str(), sample().subject.c_str());
        assert_string_equal(body_text(p).c_str(), sample().body.c_str());
    }
    assert_true(to == (std::set<std::string>{"user1@example.jp", "user2@example.jp"}));

    // A Maildir that cannot be written says where and why.
    const std::string file = fresh_dir("notadir");
    std::ofstream(file) << "x";
    MailError e = mail_error_of([&] { send_mail(maildir_settings(file + "/Maildir"), sample()); });
    assert_false(e.permanent());
    assert_contains(e.what(), "cannot deliver into Maildir " + file + "/Maildir");
}

// ---- SMTP --------------------------------------------------------------------------------

void smtp_delivery(void**) {
    if (!smtpd.running()) fail_msg("aiosmtpd is not running (python3-aiosmtpd from make deps)");
    MailMessage m = sample("smtp1@example.jp");
    send_mail(smtp_settings(smtpd.port), m);
    const std::string text = smtpd_mail_for("smtp1@example.jp");
    assert_false(text.empty());
    const Parsed p = parse(text);
    assert_contains(text, "X-MailFrom: noreply@bank.example");
    assert_string_equal(decode_words(p.header("Subject")).c_str(), m.subject.c_str());
    assert_string_equal(body_text(p).c_str(), m.body.c_str());
}

void smtp_starttls_and_smtps(void**) {
    if (!smtpd_starttls.running() || !smtpd_smtps.running())
        fail_msg("aiosmtpd is not running (python3-aiosmtpd from make deps)");
    // This relay refuses MAIL FROM before STARTTLS, so a mail that arrives went
    // through TLS; the relay's certificate is checked against ca_file.
    MailSettings s = smtp_settings(smtpd_starttls.port);
    s.ca_file = tls_cert;
    send_mail(s, sample("starttls@example.jp"));
    assert_false(smtpd_mail_for("starttls@example.jp").empty());

    MailSettings implicit = s;
    implicit.relay = "smtps://127.0.0.1:" + std::to_string(smtpd_smtps.port);
    send_mail(implicit, sample("smtps@example.jp"));
    assert_false(smtpd_mail_for("smtps@example.jp").empty());

    // Without the CA bundle the self-signed certificate is refused, and the
    // message says so; the mail waits (the configuration must change).
    for (MailSettings* m : {&s, &implicit}) {
        m->ca_file.clear();
        MailError e = mail_error_of([&] { send_mail(*m, sample("never@example.jp")); });
        assert_true(e.kind() == MailError::Kind::unreachable);
        assert_contains(e.what(), "TLS with SMTP relay 127.0.0.1:");
        assert_contains(e.what(), "certificate");
    }
    assert_true(smtpd_mail_for("never@example.jp").empty());

    // tls_verify off: still encrypted, not checked.
    s.tls_verify = false;
    send_mail(s, sample("unverified@example.jp"));
    assert_false(smtpd_mail_for("unverified@example.jp").empty());
}

void smtp_refusals(void**) {
    if (!smtpd.running()) fail_msg("aiosmtpd is not running (python3-aiosmtpd from make deps)");
    const MailSettings s = smtp_settings(smtpd.port);
    MailError e = mail_error_of([&] { send_mail(s, sample("nobody@example.jp")); });
    assert_true(e.permanent());
    assert_contains(e.what(), "SMTP relay 127.0.0.1:" + std::to_string(smtpd.port) +
                                  " refused RCPT TO:<nobody@example.jp>: 550 5.1.1");
    assert_contains(e.what(), "User unknown");

    e = mail_error_of([&] { send_mail(s, sample("later@example.jp")); });
    assert_false(e.permanent());
    assert_true(e.kind() == MailError::Kind::temporary);
    assert_contains(e.what(), "refused RCPT TO:<later@example.jp>: 451 4.3.0 Mailbox busy");
}

void smtp_relay_down(void**) {
    const int port = free_port();
    const auto t0 = std::chrono::steady_clock::now();
    MailError e = mail_error_of([&] { send_mail(smtp_settings(port), sample()); });
    assert_true(elapsed_ms(t0) < 2000);
    assert_true(e.kind() == MailError::Kind::unreachable);
    assert_false(e.permanent());
    assert_string_equal(
        e.what(),
        ("cannot connect to SMTP relay 127.0.0.1:" + std::to_string(port) + ": Connection refused")
            .c_str());

    // A relay that takes the connection and never says a word.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    assert_int_equal(listen(fd, 4), 0);
    MailSettings s = smtp_settings(ntohs(a.sin_port));
    s.timeout_ms = 700;
    const auto t1 = std::chrono::steady_clock::now();
    e = mail_error_of([&] { send_mail(s, sample()); });
    const long took = elapsed_ms(t1);
    close(fd);
    assert_true(took >= 600 && took < 3000);
    assert_true(e.kind() == MailError::Kind::unreachable);
    assert_contains(e.what(), "did not answer within 700 ms (waiting for its greeting)");

    // A relay URI that is not one.
    s.relay = "http://127.0.0.1:25";
    assert_contains(mail_error_of([&] { send_mail(s, sample()); }).what(),
                    "is not smtp://host:port, smtps://host:port or maildir:/path");
}

// ---- templates ---------------------------------------------------------------------------

MailFields fields() {
    MailFields f;
    f.to = "user01@example.jp";
    f.user_id = "user01";
    f.code = "042917";
    f.minutes = 30;
    f.until = 1795663200 + 3600;  // 13:20 in Tokyo
    f.failures = 6;
    f.expiry = 1827241199;  // 2027-11-26 23:59:59 in Tokyo
    f.portal_url = "https://bank.example/certgate/";
    f.helpdesk = {"ろうきんインターネットバンキング（団体向け）ヘルプデスク", "0120-609-575",
                  "9:00～18:00（休日を除く月曜日～金曜日）"};
    return f;
}

// Composes, checks it goes through format_mail, and returns it.
MailMessage composed(MailKind kind, Language lang, const MailFields& f = fields()) {
    MailMessage m = compose_mail(kind, lang, f);
    assert_string_equal(m.to.c_str(), f.to.c_str());
    format_mail(maildir_settings("/x"), m);
    assert_false(contains(m.body, "{{"));
    assert_false(contains(m.body, "\n\n\n"));  // no holes left by empty sections
    return m;
}

void templates_auth_code(void**) {
    MailMessage ja = composed(MailKind::auth_code, Language::ja);
    assert_string_equal(ja.subject.c_str(), "【賃金控除事務支援システム】認証コードのお知らせ");
    assert_contains(ja.body, "ユーザーID：user01 様");
    assert_contains(ja.body, "認証コード：042917");
    assert_contains(ja.body, "30分");
    assert_contains(ja.body, "お心当たりのない場合");
    assert_contains(ja.body, "ろうきんインターネットバンキング（団体向け）ヘルプデスク");
    assert_contains(ja.body, "電話 0120-609-575");
    assert_contains(ja.body, "受付時間 9:00～18:00");

    MailMessage en = composed(MailKind::auth_code, Language::en);
    assert_contains(en.subject, "Your authentication code");
    assert_contains(en.body, "Authentication code: 042917");
    assert_contains(en.body, "30 minutes");
    assert_contains(en.body, "If you did not ask for this code");
    assert_contains(en.body, "Phone 0120-609-575");

    // Without a help-desk phone or hours, those lines are left out.
    MailFields f = fields();
    f.helpdesk = {};
    MailMessage bare = composed(MailKind::auth_code, Language::ja, f);
    assert_contains(bare.body, "操作に関するお問合せ：ヘルプデスク");
    assert_false(contains(bare.body, "電話"));
    assert_false(contains(bare.body, "受付時間"));
}

void templates_lock_and_block(void**) {
    MailMessage ja = composed(MailKind::locked, Language::ja);
    assert_contains(ja.subject, "ログイン不可（ロック）");
    assert_contains(ja.body, "連続して6回間違えた");
    assert_contains(ja.body, "ロック解除日時：2026年11月26日 13:20");
    MailMessage en = composed(MailKind::locked, Language::en);
    assert_contains(en.body, "wrongly 6 times in a row");
    assert_contains(en.body, "Locked until: 13:20 on 26 November 2026 (UTC+09:00)");

    // The time zone is the configured one.
    MailFields f = fields();
    f.timezone = "Europe/London";
    assert_contains(composed(MailKind::locked, Language::en, f).body,
                    "Locked until: 04:20 on 26 November 2026 (UTC+00:00)");

    f = fields();
    f.role = Role::general;
    MailMessage general = composed(MailKind::blocked, Language::ja, f);
    assert_contains(general.subject, "ログイン不可（閉塞）");
    assert_contains(general.body, "団体のマスターユーザーにお問い合わせください");
    assert_false(contains(general.body, "労金"));
    f.role = Role::master;
    MailMessage master = composed(MailKind::blocked, Language::ja, f);
    assert_contains(master.body, "お取引の労金へお問い合わせください");
    assert_false(contains(master.body, "マスターユーザーにお問い合わせ"));
    assert_contains(composed(MailKind::blocked, Language::en, f).body, "labour bank");
    f.role = Role::general;
    assert_contains(composed(MailKind::blocked, Language::en, f).body,
                    "the master user of your organisation");
}

void templates_expiry(void**) {
    MailMessage soon = composed(MailKind::expiry_soon, Language::ja);
    assert_string_equal(soon.subject.c_str(),
                        "【賃金控除事務支援システム】電子証明書の有効期限のお知らせ");
    assert_contains(soon.body, "有効期限：2027年11月26日");
    assert_contains(soon.body, "https://bank.example/certgate/");
    assert_contains(composed(MailKind::expiry_soon, Language::en).body,
                    "Valid until: 26 November 2027");

    MailMessage gone = composed(MailKind::expired, Language::ja);
    assert_contains(gone.subject, "有効期限切れのお知らせ");
    assert_contains(gone.body, "有効期限（2027年11月26日）が過ぎた");
    assert_contains(gone.body, "再発行");
    MailMessage gone_en = composed(MailKind::expired, Language::en);
    assert_contains(gone_en.body, "expired at the end of 26 November 2027");

    // Without a portal URL the mail points at the login screen's button.
    MailFields f = fields();
    f.portal_url.clear();
    assert_contains(composed(MailKind::expired, Language::ja, f).body, "［電子証明書発行］ボタン");
}

void templates_refuse_missing_fields(void**) {
    MailFields f = fields();
    f.code.clear();
    assert_contains(
        mail_error_of([&] { compose_mail(MailKind::auth_code, Language::ja, f); }).what(),
        "the auth_code mail needs the code");
    f = fields();
    f.until = 0;
    assert_contains(mail_error_of([&] { compose_mail(MailKind::locked, Language::en, f); }).what(),
                    "needs the time the lock lifts");
    f = fields();
    f.expiry = 0;
    assert_contains(mail_error_of([&] { compose_mail(MailKind::expired, Language::en, f); }).what(),
                    "needs the certificate's expiry");
}

// ---- outbox ------------------------------------------------------------------------------

void backoff_doubles_up_to_30_minutes(void**) {
    const int64_t want[] = {30, 60, 120, 240, 480, 960, 1800, 1800};
    for (int i = 0; i < 8; ++i) assert_int_equal(outbox_backoff(i + 1), want[i]);
    assert_int_equal(outbox_backoff(0), 30);
    assert_int_equal(outbox_backoff(1000), 1800);
}

int count_events(Store& s, const std::string& kind) {
    int n = 0;
    for (auto& e : s.events_since(0, 100000))
        if (e.kind == kind) ++n;
    return n;
}

void outbox_sends_once(void**) {
    auto store = open_store(fresh_dir("o") + ".db", true);
    const std::string md = fresh_dir("omd");
    const int64_t id = queue_mail(*store, sample(), "user01", "user01");

    OutboxResult r = deliver_outbox(*store, maildir_settings(md), fake_now, 10);
    assert_int_equal(r.sent, 1);
    assert_int_equal(r.retried + r.failed, 0);
    r = deliver_outbox(*store, maildir_settings(md), fake_now, 10);
    assert_int_equal(r.sent + r.retried + r.failed, 0);

    auto sent = store->list_mails(MailState::sent);
    assert_int_equal(sent.size(), 1);
    assert_int_equal(sent[0].id, id);
    assert_int_equal(sent[0].attempts, 1);
    auto files = files_in(md + "/new");
    assert_int_equal(files.size(), 1);
    const Parsed p = parse(read_file(files[0]));
    assert_string_equal(p.header("Message-ID").c_str(),
                        ("<certgate.outbox." + std::to_string(id) + "." +
                         std::to_string(fake_now.load()) + "@bank.example>")
                            .c_str());
    assert_string_equal(p.header("Date").c_str(), "Thu, 26 Nov 2026 03:20:00 +0000");
    assert_int_equal(count_events(*store, "mail.queued"), 1);
    assert_int_equal(count_events(*store, "mail.sent"), 1);

    // A bad recipient never enters the outbox.
    assert_true(mail_error_of([&] {
                    queue_mail(*store, sample("x@y\r\nBcc: z@w"), "user01", "user01");
                }).permanent());
    assert_int_equal(store->list_mails().size(), 1);
}

void outbox_relay_down_retries_later(void**) {
    const std::string path = fresh_dir("o") + ".db";
    auto store = open_store(path, true);
    const int64_t a = queue_mail(*store, sample("a@example.jp"), "user01", "user01");
    const int64_t b = queue_mail(*store, sample("b@example.jp"), "user02", "user02");
    const int64_t t0 = fake_now;

    MailSettings down = smtp_settings(free_port());
    OutboxResult r = deliver_outbox(*store, down, t0, 10);
    // The relay is down: the first mail is retried, the batch stops there.
    assert_int_equal(r.retried, 1);
    assert_int_equal(r.sent + r.failed, 0);
    auto queued = store->list_mails(MailState::queued);
    assert_int_equal(queued.size(), 2);
    assert_int_equal(queued[0].id, a);
    assert_int_equal(queued[0].attempts, 1);
    assert_int_equal(queued[0].next_attempt_at, t0 + 30);
    assert_contains(queued[0].last_error, "cannot connect to SMTP relay");
    assert_contains(queued[0].last_error, "Connection refused");
    assert_int_equal(queued[1].id, b);
    assert_int_equal(queued[1].attempts, 0);
    assert_int_equal(count_events(*store, "mail.failed"), 1);

    // Next run: a is not due yet, b gets its first try; then a's second try
    // waits twice as long.
    r = deliver_outbox(*store, down, t0, 10);
    assert_int_equal(r.retried, 1);
    fake_now = t0 + 30;
    r = deliver_outbox(*store, down, fake_now, 10);
    assert_int_equal(r.retried, 1);
    queued = store->list_mails(MailState::queued);
    assert_int_equal(queued[0].attempts, 2);
    assert_int_equal(queued[0].next_attempt_at, t0 + 30 + 60);

    // The relay is back: both go, once each.
    const std::string md = fresh_dir("omd");
    fake_now = t0 + 1000;
    r = deliver_outbox(*store, maildir_settings(md), fake_now, 10);
    assert_int_equal(r.sent, 2);
    assert_int_equal(files_in(md + "/new").size(), 2);
    assert_int_equal(store->list_mails(MailState::sent).size(), 2);
    fake_now = t0;
}

// Issue 13.7: the retries end; the mail is failed with its reason.
void outbox_gives_up_after_max_attempts(void**) {
    auto store = open_store(fresh_dir("o") + ".db", true);
    const int64_t id = queue_mail(*store, sample("a@example.jp"), "user01", "user01");
    const int64_t t0 = fake_now;
    MailSettings down = smtp_settings(free_port());
    for (int i = 1; i <= kOutboxMaxAttempts; ++i) {
        deliver_outbox(*store, down, fake_now, 10);
        auto m = store->find_mail(id);
        assert_int_equal(m->attempts, i);
        if (i < kOutboxMaxAttempts) {
            assert_int_equal(static_cast<int>(m->state), static_cast<int>(MailState::queued));
            fake_now = m->next_attempt_at;
        } else {
            assert_int_equal(static_cast<int>(m->state), static_cast<int>(MailState::failed));
            assert_contains(m->last_error, "gave up after 8 tries");
            assert_contains(m->last_error, "Connection refused");
        }
    }
    fake_now = fake_now + 86400;
    assert_int_equal(deliver_outbox(*store, down, fake_now, 10).retried, 0);
    assert_int_equal(store->find_mail(id)->attempts, kOutboxMaxAttempts);
    fake_now = t0;
}

void outbox_permanent_and_temporary_refusals(void**) {
    if (!smtpd.running()) fail_msg("aiosmtpd is not running (python3-aiosmtpd from make deps)");
    auto store = open_store(fresh_dir("o") + ".db", true);
    queue_mail(*store, sample("nobody@example.jp"), "user01", "user01");
    queue_mail(*store, sample("later@example.jp"), "user02", "user02");
    queue_mail(*store, sample("fine@example.jp"), "user03", "user03");

    // A refusal about one mail does not hold up the others.
    OutboxResult r = deliver_outbox(*store, smtp_settings(smtpd.port), fake_now, 10);
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.retried, 1);
    assert_int_equal(r.sent, 1);
    auto failed = store->list_mails(MailState::failed);
    assert_int_equal(failed.size(), 1);
    assert_string_equal(failed[0].to.c_str(), "nobody@example.jp");
    assert_contains(failed[0].last_error, "550 5.1.1");
    auto queued = store->list_mails(MailState::queued);
    assert_int_equal(queued.size(), 1);
    assert_string_equal(queued[0].to.c_str(), "later@example.jp");
    assert_int_equal(queued[0].next_attempt_at, fake_now + 30);
    assert_false(smtpd_mail_for("fine@example.jp").empty());
    bool gave_up = false;
    for (auto& e : store->events_since(0, 1000))
        if (e.kind == "mail.failed" && contains(e.detail, "gave up")) gave_up = true;
    assert_true(gave_up);
}

void outbox_lease_of_a_crashed_sender(void**) {
    auto store = open_store(fresh_dir("o") + ".db", true);
    const std::string md = fresh_dir("omd");
    queue_mail(*store, sample(), "user01", "user01");
    // A process claims the mail and dies before sending it.
    assert_int_equal(store->claim_due_mails(1, kOutboxLeaseSeconds).size(), 1);

    const int64_t t0 = fake_now;
    OutboxResult r = deliver_outbox(*store, maildir_settings(md), t0, 10);
    assert_int_equal(r.sent, 0);
    fake_now = t0 + kOutboxLeaseSeconds - 1;
    assert_int_equal(deliver_outbox(*store, maildir_settings(md), fake_now, 10).sent, 0);
    fake_now = t0 + kOutboxLeaseSeconds;
    assert_int_equal(deliver_outbox(*store, maildir_settings(md), fake_now, 10).sent, 1);
    assert_int_equal(files_in(md + "/new").size(), 1);
    assert_int_equal(store->list_mails(MailState::sent)[0].attempts, 2);
    fake_now = t0;
}

// An auth code is queued already claimed and sent at once: an outbox run of
// another worker in between finds nothing to take (it used to be able to
// claim the fresh mail first, and the page then said "not sent").
void send_now_is_never_taken_by_an_outbox_run(void**) {
    auto store = open_store(fresh_dir("o") + ".db", true);
    const std::string md = fresh_dir("omd");
    const int64_t t0 = fake_now;
    Mail held = store->enqueue_claimed_mail("a@example.jp", "s", "b", "user01", "user01",
                                            kOutboxLeaseSeconds);
    assert_true(held.state == MailState::sending);
    assert_int_equal(held.attempts, 1);
    assert_int_equal(deliver_outbox(*store, maildir_settings(md), t0, 10).sent, 0);
    assert_int_equal(store->claim_due_mails(10, 60).size(), 0);
    assert_int_equal(count_events(*store, "mail.queued"), 1);
    // Its sender died: after the lease the outbox sends it.
    fake_now = t0 + kOutboxLeaseSeconds;
    assert_int_equal(deliver_outbox(*store, maildir_settings(md), fake_now, 10).sent, 1);
    fake_now = t0;

    // send_mail_now: sent at once, once.
    int64_t id = 0;
    std::string why;
    assert_true(send_mail_now(*store, maildir_settings(md), sample("b@example.jp"), "user02",
                              "user02", t0, &id, &why));
    assert_true(id > held.id);
    assert_int_equal(deliver_outbox(*store, maildir_settings(md), t0, 10).sent, 0);
    assert_int_equal(files_in(md + "/new").size(), 2);
    auto mail = store->find_mail(id);
    assert_true(mail && mail->state == MailState::sent && mail->attempts == 1);

    // The relay down: the mail stays in the outbox with its backoff.
    assert_false(send_mail_now(*store, smtp_settings(free_port()), sample("c@example.jp"), "user03",
                               "user03", t0, &id, &why));
    assert_contains(why, "cannot connect to SMTP relay");
    mail = store->find_mail(id);
    assert_true(mail && mail->state == MailState::queued);
    assert_int_equal(mail->next_attempt_at, t0 + 30);
    // A bad recipient never enters the outbox.
    const size_t before = store->list_mails().size();
    assert_true(mail_error_of([&] {
                    send_mail_now(*store, maildir_settings(md), sample("x@y\r\nBcc: z@w"), "u", "u",
                                  t0, nullptr, nullptr);
                }).permanent());
    assert_int_equal(store->list_mails().size(), before);
}

void outbox_two_workers_send_each_mail_once(void**) {
    const std::string path = fresh_dir("o") + ".db";
    const int kMails = 60;
    {
        auto store = open_store(path, true);
        for (int i = 0; i < kMails; ++i)
            queue_mail(*store, sample("u" + std::to_string(i) + "@example.jp"), "test", "test");
    }
    const std::string md = fresh_dir("omd");
    std::atomic<int> sent{0}, other{0};
    std::atomic<int> errors{0};
    auto worker = [&] {
        try {
            auto store = open_store(path, false);  // one Store per thread
            for (int round = 0; round < 10; ++round) {
                OutboxResult r = deliver_outbox(*store, maildir_settings(md), fake_now, 7);
                sent += r.sent;
                other += r.retried + r.failed;
            }
        } catch (const std::exception& e) {
            fprintf(stderr, "worker: %s\n", e.what());
            ++errors;
        }
    };
    std::thread t1(worker), t2(worker);
    t1.join();
    t2.join();
    assert_int_equal(errors.load(), 0);
    assert_int_equal(sent.load(), kMails);
    assert_int_equal(other.load(), 0);

    auto files = files_in(md + "/new");
    assert_int_equal(files.size(), kMails);
    std::set<std::string> recipients, ids;
    for (auto& f : files) {
        const Parsed p = parse(read_file(f));
        recipients.insert(p.header("To"));
        ids.insert(p.header("Message-ID"));
    }
    assert_int_equal(recipients.size(), kMails);
    assert_int_equal(ids.size(), kMails);
    auto store = open_store(path, false);
    assert_int_equal(store->list_mails(MailState::sent).size(), kMails);
    assert_int_equal(count_events(*store, "mail.sent"), kMails);
}

void outbox_through_smtp(void**) {
    if (!smtpd.running()) fail_msg("aiosmtpd is not running (python3-aiosmtpd from make deps)");
    auto store = open_store(fresh_dir("o") + ".db", true);
    MailMessage m = compose_mail(MailKind::auth_code, Language::ja, [] {
        MailFields f = fields();
        f.to = "outbox-smtp@example.jp";
        return f;
    }());
    queue_mail(*store, m, "user01", "user01");
    assert_int_equal(deliver_outbox(*store, smtp_settings(smtpd.port), fake_now, 10).sent, 1);
    const std::string text = smtpd_mail_for("outbox-smtp@example.jp");
    assert_false(text.empty());
    const Parsed p = parse(text);
    assert_string_equal(decode_words(p.header("Subject")).c_str(),
                        "【賃金控除事務支援システム】認証コードのお知らせ");
    assert_contains(body_text(p), "認証コード：042917");
}

// ---- expiry notices (R3) -----------------------------------------------------------------

const int64_t kDay = 24 * 60 * 60;

// An organisation with certificates in every state the sweep must tell apart.
std::unique_ptr<Store> notice_store(const std::string& path) {
    auto s = open_store(path, true);
    Organisation o;
    o.id = "org1";
    o.name = "Org One";
    s->add_org(o, "test");
    auto user = [&](const std::string& id, Role role, const std::string& mail) {
        User u;
        u.id = id;
        u.org = "org1";
        u.role = role;
        u.mail = mail;
        u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        u.state = UserState::active;
        s->add_user(u, "test");
    };
    user("master01", Role::master, "master01@example.jp");
    user("user0001", Role::general, "user0001@example.jp");
    user("user0002", Role::general, "");  // no address: passed over
    auto cert = [&](const std::string& serial, const std::string& user_id, int64_t not_after,
                    bool supersede = false) {
        Certificate c;
        c.serial = serial;
        c.user_id = user_id;
        c.not_before = not_after - 366 * kDay;
        c.not_after = not_after;
        s->add_certificate(c, supersede, "test");
    };
    const int64_t now = fake_now;
    cert("AA01", "master01", now + 10 * kDay);       // expires soon
    cert("AA02", "master01", now + 60 * kDay);       // not yet
    cert("AA03", "user0001", now - 2 * kDay);        // superseded by AA04
    cert("AA04", "user0001", now - 1 * kDay, true);  // expired yesterday
    cert("AA05", "user0002", now + 5 * kDay);        // no address
    cert("AA06", "user0001", now + 5 * kDay);        // revoked
    s->revoke_certificate("AA06", "keyCompromise", "test");
    cert("AA07", "master01", now - 100 * kDay);  // expired long ago
    return s;
}

void expiry_notices_once_each(void**) {
    auto store = notice_store(fresh_dir("n") + ".db");
    NoticeSettings ns;
    ns.portal_url = "https://bank.example/certgate/";
    NoticeResult r = queue_expiry_notices(*store, ns, fake_now, "certgate");
    assert_int_equal(r.expiring, 1);
    assert_int_equal(r.expired, 1);
    assert_int_equal(r.problems.size(), 0);
    r = queue_expiry_notices(*store, ns, fake_now, "certgate");
    assert_int_equal(r.expiring + r.expired, 0);

    auto mails = store->list_mails();
    assert_int_equal(mails.size(), 2);
    assert_string_equal(mails[0].to.c_str(), "master01@example.jp");
    assert_contains(mails[0].subject, "電子証明書の有効期限のお知らせ");
    assert_contains(mails[0].body, "https://bank.example/certgate/");
    assert_string_equal(mails[1].to.c_str(), "user0001@example.jp");
    assert_contains(mails[1].subject, "有効期限切れのお知らせ");
    assert_int_equal(store->find_certificate("AA01")->notices, kNoticeExpiring);
    assert_int_equal(store->find_certificate("AA04")->notices, kNoticeExpired);
    assert_int_equal(count_events(*store, "cert.notice"), 2);

    // Eleven days on, AA01 has expired too: its second and last mail.
    const int64_t t0 = fake_now;
    fake_now = t0 + 11 * kDay;
    r = queue_expiry_notices(*store, ns, fake_now, "certgate");
    assert_int_equal(r.expiring, 0);
    assert_int_equal(r.expired, 1);
    assert_int_equal(queue_expiry_notices(*store, ns, fake_now, "certgate").expired, 0);
    assert_int_equal(store->list_mails().size(), 3);

    const std::string md = fresh_dir("nmd");
    assert_int_equal(deliver_outbox(*store, maildir_settings(md), fake_now, 10).sent, 3);
    assert_int_equal(files_in(md + "/new").size(), 3);
    fake_now = t0;
}

// certgate_language at the http level: en gives English notices; auto gives
// both languages in one mail, Japanese first.
void expiry_notices_in_english_or_both(void**) {
    auto store = notice_store(fresh_dir("n") + ".db");
    NoticeSettings ns;
    ns.language = Language::en;
    queue_expiry_notices(*store, ns, fake_now, "certgate");
    auto mails = store->list_mails();
    assert_int_equal(mails.size(), 2);
    assert_contains(mails[0].subject, "certificate");
    assert_false(contains(mails[0].subject, "電子証明書"));
    assert_contains(mails[0].body, "Valid until:");

    auto store2 = notice_store(fresh_dir("n") + ".db");
    NoticeSettings both;
    both.bilingual = true;
    queue_expiry_notices(*store2, both, fake_now, "certgate");
    mails = store2->list_mails();
    assert_int_equal(mails.size(), 2);
    const Mail& m = mails[0];
    assert_contains(m.subject, "電子証明書の有効期限のお知らせ / ");
    const size_t ja = m.body.find("有効期限：");
    const size_t divider = m.body.find("English follows");
    const size_t en = m.body.find("Valid until:");
    assert_true(ja != std::string::npos && divider != std::string::npos && en != std::string::npos);
    assert_true(ja < divider && divider < en);
    // Both go out as one well-formed mail.
    const std::string md = fresh_dir("nmd");
    assert_int_equal(deliver_outbox(*store2, maildir_settings(md), fake_now, 10).sent, 2);
}

void expiry_notices_from_two_sweepers(void**) {
    const std::string path = fresh_dir("n") + ".db";
    notice_store(path);
    std::atomic<int> queued{0}, errors{0};
    auto sweeper = [&] {
        try {
            auto store = open_store(path, false);
            for (int i = 0; i < 5; ++i) {
                NoticeResult r = queue_expiry_notices(*store, NoticeSettings(), fake_now, "worker");
                queued += r.expiring + r.expired;
            }
        } catch (const std::exception& e) {
            fprintf(stderr, "sweeper: %s\n", e.what());
            ++errors;
        }
    };
    std::thread a(sweeper), b(sweeper), c(sweeper);
    a.join();
    b.join();
    c.join();
    assert_int_equal(errors.load(), 0);
    assert_int_equal(queued.load(), 2);
    assert_int_equal(open_store(path, false)->list_mails().size(), 2);
}

}  // namespace

int main() {
    char tmpl[] = "/tmp/certgate-mail-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    dir = tmpl;
    mail_global_init();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(headers_and_body),
        cmocka_unit_test(long_subject_folds_between_characters),
        cmocka_unit_test(header_injection_refused),
        cmocka_unit_test(one_address_rule),
        cmocka_unit_test(maildir_delivery),
        cmocka_unit_test(smtp_delivery),
        cmocka_unit_test(smtp_starttls_and_smtps),
        cmocka_unit_test(smtp_refusals),
        cmocka_unit_test(smtp_relay_down),
        cmocka_unit_test(templates_auth_code),
        cmocka_unit_test(templates_lock_and_block),
        cmocka_unit_test(templates_expiry),
        cmocka_unit_test(templates_refuse_missing_fields),
        cmocka_unit_test(backoff_doubles_up_to_30_minutes),
        cmocka_unit_test(outbox_sends_once),
        cmocka_unit_test(outbox_relay_down_retries_later),
        cmocka_unit_test(outbox_gives_up_after_max_attempts),
        cmocka_unit_test(outbox_permanent_and_temporary_refusals),
        cmocka_unit_test(outbox_lease_of_a_crashed_sender),
        cmocka_unit_test(send_now_is_never_taken_by_an_outbox_run),
        cmocka_unit_test(outbox_two_workers_send_each_mail_once),
        cmocka_unit_test(outbox_through_smtp),
        cmocka_unit_test(expiry_notices_once_each),
        cmocka_unit_test(expiry_notices_in_english_or_both),
        cmocka_unit_test(expiry_notices_from_two_sweepers),
    };
    const int failed = cmocka_run_group_tests(tests, start_smtpd, stop_smtpd);
    if (failed == 0 && std::system(("rm -rf '" + dir + "'").c_str()) != 0)
        fprintf(stderr, "could not remove %s\n", dir.c_str());
    return failed;
}
