// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The TOML config of DESIGN.md §1 (/etc/sluice/sluice.toml), read with
// toml++. Every error names FILE:LINE:COL; unknown keys are errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fleet.h"
#include "policy.h"

namespace sluice {

inline constexpr const char* kDefaultMetricsAddress = "127.0.0.1:9464";
inline constexpr uint16_t kDefaultAdminPort = 22;  // SSH
// The largest max_sources, in the config and on the command line: the map's
// 32-bit max_entries must also hold the LRU slack (sluice_abi.h).
inline constexpr uint32_t kMaxSources = 2147483647;  // 2^31 - 1

struct Config {
    std::string path;                      // where it was read from
    std::vector<std::string> interfaces;   // [sluice] interfaces
    std::string metrics = kDefaultMetricsAddress;
    uint32_t maxSources = SLUICE_DEFAULT_MAX_SOURCES;
    // Networks the operator manages this host from, and the TCP ports they
    // use: no ruleset may deny them or limit them there (lockout.h).
    std::vector<Cidr> admin;
    std::vector<uint16_t> adminPorts = {kDefaultAdminPort};
    Ruleset rules;                         // [[policy]], [[allow]], [[deny]]
    std::optional<FleetConfig> fleet;      // [fleet]: for policies with scope = "fleet"
};

// Reads and validates FILE completely (including compileRuleset's checks),
// so a Config that loads is one the data path accepts. Throws Error(Usage).
Config loadConfig(const std::string& path);
// FILE's text, as loadConfig reads it. Throws Error(Usage).
std::string readConfigFile(const std::string& path);
// The same from text, `name` standing for the file in messages.
Config parseConfig(const std::string& text, const std::string& name);

// Linux's dev_valid_name(): what the kernel accepts as an interface name.
bool validInterfaceName(const std::string& name);

}  // namespace sluice
