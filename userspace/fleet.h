// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Fleet-wide limits (docs/fleet.md): policies with scope = "fleet" share
// their per-source limits across every host whose config has the same
// [fleet] section, through Redis. The XDP program counts the units it admits
// per source (map sluice_fleet_units) and refuses sources the sync marked
// over the fleet limit (map sluice_fleet_over). `sluice run` syncs every
// sync_interval: it sends each source's new units to Redis (batched, one
// pipelined round trip per Redis shard), reads back the fleet totals of a
// sliding window per limit, and writes over-until entries for the sources
// over it. Never per packet.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy.h"

namespace sluice {

// One Redis server: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB].
struct RedisEndpoint {
    std::string host;
    uint16_t port = 6379;
    std::string user;      // Redis 6 ACL user; "" for the legacy AUTH password
    std::string password;  // "" for none
    unsigned db = 0;

    // "host:port" ("[v6]:port"): for logs and metric labels, never the password.
    std::string str() const;
    bool operator==(const RedisEndpoint&) const = default;
};

// Throws Usage naming what is wrong with `url`.
RedisEndpoint parseRedisUrl(const std::string& url);

inline constexpr uint64_t kDefaultSyncIntervalNs = 100'000'000;  // 100 ms
inline constexpr uint64_t kMinSyncIntervalNs = 10'000'000;       // 10 ms
inline constexpr uint64_t kMaxSyncIntervalNs = 60'000'000'000;   // 1 minute

// The [fleet] section.
struct FleetConfig {
    std::vector<RedisEndpoint> redis;  // sources are sharded across them by key
    std::string node;                  // this host's name in the fleet
    uint64_t syncIntervalNs = kDefaultSyncIntervalNs;
    bool operator==(const FleetConfig&) const = default;
};

// ---- the pure parts, unit-tested ---------------------------------------------

// Sliding-window counter (Flask-Limiter's "sliding window"): the fleet's count
// of a limit at time t in window w = current + previous * (1 - elapsed / period),
// where current and previous are the totals of windows w and w-1. Returns the
// wall-clock ns until which the source is over `count` (estimate >= count),
// assuming nothing more is admitted; 0 if it is not over now.
uint64_t fleetOverUntilNs(uint64_t count, uint64_t periodNs, uint64_t nowRealNs, uint64_t current,
                          uint64_t previous);

// FNV-1a of the key: which of `shards` Redis servers holds it.
size_t fleetShardOf(std::string_view key, size_t shards);

// The Redis key of one limit of one source in one window:
// "sluice:{POLICY}:{c|p|b}{COUNT}/{PERIOD}:{SOURCE}:{WINDOW}", PERIOD as "60s"
// (or "NNNns" when not whole seconds), WINDOW = wall-clock time / period. Policies are
// matched across nodes by name and limit, not by the node-local state tag.
std::string fleetKey(const std::string& policy, const Limit& limit, const Address& source,
                     uint64_t window);

// ---- the sync --------------------------------------------------------------

// Fleet sync health for /metrics. All zero and empty without a [fleet].
struct FleetStats {
    bool enabled = false;
    std::string node;
    uint64_t syncs = 0;            // rounds completed (with or without errors)
    uint64_t syncErrors = 0;       // shard round trips that failed
    uint64_t fallbacks = 0;        // times a shard went down (local limits for its sources)
    bool fallback = false;         // some shard is down now
    uint64_t sourcesSynced = 0;    // (limit, source) pairs sent in the last round
    uint64_t sourcesSyncedTotal = 0;
    uint64_t sourcesOver = 0;      // sources marked over the fleet limit in the last round
    uint64_t nodes = 0;            // nodes seen syncing recently (shard 0's view)
    // Round durations: Prometheus histogram buckets (upper bounds in s).
    static constexpr double kBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,   0.25,   0.5,   1,    2.5};
    static constexpr size_t kBucketCount = sizeof(kBuckets) / sizeof(kBuckets[0]);
    uint64_t durationBuckets[kBucketCount] = {};  // cumulative counts
    double durationSum = 0;
    uint64_t durationCount = 0;
    struct Shard {
        std::string redis;  // RedisEndpoint::str()
        bool up = false;
        uint64_t errors = 0;
    };
    std::vector<Shard> shards;
};

// A consistent snapshot of this process's fleet sync; safe from any thread.
FleetStats fleetStats();

// Where one sync round reads and writes: an interface's maps and policies.
struct FleetTarget {
    std::string iface;
    int unitsFd = -1;  // sluice_fleet_units
    int overFd = -1;   // sluice_fleet_over
    std::vector<InstalledPolicy> policies;
};

// What one round did, for the benchmark and the log.
struct FleetRound {
    uint64_t items = 0;         // (limit, source) pairs sent
    uint64_t over = 0;          // sources written over-until
    uint64_t commands = 0;      // Redis commands sent
    uint64_t bytesOut = 0;      // request bytes
    uint64_t bytesIn = 0;       // reply bytes
    size_t shardsFailed = 0;
};

// The sync engine: Redis connections (one per shard) and what was last sent.
// Not thread-safe; FleetSync runs one on its own thread.
class FleetEngine {
public:
    explicit FleetEngine(FleetConfig config);
    ~FleetEngine();
    FleetEngine(const FleetEngine&) = delete;
    FleetEngine& operator=(const FleetEngine&) = delete;

    // One round over every target: read the unit counters, send what is new,
    // read the fleet totals back, write over-until entries. A shard that
    // fails keeps its sources' units for the next round (local limits only
    // meanwhile). Updates fleetStats() when `publish`.
    FleetRound round(const std::vector<FleetTarget>& targets, bool publish = true);

    // Forget what was sent: the next round sends nothing for units counted
    // before it (a node that starts with live maps must not resend history).
    void baseline(const std::vector<FleetTarget>& targets);

    const FleetConfig& config() const { return config_; }

    struct Impl;

private:
    FleetConfig config_;
    std::unique_ptr<Impl> impl_;
};

// The daemon's sync thread: every sync_interval, a round over the managed
// interfaces (their pins, opened on its own handles). Logs shard state
// changes. Destruction stops and joins the thread.
class FleetSync {
public:
    FleetSync(FleetConfig config, std::vector<std::string> interfaces);
    ~FleetSync();
    FleetSync(const FleetSync&) = delete;
    FleetSync& operator=(const FleetSync&) = delete;

    // The interfaces to sync from the next round on (after a reload).
    void setInterfaces(std::vector<std::string> interfaces);
    const FleetConfig& config() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
