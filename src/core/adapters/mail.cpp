// The message format (RFC 5322, RFC 2045 base64 body, RFC 2047 subject) and
// its delivery: SMTP through libcurl, or a file in a Maildir.

#include "core/adapters/mail.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "core/base/encoding.hpp"

namespace certgate {

namespace {

// ---- message format ---------------------------------------------------------------

bool is_ascii_text(const std::string& s) {
    for (unsigned char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

// CR and LF would start a new header (header injection); other control
// characters have no business in a header either.
void check_header_value(const char* what, const std::string& value) {
    for (unsigned char c : value)
        if (c < 0x20 || c == 0x7f)
            throw MailError(MailError::Kind::permanent,
                            std::string("mail ") + what +
                                " holds a control character (CR, LF or similar); refused");
}

void check_address(const char* what, const std::string& addr) {
    check_header_value(what, addr);
    MailAddressProblem problem = check_mail_address(addr);
    if (problem != MailAddressProblem::none)
        throw MailError(MailError::Kind::permanent,
                        std::string("mail ") + what + " address \"" + addr +
                            "\" is not of the form user@domain: " +
                            mail_address_message(problem, Language::en));
}

struct Mailbox {
    std::string display;  // may be empty
    std::string address;
};

// "noreply@bank.example" or "Name <noreply@bank.example>".
Mailbox parse_mailbox(const char* what, const std::string& text) {
    check_header_value(what, text);
    Mailbox m;
    const auto lt = text.rfind('<');
    if (lt != std::string::npos && !text.empty() && text.back() == '>') {
        m.address = text.substr(lt + 1, text.size() - lt - 2);
        m.display = text.substr(0, lt);
        while (!m.display.empty() && m.display.back() == ' ') m.display.pop_back();
        if (m.display.size() >= 2 && m.display.front() == '"' && m.display.back() == '"')
            m.display = m.display.substr(1, m.display.size() - 2);
    } else {
        m.address = text;
    }
    check_address(what, m.address);
    return m;
}

// RFC 2047 encoded words of at most 39 bytes each (52 base64 characters), cut
// only between UTF-8 characters, so "Subject: " plus a word stays within 76.
std::string encode_words(const std::string& text, size_t first_line_used) {
    if (is_ascii_text(text) && first_line_used + text.size() <= 76) return text;
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        size_t n = std::min<size_t>(39, text.size() - i);
        while (n > 0 && i + n < text.size() &&
               (static_cast<unsigned char>(text[i + n]) & 0xc0) == 0x80)
            --n;
        if (n == 0) n = std::min<size_t>(39, text.size() - i);  // not UTF-8: cut anyway
        if (!out.empty()) out += "\r\n ";
        out += "=?UTF-8?B?" + base64_encode(text.substr(i, n)) + "?=";
        i += n;
    }
    return out;
}

std::string format_mailbox(const Mailbox& m) {
    if (m.display.empty()) return m.address;
    std::string name;
    if (is_ascii_text(m.display)) {
        name = "\"";
        for (char c : m.display) {
            if (c == '"' || c == '\\') name += '\\';
            name += c;
        }
        name += "\"";
    } else {
        name = encode_words(m.display, 200);  // always encoded
    }
    return name + " <" + m.address + ">";
}

std::string rfc5322_date(time_t t) {
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char buf[64];
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string random_hex(size_t bytes) {
    unsigned char buf[32];
    if (bytes > sizeof buf) bytes = sizeof buf;
    if (RAND_bytes(buf, static_cast<int>(bytes)) != 1)
        throw MailError(MailError::Kind::temporary, "no random bytes for a Message-ID");
    return hex_encode(std::string_view(reinterpret_cast<const char*>(buf), bytes));
}

std::string crlf_lines(const std::string& text) {
    std::string out;
    out.reserve(text.size() + text.size() / 20);
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r') {
            out += "\r\n";
            if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
        } else if (text[i] == '\n') {
            out += "\r\n";
        } else {
            out += text[i];
        }
    }
    return out;
}

// ---- the relay URI ------------------------------------------------------------------

struct Relay {
    enum Type { smtp, smtps, maildir } type = smtp;
    std::string url;      // for curl, as configured
    std::string display;  // host:port, or the Maildir path, never a password
};

Relay parse_relay(const std::string& uri) {
    Relay r;
    r.url = uri;
    if (uri.rfind("maildir:", 0) == 0 && uri.size() > 8) {
        r.type = Relay::maildir;
        r.display = uri.substr(8);
        return r;
    }
    std::string rest;
    if (uri.rfind("smtp://", 0) == 0) {
        rest = uri.substr(7);
    } else if (uri.rfind("smtps://", 0) == 0) {
        r.type = Relay::smtps;
        rest = uri.substr(8);
    } else {
        throw MailError(MailError::Kind::unreachable,
                        "certgate_mail \"" + uri +
                            "\" is not smtp://host:port, smtps://host:port or maildir:/path");
    }
    rest = rest.substr(0, rest.find('/'));
    const auto at = rest.rfind('@');
    if (at != std::string::npos) rest = rest.substr(at + 1);
    if (rest.empty())
        throw MailError(MailError::Kind::unreachable,
                        "certgate_mail \"" + uri + "\" names no host");
    const auto bracket = rest.rfind(']');  // [IPv6]:port
    if (rest.find(':', bracket == std::string::npos ? 0 : bracket) == std::string::npos)
        rest += r.type == Relay::smtps ? ":465" : ":25";
    r.display = rest;
    return r;
}

// ---- SMTP through libcurl -----------------------------------------------------------

// What the relay said, collected from curl's protocol trace, so an error names
// the step and quotes the relay's answer.
struct SmtpTrace {
    std::string command = "the connection";  // the last command sent
    std::string reply;                       // the last complete reply, lines joined
    std::string partial;                     // lines of a multi-line reply so far
    bool got_reply = false;
    bool data_started = false;  // 354 seen: the next reply is about the message
    // The first refusal (4xx, 5xx), kept because curl goes on to send QUIT.
    int refused_code = 0;
    std::string refused_step;
    std::string refused_reply;
};

int on_trace(CURL*, curl_infotype type, char* data, size_t size, void* userp) {
    auto* t = static_cast<SmtpTrace*>(userp);
    if (type == CURLINFO_HEADER_OUT) {
        std::string line(data, size);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        // AUTH carries the credentials: keep only the verb and mechanism.
        if (line.rfind("AUTH", 0) == 0) line = line.substr(0, line.find(' ', 5));
        t->command = line;
    } else if (type == CURLINFO_HEADER_IN) {
        std::string text(data, size);
        size_t pos = 0;
        while (pos < text.size()) {
            size_t end = text.find('\n', pos);
            std::string line = text.substr(pos, end == std::string::npos ? end : end - pos);
            pos = end == std::string::npos ? text.size() : end + 1;
            while (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            if (!t->partial.empty()) t->partial += " ";
            t->partial += line.size() > 4 && line[3] == '-' ? line.substr(4) : line;
            if (line.size() < 4 || line[3] != '-') {
                t->reply = t->partial;
                t->partial.clear();
                t->got_reply = true;
                const int code = std::atoi(line.substr(0, 3).c_str());
                if (code >= 400 && t->refused_code == 0) {
                    t->refused_code = code;
                    t->refused_step = t->data_started ? "the message" : t->command;
                    t->refused_reply = t->reply;
                }
                if (code == 354) t->data_started = true;
            }
        }
    }
    return 0;
}

struct Upload {
    const std::string* data;
    size_t offset = 0;
};

size_t on_read(char* buffer, size_t size, size_t nitems, void* userp) {
    auto* u = static_cast<Upload*>(userp);
    size_t n = std::min(size * nitems, u->data->size() - u->offset);
    std::copy_n(u->data->data() + u->offset, n, buffer);
    u->offset += n;
    return n;
}

using CurlHandle = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using CurlList = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

std::string errno_text(long err) {
    char buf[128];
    return strerror_r(static_cast<int>(err), buf, sizeof buf);
}

void send_smtp(const Relay& relay, const MailSettings& settings, const std::string& from,
               const std::string& to, const std::string& message) {
    CurlHandle h(curl_easy_init(), curl_easy_cleanup);
    if (!h) throw MailError(MailError::Kind::temporary, "curl_easy_init failed (out of memory?)");
    CURL* c = h.get();
    CurlList rcpt(curl_slist_append(nullptr, ("<" + to + ">").c_str()), curl_slist_free_all);
    if (!rcpt) throw MailError(MailError::Kind::temporary, "curl_slist_append failed");
    const std::string mail_from = "<" + from + ">";
    Upload upload{&message};
    SmtpTrace trace;
    char errbuf[CURL_ERROR_SIZE] = {0};
    const long timeout = settings.timeout_ms > 0 ? settings.timeout_ms : 10000;

    curl_easy_setopt(c, CURLOPT_URL, relay.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // thread-pool threads: no SIGALRM
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    // Each reply, and the QUIT that libcurl sends when it closes (which the
    // overall timeout does not cover), waits at most half the timeout.
    curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, std::max(1L, timeout / 2000));
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, mail_from.c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt.get());
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &upload);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
    curl_easy_setopt(c, CURLOPT_USE_SSL,
                     relay.type == Relay::smtps ? CURLUSESSL_ALL : CURLUSESSL_TRY);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, settings.tls_verify ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, settings.tls_verify ? 2L : 0L);
    if (!settings.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, settings.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_trace);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, &trace);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);  // feeds on_trace only

    const CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) return;
    // The whole message went after 354 and no refusal came back: the relay
    // may have taken it. Sending it again would deliver it twice.
    if (trace.data_started && upload.offset == message.size() && !trace.refused_code &&
        rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST)
        throw MailError(MailError::Kind::uncertain,
                        "SMTP relay " + relay.display + " did not acknowledge the message within " +
                            std::to_string(timeout) +
                            " ms; it may have been delivered, so it is not sent again "
                            "(certgatectl mail retry sends it anyway)");

    long os_errno = 0;
    curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
    const std::string name = "SMTP relay " + relay.display;
    const std::string curl_text = errbuf[0] ? errbuf : curl_easy_strerror(rc);

    switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
            throw MailError(
                MailError::Kind::unreachable,
                "cannot connect to " + name + ": " + (os_errno ? errno_text(os_errno) : curl_text));
        case CURLE_OPERATION_TIMEDOUT:
            throw MailError(
                trace.got_reply ? MailError::Kind::temporary : MailError::Kind::unreachable,
                name + " did not answer within " + std::to_string(timeout) + " ms (waiting " +
                    (trace.got_reply ? "after " + trace.command : "for its greeting") + ")");
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_USE_SSL_FAILED:
            throw MailError(MailError::Kind::unreachable,
                            "TLS with " + name + " failed: " + curl_text +
                                " (check the relay's certificate and the CA bundle)");
        case CURLE_LOGIN_DENIED:
            throw MailError(MailError::Kind::unreachable,
                            name + " refused the login" +
                                (trace.reply.empty() ? "" : ": " + trace.reply) +
                                " (check the user and password in certgate_mail)");
        default:
            break;
    }
    if (trace.refused_code) {
        // 5xx to RCPT or to the message: this mail will never go. A refusal of the
        // greeting, EHLO, STARTTLS, AUTH or MAIL FROM is about the relay or our
        // configuration, and holds up every mail alike.
        const int code = trace.refused_code;
        const std::string& step = trace.refused_step;
        const bool about_mail =
            step == "the message" || step == "DATA" || step.rfind("RCPT", 0) == 0;
        MailError::Kind kind = MailError::Kind::unreachable;
        if (about_mail && code != 421)
            kind = code >= 500 ? MailError::Kind::permanent : MailError::Kind::temporary;
        throw MailError(kind, name + " refused " + step + ": " + trace.refused_reply);
    }
    if (!trace.got_reply)
        throw MailError(MailError::Kind::unreachable, "cannot talk to " + name + ": " + curl_text);
    throw MailError(MailError::Kind::temporary,
                    name + " failed after " + trace.command + ": " + curl_text);
}

// ---- Maildir ------------------------------------------------------------------------

MailError maildir_error(const std::string& dir, const std::string& what) {
    return MailError(MailError::Kind::unreachable,
                     "cannot deliver into Maildir " + dir + ": " + what + ": " + errno_text(errno));
}

void make_dir(const std::string& dir, const std::string& path) {
    if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return;
    throw maildir_error(dir, "mkdir " + path);
}

// The Maildir name: <seconds>.M<microseconds>P<pid>Q<n>.<host>, unique on this
// host; '/' and ':' in the host name are escaped as the spec says.
std::string maildir_name() {
    static std::atomic<unsigned long> counter{0};
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    std::string h;
    for (const char* p = host; *p; ++p) {
        if (*p == '/')
            h += "\\057";
        else if (*p == ':')
            h += "\\072";
        else
            h += *p;
    }
    return std::to_string(tv.tv_sec) + ".M" + std::to_string(tv.tv_usec) + "P" +
           std::to_string(getpid()) + "Q" + std::to_string(++counter) + "." + h;
}

void deliver_maildir(const std::string& dir, const std::string& message) {
    // The Maildir path itself may be missing (tmp/new/cur certainly may be).
    for (size_t pos = 1; (pos = dir.find('/', pos)) != std::string::npos; ++pos)
        make_dir(dir, dir.substr(0, pos));
    make_dir(dir, dir);
    for (const char* sub : {"/tmp", "/new", "/cur"}) make_dir(dir, dir + sub);

    // Local files use LF line ends.
    std::string text;
    text.reserve(message.size());
    for (size_t i = 0; i < message.size(); ++i)
        if (!(message[i] == '\r' && i + 1 < message.size() && message[i + 1] == '\n'))
            text += message[i];

    const std::string name = maildir_name();
    const std::string tmp = dir + "/tmp/" + name;
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw maildir_error(dir, "create " + tmp);
    size_t off = 0;
    while (off < text.size()) {
        ssize_t n = write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            MailError e = maildir_error(dir, "write " + tmp);
            close(fd);
            unlink(tmp.c_str());
            throw e;
        }
        off += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0) {
        MailError e = maildir_error(dir, "fsync " + tmp);
        close(fd);
        unlink(tmp.c_str());
        throw e;
    }
    close(fd);
    const std::string dest = dir + "/new/" + name;
    if (rename(tmp.c_str(), dest.c_str()) != 0) {
        MailError e = maildir_error(dir, "rename into " + dest);
        unlink(tmp.c_str());
        throw e;
    }
    const int dfd = open((dir + "/new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);  // the rename itself is durable once new/ is synced
        close(dfd);
    }
}

}  // namespace

MailAddressProblem check_mail_address(const std::string& addr) {
    if (addr.empty()) return MailAddressProblem::empty;
    if (addr.size() > 254) return MailAddressProblem::too_long;
    const auto at = addr.find('@');
    if (at == std::string::npos || addr.find('@', at + 1) != std::string::npos)
        return MailAddressProblem::no_at;
    const std::string local = addr.substr(0, at), domain = addr.substr(at + 1);

    if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.')
        return MailAddressProblem::local_part;
    char prev = 0;
    for (char c : local) {
        bool atext = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     (c != 0 && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr);
        if (!(atext || (c == '.' && prev != '.'))) return MailAddressProblem::local_part;
        prev = c;
    }

    if (domain.empty() || domain.size() > 253) return MailAddressProblem::domain;
    size_t start = 0;
    for (;;) {
        size_t dot = domain.find('.', start);
        const std::string label =
            domain.substr(start, dot == std::string::npos ? dot : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
            return MailAddressProblem::domain;
        for (char c : label)
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-'))
                return MailAddressProblem::domain;
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return MailAddressProblem::none;
}

std::string mail_address_message(MailAddressProblem problem, Language lang) {
    const bool ja = lang == Language::ja;
    switch (problem) {
        case MailAddressProblem::none:
            return "";
        case MailAddressProblem::empty:
            return ja ? "メールアドレスを入力してください。" : "Enter a mail address.";
        case MailAddressProblem::too_long:
            return ja ? "メールアドレスが長すぎます（254文字まで）。"
                      : "The mail address is too long (at most 254 characters).";
        case MailAddressProblem::no_at:
            return ja ? "メールアドレスの形式が正しくありません。「@」をちょうど1つ含めてください。"
                      : "The mail address is not valid: it must hold exactly one \"@\".";
        case MailAddressProblem::local_part:
            return ja ? "メールアドレスの「@」より前に使えない文字があるか、長すぎます"
                        "（英数字と ! # $ % & ' * + - / = ? ^ _ ` { | } ~ "
                        "と、間の「.」、64文字まで）。"
                      : "The part of the mail address before the \"@\" holds a character that "
                        "is not allowed or is too long (letters, digits, "
                        "! # $ % & ' * + - / = ? ^ _ ` { | } ~ and dots between them, at most 64).";
        case MailAddressProblem::domain:
            return ja ? "メールアドレスの「@」より後（ドメイン）の形式が正しくありません"
                        "（英数字とハイフンを「.」で区切ったもの）。"
                      : "The domain of the mail address (after the \"@\") is not valid "
                        "(letters, digits and hyphens, separated by dots).";
    }
    return "";
}

void mail_global_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            throw MailError(MailError::Kind::unreachable, "curl_global_init failed");
    });
}

std::string format_mail(const MailSettings& settings, const MailMessage& message) {
    Mailbox from;
    try {
        from = parse_mailbox("sender (certgate_mail_from)", settings.from);
    } catch (const MailError& e) {
        // The configuration, not this mail, is wrong: no mail can go until it is fixed.
        throw MailError(MailError::Kind::unreachable, e.what());
    }
    check_address("recipient", message.to);
    check_header_value("subject", message.subject);
    if (!message.message_id.empty()) check_header_value("Message-ID", message.message_id);

    const std::string domain = from.address.substr(from.address.rfind('@') + 1);
    const std::string id = message.message_id.empty() ? "<" + std::to_string(time(nullptr)) + "." +
                                                            random_hex(12) + "@" + domain + ">"
                                                      : message.message_id;

    std::string out;
    out += "Date: " + rfc5322_date(message.date ? message.date : time(nullptr)) + "\r\n";
    out += "From: " + format_mailbox(from) + "\r\n";
    out += "To: " + message.to + "\r\n";
    out += "Subject: " + encode_words(message.subject, 9) + "\r\n";
    out += "Message-ID: " + id + "\r\n";
    out += "MIME-Version: 1.0\r\n";
    out += "Content-Type: text/plain; charset=UTF-8\r\n";
    out += "Content-Transfer-Encoding: base64\r\n";
    out += "\r\n";
    const std::string body = base64_encode(crlf_lines(message.body));
    for (size_t i = 0; i < body.size(); i += 76) out += body.substr(i, 76) + "\r\n";
    return out;
}

void send_mail(const MailSettings& settings, const MailMessage& message) {
    const Relay relay = parse_relay(settings.relay);
    const std::string text = format_mail(settings, message);
    if (relay.type == Relay::maildir) {
        deliver_maildir(relay.display, text);
        return;
    }
    mail_global_init();
    const std::string from = settings.from.substr(settings.from.rfind('<') + 1);
    send_smtp(relay, settings, from.back() == '>' ? from.substr(0, from.size() - 1) : from,
              message.to, text);
}

std::string RelayMailer::message_id_domain() const {
    const std::string& sender = settings_.from;
    const auto lt = sender.rfind('<');
    std::string from = lt == std::string::npos ? sender : sender.substr(lt + 1);
    if (!from.empty() && from.back() == '>') from.pop_back();
    const auto at = from.rfind('@');
    if (at != std::string::npos && at + 1 < from.size()) return from.substr(at + 1);
    return "certgate.invalid";
}

MailSettings mail_settings(const Settings& settings) {
    MailSettings m;
    m.relay = settings.mail;
    m.from = settings.mail_from;
    return m;
}

}  // namespace certgate
