// The error codes of the HTTP interface (DESIGN.md §5) and the words a clerk
// reads for each, in both page languages.
#pragma once

#include <string>

#include "core/config/settings.hpp"

namespace certgate {

enum class ErrorCode {
    invalid_user_id,
    invalid_password,
    bad_credentials,
    locked,
    blocked,
    already_issued,
    bad_code,
    code_expired,
    flow_expired,
    csrf,
    password_mismatch,
    mail_mismatch,
    initial_password_expired,
    no_certificate,
    certificate_revoked,
    certificate_expired,
    certificate_mismatch,
    unavailable,
    not_found,
    forbidden,
    must_register,
    mail_not_sent,
    login_required,
    too_many_requests,
    already_downloaded,
};

// The JSON `error` value, e.g. "no_certificate".
const char *error_name(ErrorCode code);

// One or two sentences saying what happened and what to do next.
const std::string &error_message(ErrorCode code, Language lang);

// The same for a user whose password was right, so whose role is known: the
// advice names the right way out (a master user's letter and the bank, a
// general user's master user). The general words when the code has none.
const std::string &error_message(ErrorCode code, Language lang, bool master);

}  // namespace certgate

namespace certgate {
// The code for a JSON `error` value; false when it is not one of ours.
bool parse_error_code(const std::string &name, ErrorCode *code);
}  // namespace certgate
