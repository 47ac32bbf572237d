// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "metrics.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>
#include <unordered_map>

#include "error.h"
#include "map_batch.h"
#include "unique_fd.h"

extern "C" {
#include "lib/gcra.h"
}

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

namespace sluice {

// ---- exposition ---------------------------------------------------------------

std::string escapeLabel(const std::string& value)
{
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

namespace {

// The label value of slot 0, the traffic that matched no policy.
constexpr const char* kNoPolicy = "(none)";

class Exposition {
public:
    // Starts a metric family: HELP and TYPE once, before its samples.
    void family(const std::string& name, const char* type, const std::string& help)
    {
        out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }

    void sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
                const std::string& value)
    {
        out_ += name;
        if (!labels.empty()) {
            out_ += "{";
            for (size_t i = 0; i < labels.size(); i++)
                out_ += (i ? "," : "") + labels[i].first + "=\"" + escapeLabel(labels[i].second) + "\"";
            out_ += "}";
        }
        out_ += " " + value + "\n";
    }

    const std::string& str() const { return out_; }

private:
    std::string out_;
};

std::string integer(uint64_t v) { return std::to_string(v); }

std::string seconds(uint64_t ns)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%llu.%09llu", (unsigned long long)(ns / kNsPerSecond),
             (unsigned long long)(ns % kNsPerSecond));
    return buf;
}

// Fleet sync health (docs/fleet.md), while `sluice run` has a [fleet].
void renderFleet(Exposition& e, const FleetStats& f)
{
    const std::vector<std::pair<std::string, std::string>> node = {{"node", f.node}};
    e.family("sluice_fleet_syncs_total", "counter", "Fleet sync rounds run by this node.");
    e.sample("sluice_fleet_syncs_total", node, integer(f.syncs));
    e.family("sluice_fleet_sync_duration_seconds", "histogram",
             "Time one fleet sync round takes: read the unit counters, one pipelined round trip per "
             "Redis shard, write the over-limit entries.");
    for (size_t b = 0; b < FleetStats::kBucketCount; b++) {
        char le[32];
        snprintf(le, sizeof le, "%g", FleetStats::kBuckets[b]);
        e.sample("sluice_fleet_sync_duration_seconds_bucket", {{"node", f.node}, {"le", le}},
                 integer(f.durationBuckets[b]));
    }
    e.sample("sluice_fleet_sync_duration_seconds_bucket", {{"node", f.node}, {"le", "+Inf"}},
             integer(f.durationCount));
    char sum[64];
    snprintf(sum, sizeof sum, "%.9f", f.durationSum);
    e.sample("sluice_fleet_sync_duration_seconds_sum", node, sum);
    e.sample("sluice_fleet_sync_duration_seconds_count", node, integer(f.durationCount));
    e.family("sluice_fleet_sync_errors_total", "counter",
             "Fleet sync round trips to a Redis shard that failed (connect, timeout, error reply).");
    for (const auto& sh : f.shards)
        e.sample("sluice_fleet_sync_errors_total", {{"node", f.node}, {"redis", sh.redis}}, integer(sh.errors));
    e.family("sluice_fleet_redis_up", "gauge",
             "1 while the Redis shard answered the last sync round; 0 while its sources fall back to "
             "local limits.");
    for (const auto& sh : f.shards)
        e.sample("sluice_fleet_redis_up", {{"node", f.node}, {"redis", sh.redis}}, sh.up ? "1" : "0");
    e.family("sluice_fleet_fallback", "gauge",
             "1 while some Redis shard is unreachable and its sources are held to local limits only.");
    e.sample("sluice_fleet_fallback", node, f.fallback ? "1" : "0");
    e.family("sluice_fleet_fallbacks_total", "counter",
             "Times a Redis shard went from reachable to unreachable.");
    e.sample("sluice_fleet_fallbacks_total", node, integer(f.fallbacks));
    e.family("sluice_fleet_sources_synced", "gauge",
             "(limit, source) pairs with new units sent to Redis in the last sync round.");
    e.sample("sluice_fleet_sources_synced", node, integer(f.sourcesSynced));
    e.family("sluice_fleet_sources_synced_total", "counter",
             "(limit, source) pairs sent to Redis over all sync rounds.");
    e.sample("sluice_fleet_sources_synced_total", node, integer(f.sourcesSyncedTotal));
    e.family("sluice_fleet_sources_over", "gauge",
             "Sources the last sync round found over a fleet limit (marked on this node).");
    e.sample("sluice_fleet_sources_over", node, integer(f.sourcesOver));
    e.family("sluice_fleet_nodes", "gauge",
             "Nodes that synced with the first Redis shard in the last 10 seconds (this one included).");
    e.sample("sluice_fleet_nodes", node, integer(f.nodes));
}

}  // namespace

std::string renderMetrics(const MetricsSnapshot& s)
{
    Exposition e;
    e.family("sluice_build_info", "gauge", "Always 1; the labels say which sluice and libbpf run.");
    e.sample("sluice_build_info", {{"version", s.version}, {"libbpf", s.libbpf}}, "1");

    e.family("sluice_xdp_attached", "gauge",
             "1 while sluice's XDP program is attached to the interface, 0 when it is not.");
    for (const auto& i : s.interfaces)
        e.sample("sluice_xdp_attached", {{"interface", i.iface}, {"mode", i.mode}}, i.attached ? "1" : "0");

    for (const char* what : {"packets", "bytes"}) {
        bool packets = std::string(what) == "packets";
        std::string name = std::string("sluice_") + what + "_total";
        e.family(name, "counter",
                 std::string(packets ? "Packets" : "Bytes (frame length)") +
                     " the XDP program judged, by interface, policy and verdict "
                     "(policy \"(none)\": traffic that matched no policy).");
        for (const auto& i : s.interfaces)
            for (const auto& sc : i.counters)
                for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++)
                    e.sample(name,
                             {{"interface", i.iface},
                              {"policy", sc.policy.empty() ? kNoPolicy : sc.policy},
                              {"verdict", verdictName(v)}},
                             integer(packets ? sc.verdicts[v].packets : sc.verdicts[v].bytes));
    }

    auto gauge = [&](const char* name, const char* help, auto field) {
        bool any = false;
        for (const auto& i : s.interfaces)
            any = any || (i.*field).has_value();
        if (!any)
            return;
        e.family(name, "gauge", help);
        for (const auto& i : s.interfaces)
            if ((i.*field).has_value())
                e.sample(name, {{"interface", i.iface}}, integer(*(i.*field)));
    };
    gauge("sluice_sources_tracked", "Sources with bucket state: the per-source table and the probation table (sources seen once).",
          &InterfaceMetrics::trackedSources);
    gauge("sluice_sources_capacity", "Entries the per-source table holds (max_sources); beyond it the "
                                     "least recently used state is evicted.",
          &InterfaceMetrics::sourceCapacity);
    gauge("sluice_sources_banned", "Sources banned now (their ban has not run out).",
          &InterfaceMetrics::bannedSources);
    gauge("sluice_bans_capacity", "Bans the ban table holds at once; beyond it the least recently "
                                  "used ban is forgotten.",
          &InterfaceMetrics::banCapacity);
    gauge("sluice_source_filter_bits", "Bits of the per-source table's presence filter.",
          &InterfaceMetrics::sourceFilterBits);
    gauge("sluice_source_filter_bits_set",
          "Bits set in the presence filter: sources promoted into the table, evicted ones too until "
          "a rebuild (`sluice run` at 40% set, `sluice reset --all`, an attach); the share set is the "
          "share of spoofed sources that still pay the table's lookup.",
          &InterfaceMetrics::sourceFilterBitsSet);
    gauge("sluice_probation_filter_bits_set",
          "Bits set in the probation table's presence filter (as many bits as the per-source table's), "
          "which only policies with new_sources use: sources they gave a probation entry, gone ones too "
          "until a rebuild; the share set is the share of spoofed sources that still pay the probation "
          "table's lookup.",
          &InterfaceMetrics::probationFilterBitsSet);

    e.family("sluice_config_reloads_total", "counter",
             "Config reloads by `sluice run` (SIGHUP or file change), by result.");
    e.sample("sluice_config_reloads_total", {{"result", "success"}}, integer(s.reloadsOk));
    e.sample("sluice_config_reloads_total", {{"result", "failure"}}, integer(s.reloadsFailed));

    e.family("sluice_source_filter_rebuilds_total", "counter",
             "Rebuilds by `sluice run` of the source filters when they were off or one was 40% set: the "
             "bits of sources that left their table are cleared.");
    e.sample("sluice_source_filter_rebuilds_total", {}, integer(s.sourceFilterRebuilds));

    e.family("sluice_reattaches_total", "counter",
             "Times `sluice run` found its program taken off a managed interface (ip link set dev IFACE xdp "
             "off, the interface made again) and attached it again, buckets kept. The interface was "
             "unprotected until then: up to 10 s.");
    e.sample("sluice_reattaches_total", {}, integer(s.reattaches));

    e.family("sluice_responder_up", "gauge",
             "1 while `sluice run`'s 429 responder runs; at 0, action respond falls back to reject.");
    e.sample("sluice_responder_up", {}, s.responder ? "1" : "0");
    if (s.responder) {
        e.family("sluice_responder_connections_total", "counter",
                 "Connections the responder closed, by result: answered (429 for a connection the data "
                 "path handed over), unmatched (429 with no record), timeout (no whole request before "
                 "the deadline), error.");
        const std::pair<const char*, uint64_t> results[] = {
            {"answered", s.responder->answered},
            {"unmatched", s.responder->unmatched},
            {"timeout", s.responder->timedOut},
            {"error", s.responder->errors},
        };
        for (const auto& [result, n] : results)
            e.sample("sluice_responder_connections_total", {{"result", result}}, integer(n));
        e.family("sluice_responder_open_connections", "gauge",
                 "Connections the responder holds now (at most its fixed table size).");
        e.sample("sluice_responder_open_connections", {}, integer(s.responder->open));
    }

    if (s.bpfStatsEnabled) {
        e.family("sluice_bpf_stats_enabled", "gauge",
                 "1 when the kernel counts BPF program run time (sysctl kernel.bpf_stats_enabled); "
                 "the run-time metrics only advance then.");
        e.sample("sluice_bpf_stats_enabled", {}, *s.bpfStatsEnabled ? "1" : "0");
    }
    bool anyProg = false;
    for (const auto& i : s.interfaces)
        anyProg = anyProg || i.prog.has_value();
    if (anyProg) {
        e.family("sluice_xdp_run_time_seconds_total", "counter",
                 "Kernel time spent in sluice's XDP program (bpf_prog_info.run_time_ns), "
                 "counted while BPF stats are enabled.");
        for (const auto& i : s.interfaces)
            if (i.prog)
                e.sample("sluice_xdp_run_time_seconds_total", {{"interface", i.iface}}, seconds(i.prog->runTimeNs));
        e.family("sluice_xdp_runs_total", "counter",
                 "Runs of sluice's XDP program (bpf_prog_info.run_cnt), counted while BPF stats are enabled.");
        for (const auto& i : s.interfaces)
            if (i.prog)
                e.sample("sluice_xdp_runs_total", {{"interface", i.iface}}, integer(i.prog->runCount));
    }

    if (s.fleet)
        renderFleet(e, *s.fleet);

    e.family("sluice_scrape_errors", "gauge", "Reads of kernel state that failed while serving this scrape.");
    e.sample("sluice_scrape_errors", {}, integer(s.errors.size()));
    return e.str();
}

// ---- collection -----------------------------------------------------------------

std::string sluiceVersion() { return SLUICE_VERSION; }

std::optional<ProgStats> progStats(int progFd)
{
    if (progFd < 0)
        return std::nullopt;
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(progFd, &info, &len))
        return std::nullopt;
    return ProgStats{info.run_time_ns, info.run_cnt, info.recursion_misses};
}

std::optional<bool> bpfStatsEnabled()
{
    std::ifstream in("/proc/sys/kernel/bpf_stats_enabled");
    int v = 0;
    if (!(in >> v))
        return std::nullopt;
    return v != 0;
}

std::optional<std::pair<uint64_t, uint64_t>> countBans(const std::string& iface)
{
    std::string path = std::string(SLUICE_PIN_ROOT) + "/" + iface + "/sluice_bans";
    UniqueFd owner(bpf_obj_get(path.c_str()));
    const int fd = owner.get();
    if (fd < 0)
        return std::nullopt;  // a data path without bans
    uint64_t now = Datapath::nowNs(), banned = 0;
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size != sizeof(sluice_source_key) ||
        info.value_size != sizeof(uint64_t))
        return std::nullopt;
    std::vector<sluice_source_key> keys(4096);
    std::vector<uint64_t> until(4096);
    uint32_t inBatch = 0, outBatch = 0;
    bool first = true;
    for (;;) {
        uint32_t count = static_cast<uint32_t>(keys.size());
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &inBatch, &outBatch, keys.data(), until.data(),
                                       &count, nullptr);
        if (err && err != -ENOENT)
            throwSys("cannot read " + path, err);
        for (uint32_t i = 0; i < count; i++)
            banned += until[i] > now;
        if (err == -ENOENT)
            break;
        inBatch = outBatch;
        first = false;
    }
    return std::make_pair(banned, uint64_t(Datapath::lruCapacity(fd, path)));
}

void collectInterface(const std::string& iface, MetricsSnapshot& snapshot)
{
    InterfaceMetrics m;
    m.iface = iface;
    try {
        Datapath dp = Datapath::open(iface);
        const AttachInfo& info = dp.attachInfo();
        m.attached = info.note.find("not attached") == std::string::npos;
        m.mode = m.attached ? xdpModeName(info.mode) : "";
        m.counters = dp.counters();
        m.sourceCapacity = dp.sourceCapacity();
        if (auto f = dp.knownFilter()) {
            m.sourceFilterBits = f->bits;
            m.sourceFilterBitsSet = f->set;
            m.probationFilterBitsSet = f->probationSet;
        }
        m.prog = progStats(dp.progFd());
        // Under libxdp's dispatcher sluice runs as an extension (freplace)
        // of it, which the kernel's BPF stats do not count apart: report
        // the dispatcher's, the whole chain sluice is part of.
        if (m.attached && info.dispatcher)
            if (unsigned idx = if_nametoindex(iface.c_str())) {
                LIBBPF_OPTS(bpf_xdp_query_opts, q);
                if (bpf_xdp_query(static_cast<int>(idx), 0, &q) == 0) {
                    uint32_t id = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id;
                    int fd = id ? bpf_prog_get_fd_by_id(id) : -1;
                    if (fd >= 0) {
                        m.prog = progStats(fd);
                        ::close(fd);
                    }
                }
            }
        m.trackedSources = countSourceTable(iface);
        if (auto bans = countBans(iface)) {
            m.bannedSources = bans->first;
            m.banCapacity = bans->second;
        }
    } catch (const std::exception& e) {
        snapshot.errors.push_back(iface + ": " + e.what());
    }
    snapshot.interfaces.push_back(std::move(m));
}

// ---- the per-source table ---------------------------------------------------------

namespace {

class MapFd {
public:
    // `optional`: a missing pin leaves the handle empty (ok() false)
    // instead of throwing.
    explicit MapFd(const std::string& iface, const char* name = "sluice_sources", bool optional = false)
    {
        path_ = std::string(SLUICE_PIN_ROOT) + "/" + iface + "/" + name;
        fd_ = bpf_obj_get(path_.c_str());
        if (fd_ < 0 && optional && fd_ == -ENOENT)
            return;
        if (fd_ < 0)
            throwSys("cannot open the per-source table " + path_ + " (is sluice attached to " + iface + "?)",
                     fd_);
    }
    ~MapFd()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    bool ok() const { return fd_ >= 0; }
    MapFd(const MapFd&) = delete;
    MapFd& operator=(const MapFd&) = delete;
    int get() const { return fd_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
};

// Every chunk of the per-source table (map_batch.h).
template <typename F>
void forEachChunk(const MapFd& map, F f)
{
    forEachBatch<sluice_source_key, sluice_source_state>(map.get(), map.path(), f);
}

}  // namespace

namespace {

// One thread's share of a split read: the chunks it got, each with the hash
// buckets [in, out) it covered (BPF_MAP_LOOKUP_BATCH on a hash map returns
// whole buckets, and its batch token is the index of the next bucket).
struct Part {
    struct Chunk {
        uint32_t in, out;  // out = UINT32_MAX when the walk reached the end
        size_t begin, end;  // in entries
    };
    std::vector<SourceEntry> entries;
    std::vector<Chunk> chunks;
    int error = 0;
};

// Reads buckets from `start` on, until a chunk ends at or past `stopAt`.
void readBuckets(int fd, uint32_t start, uint32_t stopAt, Part& part)
{
    uint32_t chunk = 16384;
    std::vector<sluice_source_key> keys(chunk);
    std::vector<sluice_source_state> values(chunk);
    uint32_t in = start, out = 0;
    for (;;) {
        uint32_t count = chunk;
        int err = bpf_map_lookup_batch(fd, in == 0 ? nullptr : &in, &out, keys.data(), values.data(), &count,
                                       nullptr);
        if (err == -ENOSPC && count == 0) {
            chunk *= 2;
            keys.resize(chunk);
            values.resize(chunk);
            continue;
        }
        if (err && err != -ENOENT) {
            part.error = err;
            return;
        }
        uint64_t now = Datapath::nowNs();
        size_t begin = part.entries.size();
        for (uint32_t i = 0; i < count; i++)
            part.entries.push_back(SourceEntry{keys[i], values[i], now});
        uint32_t end = err == -ENOENT ? UINT32_MAX : out;
        part.chunks.push_back({in, end, begin, part.entries.size()});
        if (err == -ENOENT || end >= stopAt)
            return;
        in = out;
    }
}

}  // namespace

namespace {

std::vector<SourceEntry> readTable(const MapFd& map)
{
    bpf_map_info info{};
    uint32_t len = sizeof info;
    bool hash = bpf_obj_get_info_by_fd(map.get(), &info, &len) == 0 &&
                (info.type == BPF_MAP_TYPE_LRU_HASH || info.type == BPF_MAP_TYPE_HASH);
    unsigned cpus = std::thread::hardware_concurrency();
    if (!hash || info.max_entries < 65536 || cpus < 2) {
        std::vector<SourceEntry> out;
        forEachChunk(map, [&](const sluice_source_key* k, const sluice_source_state* v, uint32_t n) {
            uint64_t now = Datapath::nowNs();
            for (uint32_t i = 0; i < n; i++)
                out.push_back(SourceEntry{k[i], v[i], now});
        });
        return out;
    }
    // A big table: two threads, one from bucket 0 and one from the middle
    // (the kernel's hash tables have max_entries rounded up to a power of two
    // buckets). The first stops at the chunk that reaches the middle; what
    // that chunk shares with the second thread's first chunks is dropped.
    uint32_t buckets = 1;
    while (buckets < info.max_entries)
        buckets <<= 1;
    uint32_t half = buckets / 2;
    Part a, b;
    a.entries.reserve(info.max_entries / 2 + info.max_entries / 8);
    b.entries.reserve(info.max_entries / 2 + info.max_entries / 8);
    std::thread second([&] { readBuckets(map.get(), half, UINT32_MAX, b); });
    readBuckets(map.get(), 0, half, a);
    second.join();
    for (int err : {a.error, b.error})
        if (err) {
            if (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP || err == -524)
                break;  // fall back below
            throwSys("cannot read " + map.path(), err);
        }
    if (a.error || b.error) {
        std::vector<SourceEntry> out;
        forEachChunk(map, [&](const sluice_source_key* k, const sluice_source_state* v, uint32_t n) {
            for (uint32_t i = 0; i < n; i++)
                out.push_back(SourceEntry{k[i], v[i], Datapath::nowNs()});
        });
        return out;
    }
    std::vector<SourceEntry> out = std::move(a.entries);
    uint32_t overlapEnd = a.chunks.empty() ? 0 : a.chunks.back().out;
    std::vector<sluice_source_key> shared;
    if (!a.chunks.empty() && overlapEnd > half)
        for (size_t i = a.chunks.back().begin; i < a.chunks.back().end; i++)
            shared.push_back(out[i].key);
    std::sort(shared.begin(), shared.end(),
              [](const auto& x, const auto& y) { return std::memcmp(&x, &y, sizeof x) < 0; });
    out.reserve(out.size() + b.entries.size());
    for (const auto& c : b.chunks)
        for (size_t i = c.begin; i < c.end; i++) {
            if (c.in < overlapEnd &&
                std::binary_search(shared.begin(), shared.end(), b.entries[i].key,
                                   [](const auto& x, const auto& y) { return std::memcmp(&x, &y, sizeof x) < 0; }))
                continue;
            out.push_back(b.entries[i]);
        }
    return out;
}

}  // namespace

std::vector<SourceEntry> readSourceTable(const std::string& iface)
{
    std::vector<SourceEntry> out = readTable(MapFd(iface));
    // Sources on probation (seen once) hold bucket state too. A source
    // being promoted at this instant may show up in both reads.
    MapFd probation(iface, "sluice_probation", /*optional=*/true);
    if (probation.ok())
        forEachChunk(probation, [&](const sluice_source_key* k, const sluice_source_state* v, uint32_t n) {
            uint64_t now = Datapath::nowNs();
            for (uint32_t i = 0; i < n; i++)
                out.push_back(SourceEntry{k[i], v[i], now});
        });
    return out;
}

uint64_t countSourceTable(const std::string& iface)
{
    uint64_t n = 0;
    auto add = [&](const sluice_source_key*, const sluice_source_state*, uint32_t c) { n += c; };
    forEachChunk(MapFd(iface), add);
    MapFd probation(iface, "sluice_probation", /*optional=*/true);
    if (probation.ok())
        forEachChunk(probation, add);
    return n;
}

// ---- top --------------------------------------------------------------------------

namespace {

struct KeyHash {
    size_t operator()(const sluice_source_key& k) const
    {
        uint64_t h = 0x9e3779b97f4a7c15ULL ^ k.state_tag;
        for (uint32_t w : k.addr) {
            h ^= w;
            h *= 0xff51afd7ed558ccdULL;
            h ^= h >> 33;
        }
        return static_cast<size_t>(h);
    }
};

struct KeyEq {
    bool operator()(const sluice_source_key& a, const sluice_source_key& b) const
    {
        return std::memcmp(&a, &b, sizeof a) == 0;
    }
};

// Open addressing over indexes into `entries`: a million inserts in tens of
// milliseconds, where std::unordered_map would allocate a node each.
class KeyIndex {
public:
    explicit KeyIndex(const std::vector<SourceEntry>& entries) : entries_(entries)
    {
        size_t size = 16;
        while (size < entries.size() * 2)
            size *= 2;
        mask_ = size - 1;
        slots_.assign(size, kEmpty);
        for (uint32_t i = 0; i < entries.size(); i++) {
            size_t at = KeyHash{}(entries[i].key) & mask_;
            while (slots_[at] != kEmpty)
                at = (at + 1) & mask_;
            slots_[at] = i;
        }
    }

    const SourceEntry* find(const sluice_source_key& key) const
    {
        for (size_t at = KeyHash{}(key) & mask_; slots_[at] != kEmpty; at = (at + 1) & mask_)
            if (KeyEq{}(entries_[slots_[at]].key, key))
                return &entries_[slots_[at]];
        return nullptr;
    }

private:
    static constexpr uint32_t kEmpty = ~0u;
    const std::vector<SourceEntry>& entries_;
    std::vector<uint32_t> slots_;
    size_t mask_ = 0;
};

struct CompiledPolicy {
    std::string name;
    std::vector<Limit> limits;
    std::vector<sluice_limit> compiled;
    uint8_t ipv4Prefix = 0, ipv6Prefix = 0;
};

Address addressOf(const sluice_source_key& key)
{
    Address a;
    std::memcpy(a.bytes.data(), key.addr, 16);
    static const std::array<uint8_t, 12> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    a.isV4 = std::equal(mapped.begin(), mapped.end(), a.bytes.begin());
    return a;
}

}  // namespace

std::vector<TopEntry> rankSources(const std::vector<InstalledPolicy>& policies,
                                  const std::vector<SourceEntry>& before, uint64_t beforeNs,
                                  const std::vector<SourceEntry>& after, uint64_t afterNs,
                                  TopOrder order, size_t n, const std::string& onlyPolicy)
{
    std::unordered_map<uint32_t, CompiledPolicy> byTag;
    for (const auto& p : policies) {
        if (!onlyPolicy.empty() && p.name != onlyPolicy)
            continue;
        CompiledPolicy c{p.name, p.limits, {}, p.ipv4Prefix, p.ipv6Prefix};
        for (const auto& l : p.limits)
            c.compiled.push_back(compileLimit(l));
        byTag.emplace(p.stateTag, std::move(c));
    }
    bool sampled = !before.empty();
    // Both reads walk the kernel's hash buckets in the same order, so a
    // source is almost always found next to where the previous one was:
    // look there first, and build a full index only for the rest.
    std::optional<KeyIndex> index;
    size_t cursor = 0;
    auto previous = [&](const sluice_source_key& key) -> const SourceEntry* {
        for (size_t at = cursor; at < before.size() && at < cursor + 8; at++)
            if (KeyEq{}(before[at].key, key)) {
                cursor = at + 1;
                return &before[at];
            }
        if (!index)
            index.emplace(before);
        const SourceEntry* e = index->find(key);
        if (e)
            cursor = static_cast<size_t>(e - before.data()) + 1;
        return e;
    };
    auto t1Of = [&](const SourceEntry& e) { return e.readNs ? e.readNs : afterNs; };
    auto t0Of = [&](const SourceEntry* e) { return e && e->readNs ? e->readNs : beforeNs; };

    // A cheap score per entry first; TopEntry (with strings) only for the
    // n that are kept.
    struct Scored {
        uint32_t idx;
        bool limited;
        double usage, passed, fill;
        const SourceEntry* old;
    };
    std::vector<Scored> scored;
    scored.reserve(after.size());
    for (uint32_t i = 0; i < after.size(); i++) {
        const SourceEntry& e = after[i];
        auto it = byTag.find(e.key.state_tag);
        if (it == byTag.end())
            continue;
        const SourceEntry* old = sampled ? previous(e.key) : nullptr;
        uint64_t t1 = t1Of(e), t0 = t0Of(old);
        double spanNs = t1 > t0 ? double(t1 - t0) : 0;
        Scored s{i, false, 0, 0, 1, old};
        const auto& comp = it->second.compiled;
        for (size_t l = 0; l < comp.size() && l < SLUICE_MAX_LIMITS; l++) {
            const sluice_limit& lim = comp[l];
            uint64_t tat = e.state.tat_ns[l];
            // gcra_retry_after_ns and gcra_remaining, without the division
            uint64_t used = tat > t1 ? tat - t1 : 0;
            if (used + gcra_cost_ns(&lim, 1) > lim.capacity_ns)
                s.limited = true;
            double cap = double(std::max<uint64_t>(1, lim.capacity_ns));
            s.fill = std::min(s.fill, used >= lim.capacity_ns ? 0.0 : double(lim.capacity_ns - used) / cap);
            if (!sampled || spanNs <= 0)
                continue;
            double interval = double(lim.interval_ns) + double(lim.interval_frac) / 4294967296.0;
            uint64_t tat0 = old ? old->state.tat_ns[l] : 0;
            double advanced;
            if (tat0 > t0)  // busy at the first sample: every unit since moved TAT on
                advanced = tat > tat0 ? double(tat - tat0) : 0;
            else  // full bucket then: what it owes now is a lower bound
                advanced = tat > t1 ? double(tat - t1) : 0;
            double passed = interval > 0 ? advanced / interval : 0;
            double usage = advanced / spanNs;
            if (l == 0 || usage > s.usage) {
                s.usage = usage;
                s.passed = passed;
            }
        }
        scored.push_back(s);
    }

    auto heavier = [&](const Scored& a, const Scored& b) {
        if (order == TopOrder::Limited) {
            if (a.limited != b.limited)
                return a.limited;
            if (a.usage != b.usage)
                return a.usage > b.usage;
            return a.fill < b.fill;
        }
        if (a.passed != b.passed)
            return a.passed > b.passed;
        return a.fill < b.fill;
    };
    size_t keep = std::min(n, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(keep), scored.end(), heavier);
    scored.resize(keep);

    std::vector<TopEntry> out;
    for (const auto& s : scored) {
        const SourceEntry& e = after[s.idx];
        const CompiledPolicy& p = byTag.at(e.key.state_tag);
        const SourceEntry* old = s.old;
        uint64_t t1 = t1Of(e), t0 = t0Of(old);
        double spanNs = t1 > t0 ? double(t1 - t0) : 0;
        TopEntry t;
        t.policy = p.name;
        t.source = addressOf(e.key);
        t.prefix = t.source.isV4 ? p.ipv4Prefix : p.ipv6Prefix;
        t.limited = s.limited;
        t.usage = s.usage;
        t.passedUnits = s.passed;
        t.fill = s.fill;
        for (size_t l = 0; l < p.compiled.size() && l < SLUICE_MAX_LIMITS; l++) {
            const sluice_limit& lim = p.compiled[l];
            uint64_t tat = e.state.tat_ns[l];
            TopLimit tl;
            tl.limit = p.limits[l];
            tl.remaining = gcra_remaining(&lim, tat, t1);
            tl.retryAfterNs = gcra_retry_after_ns(&lim, tat, t1);
            tl.aheadNs = tat > t1 ? tat - t1 : 0;
            if (sampled && spanNs > 0) {
                double interval = double(lim.interval_ns) + double(lim.interval_frac) / 4294967296.0;
                uint64_t tat0 = old ? old->state.tat_ns[l] : 0;
                double advanced = tat0 > t0 ? (tat > tat0 ? double(tat - tat0) : 0)
                                            : (tat > t1 ? double(tat - t1) : 0);
                tl.passedUnits = interval > 0 ? advanced / interval : 0;
                tl.usage = advanced / spanNs;
            }
            t.limits.push_back(tl);
        }
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace sluice
