#include "core/web/pages.hpp"

#include <fstream>
#include <iterator>
#include <sstream>

namespace certgate {

namespace {

using kainjow::mustache::mustache;

// Words are plain text here: the page escapes them when it shows them.
std::string fill(const std::string &text, const PageData &values) {
    if (text.find("{{") == std::string::npos) return text;
    mustache tmpl(text);
    tmpl.set_custom_escape([](const std::string &v) { return v; });
    std::string out = tmpl.render(values);
    if (!tmpl.is_valid()) throw PageError("word \"" + text + "\": " + tmpl.error_message());
    return out;
}

PageData rule_data(const CredentialRule &rule) {
    PageData d{PageData::type::object};
    d.set("min", std::to_string(rule.min_chars));
    d.set("max", std::to_string(rule.max_chars));
    d.set("maxlength", std::to_string(rule.maxlength()));
    return d;
}

// The numbers of the Policy as the templates and words read them.
PageData policy_data(const Policy &p, Language lang) {
    PageData lockout{PageData::type::object};
    lockout.set("failures", std::to_string(p.lockout.failures));
    lockout.set("duration", Policy::duration_text(p.lockout.lock_s, lang));
    lockout.set("locks", std::to_string(p.lockout.locks));
    PageData code{PageData::type::object};
    code.set("digits", std::to_string(p.codes.digits));
    code.set("lifetime", Policy::duration_text(p.codes.lifetime_s, lang));
    code.set("attempts", std::to_string(p.codes.attempts));
    PageData session{PageData::type::object};
    session.set("idle", Policy::duration_text(p.sessions.idle_s, lang));
    session.set("absolute", Policy::duration_text(p.sessions.absolute_s, lang));
    PageData d{PageData::type::object};
    d.set("certificate_days", std::to_string(p.validity.certificate_days));
    d.set("renew_before_days", std::to_string(p.validity.renew_before_days));
    d.set("user_id", rule_data(p.user_id));
    d.set("password", rule_data(p.password));
    d.set("lockout", lockout);
    d.set("code", code);
    d.set("session", session);
    return d;
}

std::string read_file_if_exists(const std::string &path, bool *found) {
    std::ifstream in(path, std::ios::binary);
    *found = static_cast<bool>(in);
    if (!in) return {};
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

Pages::Pages(const Settings &settings) : settings_(settings), policy_(settings) {
    for (Language lang : {Language::ja, Language::en}) {
        PageData policy = policy_data(policy_, lang);
        PageData values{PageData::type::object};
        values.set("policy", policy);
        auto &words = lang == Language::en ? words_en_ : words_ja_;
        // The refusal words (rule_*, invalid_*) take the value's own numbers
        // too: rule_message fills them when it is asked.
        for (const auto &[key, text] : page_words(lang)) {
            const bool later = key.rfind("rule_", 0) == 0 || key.rfind("invalid_", 0) == 0;
            words[key] = later ? text : fill(text, values);
        }
        // A configured rule is described by the directive, or by its length.
        for (auto [field, rule] :
             {std::pair{"user_id", &policy_.user_id}, std::pair{"password", &policy_.password}}) {
            const std::string key = std::string(field) + "_rule";
            if (!rule->description(lang).empty())
                words[key] = rule->description(lang);
            else if (!rule->builtin)
                words[key] = words.at(key + "_custom");
            PageData r = rule_data(*rule);
            r.set("description", words[key]);
            policy.set(field, r);
        }
        (lang == Language::en ? policy_en_ : policy_ja_) = std::move(policy);
    }
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

    const auto &t = this->words(lang);
    PageData words{PageData::type::object};
    for (const auto &[key, text] : t) words.set(key, text);

    PageData helpdesk{PageData::type::object};
    const HelpDesk &hd = settings_.helpdesk;
    helpdesk.set("name", hd.name.empty() ? t.at("helpdesk_default_name") : hd.name);
    helpdesk.set("phone", hd.phone.empty() ? t.at("helpdesk_default_phone") : hd.phone);
    helpdesk.set("hours", hd.hours.empty() ? t.at("helpdesk_default_hours") : hd.hours);

    data.set("t", words);
    data.set("policy", lang == Language::en ? policy_en_ : policy_ja_);
    data.set("helpdesk", helpdesk);
    const std::string &note =
        lang == Language::en ? settings_.footer_note_en : settings_.footer_note_ja;
    if (!note.empty()) data.set("footer_note", note);
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

const std::map<std::string, std::string> &Pages::words(Language lang) const {
    return lang == Language::en ? words_en_ : words_ja_;
}

std::string Pages::rule_message(bool user_id, RuleViolation v, std::string_view value,
                                Language lang) const {
    const auto &t = words(lang);
    const CredentialRule &rule = user_id ? policy_.user_id : policy_.password;
    const std::string field = user_id ? "user_id" : "password";
    PageData values{PageData::type::object};
    values.set("policy", lang == Language::en ? policy_en_ : policy_ja_);
    values.set("field", t.at("rule_field_" + field));
    values.set("min", std::to_string(rule.min_chars));
    values.set("max", std::to_string(rule.max_chars));
    values.set("length", std::to_string(utf8_length(value)));
    values.set("description", t.at(field + "_rule"));

    // R8/R9 name what is missing; a configured rule is told in its own words.
    std::string general =
        fill(t.at("invalid_" + field + (rule.builtin ? "_builtin" : "_custom")), values);
    switch (v) {
        case RuleViolation::full_width:
            return t.at("rule_full_width");
        case RuleViolation::too_long:
            return fill(t.at("rule_too_long"), values);
        case RuleViolation::too_short:
            return t.at("rule_too_short") + general;
        case RuleViolation::bad_character:
            return t.at("rule_bad_character") + general;
        case RuleViolation::missing_letter:
            return t.at("rule_missing_letter") + general;
        case RuleViolation::missing_digit:
            return t.at("rule_missing_digit") + general;
        case RuleViolation::missing_upper:
            return t.at("rule_missing_upper") + general;
        case RuleViolation::missing_lower:
            return t.at("rule_missing_lower") + general;
        case RuleViolation::missing_symbol:
            return t.at("rule_missing_symbol") + general;
        default:
            return general;
    }
}

const Pages::Asset *Pages::asset(const std::string &name) const {
    auto it = assets_.find(name);
    return it == assets_.end() ? nullptr : &it->second;
}

}  // namespace certgate
