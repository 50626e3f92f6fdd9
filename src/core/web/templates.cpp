// The built-in templates, the portal's words in Japanese and English, and
// the static assets. Screen names and button labels are the manual's.

#include <map>
#include <string>

#include "core/web/pages.hpp"

namespace certgate {

static std::map<std::string, std::string> common_templates() {
    return {
        {"layout", R"HTML(<!DOCTYPE html>
<html lang="{{lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<title>{{title}} - {{t.system_name}}</title>
<link rel="stylesheet" href="{{prefix}}assets/certgate.css">
{{#refresh}}<meta http-equiv="refresh" content="2;url={{refresh}}">{{/refresh}}
</head>
<body>
<header class="cg-header">
  <p class="cg-system">{{t.system_name}}</p>
  <p class="cg-lang"><a href="{{self}}?lang={{other_lang}}" hreflang="{{other_lang}}" lang="{{other_lang}}">{{other_lang_label}}</a></p>
</header>
<main class="cg-main" id="main">
<h1>{{title}}</h1>
{{#message}}<p class="cg-message" role="alert">{{message}}</p>{{/message}}
{{{body}}}
</main>
<footer class="cg-footer">
  <p><span class="cg-helpdesk-label">{{t.helpdesk_label}}</span>
  <span class="cg-helpdesk-name">{{helpdesk.name}}</span>
  {{#helpdesk.phone}}<span class="cg-helpdesk-phone">{{t.phone_label}} {{helpdesk.phone}}</span>{{/helpdesk.phone}}
  {{#helpdesk.hours}}<span class="cg-helpdesk-hours">{{t.hours_label}} {{helpdesk.hours}}</span>{{/helpdesk.hours}}</p>
</footer>
<script src="{{prefix}}assets/certgate.js"></script>
</body>
</html>
)HTML"},
        {"login", R"HTML(<form class="cg-form" method="post" action="{{prefix}}login" autocomplete="off">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  {{#return}}<input type="hidden" name="return" value="{{return}}">{{/return}}
  <div class="cg-field">
    <label for="user_id">{{t.user_id}}</label>
    <input id="user_id" name="user_id" type="text" value="{{user_id}}" maxlength="12" autocomplete="off" autocapitalize="off" spellcheck="false" required>
  </div>
  <div class="cg-field">
    <label for="password">{{t.password}}</label>
    <input id="password" name="password" type="password" maxlength="12" autocomplete="off" required>
    <button type="button" class="cg-keyboard-open" data-target="password" hidden>{{t.button_keyboard}}</button>
  </div>
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_login}}</button></p>
</form>
{{#show_certificate_hint}}<p class="cg-note">{{t.certificate_hint}}</p>{{/show_certificate_hint}}
{{#show_issue_link}}<p class="cg-note"><a href="{{prefix}}issue">{{t.go_issue}}</a></p>{{/show_issue_link}}
<nav class="cg-actions" aria-label="{{t.other_actions}}">
  <form method="get" action="{{prefix}}register/master"><button type="submit">{{t.button_register_master}}</button></form>
  <form method="get" action="{{prefix}}issue"><input type="hidden" name="first" value="1"><button type="submit">{{t.button_register_general}}</button></form>
  <form method="get" action="{{prefix}}issue"><button type="submit">{{t.button_issue}}</button></form>
</nav>
<p class="cg-note">{{t.login_note}}</p>
)HTML"},
        {"issue_auth", R"HTML({{{step_bar}}}
{{#first}}<p class="cg-lead">{{t.first_registration_lead}}</p>{{/first}}
<p class="cg-lead">{{t.issue_auth_lead}}</p>
<form class="cg-form" method="post" action="{{prefix}}issue" autocomplete="off">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <div class="cg-field">
    <label for="user_id">{{t.user_id}} <span class="cg-required">{{t.required}}</span></label>
    <input id="user_id" name="user_id" type="text" value="{{user_id}}" maxlength="12" autocomplete="off" autocapitalize="off" spellcheck="false" required aria-describedby="user_id_rule">
    <p class="cg-rule" id="user_id_rule">{{t.user_id_rule}}</p>
  </div>
  <div class="cg-field">
    <label for="password">{{t.password}} <span class="cg-required">{{t.required}}</span></label>
    <input id="password" name="password" type="password" maxlength="12" autocomplete="off" required aria-describedby="password_rule">
    <button type="button" class="cg-keyboard-open" data-target="password" hidden>{{t.button_keyboard}}</button>
    <p class="cg-rule" id="password_rule">{{t.password_rule}}</p>
  </div>
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_authenticate}}</button></p>
</form>
<form class="cg-cancel" method="post" action="{{prefix}}issue/cancel">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <input type="hidden" name="to" value="login">
  <button type="submit">{{t.button_cancel}}</button>
</form>
<ul class="cg-notes">
  <li>{{t.lock_note}}</li>
  <li>{{t.already_issued_note}}</li>
  <li>{{t.lock_mail_note}}</li>
</ul>
)HTML"},
        {"issue_code", R"HTML({{{step_bar}}}
<p class="cg-lead">{{t.issue_code_lead}}</p>
<form class="cg-form" method="post" action="{{prefix}}issue/code" autocomplete="off">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <div class="cg-field">
    <label for="code">{{t.code}} <span class="cg-required">{{t.required}}</span></label>
    <input id="code" name="code" type="text" inputmode="numeric" maxlength="{{code_digits}}" autocomplete="one-time-code" required aria-describedby="code_rule">
    <p class="cg-rule" id="code_rule">{{t.code_rule}}</p>
  </div>
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_authenticate}}</button></p>
</form>
<form class="cg-cancel" method="post" action="{{prefix}}issue/cancel">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <input type="hidden" name="to" value="issue">
  <button type="submit">{{t.button_cancel}}</button>
</form>
<p class="cg-note">{{t.code_note}}</p>
)HTML"},
        {"issue_confirm", R"HTML({{{step_bar}}}
<p class="cg-lead">{{t.issue_confirm_lead}}</p>
<form class="cg-form cg-issue-form" method="post" action="{{prefix}}issue/confirm">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_issue_now}}</button></p>
</form>
<form class="cg-cancel" method="post" action="{{prefix}}issue/cancel">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <input type="hidden" name="to" value="login">
  <button type="submit">{{t.button_cancel}}</button>
</form>
<div class="cg-progress" id="cg-progress" hidden role="status" aria-live="polite">
  <p class="cg-progress-title">{{t.issue_progress_title}}</p>
  <p>{{t.issue_progress_lead}}</p>
  <div class="cg-progress-bar" aria-hidden="true"><span></span></div>
</div>
)HTML"},
        {"issue_progress", R"HTML({{{step_bar}}}
<div class="cg-progress" role="status" aria-live="polite">
  <p>{{t.issue_progress_lead}}</p>
  <div class="cg-progress-bar" aria-hidden="true"><span></span></div>
</div>
<p><a href="{{prefix}}issue/confirm">{{t.reload}}</a></p>
)HTML"},
        {"issue_result", R"HTML({{{step_bar}}}
<p class="cg-lead">{{t.issue_result_lead}}</p>
<table class="cg-result">
  <tr><th scope="row">{{t.user_id}}</th><td>{{user_id}}</td></tr>
  <tr><th scope="row">{{t.serial}}</th><td class="cg-serial">{{serial}}</td></tr>
  <tr><th scope="row">{{t.valid_from}}</th><td>{{not_before}}</td></tr>
  <tr><th scope="row">{{t.valid_until}}</th><td>{{not_after}}</td></tr>
  <tr><th scope="row">{{t.file_name}}</th><td>{{file_name}}</td></tr>
</table>
{{#download}}<p class="cg-buttons"><a class="cg-button cg-primary" id="cg-download" href="{{download}}" data-auto-download download="{{file_name}}">{{t.download}}</a></p>{{/download}}
{{^download}}<p class="cg-note">{{t.downloaded}}</p>{{/download}}
<p class="cg-message cg-keep-open">{{t.keep_open}}</p>
<h2>{{t.import_title}}</h2>
<ol class="cg-import">
  <li>{{t.import_1}}</li>
  <li>{{t.import_2}}</li>
  <li>{{t.import_3}}</li>
  <li>{{t.import_4}}</li>
  <li>{{t.import_5}}</li>
  <li>{{t.import_6}}</li>
</ol>
<p class="cg-note">{{t.not_imported_note}}</p>
)HTML"},
        {"renewal_notice", R"HTML(<p class="cg-lead">{{t.renewal_lead}}</p>
<p class="cg-expiry">{{t.expires_label}} {{expires}}</p>
<p class="cg-buttons"><a class="cg-button cg-primary" href="{{prefix}}issue">{{t.go_renew}}</a>
<a class="cg-button" href="{{next}}">{{t.continue}}</a></p>
)HTML"},
        {"step_bar", R"HTML(<ol class="cg-steps" aria-label="{{t.steps_label}}">{{#steps}}<li{{#current}} class="cg-current" aria-current="step"{{/current}}{{#done}} class="cg-done"{{/done}}><span class="cg-step-mark">{{mark}}</span>{{label}}</li>{{/steps}}</ol>
)HTML"},
        {"error", R"HTML(<p class="cg-error-code">{{t.error_code_label}} {{error}}</p>
<p><a href="{{prefix}}">{{t.back_to_login}}</a></p>
)HTML"},
    };
}

const std::map<std::string, std::string> &builtin_templates() {
    static const std::map<std::string, std::string> templates = [] {
        auto all = common_templates();
        for (auto &[name, text] : account_templates()) all[name] = text;
        return all;
    }();
    return templates;
}

static std::map<std::string, std::string> common_words(Language lang) {
    static const std::map<std::string, std::string> ja = {
        {"system_name", "賃金控除事務支援システム"},
        {"login_title", "ろうきん賃金控除事務支援システムログイン画面"},
        {"user_id", "ユーザーID"},
        {"password", "パスワード"},
        {"button_login", "ログイン"},
        {"button_register_master", "マスターユーザーの初期登録"},
        {"button_register_general", "一般ユーザーの初期登録"},
        {"button_issue", "電子証明書発行"},
        {"other_actions", "その他の操作"},
        {"login_note",
         "ログインには、本システムが発行した電子証明書の選択が必要です。電子証明書をお持ちでない場合"
         "や有効期限が切れた場合は［電子証明書発行］から発行してください。"},
        {"helpdesk_label", "操作に関するお問合せ："},
        {"helpdesk_default_name", "ヘルプデスク"},
        {"helpdesk_default_phone", ""},
        {"helpdesk_default_hours", ""},
        {"phone_label", "電話"},
        {"hours_label", "受付時間"},
        {"steps_label", "電子証明書発行の手順"},
        {"issue_auth_title", "電子証明書発行 ユーザー認証"},
        {"issue_auth_lead", "ユーザーIDとパスワードを入力し、［認証］ボタンを押してください。認証されると、登録メールアドレスに認証コードを送信します。"},
        {"first_registration_lead", "一般ユーザーの初期登録：マスターユーザーから受け取った初期パスワードを入力してください。"},
        {"required", "＜必須＞"},
        {"user_id_rule", "6～12桁で入力します。半角英、数字の2種必須です。（英字は大文字と小文字を区別します。）"},
        {"password_rule", "8～12桁で入力します。半角英大・小文字、数字、記号の4種必須です。（英字は大文字と小文字を区別します。）"},
        {"button_keyboard", "ソフトウェアキーボード"},
        {"button_authenticate", "認証"},
        {"button_cancel", "キャンセル"},
        {"lock_note", "パスワードを連続して6回間違えた場合は、60分間ログイン不可（ロック）になります。ロックを3回繰り返した場合はログイン不可（閉塞）となります。"},
        {"already_issued_note", "既に電子証明書を発行されている場合、認証を行えません。ただし有効期限が切れる30日前より認証可能になります。"},
        {"lock_mail_note", "ロックまたは閉塞の状態になった場合、該当ユーザーにメールでお知らせします。"},
        {"issue_code_title", "電子証明書発行 認証コード入力"},
        {"issue_code_lead", "登録メールアドレスに送信された認証コードを入力し、［認証］ボタンを押してください。"},
        {"code", "認証コード"},
        {"code_rule", "半角数字で入力します。（数字のみ、有効期限30分）"},
        {"code_note", "認証コードのメールが届かない場合、登録されたメールアドレスを再度ご確認ください。"},
        {"certificate_hint", "※ 誤って違う電子証明書を選択してしまった場合や、電子証明書の選択画面が表示されなかった場合は、開いているブラウザをすべて閉じ、本システムへのアクセスから再度やり直してください。"},
        {"go_issue", "電子証明書を発行する（電子証明書発行）"},
        {"renewal_title", "電子証明書の更新のお知らせ"},
        {"renewal_lead", "ご利用中の電子証明書の有効期限が近づいています。有効期限が切れるとログインできなくなりますので、電子証明書を更新してください。"},
        {"expires_label", "有効期限："},
        {"go_renew", "電子証明書を更新する"},
        {"continue", "このまま続ける"},
        {"issue_confirm_title", "電子証明書発行"},
        {"issue_confirm_lead", "［発行］ボタンを押すと、電子証明書を発行します。"},
        {"button_issue_now", "発行"},
        {"issue_progress_title", "電子証明書発行中"},
        {"issue_progress_lead", "電子証明書を発行しています。そのままお待ちください。（数十秒かかる場合があります。）"},
        {"reload", "画面を更新する"},
        {"issue_result_title", "電子証明書発行結果"},
        {"issue_result_lead", "電子証明書を発行しました。電子証明書ファイル（拡張子 p12）が自動でダウンロードされますので、［開く］を押してインポートしてください。"},
        {"serial", "シリアル番号"},
        {"valid_from", "有効期間（開始）"},
        {"valid_until", "有効期限"},
        {"file_name", "ファイル名"},
        {"download", "電子証明書をダウンロード"},
        {"downloaded", "電子証明書ファイルはダウンロード済みです。"},
        {"keep_open", "「⑨インポート」の処理が完了するまで、この画面を閉じないでください。"},
        {"import_title", "⑨ インポート"},
        {"import_1", "ダウンロードした p12 ファイルを開くと、証明書のインポートウィザードが開始されます。保存場所に「現在のユーザー」を選択し、［次へ］を押します。"},
        {"import_2", "インポートする p12 ファイルが選択されていることを確認し、［次へ］を押します。"},
        {"import_3", "「すべての拡張プロパティを含める」にチェックを入れ、秘密キーのパスワード（本システムに登録したログインパスワード）を入力し、［次へ］を押します。"},
        {"import_4", "「証明書の種類に基づいて、自動的に証明書ストアを選択する」にチェックを入れ、［次へ］を押します。"},
        {"import_5", "［完了］を押します。セキュリティの警告が表示された場合は［はい］を押します。"},
        {"import_6", "「正しくインポートされました。」と表示されたら完了です。ブラウザをすべて閉じ、再度本システムにアクセスしてログインしてください。"},
        {"not_imported_note", "※ 電子証明書ファイルを開かずに終了した場合は、電子証明書が既に発行済みとなっているため労金へ失効依頼してください。"},
        {"error_title", "エラー"},
        {"error_code_label", "エラーコード："},
        {"back_to_login", "ログイン画面へ戻る"},
    };
    static const std::map<std::string, std::string> en = {
        {"system_name", "Wage Deduction Administration System"},
        {"login_title", "Login"},
        {"user_id", "User ID"},
        {"password", "Password"},
        {"button_login", "Log in"},
        {"button_register_master", "Master user's first registration"},
        {"button_register_general", "General user's first registration"},
        {"button_issue", "Issue a certificate"},
        {"other_actions", "Other actions"},
        {"login_note",
         "Logging in needs a client certificate issued by this system. If you have none, or "
         "yours has expired, use \"Issue a certificate\"."},
        {"helpdesk_label", "Questions about these pages:"},
        {"helpdesk_default_name", "Help desk"},
        {"helpdesk_default_phone", ""},
        {"helpdesk_default_hours", ""},
        {"phone_label", "Phone"},
        {"hours_label", "Hours"},
        {"steps_label", "Steps to issue a certificate"},
        {"issue_auth_title", "Certificate issuance: user authentication"},
        {"issue_auth_lead", "Enter your user ID and password and press [Authenticate]. An authentication code is then sent to your registered mail address."},
        {"first_registration_lead", "General user's first registration: enter the initial password your master user gave you."},
        {"required", "(required)"},
        {"user_id_rule", "6 to 12 characters: ASCII letters and digits, at least one of each (case-sensitive)."},
        {"password_rule", "8 to 12 characters: upper-case and lower-case letters, digits and symbols, at least one of each (case-sensitive)."},
        {"button_keyboard", "Software keyboard"},
        {"button_authenticate", "Authenticate"},
        {"button_cancel", "Cancel"},
        {"lock_note", "Six wrong passwords in a row lock the user for 60 minutes. Three locks block the user."},
        {"already_issued_note", "A user whose certificate is valid cannot authenticate here until 30 days before it expires."},
        {"lock_mail_note", "A locked or blocked user is told by mail."},
        {"issue_code_title", "Certificate issuance: authentication code"},
        {"issue_code_lead", "Enter the authentication code sent to your registered mail address and press [Authenticate]."},
        {"code", "Authentication code"},
        {"code_rule", "Digits only; valid for 30 minutes."},
        {"code_note", "If the mail does not arrive, check the registered mail address."},
        {"certificate_hint", "If you selected the wrong certificate, or no certificate selection appeared, close all browser windows and open this site again."},
        {"go_issue", "Issue a certificate"},
        {"renewal_title", "Your certificate expires soon"},
        {"renewal_lead", "Your certificate expires soon. After it expires you cannot log in, so please renew it."},
        {"expires_label", "Expires:"},
        {"go_renew", "Renew the certificate"},
        {"continue", "Continue"},
        {"issue_confirm_title", "Certificate issuance"},
        {"issue_confirm_lead", "Press [Issue] to issue your certificate."},
        {"button_issue_now", "Issue"},
        {"issue_progress_title", "Issuing the certificate"},
        {"issue_progress_lead", "Your certificate is being issued. Please wait (this can take some tens of seconds)."},
        {"reload", "Refresh this page"},
        {"issue_result_title", "Certificate issued"},
        {"issue_result_lead", "Your certificate has been issued. The certificate file (.p12) downloads by itself: open it to import it."},
        {"serial", "Serial number"},
        {"valid_from", "Valid from"},
        {"valid_until", "Valid until"},
        {"file_name", "File name"},
        {"download", "Download the certificate"},
        {"downloaded", "The certificate file has been downloaded."},
        {"keep_open", "Do not close this page until the import (step 9) is complete."},
        {"import_title", "9. Import"},
        {"import_1", "Open the downloaded .p12 file: the Certificate Import Wizard starts. Choose \"Current User\" and press [Next]."},
        {"import_2", "Check that the .p12 file is selected and press [Next]."},
        {"import_3", "Tick \"Include all extended properties\", enter the private key password (your login password for this system) and press [Next]."},
        {"import_4", "Tick \"Automatically select the certificate store based on the type of certificate\" and press [Next]."},
        {"import_5", "Press [Finish]. If a security warning appears, press [Yes]."},
        {"import_6", "When \"The import was successful\" appears, you are done. Close all browser windows, open this site again and log in."},
        {"not_imported_note", "If you closed this page without importing the file, the certificate has been issued all the same: ask the bank to revoke it."},
        {"error_title", "Error"},
        {"error_code_label", "Error code:"},
        {"back_to_login", "Back to the login screen"},
    };
    return lang == Language::en ? en : ja;
}

const std::map<std::string, std::string> &page_words(Language lang) {
    static const auto merge = [](Language l) {
        auto all = common_words(l);
        for (auto &[key, text] : account_words(l)) all[key] = text;
        return all;
    };
    static const std::map<std::string, std::string> ja = merge(Language::ja);
    static const std::map<std::string, std::string> en = merge(Language::en);
    return lang == Language::en ? en : ja;
}

}  // namespace certgate
