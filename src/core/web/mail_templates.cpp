// The mails' words: one Mustache template per kind and language, the subject
// on the first line, then a blank line and the body. The wording follows the
// manual (電子証明書の更新・再発行, ユーザー認証, 認証コード入力).

#include <kainjow/mustache.hpp>
#include <map>
#include <string>
#include <utility>

#include "core/adapters/ca.hpp"
#include "core/adapters/mail.hpp"

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
    }
    return "?";
}

// {{footer}} closes every mail: the help desk of R18. Sections open and close
// on lines with text, so a section left out leaves no empty line behind.
const std::map<std::pair<MailKind, Language>, const char*>& mail_templates() {
    static const std::map<std::pair<MailKind, Language>, const char*> t = {
        {{MailKind::auth_code, Language::ja},
         R"(【賃金控除事務支援システム】認証コードのお知らせ

ユーザーID：{{user_id}} 様

賃金控除事務支援システムをご利用いただき、ありがとうございます。
電子証明書の発行に必要な認証コードをお知らせします。

　認証コード：{{code}}

「認証コード入力」画面で認証コードを入力し、［認証］ボタンを押してください。
認証コードの有効期限は、このメールの送信から{{minutes}}分です。

※お心当たりのない場合は、認証コードを入力せずに、下記のヘルプデスクまでご連絡ください。
{{footer}})"},
        {{MailKind::auth_code, Language::en},
         R"([Wage Deduction Administration System] Your authentication code

User ID: {{user_id}}

Thank you for using the Wage Deduction Administration System.
Here is the authentication code you need to obtain your electronic certificate.

  Authentication code: {{code}}

Enter it on the "Authentication code" screen and press [Authenticate].
The code is valid for {{minutes}} minutes from when this mail was sent.

If you did not ask for this code, do not enter it, and please tell the help desk below.
{{footer}})"},

        {{MailKind::locked, Language::ja},
         R"(【賃金控除事務支援システム】ログイン不可（ロック）のお知らせ

ユーザーID：{{user_id}} 様

パスワードを連続して{{failures}}回間違えたため、このユーザーIDはログイン不可（ロック）になりました。

　ロック解除日時：{{until}}

この日時を過ぎるとロックは自動的に解除され、再度ログイン操作が可能になります。
なお、ロックを繰り返した場合にはログイン不可（閉塞）となり、認証できなくなります。

※お心当たりのない場合は、第三者がログインを試みた可能性があります。下記のヘルプデスクまでご連絡ください。
{{footer}})"},
        {{MailKind::locked, Language::en},
         R"([Wage Deduction Administration System] Your user ID is locked

User ID: {{user_id}}

The password was entered wrongly {{failures}} times in a row, so this user ID is locked and cannot log in.

  Locked until: {{until}}

After that time the lock lifts by itself and you can log in again.
If locks happen repeatedly, the user ID is blocked and can no longer be authenticated.

If this was not you, someone else may have tried to log in with your user ID. Please tell the help desk below.
{{footer}})"},

        {{MailKind::blocked, Language::ja},
         R"(【賃金控除事務支援システム】ログイン不可（閉塞）のお知らせ

ユーザーID：{{user_id}} 様

ロックを繰り返したため、このユーザーIDはログイン不可（閉塞）になりました。
閉塞の状態は自動的には解除されません。
{{#master}}閉塞の解除については、お取引の労金へお問い合わせください。{{/master}}{{^master}}閉塞の解除については、団体のマスターユーザーにお問い合わせください。{{/master}}

※お心当たりのない場合は、第三者がログインを試みた可能性があります。下記のヘルプデスクまでご連絡ください。
{{footer}})"},
        {{MailKind::blocked, Language::en},
         R"([Wage Deduction Administration System] Your user ID is blocked

User ID: {{user_id}}

Because locks happened repeatedly, this user ID is blocked and cannot log in.
A block does not lift by itself.
{{#master}}To have it released, please contact your Rokin (labour bank) branch.{{/master}}{{^master}}To have it released, please contact the master user of your organisation.{{/master}}

If this was not you, someone else may have tried to log in with your user ID. Please tell the help desk below.
{{footer}})"},

        {{MailKind::expiry_soon, Language::ja},
         R"(【賃金控除事務支援システム】電子証明書の有効期限のお知らせ

ユーザーID：{{user_id}} 様

ご利用中の電子証明書の有効期限が近づいています。

　有効期限：{{expiry}}

有効期限が過ぎると、本システムへのログインができなくなります。
{{#portal_url}}下記のURLから電子証明書を更新してください。

　{{portal_url}}{{/portal_url}}{{^portal_url}}ログイン画面の［電子証明書発行］ボタンから電子証明書を更新してください。{{/portal_url}}

更新後は、新しい電子証明書を選択してログインしてください。
{{footer}})"},
        {{MailKind::expiry_soon, Language::en},
         R"([Wage Deduction Administration System] Your electronic certificate expires soon

User ID: {{user_id}}

The electronic certificate you use expires soon.

  Valid until: {{expiry}}

After that date you can no longer log in to the system.
{{#portal_url}}Please renew the certificate here:

  {{portal_url}}{{/portal_url}}{{^portal_url}}Please renew the certificate with the [Issue a certificate] button on the login screen.{{/portal_url}}

After renewing, choose the new certificate when you log in.
{{footer}})"},

        {{MailKind::expired, Language::ja},
         R"(【賃金控除事務支援システム】電子証明書の有効期限切れのお知らせ

ユーザーID：{{user_id}} 様

ご利用の電子証明書は有効期限（{{expiry}}）が過ぎたため、本システムへのログインができなくなりました。
{{#portal_url}}下記のURLから電子証明書を再発行すると、再びログインできるようになります。

　{{portal_url}}{{/portal_url}}{{^portal_url}}ログイン画面の［電子証明書発行］ボタンから電子証明書を再発行すると、再びログインできるようになります。{{/portal_url}}

再発行後は、新しい電子証明書を選択してログインしてください。
{{footer}})"},
        {{MailKind::expired, Language::en},
         R"([Wage Deduction Administration System] Your electronic certificate has expired

User ID: {{user_id}}

The electronic certificate you used expired at the end of {{expiry}}, so you can no longer log in to the system.
{{#portal_url}}Reissue the certificate here to log in again:

  {{portal_url}}{{/portal_url}}{{^portal_url}}Reissue the certificate with the [Issue a certificate] button on the login screen to log in again.{{/portal_url}}

After reissuing, choose the new certificate when you log in.
{{footer}})"},

        {{MailKind::code_budget, Language::ja},
         R"(【賃金控除事務支援システム】認証コードの受け付け停止のお知らせ

ユーザーID：{{user_id}} 様

このユーザーIDで、認証コードの入力または送信が1日の上限回数に達したため、認証コードの受け付けを停止しました。

　受け付け再開日時：{{until}}

この日時を過ぎると、再び電子証明書の発行手続きができます。

※お心当たりのない場合は、第三者があなたのパスワードを知っている可能性があります。パスワードを変更し、下記のヘルプデスクまでご連絡ください。
{{footer}})"},
        {{MailKind::code_budget, Language::en},
         R"([Wage Deduction Administration System] Authentication codes stopped for your user ID

User ID: {{user_id}}

Authentication codes for this user ID were entered or sent as many times as a day allows, so no more codes are accepted for now.

  Accepted again from: {{until}}

After that time you can go through the certificate issuance again.

If this was not you, someone else may know your password. Please change it and tell the help desk below.
{{footer}})"},
    };
    return t;
}

const char* const kFooterJa = R"(
※このメールは送信専用です。ご返信いただいてもお答えできません。

--
賃金控除事務支援システム
操作に関するお問合せ：{{helpdesk_name}}{{#helpdesk_phone}}
電話 {{helpdesk_phone}}{{/helpdesk_phone}}{{#helpdesk_hours}}
受付時間 {{helpdesk_hours}}{{/helpdesk_hours}}
)";

const char* const kFooterEn = R"(
This mail was sent from an address that does not take replies.

--
Wage Deduction Administration System
Questions: {{helpdesk_name}}{{#helpdesk_phone}}
Phone {{helpdesk_phone}}{{/helpdesk_phone}}{{#helpdesk_hours}}
Hours {{helpdesk_hours}}{{/helpdesk_hours}}
)";

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
    d.set("footer", render(lang == Language::ja ? kFooterJa : kFooterEn, h));

    const std::string text = render(mail_templates().at({kind, lang}), d);
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

}  // namespace certgate
