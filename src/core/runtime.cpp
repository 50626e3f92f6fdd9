#include "core/runtime.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>

namespace certgate {

std::string read_secret_file(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw std::runtime_error("cannot read secret file \"" + path + "\": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        throw std::runtime_error("secret file \"" + path + "\" is not a regular file");
    }
    if (st.st_mode & S_IROTH) {
        throw std::runtime_error("secret file \"" + path +
                                 "\" is readable by others; chmod 600 or 640 it");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read secret file \"" + path + "\": " + std::strerror(errno));
    }
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // A trailing newline from `echo` or an editor is not part of the secret.
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.size() < 32) {
        throw std::runtime_error("secret file \"" + path + "\" holds " +
                                 std::to_string(secret.size()) +
                                 " bytes; it needs at least 32 random bytes "
                                 "(e.g. openssl rand -out FILE 48)");
    }
    return secret;
}

namespace {
std::map<std::string, std::unique_ptr<Store>> &thread_stores() {
    thread_local std::map<std::string, std::unique_ptr<Store>> stores;
    return stores;
}
}  // namespace

Store &thread_store(const std::string &uri) {
    auto &slot = thread_stores()[uri];
    if (!slot) slot = Store::open(uri);
    return *slot;
}

void drop_thread_store(const std::string &uri) noexcept { thread_stores().erase(uri); }

}  // namespace certgate
