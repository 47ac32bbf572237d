// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What the CLI prints: human tables and their --json twins.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "datapath.h"
#include "policy.h"

namespace sluice::cli {

using Json = nlohmann::ordered_json;

// A left-aligned text table; columns sized to their widest cell.
class Table {
public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    std::string str() const;

private:
    std::vector<std::vector<std::string>> rows_;
};

std::string formatDuration(uint64_t ns);  // "11.9s", "3m12s", "2h05m"
std::string formatTick(uint32_t hz);      // "4ms", "3.3ms"
// The bucket's source: an address, or "net/len" when the policy's prefix
// puts a network in one bucket ("2001:db8:1::/64").
std::string sourceName(const Address& key, uint8_t prefix);

Json toJson(const Policy& p);
Json toJson(const Ruleset& r);
Json toJson(const SlotCounters& c);
Json toJson(const SourceState& s);

std::string policyTable(const Ruleset& r);
std::string listTable(const Ruleset& r);
std::string countersTable(const std::vector<SlotCounters>& counters);
std::string sourceTable(const std::vector<SourceState>& sources);

// What applying `next` over `current` changes, one line per change.
std::vector<std::string> describeChanges(const Ruleset& current, const Ruleset& next);

}  // namespace sluice::cli
