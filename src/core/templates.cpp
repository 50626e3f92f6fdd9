// The built-in templates, the portal's words in Japanese and English, and
// the static assets. Screen names and button labels are the manual's.

#include <map>
#include <string>

#include "core/pages.hpp"

namespace certgate {

const std::map<std::string, std::string> &builtin_templates() {
    static const std::map<std::string, std::string> templates = {
        {"layout", R"HTML(<!DOCTYPE html>
<html lang="{{lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<title>{{title}} - {{t.system_name}}</title>
<link rel="stylesheet" href="{{prefix}}assets/certgate.css">
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
  <div class="cg-field">
    <label for="user_id">{{t.user_id}}</label>
    <input id="user_id" name="user_id" type="text" maxlength="12" autocomplete="off" autocapitalize="off" spellcheck="false" required>
  </div>
  <div class="cg-field">
    <label for="password">{{t.password}}</label>
    <input id="password" name="password" type="password" maxlength="12" autocomplete="off" required>
  </div>
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_login}}</button></p>
</form>
<nav class="cg-actions" aria-label="{{t.other_actions}}">
  <form method="get" action="{{prefix}}register/master"><button type="submit">{{t.button_register_master}}</button></form>
  <form method="get" action="{{prefix}}issue"><input type="hidden" name="first" value="1"><button type="submit">{{t.button_register_general}}</button></form>
  <form method="get" action="{{prefix}}issue"><button type="submit">{{t.button_issue}}</button></form>
</nav>
<p class="cg-note">{{t.login_note}}</p>
)HTML"},
        {"error", R"HTML(<p class="cg-error-code">{{t.error_code_label}} {{error}}</p>
<p><a href="{{prefix}}">{{t.back_to_login}}</a></p>
)HTML"},
    };
    return templates;
}

const std::map<std::string, std::string> &page_words(Language lang) {
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
        {"error_title", "Error"},
        {"error_code_label", "Error code:"},
        {"back_to_login", "Back to the login screen"},
    };
    return lang == Language::en ? en : ja;
}

const std::map<std::string, std::string> &builtin_assets() {
    static const std::map<std::string, std::string> assets = {
        {"certgate.css", R"CSS(body{margin:0;font-family:"Meiryo","Yu Gothic","Hiragino Sans",sans-serif;color:#1a1a1a;background:#f4f6f8}
.cg-header{display:flex;justify-content:space-between;align-items:center;background:#0b4f8a;color:#fff;padding:.6em 1.2em}
.cg-header a{color:#fff}
.cg-system{margin:0;font-weight:bold}
.cg-lang{margin:0}
.cg-main{max-width:44em;margin:1.5em auto;background:#fff;padding:1.5em 2em;border:1px solid #cfd8e3}
h1{font-size:1.3em;border-left:6px solid #0b4f8a;padding-left:.5em}
.cg-field{margin:1em 0}
.cg-field label{display:block;font-weight:bold;margin-bottom:.3em}
.cg-field input{font-size:1.1em;padding:.3em;width:16em}
.cg-buttons button,.cg-actions button{font-size:1em;padding:.5em 1.2em;margin:.3em .3em .3em 0;cursor:pointer}
.cg-primary{background:#0b4f8a;color:#fff;border:1px solid #083a66}
.cg-actions{display:flex;flex-wrap:wrap;border-top:1px solid #cfd8e3;margin-top:1em;padding-top:1em}
.cg-actions form{margin:0}
.cg-message{background:#fff3f3;border:1px solid #d33;color:#900;padding:.6em}
.cg-note{font-size:.9em;color:#444}
.cg-footer{text-align:center;font-size:.9em;color:#333;padding:1em}
.cg-footer span{margin:0 .4em}
)CSS"},
        {"certgate.js", R"JS(/* certgate: comfort only; every step works without scripts (R19). ES5. */
(function () {
  'use strict';
})();
)JS"},
    };
    return assets;
}

}  // namespace certgate
