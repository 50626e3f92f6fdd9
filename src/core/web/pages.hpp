// The portal's pages: Mustache templates compiled in, which a bank may
// replace one by one from the certgate_templates directory, rendered in
// Japanese or English. The words of each page come from a dictionary per
// language; the templates hold the markup.
#pragma once

#include <kainjow/mustache.hpp>
#include <map>
#include <stdexcept>
#include <string>

#include "core/config/settings.hpp"
#include "core/policy/policy.hpp"

namespace certgate {

struct PageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using PageData = kainjow::mustache::data;

class Pages {
  public:
    // Compiles every built-in template, each replaced by DIR/<name>.mustache
    // when that file exists. A template that does not compile throws
    // PageError naming the file and the Mustache error. The words are
    // filled in with the Policy's numbers once, here.
    Pages(const Settings &settings);

    const Policy &policy() const { return policy_; }

    // The words of the pages (t.*), with the configured numbers and rules.
    const std::map<std::string, std::string> &words(Language lang) const;

    // Why a user ID (`user_id`) or a password that broke its rule is refused,
    // in words that name the configured rule.
    std::string rule_message(bool user_id, RuleViolation v, std::string_view value,
                             Language lang) const;

    // Renders page `name` inside the layout. `data` gives the page's own
    // values; the words of the page (t.*), the policy's numbers (policy.*),
    // the help desk, the language switch and the portal prefix are added here.
    std::string render(const std::string &name, Language lang, PageData data,
                       const std::string &self_path) const;

    // A static asset of the portal (css, js); nullptr if there is none.
    struct Asset {
        const char *content_type;
        std::string body;
    };
    const Asset *asset(const std::string &name) const;

  private:
    Settings settings_;
    Policy policy_;
    std::map<std::string, std::string> words_ja_, words_en_;
    PageData policy_ja_, policy_en_;
    std::map<std::string, std::string> templates_;
    std::map<std::string, Asset> assets_;
};

// The built-in templates and assets (resources/templates, resources/static), by name.
const std::map<std::string, std::string> &builtin_templates();
const std::map<std::string, std::string> &builtin_assets();
// The words of the pages, per language: key → text, as in resources/i18n
// (numbers still as {{policy.*}}; Pages::words fills them in).
const std::map<std::string, std::string> &page_words(Language lang);

}  // namespace certgate
