// What browsers send: application/x-www-form-urlencoded bodies, query
// strings and Cookie headers, parsed strictly and with limits.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace certgate {

// Fields of a urlencoded body or query string. False when it is malformed
// (bad percent escape, a field repeated, more than 32 fields or a value over
// 4096 bytes): the caller answers 400 instead of guessing.
bool parse_form(std::string_view text, std::map<std::string, std::string> *fields);

// The value of cookie `name` in one Cookie header value; empty when absent.
std::string find_cookie(std::string_view header, std::string_view name);
// The same, as a view into `header` (the protected path allocates nothing).
std::string_view find_cookie_view(std::string_view header, std::string_view name);

// A non-negative decimal integer of at most 18 digits (so it cannot
// overflow int64_t), nothing else.
bool parse_decimal(const std::string &text, int64_t *out);

// "%XX" escapes for a query string value.
std::string url_encode(std::string_view s);

}  // namespace certgate
