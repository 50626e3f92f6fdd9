// The one base64 and the one hex of certgate: tokens and cookies
// (base64url), mail bodies and encoded words (base64), digests and ids (hex).
#pragma once

#include <string>
#include <string_view>

namespace certgate {

// RFC 4648 §4, with '=' padding: MIME bodies and RFC 2047 encoded words.
std::string base64_encode(std::string_view raw);

// RFC 4648 §5 without padding: cookies, tokens, flow fields.
std::string base64url_encode(std::string_view raw);
// False when `text` is not canonical unpadded base64url (so each text has
// one decoding).
bool base64url_decode(std::string_view text, std::string *raw);

// Lower-case hex, two digits a byte.
std::string hex_encode(std::string_view raw);

// Whether `to` is a path on this site that a redirect may go to (return=,
// certgate_home): "/" then printable ASCII, no "//", no backslash, no
// encoded slash, backslash or control character, so no browser reads a
// scheme or another host into it.
bool site_local_path(std::string_view to);

}  // namespace certgate
