// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Least privilege (issue #7): each CLI verb checks up front that the process
// has the capabilities it needs (capget(2), the effective set) and names the
// missing ones, instead of failing half-way with a bare EPERM from the kernel.
#pragma once

#include <string>
#include <vector>

namespace sluice {

// Capability numbers as in <linux/capability.h>.
enum class Capability : int {
    DacOverride = 1,
    NetAdmin = 12,
    SysAdmin = 21,
    Bpf = 39,
};

std::string capabilityName(Capability cap);

// Which of `needed` the calling thread's effective set lacks, in order.
std::vector<Capability> missingCapabilities(const std::vector<Capability>& needed);

// Throws Runtime "VERB needs CAP_A, CAP_B and CAP_C; this process lacks
// CAP_B: run as root ..." when any of `needed` is missing.
void requireCapabilities(const std::string& verb, const std::vector<Capability>& needed);

}  // namespace sluice
