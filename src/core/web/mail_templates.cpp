// The mails' words: one Mustache template per kind and language under
// resources/mail/, the subject on the first line, then a blank line and the
// body. The wording follows the manual (電子証明書の更新・再発行, ユーザー認証, 認証コード入力).

#include <kainjow/mustache.hpp>
#include <string>

#include "core/adapters/ca.hpp"
#include "core/adapters/mail.hpp"
#include "core/web/resources.hpp"

namespace certgate {

namespace {

using kainjow::mustache::data;
using kainjow::mustache::mustache;

const char* kind_name(MailKind kind) {
    switch (kind) {
        case MailKind::auth_code:
            return "auth_code";
        case MailKind::locked:
            return "locked";
        case MailKind::blocked:
            return "blocked";
        case MailKind::expiry_soon:
            return "expiry_soon";
        case MailKind::expired:
            return "expired";
        case MailKind::code_budget:
            return "code_budget";
        case MailKind::self_revoked:
            return "self_revoked";
    }
    return "?";
}

// The template of one kind and language (resources/mail/<kind>.<lang>.mustache):
// {{footer}} closes every mail, the help desk of R18. Sections open and close
// on lines with text, so a section left out leaves no empty line behind.
std::string mail_template(MailKind kind, Language lang) {
    return std::string(embedded_resource(std::string("mail/") + kind_name(kind) + "." +
                                         (lang == Language::ja ? "ja" : "en") + ".mustache"));
}

std::string footer_template(Language lang) {
    return std::string(embedded_resource(lang == Language::ja ? "mail/footer.ja.mustache"
                                                              : "mail/footer.en.mustache"));
}

const char* const kMonths[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};

std::string offset_text(int seconds) {
    char buf[16];
    const int a = seconds < 0 ? -seconds : seconds;
    snprintf(buf, sizeof buf, "UTC%c%02d:%02d", seconds < 0 ? '-' : '+', a / 3600, a / 60 % 60);
    return buf;
}

std::string date_text(time_t t, const std::string& tz, Language lang) {
    const LocalTime l = to_local_time(t, tz);
    if (lang == Language::ja)
        return std::to_string(l.year) + "年" + std::to_string(l.month) + "月" +
               std::to_string(l.day) + "日";
    return std::to_string(l.day) + " " + kMonths[l.month - 1] + " " + std::to_string(l.year);
}

std::string date_time_text(time_t t, const std::string& tz, Language lang) {
    const LocalTime l = to_local_time(t, tz);
    char hm[8];
    snprintf(hm, sizeof hm, "%02d:%02d", l.hour, l.minute);
    if (lang == Language::ja) return date_text(t, tz, lang) + " " + hm;
    return std::string(hm) + " on " + date_text(t, tz, lang) + " (" + offset_text(l.utc_offset) +
           ")";
}

MailError missing(MailKind kind, const char* field) {
    return MailError(MailError::Kind::permanent,
                     std::string("the ") + kind_name(kind) + " mail needs " + field);
}

std::string render(const std::string& text, const data& d) {
    mustache tmpl(text);
    tmpl.set_custom_escape([](const std::string& s) { return s; });  // plain text, not HTML
    std::string out = tmpl.render(d);
    if (!tmpl.is_valid()) throw MailError(MailError::Kind::permanent, tmpl.error_message());
    return out;
}

}  // namespace

MailMessage compose_mail(MailKind kind, Language lang, const MailFields& f) {
    if (f.to.empty()) throw missing(kind, "a recipient address");
    if (f.user_id.empty()) throw missing(kind, "the user ID");

    data d;
    d.set("user_id", f.user_id);
    switch (kind) {
        case MailKind::auth_code:
            if (f.code.empty()) throw missing(kind, "the code");
            if (f.minutes <= 0) throw missing(kind, "the code's lifetime in minutes");
            d.set("code", f.code);
            d.set("minutes", std::to_string(f.minutes));
            break;
        case MailKind::locked:
            if (f.until <= 0) throw missing(kind, "the time the lock lifts");
            d.set("until", date_time_text(f.until, f.timezone, lang));
            d.set("failures", std::to_string(f.failures > 0 ? f.failures : 6));
            break;
        case MailKind::blocked:
            d.set("master", f.role == Role::master);
            break;
        case MailKind::code_budget:
            if (f.until <= 0) throw missing(kind, "the time codes are accepted again");
            d.set("until", date_time_text(f.until, f.timezone, lang));
            break;
        case MailKind::self_revoked:
            if (f.serial.empty()) throw missing(kind, "the certificate's serial");
            if (f.until <= 0) throw missing(kind, "the time of the revocation");
            d.set("serial", f.serial);
            d.set("until", date_time_text(f.until, f.timezone, lang));
            d.set("to_master", f.to_master);
            break;
        case MailKind::expiry_soon:
        case MailKind::expired:
            if (f.expiry <= 0) throw missing(kind, "the certificate's expiry");
            d.set("expiry", date_text(f.expiry, f.timezone, lang));
            if (!f.portal_url.empty()) d.set("portal_url", f.portal_url);
            break;
    }

    data h;
    h.set("helpdesk_name", f.helpdesk.name.empty()
                               ? std::string(lang == Language::ja ? "ヘルプデスク" : "Help desk")
                               : f.helpdesk.name);
    if (!f.helpdesk.phone.empty()) h.set("helpdesk_phone", f.helpdesk.phone);
    if (!f.helpdesk.hours.empty()) h.set("helpdesk_hours", f.helpdesk.hours);
    d.set("footer", render(footer_template(lang), h));

    const std::string text = render(mail_template(kind, lang), d);
    const auto eol = text.find('\n');
    MailMessage m;
    m.to = f.to;
    m.subject = text.substr(0, eol);
    m.body = eol == std::string::npos ? "" : text.substr(eol + 1);
    while (!m.body.empty() && m.body.front() == '\n') m.body.erase(0, 1);
    return m;
}

MailMessage compose_bilingual_mail(MailKind kind, const MailFields& f) {
    MailMessage ja = compose_mail(kind, Language::ja, f);
    const MailMessage en = compose_mail(kind, Language::en, f);
    ja.subject += " / " + en.subject;
    while (!ja.body.empty() && ja.body.back() == '\n') ja.body.pop_back();
    ja.body += "\n\n---------------------------------------- English follows\n\n" + en.body;
    return ja;
}

MailMessage compose_user_mail(MailKind kind, const std::string& user_language, Language fallback,
                              bool bilingual, const MailFields& f) {
    if (user_language == "en") return compose_mail(kind, Language::en, f);
    if (user_language == "ja") return compose_mail(kind, Language::ja, f);
    return bilingual ? compose_bilingual_mail(kind, f) : compose_mail(kind, fallback, f);
}

}  // namespace certgate
