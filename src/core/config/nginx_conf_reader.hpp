// Reads the certgate_* directives out of an nginx.conf, so certgatectl finds the
// store and the CA the way nginx does (`certgatectl -c /etc/nginx/nginx.conf`).
//
// This is not nginx's parser: it tokenises the same syntax (comments, quotes,
// escapes, blocks, `include` with globs relative to the main file's directory)
// and keeps only the directives whose name starts with "certgate_". values()
// reads them with the module's own parsers (directives.hpp), relative paths
// against nginx's conf prefix: the directory of nginx.conf.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config/directives.hpp"

namespace certgate {

struct ConfError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct ConfDirective {
    std::string name;
    std::vector<std::string> args;
    std::string file;
    int line = 0;
    bool in_server = false;  // inside a server{} (or location{}) block, not at the http level
    std::string block;       // the innermost block ("http", "server", "location", ...; "" at top)
};

class NginxConf {
  public:
    // Throws ConfError naming the file (and line) it could not read or parse.
    static NginxConf read(const std::string& path);

    // Every certgate_* directive in file order.
    const std::vector<ConfDirective>& directives() const { return directives_; }
    // The first argument of the last occurrence of name, or "" if absent
    // (http-level directives: a later one is what nginx would complain about).
    std::string get(const std::string& name) const;
    std::vector<std::string> args(const std::string& name) const;
    bool has(const std::string& name) const;
    // As get(), but only occurrences at the http level (not in a server{}):
    // for directives of http and server context, such as certgate_language.
    std::string get_http_level(const std::string& name) const;

    // The settings these lines make, as nginx would read them (files are
    // not checked). Throws ConfError "<message> in FILE:LINE".
    ConfValues values() const;
    // nginx's conf prefix: the absolute directory of the main file, with '/'.
    const std::string& conf_prefix() const { return conf_prefix_; }

  private:
    void parse_file(const std::string& path, int depth);
    std::string main_file_;
    std::string conf_prefix_;  // the main file's directory: includes and paths are relative to it
    std::vector<std::string> blocks_;  // the names of the blocks open where the parser is
    std::vector<ConfDirective> directives_;
};

}  // namespace certgate
