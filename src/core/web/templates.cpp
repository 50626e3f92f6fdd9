// The built-in page templates, the portal's words in Japanese and English and
// the static assets, read from the files under resources/ that the build
// embeds. Screen names and button labels are the manual's.

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/web/pages.hpp"
#include "core/web/resources.hpp"

namespace certgate {

namespace {

// The embedded files below `folder`, by the name after it without `suffix`.
std::map<std::string, std::string> files_under(const std::string &folder,
                                               const std::string &suffix) {
    std::map<std::string, std::string> out;
    for (const auto &[path, bytes] : embedded_resources()) {
        if (path.compare(0, folder.size(), folder) != 0) continue;
        std::string name = path.substr(folder.size());
        if (name.size() < suffix.size() ||
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        name.resize(name.size() - suffix.size());
        out[name] = std::string(bytes);
    }
    return out;
}

std::map<std::string, std::string> words_of(const char *file) {
    // The word tables are ours and checked by the tests: a parse error here
    // is a broken build, and throws.
    const auto table = nlohmann::json::parse(embedded_resource(file));
    std::map<std::string, std::string> out;
    for (const auto &[key, text] : table.items()) out[key] = text.get<std::string>();
    return out;
}

}  // namespace

const std::map<std::string, std::string> &builtin_templates() {
    static const auto templates = files_under("templates/", ".mustache");
    return templates;
}

const std::map<std::string, std::string> &builtin_assets() {
    static const auto assets = files_under("static/", "");
    return assets;
}

const std::map<std::string, std::string> &page_words(Language lang) {
    static const auto ja = words_of("i18n/ja.json");
    static const auto en = words_of("i18n/en.json");
    return lang == Language::en ? en : ja;
}

}  // namespace certgate
