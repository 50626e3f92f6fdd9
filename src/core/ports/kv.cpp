#include "core/ports/kv.hpp"

namespace certgate {

bool valid_kv_key(const std::string &key) {
    if (key.empty() || key.size() > 250) return false;
    for (unsigned char c : key) {
        if (c <= 32 || c == 127) return false;
    }
    return true;
}

}  // namespace certgate
