#include "core/web/errors.hpp"

#include <array>

namespace certgate {

namespace {

struct ErrorText {
    ErrorCode code;
    const char *name;
    std::string ja;
    std::string en;
};

const std::array<ErrorText, 25> &error_texts() {
    static const std::array<ErrorText, 25> texts = {{
        // The rule's numbers come from the Policy (Pages::rule_message);
        // these general words are for a form that could not be read at all.
        {ErrorCode::invalid_user_id, "invalid_user_id",
         "ユーザーIDが入力規則に合いません。画面の説明のとおり入力してください。",
         "The user ID does not follow the rule shown on the page."},
        {ErrorCode::invalid_password, "invalid_password",
         "パスワードが入力規則に合いません。画面の説明のとおり入力してください。",
         "The password does not follow the rule shown on the page."},
        {ErrorCode::bad_credentials, "bad_credentials",
         "ユーザーIDまたはパスワードが正しくありません。",
         "The user ID or the password is not correct."},
        {ErrorCode::locked, "locked",
         "パスワードを続けて間違えたため、ロックされています。ロックは一定時間で自動的に解除されま"
         "す"
         "ので、しばらく経ってから再度操作してください。一般ユーザーは、マスターユーザーにロックの"
         "解"
         "除を依頼することもできます。",
         "This user is locked after too many wrong passwords. The lock lifts by itself: please "
         "try again later. A general user may also ask the master user to release it."},
        {ErrorCode::blocked, "blocked",
         "このユーザーは閉塞されています。一般ユーザーはマスターユーザーに、マスターユーザーは労"
         "金にお問い合わせください。",
         "This user is blocked. A general user asks the master user; the master user asks the "
         "bank."},
        {ErrorCode::already_issued, "already_issued",
         "電子証明書は発行済みです。有効期限が近づくと更新できます。",
         "A certificate has already been issued. Renewal opens shortly before it expires."},
        {ErrorCode::bad_code, "bad_code", "認証コードが正しくありません。",
         "The authentication code is not correct."},
        {ErrorCode::code_expired, "code_expired",
         "認証コードの有効期限が切れました。最初からやり直してください。",
         "The authentication code has expired. Please start again."},
        {ErrorCode::flow_expired, "flow_expired",
         "操作の有効期限が切れました。最初からやり直してください。",
         "This session of the procedure has expired. Please start again."},
        {ErrorCode::csrf, "csrf",
         "画面の有効期限が切れました。画面を開き直してから再度操作してください。",
         "This page has expired. Please open it again and retry."},
        {ErrorCode::password_mismatch, "password_mismatch",
         "新しいパスワードと確認用パスワードが一致しません。",
         "The new password and its confirmation do not match."},
        {ErrorCode::mail_mismatch, "mail_mismatch",
         "メールアドレスと確認用メールアドレスが一致しません。",
         "The mail address and its confirmation do not match."},
        {ErrorCode::initial_password_expired, "initial_password_expired",
         "初期パスワードの有効期限が切れています。労金またはマスターユーザーにお問い合わせくださ"
         "い。",
         "The initial password has expired. Please ask the bank or your master user for a new "
         "one."},
        {ErrorCode::no_certificate, "no_certificate",
         "電子証明書が選択されていません。開いているブラウザをすべて閉じ、本システムへのアクセス"
         "から再度やり直して電子証明書を選択してください。電子証明書をお持ちでない場合は、ログイン"
         "画面の［電子証明書発行］から発行してください。",
         "No client certificate was selected. Close all browser windows, open this site again "
         "and select your certificate. If you have none yet, use \"Issue a certificate\" on the "
         "login screen."},
        {ErrorCode::certificate_revoked, "certificate_revoked",
         "この電子証明書は失効しています。電子証明書を再発行してください。",
         "This certificate has been revoked. Please issue a new certificate."},
        {ErrorCode::certificate_expired, "certificate_expired",
         "電子証明書の有効期限が切れています。電子証明書を再発行してください。",
         "This certificate has expired. Please issue a new certificate."},
        {ErrorCode::certificate_mismatch, "certificate_mismatch",
         "選択された電子証明書は、このシステムのものではないか、別のユーザーのものです。開いてい"
         "るブラウザをすべて閉じ、正しい電子証明書を選択してください。",
         "The selected certificate is not one of this system's, or belongs to another user. "
         "Close all browser windows and select the right certificate."},
        {ErrorCode::unavailable, "unavailable",
         "ただいまサービスを利用できません。しばらく経ってから再度操作してください。",
         "The service is unavailable at the moment. Please try again later."},
        {ErrorCode::not_found, "not_found", "ページが見つかりません。", "The page was not found."},
        {ErrorCode::forbidden, "forbidden", "この画面を利用する権限がありません。",
         "You are not allowed to use this page."},
        {ErrorCode::must_register, "must_register",
         "初期登録が済んでいません。ログイン画面の［マスターユーザーの初期登録］から、労金からの書"
         "面に記載の初期パスワードで登録してください。",
         "This user has not registered yet. Use \"Master user's first registration\" on the "
         "login screen with the initial password from the bank's letter."},
        {ErrorCode::mail_not_sent, "mail_not_sent",
         "認証コードのメールを送信できませんでした。メールは送信できるようになり次第お送りします"
         "ので、届きましたら認証コードを入力してください。しばらく経っても届かない場合は、最初から"
         "やり直してください。",
         "The mail with your authentication code could not be sent just now. It will be sent as "
         "soon as possible; enter the code when it arrives. If it does not arrive, please start "
         "again."},
        {ErrorCode::login_required, "login_required",
         "ログインしてください。一定時間操作がなかった場合や、ログアウトした場合は、再度ログインが"
         "必要です。",
         "Please log in. After a period without activity, or after logging out, you need to log "
         "in again."},
        {ErrorCode::too_many_requests, "too_many_requests",
         "短時間に認証の失敗が続いたため、一時的に受け付けを停止しています。しばらく経ってから再度"
         "操"
         "作してください。",
         "Too many failed authentications came from here in a short time, so requests are "
         "refused for a while. Please try again later."},
        {ErrorCode::already_downloaded, "already_downloaded",
         "電子証明書ファイルはダウンロード済みです（ダウンロードは一度だけです）。ダウンロードした"
         "ファイルを開いてインポートしてください。ファイルが見つからない場合は、ログイン画面の［電"
         "子証明書発行］から発行し直してください。",
         "The certificate file has already been downloaded (it downloads once). Open the "
         "downloaded file to import it. If you cannot find it, issue a new certificate with "
         "\"Issue a certificate\" on the login screen."},
    }};
    return texts;
}

const ErrorText &text_of(ErrorCode code) {
    for (const auto &t : error_texts()) {
        if (t.code == code) return t;
    }
    return error_texts()[static_cast<size_t>(ErrorCode::unavailable)];
}

// What a master user and what a general user is told (first registration,
// reset, expired initial password): they get their passwords from different
// people.
struct RoleText {
    ErrorCode code;
    std::string master_ja, master_en, general_ja, general_en;
};

const std::array<RoleText, 2> &role_texts() {
    static const std::array<RoleText, 2> texts = {{
        {ErrorCode::must_register,
         "初期登録が済んでいません。ログイン画面の［マスターユーザーの初期登録］から、労金からの書"
         "面に記載の初期パスワード（リセットされた場合は新しい書面の初期パスワード）で登録してくだ"
         "さい。",
         "This user has not registered yet. Use \"Master user's first registration\" on the "
         "login screen with the initial password from the bank's letter (after a reset, the new "
         "letter).",
         "初期登録が済んでいません。ログイン画面の［一般ユーザーの初期登録］から、マスターユーザー"
         "から受け取った初期パスワード（リセットされた場合は新しい初期パスワード）で登録してくださ"
         "い。",
         "This user has not registered yet. Use \"General user's first registration\" on the "
         "login screen with the initial password your master user gave you (after a reset, the "
         "new one)."},
        {ErrorCode::initial_password_expired,
         "初期パスワードの有効期限が切れています。労金に初期パスワードの再発行をご依頼ください。",
         "The initial password has expired. Please ask the bank for a new initial password.",
         "初期パスワードの有効期限が切れています。マスターユーザーに初期パスワードの再発行（リセッ"
         "ト）をご依頼ください。",
         "The initial password has expired. Please ask your master user to reset it."},
    }};
    return texts;
}

}  // namespace

const char *error_name(ErrorCode code) { return text_of(code).name; }

const std::string &error_message(ErrorCode code, Language lang, bool master) {
    for (const auto &t : role_texts()) {
        if (t.code != code) continue;
        if (master) return lang == Language::en ? t.master_en : t.master_ja;
        return lang == Language::en ? t.general_en : t.general_ja;
    }
    return error_message(code, lang);
}

const std::string &error_message(ErrorCode code, Language lang) {
    const auto &t = text_of(code);
    return lang == Language::en ? t.en : t.ja;
}

}  // namespace certgate

namespace certgate {
bool parse_error_code(const std::string &name, ErrorCode *code) {
    for (const auto &t : error_texts()) {
        if (name == t.name) {
            *code = t.code;
            return true;
        }
    }
    return false;
}
}  // namespace certgate
