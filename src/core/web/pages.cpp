#include "core/web/pages.hpp"

#include <fstream>
#include <iterator>
#include <sstream>

namespace certgate {

namespace {

using kainjow::mustache::mustache;

std::string read_file_if_exists(const std::string &path, bool *found) {
    std::ifstream in(path, std::ios::binary);
    *found = static_cast<bool>(in);
    if (!in) return {};
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

Pages::Pages(const Settings &settings) : settings_(settings) {
    for (const auto &[name, text] : builtin_templates()) {
        std::string source = text;
        std::string origin = "built-in template \"" + name + "\"";
        if (!settings_.templates_dir.empty()) {
            bool found = false;
            std::string path = settings_.templates_dir + "/" + name + ".mustache";
            std::string custom = read_file_if_exists(path, &found);
            if (found) {
                source = custom;
                origin = "template " + path;
            }
        }
        mustache tmpl(source);
        if (!tmpl.is_valid()) {
            throw PageError(origin + ": " + tmpl.error_message());
        }
        templates_[name] = source;
    }
    for (const auto &[name, body] : builtin_assets()) {
        const char *type = "application/octet-stream";
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".css") == 0) {
            type = "text/css; charset=utf-8";
        } else if (name.size() > 3 && name.compare(name.size() - 3, 3, ".js") == 0) {
            type = "application/javascript; charset=utf-8";
        }
        assets_[name] = Asset{type, body};
    }
}

std::string Pages::render(const std::string &name, Language lang, PageData data,
                          const std::string &self_path) const {
    auto it = templates_.find(name);
    if (it == templates_.end()) throw PageError("no template \"" + name + "\"");

    PageData words{PageData::type::object};
    for (const auto &[key, text] : page_words(lang)) words.set(key, text);

    PageData helpdesk{PageData::type::object};
    const HelpDesk &hd = settings_.helpdesk;
    helpdesk.set("name", hd.name.empty() ? page_words(lang).at("helpdesk_default_name") : hd.name);
    helpdesk.set("phone", hd.phone.empty() ? page_words(lang).at("helpdesk_default_phone") : hd.phone);
    helpdesk.set("hours", hd.hours.empty() ? page_words(lang).at("helpdesk_default_hours") : hd.hours);

    data.set("t", words);
    data.set("helpdesk", helpdesk);
    data.set("prefix", settings_.portal_prefix);
    data.set("lang", lang == Language::en ? "en" : "ja");
    data.set("other_lang", lang == Language::en ? "ja" : "en");
    data.set("other_lang_label", lang == Language::en ? "日本語" : "English");
    data.set("self", self_path);

    // The step bar ①…⑨ is a template of its own, shared by the issuance screens.
    if (data.get("steps")) data.set("step_bar", mustache(templates_.at("step_bar")).render(data));
    std::string body = mustache(it->second).render(data);
    data.set("body", body);
    return mustache(templates_.at("layout")).render(data);
}

const Pages::Asset *Pages::asset(const std::string &name) const {
    auto it = assets_.find(name);
    return it == assets_.end() ? nullptr : &it->second;
}

}  // namespace certgate
