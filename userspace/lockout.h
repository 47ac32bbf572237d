// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// No lockout (issue #7): a ruleset must not deny, limit or ban the operator.
// Protected are the source of the SSH session sluice runs from
// (SSH_CONNECTION, else SSH_CLIENT, of the invoking process) on the port that
// session uses, and the config's admin CIDRs ([sluice] admin) on its admin
// ports ([sluice] admin_ports, default 22). A ruleset covers a protected
// source when
//   - a [[deny]] CIDR overlaps it, unless one [[allow]] CIDR holds the
//     overlap (allow wins over deny in the data path), or
//   - a policy that stops traffic (any action but monitor; with or without a
//     ban, key source or global) covers TCP on one of its protected ports,
//     unless one [[allow]] CIDR holds the whole protected CIDR.
// A protected CIDR only partly allow-listed counts as covered: the check
// errs on the side of refusing, and --force overrides it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy.h"

namespace sluice {

struct Config;

struct ProtectedSource {
    Cidr cidr;
    std::vector<uint16_t> tcpPorts;  // where no policy may limit it
    std::string origin;              // "the SSH session (SSH_CONNECTION)", ...
};

// The client of the SSH session whose environment this is: from
// SSH_CONNECTION ("CLIENT CPORT SERVER SPORT"), else SSH_CLIENT ("CLIENT
// CPORT SPORT"); nullopt when neither is set (not under SSH, or a daemon
// under systemd). A value that cannot be parsed is a Usage error: a check
// that silently did nothing would be worse than none.
std::optional<ProtectedSource> sshSession(const char* sshConnection, const char* sshClient);
std::optional<ProtectedSource> sshSessionFromEnvironment();

// The config's admin CIDRs, each on its admin ports.
std::vector<ProtectedSource> adminSources(const Config& config);

// What a ruleset must leave reachable: the config's admin sources, and the
// SSH session of this process's environment when there is one.
std::vector<ProtectedSource> protectedSources(const Config& config);

// One line per rule that covers a protected source, naming the rule and the
// address; empty when the ruleset is safe.
std::vector<std::string> findLockouts(const Ruleset& rules,
                                      const std::vector<ProtectedSource>& protect);

// Throws Usage listing findLockouts' lines and what to do (allow-list the
// source, or `forceHint`, e.g. "pass --force") when there are any.
void refuseLockouts(const Ruleset& rules, const std::vector<ProtectedSource>& protect,
                    const std::string& forceHint);

}  // namespace sluice
