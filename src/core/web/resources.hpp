// The files under resources/ (page and mail templates, word tables, CSS, JS),
// embedded at build time by resources/embed.py, by path below resources/:
// "templates/login.mustache", "i18n/ja.json", "static/certgate.css".
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace certgate {

const std::map<std::string, std::string_view> &embedded_resources();

// One embedded file; throws std::out_of_range naming it when there is none
// (a build that left a file out, never a user's input).
std::string_view embedded_resource(const std::string &path);

}  // namespace certgate
