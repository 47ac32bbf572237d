// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "error.h"

#include <cstring>

namespace sluice {

std::string errnoText(int err)
{
    return std::strerror(err < 0 ? -err : err);
}

void throwRuntime(const std::string& message)
{
    throw Error(ErrorKind::Runtime, message);
}

void throwUsage(const std::string& message)
{
    throw Error(ErrorKind::Usage, message);
}

void throwSys(const std::string& what, int err)
{
    int e = err < 0 ? -err : err;
    std::string hint;
    if (e == EPERM || e == EACCES)
        hint = " (needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN: run as root)";
    throw Error(ErrorKind::Runtime, what + ": " + errnoText(e) + hint);
}

}  // namespace sluice
