#include "core/web/resources.hpp"

#include <stdexcept>

namespace certgate {

std::string_view embedded_resource(const std::string &path) {
    const auto &files = embedded_resources();
    auto it = files.find(path);
    if (it == files.end()) throw std::out_of_range("no embedded resource \"" + path + "\"");
    return it->second;
}

}  // namespace certgate
