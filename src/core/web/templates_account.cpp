// Templates and words of the account screens (issue 7): the master user's
// first registration, the general user's new password, the master's pages.

#include <map>
#include <string>

#include "core/web/pages.hpp"

namespace certgate {

std::map<std::string, std::string> account_templates() {
    return {
        {"register_master",
         R"HTML({{{step_bar}}}
<p class="cg-lead">{{t.register_master_lead}}</p>
<form class="cg-form" method="post" action="{{prefix}}register/master" autocomplete="off">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <div class="cg-field">
    <label for="user_id">{{t.user_id}} <span class="cg-required">{{t.required}}</span></label>
    <input id="user_id" name="user_id" type="text" value="{{user_id}}" maxlength="12" autocomplete="off" autocapitalize="off" spellcheck="false" required aria-describedby="user_id_rule">
    <p class="cg-rule" id="user_id_rule">{{t.user_id_rule}}</p>
  </div>
  <div class="cg-field">
    <label for="password">{{t.initial_password}} <span class="cg-required">{{t.required}}</span></label>
    <input id="password" name="password" type="password" maxlength="12" autocomplete="off" required aria-describedby="initial_password_rule">
    <button type="button" class="cg-keyboard-open" data-target="password" hidden>{{t.button_keyboard}}</button>
    <p class="cg-rule" id="initial_password_rule">{{t.initial_password_rule}}</p>
  </div>
  <div class="cg-field">
    <label for="new_password">{{t.new_password}} <span class="cg-required">{{t.required}}</span></label>
    <input id="new_password" name="new_password" type="password" maxlength="12" autocomplete="off" required aria-describedby="password_rule">
    <button type="button" class="cg-keyboard-open" data-target="new_password" hidden>{{t.button_keyboard}}</button>
    <p class="cg-rule" id="password_rule">{{t.password_rule}} {{t.new_password_rule}}</p>
  </div>
  <div class="cg-field">
    <label for="new_password_confirm">{{t.new_password_confirm}} <span class="cg-required">{{t.required}}</span></label>
    <input id="new_password_confirm" name="new_password_confirm" type="password" maxlength="12" autocomplete="off" required>
    <button type="button" class="cg-keyboard-open" data-target="new_password_confirm" hidden>{{t.button_keyboard}}</button>
  </div>
  <div class="cg-field">
    <label for="mail">{{t.mail}} <span class="cg-required">{{t.required}}</span></label>
    <input id="mail" name="mail" type="email" value="{{mail}}" maxlength="254" autocomplete="off" required aria-describedby="mail_rule">
    <p class="cg-rule" id="mail_rule">{{t.mail_rule}}</p>
  </div>
  <div class="cg-field">
    <label for="mail_confirm">{{t.mail_confirm}} <span class="cg-required">{{t.required}}</span></label>
    <input id="mail_confirm" name="mail_confirm" type="email" maxlength="254" autocomplete="off" required>
  </div>
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_register}}</button></p>
</form>
<form class="cg-cancel" method="post" action="{{prefix}}issue/cancel">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <input type="hidden" name="to" value="login">
  <button type="submit">{{t.button_cancel}}</button>
</form>
<ul class="cg-notes">
  <li>{{t.initial_password_note}}</li>
  <li>{{t.lock_note}}</li>
</ul>
)HTML"},
        {"register_password",
         R"HTML({{{step_bar}}}
<p class="cg-lead">{{t.register_password_lead}}</p>
<form class="cg-form" method="post" action="{{prefix}}register/password" autocomplete="off">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <p class="cg-field"><span class="cg-label">{{t.user_id}}</span> <span class="cg-value">{{user_id}}</span></p>
  <div class="cg-field">
    <label for="new_password">{{t.new_password}} <span class="cg-required">{{t.required}}</span></label>
    <input id="new_password" name="new_password" type="password" maxlength="12" autocomplete="off" required aria-describedby="password_rule">
    <button type="button" class="cg-keyboard-open" data-target="new_password" hidden>{{t.button_keyboard}}</button>
    <p class="cg-rule" id="password_rule">{{t.password_rule}} {{t.new_password_rule}}</p>
  </div>
  <div class="cg-field">
    <label for="new_password_confirm">{{t.new_password_confirm}} <span class="cg-required">{{t.required}}</span></label>
    <input id="new_password_confirm" name="new_password_confirm" type="password" maxlength="12" autocomplete="off" required>
    <button type="button" class="cg-keyboard-open" data-target="new_password_confirm" hidden>{{t.button_keyboard}}</button>
  </div>
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_register}}</button></p>
</form>
<form class="cg-cancel" method="post" action="{{prefix}}issue/cancel">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <input type="hidden" name="to" value="login">
  <button type="submit">{{t.button_cancel}}</button>
</form>
)HTML"},
        {"admin_users", R"HTML(<p class="cg-lead">{{t.admin_users_lead}}</p>
<p class="cg-org"><span class="cg-label">{{t.org}}</span> {{org}}</p>
<table class="cg-users">
<caption>{{t.admin_users_caption}}</caption>
<thead><tr><th scope="col">{{t.user_id}}</th><th scope="col">{{t.name}}</th><th scope="col">{{t.mail}}</th><th scope="col">{{t.state}}</th><th scope="col">{{t.certificate}}</th><th scope="col">{{t.actions}}</th></tr></thead>
<tbody>
{{#users}}<tr>
<th scope="row">{{user_id}}</th><td>{{name}}</td><td>{{mail}}</td>
<td>{{state}}{{#locked_until}}<br>{{t.locked_until}} {{locked_until}}{{/locked_until}}</td>
<td>{{#serial}}{{t.serial}} {{serial}}<br>{{t.expiry}} {{expiry}}{{/serial}}{{^serial}}{{t.no_certificate}}{{/serial}}</td>
<td>{{#active}}
{{#unlockable}}<form method="post" action="{{prefix}}admin/users/{{user_id}}/unlock"><input type="hidden" name="csrf_token" value="{{csrf_token}}"><button type="submit">{{t.button_unlock}}</button></form>{{/unlockable}}
<form method="post" action="{{prefix}}admin/users/{{user_id}}/reset"><input type="hidden" name="csrf_token" value="{{csrf_token}}"><button type="submit">{{t.button_reset}}</button></form>
<form method="post" action="{{prefix}}admin/users/{{user_id}}/disable"><input type="hidden" name="csrf_token" value="{{csrf_token}}"><button type="submit" class="cg-danger">{{t.button_disable}}</button></form>
{{/active}}</td>
</tr>{{/users}}
{{^users}}<tr><td colspan="6">{{t.no_users}}</td></tr>{{/users}}
</tbody>
</table>
<h2>{{t.add_user_heading}}</h2>
<form class="cg-form" method="post" action="{{prefix}}admin/users" autocomplete="off">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  <div class="cg-field">
    <label for="user_id">{{t.user_id}} <span class="cg-required">{{t.required}}</span></label>
    <input id="user_id" name="user_id" type="text" value="{{new_user_id}}" maxlength="12" autocomplete="off" autocapitalize="off" spellcheck="false" required aria-describedby="user_id_rule">
    <p class="cg-rule" id="user_id_rule">{{t.user_id_rule}}</p>
  </div>
  <div class="cg-field">
    <label for="name">{{t.name}}</label>
    <input id="name" name="name" type="text" value="{{new_name}}" maxlength="64" autocomplete="off">
  </div>
  <div class="cg-field">
    <label for="mail">{{t.mail}} <span class="cg-required">{{t.required}}</span></label>
    <input id="mail" name="mail" type="email" value="{{new_mail}}" maxlength="254" autocomplete="off" required>
  </div>
  <p class="cg-buttons"><button type="submit" class="cg-primary">{{t.button_add_user}}</button></p>
</form>
<p><a href="{{prefix}}">{{t.back_to_login}}</a></p>
)HTML"},
        {"admin_password",
         R"HTML(<p class="cg-lead">{{#added}}{{t.admin_added_lead}}{{/added}}{{#reset}}{{t.admin_reset_lead}}{{/reset}}</p>
<dl class="cg-initial-password">
  <dt>{{t.user_id}}</dt><dd>{{user_id}}</dd>
  {{#name}}<dt>{{t.name}}</dt><dd>{{name}}</dd>{{/name}}
  <dt>{{t.initial_password}}</dt><dd class="cg-secret">{{initial_password}}</dd>
</dl>
<p class="cg-note">{{t.admin_password_note}}</p>
<p><a href="{{prefix}}admin/users">{{t.back_to_users}}</a></p>
)HTML"},
    };
}

std::map<std::string, std::string> account_words(Language lang) {
    if (lang == Language::en) {
        return {
            {"register_master_title", "Master user's first registration"},
            {"register_master_lead",
             "Enter the user ID and the initial password printed on the bank's letter, choose a "
             "new password and enter your mail address twice, then press [Register]. An "
             "authentication code is sent to that address."},
            {"initial_password", "Initial password"},
            {"initial_password_rule", "As printed on the letter (case-sensitive)."},
            {"initial_password_note",
             "An initial password works for one registration only and expires 30 days after it was "
             "issued. If it has expired, ask the bank for a new one."},
            {"new_password", "New password"},
            {"new_password_confirm", "New password (again)"},
            {"new_password_rule",
             "It must differ from the initial password. It also protects your certificate file."},
            {"mail", "Mail address"},
            {"mail_confirm", "Mail address (again)"},
            {"mail_rule", "Authentication codes and notices go to this address."},
            {"button_register", "Register"},
            {"register_password_title", "General user's first registration: new password"},
            {"register_password_lead",
             "Choose a new password and press [Register]. An authentication code is then sent to "
             "your registered mail address."},
            {"admin_users_title", "General users"},
            {"admin_users_lead",
             "The general users of your organisation. You can add a user, release a lock or block, "
             "reset a password or stop a user."},
            {"admin_users_caption", "General users"},
            {"org", "Organisation"},
            {"name", "Name"},
            {"state", "State"},
            {"certificate", "Certificate"},
            {"actions", "Actions"},
            {"locked_until", "Locked until"},
            {"serial", "Serial"},
            {"expiry", "Valid through"},
            {"no_certificate", "None"},
            {"no_users", "No general users yet."},
            {"button_unlock", "Release lock/block"},
            {"button_reset", "Reset password"},
            {"button_disable", "Stop user"},
            {"add_user_heading", "Add a general user"},
            {"button_add_user", "Add"},
            {"admin_password_title", "Initial password"},
            {"admin_added_lead",
             "The general user was added. Give the user ID and this initial password to the user."},
            {"admin_reset_lead",
             "The password was reset and the user's sessions end. Give this new initial password "
             "to the user."},
            {"admin_password_note",
             "The initial password is shown only now. The user registers with \"General user's "
             "first registration\" on the login screen within 30 days."},
            {"back_to_users", "Back to the general users"},
        };
    }
    return {
        {"register_master_title", "マスターユーザー初期登録ログイン"},
        {"register_master_lead",
         "労金からの書面に記載のユーザーIDと初期パスワードを入力し、新しいパスワードとメールアドレ"
         "ス（確認用を含め2回）を入力して［登録］ボタンを押してください。入力したメールアドレスに認"
         "証コードを送信します。"},
        {"initial_password", "初期パスワード"},
        {"initial_password_rule",
         "書面に記載のとおり入力します。（英字は大文字と小文字を区別します。）"},
        {"initial_password_note",
         "初期パスワードは1回の初期登録にのみ使え、発行から30日で有効期限が切れます。期限が切れた場"
         "合は労金にお問い合わせください。"},
        {"new_password", "新しいパスワード"},
        {"new_password_confirm", "新しいパスワード（確認用）"},
        {"new_password_rule",
         "初期パスワードと同じものは登録できません。電子証明書ファイルのパスワードにもなります。"},
        {"mail", "メールアドレス"},
        {"mail_confirm", "メールアドレス（確認用）"},
        {"mail_rule", "認証コードやお知らせをこのアドレスに送信します。"},
        {"button_register", "登録"},
        {"register_password_title", "一般ユーザーの初期登録 パスワード登録"},
        {"register_password_lead",
         "新しいパスワードを入力し、［登録］ボタンを押してください。登録メールアドレスに認証コード"
         "を送信します。"},
        {"admin_users_title", "一般ユーザー管理"},
        {"admin_users_lead",
         "団体の一般ユーザーの一覧です。一般ユーザーの登録、ロック・閉塞の解除、パスワードの初期化"
         "、利用停止ができます。"},
        {"admin_users_caption", "一般ユーザー一覧"},
        {"org", "団体"},
        {"name", "氏名"},
        {"state", "状態"},
        {"certificate", "電子証明書"},
        {"actions", "操作"},
        {"locked_until", "ロック解除日時："},
        {"serial", "シリアル番号："},
        {"expiry", "有効期限："},
        {"no_certificate", "未発行"},
        {"no_users", "一般ユーザーは登録されていません。"},
        {"button_unlock", "ロック・閉塞解除"},
        {"button_reset", "パスワード初期化"},
        {"button_disable", "利用停止"},
        {"add_user_heading", "一般ユーザーの登録"},
        {"button_add_user", "登録"},
        {"admin_password_title", "初期パスワード"},
        {"admin_added_lead",
         "一般ユーザーを登録しました。ユーザーIDと次の初期パスワードを該当ユーザーにお伝えください"
         "。"},
        {"admin_reset_lead",
         "パスワードを初期化しました。該当ユーザーのログイン中のセッションは終了します。次の初期パ"
         "スワードをお伝えください。"},
        {"admin_password_note",
         "初期パスワードはこの画面でのみ表示されます。一般ユーザーは30日以内にログイン画面の［一般"
         "ユーザーの初期登録］から登録してください。"},
        {"back_to_users", "一般ユーザー管理へ戻る"},
    };
}

}  // namespace certgate
