// Templates and words of the account screens (issue 7): the master user's
// first registration, the general user's new password, the master's pages.

#include <map>
#include <string>

#include "core/pages.hpp"

namespace certgate {

std::map<std::string, std::string> account_templates() { return {}; }

std::map<std::string, std::string> account_words(Language) { return {}; }

}  // namespace certgate
