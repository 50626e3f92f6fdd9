// The server addresses of certgate_memcached, read the same way by the nginx
// glue (at nginx -t) and by anything else that reads nginx.conf.
#pragma once

#include <string>

#include "core/config/settings.hpp"

namespace certgate {

// Reads `host:port`, `host` (port 11211), `[v6]:port`, `[v6]` or
// `unix:/absolute/path`. On failure returns false and a short reason.
bool parse_memcached_server(const std::string &text, MemcachedServer *out, std::string *error);

// The server as a sysadmin wrote it: 127.0.0.1:11211, [::1]:11211, unix:/run/mc.sock.
std::string memcached_server_name(const MemcachedServer &server);

}  // namespace certgate
