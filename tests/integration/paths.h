// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Where the integration tier finds what it runs: the built binaries (next to
// build/tests/), the source tree, and sluice's pin directories.
#pragma once

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

extern "C" {
#include "sluice_abi.h"
}

namespace slit {

// build/tests/integration_tests -> build.
inline std::string buildDir() {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return "build";
    std::string exe(buf, size_t(n));
    std::string tests = exe.substr(0, exe.rfind('/'));
    return tests.substr(0, tests.rfind('/'));
}

// build/sluice, unless SLUICE_BIN says.
inline std::string sluiceBinary() {
    if (const char* env = getenv("SLUICE_BIN"))
        return env;
    return buildDir() + "/sluice";
}

// The source tree (build/..), unless SLUICE_SRC says.
inline std::string sourceDir() {
    if (const char* env = getenv("SLUICE_SRC"))
        return env;
    std::string b = buildDir();
    return b.find('/') == std::string::npos ? "." : b.substr(0, b.rfind('/'));
}

inline std::string pinDirOf(const std::string& iface) {
    return std::string(SLUICE_PIN_ROOT) + "/" + iface;
}

inline std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace slit
