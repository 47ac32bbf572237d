// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "caps.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "error.h"

namespace sluice {
namespace {

constexpr unsigned kCapBitsPerWord = 32;

std::string listed(const std::vector<Capability>& caps)
{
    std::string out;
    for (size_t i = 0; i < caps.size(); i++)
        out += (i == 0 ? "" : i + 1 == caps.size() ? " and " : ", ") + capabilityName(caps[i]);
    return out;
}

}  // namespace

std::string capabilityName(Capability cap)
{
    switch (cap) {
    case Capability::DacOverride:
        return "CAP_DAC_OVERRIDE";
    case Capability::NetAdmin:
        return "CAP_NET_ADMIN";
    case Capability::SysAdmin:
        return "CAP_SYS_ADMIN";
    case Capability::Bpf:
        return "CAP_BPF";
    }
    return "capability " + std::to_string(static_cast<int>(cap));
}

std::vector<Capability> missingCapabilities(const std::vector<Capability>& needed)
{
    // glibc has no capget wrapper; version 3 has two 32-bit words per set.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &header, data) != 0)
        throwSys("cannot read this process's capabilities (capget)", errno);
    std::vector<Capability> missing;
    for (Capability cap : needed) {
        unsigned bit = static_cast<unsigned>(cap);
        if (!(data[bit / kCapBitsPerWord].effective & (1U << (bit % kCapBitsPerWord))))
            missing.push_back(cap);
    }
    return missing;
}

void requireCapabilities(const std::string& verb, const std::vector<Capability>& needed)
{
    auto missing = missingCapabilities(needed);
    if (missing.empty())
        return;
    throwRuntime("`sluice " + verb + "` needs " + listed(needed) + "; this process lacks " +
                 listed(missing) + ": run it as root (sudo sluice " + verb +
                 " ...), or grant the capabilities (systemd: AmbientCapabilities=)");
}

}  // namespace sluice
