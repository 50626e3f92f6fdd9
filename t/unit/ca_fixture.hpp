// Shared by the CA core's cmocka tests (test_ca, test_hsm_key): running the
// openssl/softhsm command lines, writing files, catching CaError's text.
// Include after <cmocka.h>.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/adapters/ca.hpp"

namespace ca_fixture {

// Runs a shell command; returns its exit status and fills `out` with stdout+stderr.
inline int run(const std::string& command, std::string* out = nullptr) {
    FILE* p = popen((command + " 2>&1").c_str(), "r");
    if (!p) return -1;
    std::string text;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    int status = pclose(p);
    if (out) *out = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out << data;
}

// The CaError message f throws, or "(no error)".
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const certgate::CaError& e) {
        return e.what();
    }
    return "(no error)";
}

inline void expect_contains(const std::string& text, const std::string& part) {
    if (text.find(part) == std::string::npos)
        fail_msg("\"%s\" does not contain \"%s\"", text.c_str(), part.c_str());
}

}  // namespace ca_fixture
