// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Where the unit tests find the repository's files (examples/, test data).
#pragma once

#include <limits.h>
#include <unistd.h>

#include <string>

namespace sluice {

// The repository root: the nearest directory above the unit binary (which
// lives in build/tests/ or build-san/tests/) that holds `marker`, a path
// relative to the root; "." when none does.
inline std::string sourceRoot(const std::string& marker)
{
    char exe[PATH_MAX] = {};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    std::string dir = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "";
    for (int up = 0; up < 4 && !dir.empty(); up++) {
        dir = dir.substr(0, dir.rfind('/'));
        if (access((dir + "/" + marker).c_str(), R_OK) == 0)
            return dir;
    }
    return ".";
}

}  // namespace sluice
