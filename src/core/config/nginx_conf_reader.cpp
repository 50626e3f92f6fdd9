#include "core/config/nginx_conf_reader.hpp"

#include <glob.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace certgate {

namespace {

struct Token {
    std::string text;
    int line;
    bool quoted;
};

// Splits nginx.conf text into words and the punctuation ; { }.
std::vector<Token> tokenize(const std::string& text, const std::string& file) {
    std::vector<Token> out;
    int line = 1;
    size_t i = 0;
    const size_t n = text.size();
    while (i < n) {
        char c = text[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
        } else if (c == '#') {
            while (i < n && text[i] != '\n') ++i;
        } else if (c == ';' || c == '{' || c == '}') {
            out.push_back({std::string(1, c), line, false});
            ++i;
        } else if (c == '"' || c == '\'') {
            const char quote = c;
            const int start = line;
            std::string word;
            ++i;
            while (i < n && text[i] != quote) {
                if (text[i] == '\\' && i + 1 < n && (text[i + 1] == quote || text[i + 1] == '\\')) {
                    word += text[i + 1];
                    i += 2;
                    continue;
                }
                if (text[i] == '\n') ++line;
                word += text[i++];
            }
            if (i >= n)
                throw ConfError(file + ":" + std::to_string(start) + ": unterminated quote");
            ++i;
            out.push_back({word, start, true});
        } else {
            std::string word;
            while (i < n && !std::strchr(" \t\r\n;{}", text[i])) {
                if (text[i] == '\\' && i + 1 < n) {
                    word += text[i + 1];
                    i += 2;
                    continue;
                }
                word += text[i++];
            }
            out.push_back({word, line, false});
        }
    }
    return out;
}

}  // namespace

NginxConf NginxConf::read(const std::string& path) {
    NginxConf conf;
    // As nginx's ngx_process_options: the conf prefix is the directory of
    // the main file (a relative -c is taken from the working directory here).
    std::string full = path;
    if (full.empty() || full[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) == nullptr)
            throw ConfError(std::string("cannot find the working directory: ") +
                            std::strerror(errno));
        full = std::string(cwd) + "/" + path;
    }
    conf.main_file_ = full;
    conf.conf_prefix_ = full.substr(0, full.rfind('/') + 1);
    conf.parse_file(full, 0);
    return conf;
}

void NginxConf::parse_file(const std::string& path, int depth) {
    if (depth > 16) throw ConfError(path + ": include nested too deep (a loop?)");
    std::ifstream in(path);
    if (!in) throw ConfError("cannot read " + path + ": " + std::strerror(errno));
    std::stringstream buf;
    buf << in.rdbuf();
    auto tokens = tokenize(buf.str(), path);

    std::vector<Token> stmt;
    for (const auto& t : tokens) {
        if (!t.quoted && (t.text == "{" || t.text == "}")) {
            // A block opens or closes: whatever came before was its name.
            if (t.text == "{")
                blocks_.push_back(stmt.empty() ? "" : stmt[0].text);
            else if (!blocks_.empty())
                blocks_.pop_back();
            stmt.clear();
            continue;
        }
        if (!(!t.quoted && t.text == ";")) {
            stmt.push_back(t);
            continue;
        }
        if (stmt.empty()) continue;
        const std::string& name = stmt[0].text;
        if (name == "include" && stmt.size() == 2) {
            std::string pattern = stmt[1].text;
            if (pattern.empty() || pattern[0] != '/') pattern = conf_prefix_ + pattern;
            if (pattern.find_first_of("*?[") == std::string::npos) {
                parse_file(pattern, depth + 1);
            } else {
                glob_t g{};
                int rc = glob(pattern.c_str(), 0, nullptr, &g);
                if (rc == 0)
                    for (size_t k = 0; k < g.gl_pathc; ++k) parse_file(g.gl_pathv[k], depth + 1);
                globfree(&g);
                if (rc != 0 && rc != GLOB_NOMATCH)
                    throw ConfError(path + ":" + std::to_string(stmt[0].line) +
                                    ": cannot expand include " + pattern);
            }
        } else if (name.rfind("certgate_", 0) == 0) {
            ConfDirective d{name,         {},    path,
                            stmt[0].line, false, blocks_.empty() ? "" : blocks_.back()};
            for (const auto& b : blocks_)
                if (b == "server" || b == "location") d.in_server = true;
            for (size_t k = 1; k < stmt.size(); ++k) d.args.push_back(stmt[k].text);
            directives_.push_back(std::move(d));
        }
        stmt.clear();
    }
}

std::string NginxConf::get_http_level(const std::string& name) const {
    for (auto it = directives_.rbegin(); it != directives_.rend(); ++it)
        if (it->name == name && !it->in_server) return it->args.empty() ? "" : it->args[0];
    return "";
}

std::vector<std::string> NginxConf::args(const std::string& name) const {
    for (auto it = directives_.rbegin(); it != directives_.rend(); ++it)
        if (it->name == name) return it->args;
    return {};
}

std::string NginxConf::get(const std::string& name) const {
    auto a = args(name);
    return a.empty() ? std::string() : a[0];
}

bool NginxConf::has(const std::string& name) const {
    for (const auto& d : directives_)
        if (d.name == name) return true;
    return false;
}

ConfValues NginxConf::values() const {
    ConfValues values;
    ConfPaths paths;
    paths.conf_prefix = conf_prefix_;
    paths.check_files = false;
    for (const auto& d : directives_) {
        const Directive* directive = find_directive(d.name);
        // Names this build does not know are nginx's to refuse.
        if (directive == nullptr || directive->parse == nullptr) continue;
        const std::string where = " in " + d.file + ":" + std::to_string(d.line);
        if (d.in_server) {
            // A server's own language is for its pages; the http level's is the mails'.
            if (directive->contexts & kServer) continue;
            throw ConfError("\"" + d.name + "\" directive is not allowed here" + where);
        }
        std::string error = apply_directive(*directive, d.args, paths, values);
        if (!error.empty()) throw ConfError(error + where);
    }
    std::string problem = check_settings(values.settings);
    if (!problem.empty()) throw ConfError(problem + " in " + main_file_);
    return values;
}

}  // namespace certgate
