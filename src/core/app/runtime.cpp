#include "core/app/runtime.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>

namespace certgate {

namespace {

// The permission bits that apply to `who` (owner, group or other, as the
// kernel picks them) allow `want`: 4 read, 2 write, 1 search/execute.
bool allowed(const struct stat &st, const WorkerIdentity &who, unsigned want) {
    if (who.uid == 0) return true;
    unsigned shift = 0;  // other
    if (st.st_uid == who.uid) {
        shift = 6;
    } else {
        for (uint32_t g : who.gids)
            if (st.st_gid == g) {
                shift = 3;
                break;
            }
    }
    return ((st.st_mode >> shift) & want) == want;
}

std::string mode_text(const struct stat &st) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "owner uid %u, group gid %u, mode %04o",
                  static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_gid),
                  static_cast<unsigned>(st.st_mode & 07777));
    return buf;
}

}  // namespace

std::string store_access_problem(const std::string &store_uri, const WorkerIdentity &who) {
    static const char sqlite[] = "sqlite:";
    std::string path = store_uri;
    if (path.rfind(sqlite, 0) == 0)
        path = path.substr(sizeof sqlite - 1);
    else if (path.find(':') != std::string::npos && path[0] != '/')
        return "";
    if (who.uid == 0 || path.empty()) return "";
    const std::string user = "nginx's worker user \"" + who.name + "\" (uid " +
                             std::to_string(who.uid) + ", the \"user\" directive)";

    // Every folder on the way must let the user through (x); the store must
    // be readable and writable, and its folder take new files (w), since
    // SQLite makes the -wal and -shm files next to it; those too, if there.
    std::string folder = path.substr(0, path.rfind('/'));
    if (folder.empty()) folder = "/";
    for (size_t pos = 1;; ++pos) {
        pos = folder.find('/', pos);
        std::string dir = pos == std::string::npos ? folder : folder.substr(0, pos);
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0)
            return "cannot stat \"" + dir + "\": " + std::strerror(errno);
        if (!allowed(st, who, 1))
            return user + " cannot enter the folder \"" + dir + "\" on the way to the store (" +
                   mode_text(st) + ")";
        if (pos == std::string::npos) break;
    }
    for (const char *suffix : {"", "/", "-wal", "-shm"}) {
        const bool dir = *suffix == '/';
        const std::string file = dir ? folder : path + suffix;
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0) {
            if (*suffix) continue;
            return "cannot stat the store \"" + file + "\": " + std::strerror(errno);
        }
        if (dir && !allowed(st, who, 3))
            return user + " cannot create files in the store's folder \"" + file + "\" (" +
                   mode_text(st) + "); SQLite needs that for the store's -wal and -shm files";
        if (!dir && !allowed(st, who, 6))
            return user + " cannot read and write the store file \"" + file + "\" (" +
                   mode_text(st) + ")";
    }
    return "";
}

std::string read_secret_file(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw std::runtime_error("cannot read secret file \"" + path +
                                 "\": " + std::strerror(errno));
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
        throw std::runtime_error("cannot read secret file \"" + path +
                                 "\": " + std::strerror(errno));
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
