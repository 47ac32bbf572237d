// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What sluice exports (DESIGN.md §1 "Exported counters"): the Prometheus text
// exposition of /metrics, rendered by a pure function from a snapshot, and the
// readers that take that snapshot from the kernel. Also the batched read of
// the per-source table that `sluice top` and the tracked-sources gauge use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "datapath.h"
#include "fleet.h"
#include "responder.h"

namespace sluice {

// The kernel's BPF run-time statistics of one program (bpf_prog_info). They
// only advance while BPF stats are on (sysctl kernel.bpf_stats_enabled=1, or
// an fd from BPF_ENABLE_STATS held open).
struct ProgStats {
    uint64_t runTimeNs = 0;
    uint64_t runCount = 0;
    uint64_t recursionMisses = 0;
};

struct InterfaceMetrics {
    std::string iface;
    bool attached = false;   // an XDP program of sluice's runs on the interface
    std::string mode;        // "native", "generic" ("" when unknown)
    std::vector<SlotCounters> counters;
    std::optional<uint64_t> trackedSources;
    std::optional<uint64_t> sourceCapacity;
    std::optional<uint64_t> bannedSources;  // when the data path keeps bans
    std::optional<uint64_t> banCapacity;
    std::optional<uint64_t> sourceFilterBits;     // the per-source table's presence filter
    std::optional<uint64_t> sourceFilterBitsSet;
    std::optional<uint64_t> probationFilterBitsSet;  // the probation table's, as many bits
    std::optional<ProgStats> prog;
};

struct MetricsSnapshot {
    std::string version;   // build info
    std::string libbpf;    // libbpf version
    uint64_t reloadsOk = 0;
    uint64_t reloadsFailed = 0;
    uint64_t sourceFilterRebuilds = 0;  // by `sluice run` (DaemonStats)
    uint64_t reattaches = 0;            // by `sluice run` (DaemonStats)
    std::optional<bool> bpfStatsEnabled;  // kernel.bpf_stats_enabled
    // `sluice run`'s responder (action respond); absent outside the daemon.
    std::optional<ResponderStats> responder;
    std::vector<InterfaceMetrics> interfaces;
    std::optional<FleetStats> fleet;  // while `sluice run` syncs a [fleet]
    std::vector<std::string> errors;  // what could not be read (counted, and logged)
};

// The Prometheus text exposition format (version 0.0.4) of a snapshot.
std::string renderMetrics(const MetricsSnapshot& snapshot);
// Escapes a label value: backslash, double quote and newline.
std::string escapeLabel(const std::string& value);

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Reads one managed interface from its pins (independent handles: safe from
// any thread while the daemon works on its own). Errors end up in
// `snapshot.errors` and the interface is reported as not attached.
void collectInterface(const std::string& iface, MetricsSnapshot& snapshot);
// Bans in force now and the ban table's size, from IFACE's pinned
// sluice_bans; nullopt when there is no such map.
std::optional<std::pair<uint64_t, uint64_t>> countBans(const std::string& iface);
// The program's run-time statistics; nullopt if the fd is not a program.
std::optional<ProgStats> progStats(int progFd);
// kernel.bpf_stats_enabled; nullopt if it cannot be read.
std::optional<bool> bpfStatsEnabled();
std::string sluiceVersion();

// ---- the per-source table, read in batches ----------------------------------

struct SourceEntry {
    sluice_source_key key;
    sluice_source_state state;
    uint64_t readNs = 0;  // when its chunk was read (Datapath::nowNs clock); 0: unknown
};

// Every entry of IFACE's pinned sluice_sources map, then of its
// sluice_probation map (sources seen once), read with BPF_MAP_LOOKUP_BATCH
// (falling back to key-by-key iteration on kernels without batch ops on LRU
// hashes).
std::vector<SourceEntry> readSourceTable(const std::string& iface);
// Counts the entries the same way without keeping them.
uint64_t countSourceTable(const std::string& iface);

// ---- `sluice top` ------------------------------------------------------------

// One limit of one source over a sampled interval. "Passed units" come from
// how far the GCRA theoretical arrival time (TAT) advanced: every admitted
// unit moves it one emission interval further, a refused one does not move it.
struct TopLimit {
    Limit limit;
    double passedUnits = 0;     // admitted over the interval (estimate)
    double usage = 0;           // passed / what the limit's rate allows in the interval
    uint64_t remaining = 0;     // units admitted now
    uint64_t retryAfterNs = 0;  // 0: the next unit is admitted now
    uint64_t aheadNs = 0;       // how far TAT runs ahead of now
};

struct TopEntry {
    std::string policy;
    Address source;
    uint8_t prefix = 0;    // the policy's prefix for source's family
    bool limited = false;  // some limit refuses the next unit now
    double passedUnits = 0;  // of the limit with the highest usage
    double usage = 0;      // the highest usage of its limits
    double fill = 1;       // lowest remaining/burst of its limits (1: full bucket)
    std::vector<TopLimit> limits;
};

enum class TopOrder { Limited, Passed };

// Ranks the sources of `after` (read at afterNs) against `before` (read at
// beforeNs; empty when there was only one sample). An entry's own readNs,
// when set, overrides those times: a read of a million entries takes a good
// part of a second, and two reads sweep the table in the same order, so
// each source is seen twice about one read apart. TopOrder::Limited puts the
// sources whose bucket is empty now first, heaviest usage first; Passed ranks
// every source by units admitted over the interval. Keeps at most n.
std::vector<TopEntry> rankSources(const std::vector<InstalledPolicy>& policies,
                                  const std::vector<SourceEntry>& before, uint64_t beforeNs,
                                  const std::vector<SourceEntry>& after, uint64_t afterNs,
                                  TopOrder order, size_t n, const std::string& onlyPolicy = "");

}  // namespace sluice
