// The certgate_* directives, once: name, context, arity, default and the
// parser from their argument strings to Settings. The nginx glue calls these
// parsers from its ngx_command_t handlers, certgatectl from its nginx.conf
// reader, so both read a line the same way and refuse it with the same words.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/settings.hpp"

namespace certgate {

// Where a directive may stand (nginx's NGX_HTTP_*_CONF).
enum DirectiveContext : unsigned { kHttp = 1, kServer = 2, kLocation = 4 };

// nginx resolves a relative path in these directives against its conf
// prefix (the directory of nginx.conf, ngx_conf_full_name(cycle, name, 1)).
struct ConfPaths {
    std::string conf_prefix;  // ends with '/'
    // nginx -t checks that files and folders are there; certgatectl leaves
    // that to the command that opens them (an operator may not read the secret).
    bool check_files = true;

    std::string full_name(const std::string& name) const;
};

// What the directives read so far made of the settings.
struct ConfValues {
    Settings settings;
    std::set<std::string> seen;  // directives given, for "is duplicate" and "is not set"
};

// Parses one occurrence's arguments (without the name) into the values;
// returns "" or the message nginx prints before " in FILE:LINE".
using DirectiveParser = std::string (*)(const std::vector<std::string>& args,
                                        const ConfPaths& paths, ConfValues& values);

struct Directive {
    const char* name;
    unsigned contexts;  // DirectiveContext bits
    int min_args;
    int max_args;               // -1: any number
    const char* default_value;  // as docs/directives.md states it; "" when none
    DirectiveParser parse;      // nullptr: the glue alone handles it (locations, zones, pools)
};

// Every certgate_* directive, in docs/directives.md order.
const std::vector<Directive>& directives();
const Directive* find_directive(std::string_view name);

// One occurrence: arity, duplicate, then the parser. "" or the message.
std::string apply_directive(const Directive& d, const std::vector<std::string>& args,
                            const ConfPaths& paths, ConfValues& values);

// Checks that need more than one directive (nginx runs them when http{} ends).
std::string check_settings(const Settings& s);

// nginx's time notation ("500ms", "2s", "1h 30m"; a bare number is seconds),
// as ngx_parse_time: in seconds (ms not allowed) or in milliseconds. -1 if invalid.
long long parse_nginx_time(std::string_view text, bool in_seconds);

// Parsers of the directives that other parts of the tree extend; their own
// functions so each stays one self-contained piece.
std::string parse_memcached(const std::vector<std::string>& args, const ConfPaths& paths,
                            ConfValues& values);
std::string parse_userid_rule(const std::vector<std::string>& args, const ConfPaths& paths,
                              ConfValues& values);
std::string parse_password_rule(const std::vector<std::string>& args, const ConfPaths& paths,
                                ConfValues& values);

}  // namespace certgate
