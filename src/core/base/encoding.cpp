#include "core/base/encoding.hpp"

#include <openssl/evp.h>

namespace certgate {

std::string base64_encode(std::string_view raw) {
    if (raw.empty()) return {};
    std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(raw.data()),
                            static_cast<int>(raw.size()));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
}

std::string base64url_encode(std::string_view raw) {
    std::string out = base64_encode(raw);
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char &c : out) {
        if (c == '+') c = '-';
        if (c == '/') c = '_';
    }
    return out;
}

bool base64url_decode(std::string_view text, std::string *raw) {
    if (text.size() % 4 == 1) return false;
    std::string padded;
    padded.reserve(text.size() + 3);
    for (char c : text) {
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!plain)
            return false;
        padded += c;
    }
    size_t pad = (4 - padded.size() % 4) % 4;
    padded.append(pad, '=');
    std::string out(padded.size() / 4 * 3, '\0');
    if (!padded.empty() && EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                           reinterpret_cast<const unsigned char *>(padded.data()),
                                           static_cast<int>(padded.size())) < 0)
        return false;
    out.resize(out.size() - pad);
    // Leftover bits must be zero: only the canonical text decodes.
    if (base64url_encode(out) != text) return false;
    *raw = std::move(out);
    return true;
}

std::string hex_encode(std::string_view raw) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(raw.size() * 2);
    for (unsigned char c : raw) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

bool site_local_path(std::string_view to) {
    if (to.empty() || to.size() > 2048 || to[0] != '/') return false;
    if (to.find("//") != std::string_view::npos) return false;
    for (size_t i = 0; i < to.size(); ++i) {
        auto ch = static_cast<unsigned char>(to[i]);
        if (ch <= 0x20 || ch >= 0x7f || ch == '\\') return false;
        if (ch != '%') continue;
        // %2F, %5C and %00-%1F, %7F: what a later decoding would turn into the above.
        if (i + 2 >= to.size()) return false;
        char hi = to[i + 1];
        char lo = static_cast<char>(to[i + 2] | 0x20);
        if ((hi == '0' || hi == '1') || (hi == '2' && lo == 'f') || (hi == '5' && lo == 'c') ||
            (hi == '7' && lo == 'f'))
            return false;
    }
    return true;
}

}  // namespace certgate
