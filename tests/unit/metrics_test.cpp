// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The /metrics exposition (a pure function of a snapshot) and the ranking of
// `sluice top` (a pure function of two samples of the per-source table).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "metrics.h"

using namespace sluice;

namespace {

MetricsSnapshot sample()
{
    MetricsSnapshot s;
    s.version = "1.2.3";
    s.libbpf = "v1.1";
    s.reloadsOk = 4;
    s.reloadsFailed = 1;
    s.sourceFilterRebuilds = 2;
    s.reattaches = 3;
    s.bpfStatsEnabled = true;
    InterfaceMetrics i;
    i.iface = "eth0";
    i.attached = true;
    i.mode = "native";
    SlotCounters none;
    none.verdicts[SLUICE_VERDICT_PASS] = {10, 1000};
    SlotCounters api;
    api.slot = 3;
    api.policy = "api \"v1\"";
    api.verdicts[SLUICE_VERDICT_ADMITTED] = {7, 700};
    api.verdicts[SLUICE_VERDICT_LIMITED] = {3, 300};
    i.counters = {none, api};
    i.trackedSources = 42;
    i.sourceCapacity = 1000000;
    i.bannedSources = 3;
    i.banCapacity = 65536;
    i.sourceFilterBits = 1u << 22;
    i.sourceFilterBitsSet = 1234;
    i.probationFilterBitsSet = 567;
    i.prog = ProgStats{1500000123, 20, 0};
    s.interfaces.push_back(i);
    return s;
}

// name{labels} -> value, and the TYPE of each family, checking the grammar
// of every line on the way.
struct Parsed {
    std::map<std::string, std::string> samples;
    std::map<std::string, std::string> types;
    std::vector<std::string> order;  // family names in order of appearance
};

Parsed parse(const std::string& text)
{
    Parsed p;
    std::istringstream in(text);
    std::string line;
    static const std::regex sampleRe(
        R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$)");
    static const std::regex typeRe(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
    static const std::regex helpRe(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
    std::smatch m;
    while (std::getline(in, line)) {
        if (std::regex_match(line, m, typeRe)) {
            EXPECT_FALSE(p.types.contains(m[1])) << "family twice: " << line;
            p.types[m[1]] = m[2];
            p.order.push_back(m[1]);
        } else if (std::regex_match(line, helpRe)) {
        } else if (std::regex_match(line, m, sampleRe)) {
            std::string name = m[1];
            EXPECT_FALSE(p.samples.contains(line.substr(0, line.rfind(' ')))) << "duplicate: " << line;
            p.samples[line.substr(0, line.rfind(' '))] = line.substr(line.rfind(' ') + 1);
            // A histogram's samples are FAMILY_bucket, FAMILY_sum and FAMILY_count.
            bool inFamily = !p.order.empty() && p.order.back() == name;
            if (!p.order.empty() && p.types[p.order.back()] == "histogram")
                for (const char* suffix : {"_bucket", "_sum", "_count"})
                    inFamily = inFamily || name == p.order.back() + suffix;
            EXPECT_TRUE(inFamily) << "sample outside its family: " << line;
        } else {
            ADD_FAILURE() << "not exposition format: '" << line << "'";
        }
    }
    return p;
}

}  // namespace

TEST(Metrics, RendersValidExposition)
{
    std::string text = renderMetrics(sample());
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    Parsed p = parse(text);
    EXPECT_EQ(p.samples["sluice_build_info{version=\"1.2.3\",libbpf=\"v1.1\"}"], "1");
    EXPECT_EQ(p.samples["sluice_xdp_attached{interface=\"eth0\",mode=\"native\"}"], "1");
    EXPECT_EQ(p.samples["sluice_packets_total{interface=\"eth0\",policy=\"(none)\",verdict=\"passed\"}"], "10");
    EXPECT_EQ(p.samples["sluice_bytes_total{interface=\"eth0\",policy=\"(none)\",verdict=\"passed\"}"], "1000");
    EXPECT_EQ(p.samples["sluice_packets_total{interface=\"eth0\",policy=\"api \\\"v1\\\"\",verdict=\"limited\"}"], "3");
    EXPECT_EQ(p.samples["sluice_packets_total{interface=\"eth0\",policy=\"api \\\"v1\\\"\",verdict=\"admitted\"}"], "7");
    EXPECT_EQ(p.samples["sluice_sources_tracked{interface=\"eth0\"}"], "42");
    EXPECT_EQ(p.samples["sluice_sources_capacity{interface=\"eth0\"}"], "1000000");
    EXPECT_EQ(p.samples["sluice_sources_banned{interface=\"eth0\"}"], "3");
    EXPECT_EQ(p.samples["sluice_bans_capacity{interface=\"eth0\"}"], "65536");
    EXPECT_EQ(p.samples["sluice_source_filter_bits{interface=\"eth0\"}"], "4194304");
    EXPECT_EQ(p.samples["sluice_source_filter_bits_set{interface=\"eth0\"}"], "1234");
    EXPECT_EQ(p.samples["sluice_probation_filter_bits_set{interface=\"eth0\"}"], "567");
    EXPECT_EQ(p.samples["sluice_config_reloads_total{result=\"success\"}"], "4");
    EXPECT_EQ(p.samples["sluice_config_reloads_total{result=\"failure\"}"], "1");
    EXPECT_EQ(p.samples["sluice_source_filter_rebuilds_total"], "2");
    EXPECT_EQ(p.types["sluice_source_filter_rebuilds_total"], "counter");
    EXPECT_EQ(p.samples["sluice_reattaches_total"], "3");
    EXPECT_EQ(p.types["sluice_reattaches_total"], "counter");
    EXPECT_EQ(p.samples["sluice_bpf_stats_enabled"], "1");
    EXPECT_EQ(p.samples["sluice_xdp_run_time_seconds_total{interface=\"eth0\"}"], "1.500000123");
    EXPECT_EQ(p.samples["sluice_xdp_runs_total{interface=\"eth0\"}"], "20");
    EXPECT_EQ(p.samples["sluice_scrape_errors"], "0");
}

TEST(Metrics, FleetSyncHealthWhileTheDaemonSyncs)
{
    MetricsSnapshot s = sample();
    EXPECT_EQ(renderMetrics(s).find("sluice_fleet_"), std::string::npos) << "no [fleet], no fleet metrics";
    FleetStats f;
    f.enabled = true;
    f.node = "api-1";
    f.syncs = 120;
    f.syncErrors = 3;
    f.fallbacks = 1;
    f.fallback = true;
    f.sourcesSynced = 7;
    f.sourcesSyncedTotal = 900;
    f.sourcesOver = 2;
    f.nodes = 3;
    f.durationBuckets[2] = 100;  // <= 5 ms
    for (size_t b = 3; b < FleetStats::kBucketCount; b++)
        f.durationBuckets[b] = 120;
    f.durationSum = 0.25;
    f.durationCount = 120;
    f.shards = {{"10.1.0.5:6379", true, 0}, {"[fd00::6]:6379", false, 3}};
    s.fleet = f;
    Parsed p = parse(renderMetrics(s));
    const std::string node = "{node=\"api-1\"}";
    EXPECT_EQ(p.types["sluice_fleet_sync_duration_seconds"], "histogram");
    EXPECT_EQ(p.samples["sluice_fleet_sync_duration_seconds_bucket{node=\"api-1\",le=\"0.005\"}"], "100");
    EXPECT_EQ(p.samples["sluice_fleet_sync_duration_seconds_bucket{node=\"api-1\",le=\"+Inf\"}"], "120");
    EXPECT_EQ(p.samples["sluice_fleet_sync_duration_seconds_sum" + node], "0.250000000");
    EXPECT_EQ(p.samples["sluice_fleet_sync_duration_seconds_count" + node], "120");
    EXPECT_EQ(p.samples["sluice_fleet_syncs_total" + node], "120");
    EXPECT_EQ(p.samples["sluice_fleet_sync_errors_total{node=\"api-1\",redis=\"[fd00::6]:6379\"}"], "3");
    EXPECT_EQ(p.samples["sluice_fleet_redis_up{node=\"api-1\",redis=\"10.1.0.5:6379\"}"], "1");
    EXPECT_EQ(p.samples["sluice_fleet_redis_up{node=\"api-1\",redis=\"[fd00::6]:6379\"}"], "0");
    EXPECT_EQ(p.samples["sluice_fleet_fallback" + node], "1");
    EXPECT_EQ(p.samples["sluice_fleet_fallbacks_total" + node], "1");
    EXPECT_EQ(p.samples["sluice_fleet_sources_synced" + node], "7");
    EXPECT_EQ(p.samples["sluice_fleet_sources_synced_total" + node], "900");
    EXPECT_EQ(p.samples["sluice_fleet_sources_over" + node], "2");
    EXPECT_EQ(p.samples["sluice_fleet_nodes" + node], "3");
    for (const auto& [name, type] : p.types)
        EXPECT_EQ(type == "counter", name.ends_with("_total")) << name << " is a " << type;
}

TEST(Metrics, FollowsNamingConventions)
{
    Parsed p = parse(renderMetrics(sample()));
    for (const auto& [name, type] : p.types) {
        EXPECT_EQ(name.rfind("sluice_", 0), 0u) << name;
        bool total = name.size() > 6 && name.ends_with("_total");
        EXPECT_EQ(type == "counter", total) << name << " is a " << type;
        EXPECT_EQ(name.find("_ns"), std::string::npos) << name << ": base units are seconds";
    }
}

TEST(Metrics, EveryVerdictOfEveryPolicyIsPresentFromTheStart)
{
    // rate() needs the series before the first packet, so zeros are exported.
    Parsed p = parse(renderMetrics(sample()));
    for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++)
        for (const char* policy : {"(none)", "api \\\"v1\\\""})
            EXPECT_TRUE(p.samples.contains(std::string("sluice_packets_total{interface=\"eth0\",policy=\"") +
                                           policy + "\",verdict=\"" + verdictName(v) + "\"}"))
                << policy << " " << verdictName(v);
}

TEST(Metrics, LeavesOutWhatIsUnknown)
{
    MetricsSnapshot s = sample();
    s.bpfStatsEnabled.reset();
    s.interfaces[0].prog.reset();
    s.interfaces[0].trackedSources.reset();
    s.interfaces[0].bannedSources.reset();
    s.interfaces[0].banCapacity.reset();
    s.interfaces[0].sourceFilterBits.reset();
    s.interfaces[0].sourceFilterBitsSet.reset();
    s.interfaces[0].attached = false;
    s.interfaces[0].mode = "";
    s.errors = {"eth0: gone"};
    Parsed p = parse(renderMetrics(s));
    EXPECT_FALSE(p.types.contains("sluice_bpf_stats_enabled"));
    EXPECT_FALSE(p.types.contains("sluice_xdp_runs_total"));
    EXPECT_FALSE(p.types.contains("sluice_sources_tracked"));
    EXPECT_FALSE(p.types.contains("sluice_sources_banned"));
    EXPECT_FALSE(p.types.contains("sluice_source_filter_bits"));
    EXPECT_EQ(p.samples["sluice_xdp_attached{interface=\"eth0\",mode=\"\"}"], "0");
    EXPECT_EQ(p.samples["sluice_scrape_errors"], "1");
}

TEST(Metrics, NoInterfaces)
{
    MetricsSnapshot s;
    s.version = "x";
    Parsed p = parse(renderMetrics(s));
    EXPECT_EQ(p.samples["sluice_config_reloads_total{result=\"success\"}"], "0");
    EXPECT_TRUE(p.types.contains("sluice_packets_total"));
}

TEST(Metrics, EscapesLabelValues)
{
    EXPECT_EQ(escapeLabel("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    EXPECT_EQ(escapeLabel("plain"), "plain");
}

// ---- top ---------------------------------------------------------------------

namespace {

constexpr uint64_t kSec = 1'000'000'000ULL;

InstalledPolicy policy100()  // 100 packets per second, burst 100
{
    InstalledPolicy p;
    p.name = "api";
    p.slot = 1;
    p.stateTag = 7;
    p.limits = {Limit{LimitKind::Packets, 100, kSec, 0}};
    return p;
}

SourceEntry entry(uint8_t lastOctet, uint64_t tat, uint32_t tag = 7)
{
    SourceEntry e{};
    e.key.state_tag = tag;
    Address a = Address::parse("198.18.0." + std::to_string(lastOctet));
    std::memcpy(e.key.addr, a.bytes.data(), 16);
    e.state.tat_ns[0] = tat;
    return e;
}

}  // namespace

TEST(Top, RanksLimitedSourcesFirst)
{
    uint64_t t0 = 1000 * kSec, t1 = t0 + kSec;
    // .1: at the limit throughout (TAT a full bucket ahead at both samples):
    //     it passed 100 units, its whole rate.
    // .2: busy, half its rate, not limited.
    // .3: idle, full bucket.
    // .4: limited now, but started from a full bucket (lower bound only).
    std::vector<SourceEntry> before = {entry(1, t0 + kSec), entry(2, t0 + kSec / 10), entry(3, 5)};
    std::vector<SourceEntry> after = {entry(3, 5), entry(2, t0 + kSec / 10 + kSec / 2), entry(1, t1 + kSec),
                                      entry(4, t1 + kSec)};
    auto top = rankSources({policy100()}, before, t0, after, t1, TopOrder::Limited, 10);
    ASSERT_EQ(top.size(), 4u);
    EXPECT_EQ(top[0].source.str(), "198.18.0.1");
    EXPECT_TRUE(top[0].limited);
    EXPECT_NEAR(top[0].passedUnits, 100, 0.01);
    EXPECT_NEAR(top[0].usage, 1.0, 0.001);
    EXPECT_EQ(top[0].limits.at(0).remaining, 0u);
    EXPECT_GT(top[0].limits.at(0).retryAfterNs, 0u);
    EXPECT_EQ(top[1].source.str(), "198.18.0.4");
    EXPECT_TRUE(top[1].limited);
    EXPECT_FALSE(top[2].limited);
    EXPECT_EQ(top[2].source.str(), "198.18.0.2");
    EXPECT_NEAR(top[2].passedUnits, 50, 0.01);
    EXPECT_EQ(top[3].source.str(), "198.18.0.3");
    EXPECT_EQ(top[3].passedUnits, 0);
    EXPECT_EQ(top[3].fill, 1.0);
}

TEST(Top, RanksByPassedUnits)
{
    uint64_t t0 = 1000 * kSec, t1 = t0 + kSec;
    std::vector<SourceEntry> before = {entry(1, t0 + kSec), entry(2, t0 + 1)};
    std::vector<SourceEntry> after = {entry(1, t1 + kSec), entry(2, t0 + 1 + kSec / 5)};
    auto top = rankSources({policy100()}, before, t0, after, t1, TopOrder::Passed, 1);
    ASSERT_EQ(top.size(), 1u);
    EXPECT_EQ(top[0].source.str(), "198.18.0.1");
}

TEST(Top, OneSampleRanksByBucketState)
{
    uint64_t t1 = 1000 * kSec;
    std::vector<SourceEntry> after = {entry(1, t1 + kSec / 10), entry(2, t1 + kSec / 2), entry(3, 0)};
    auto top = rankSources({policy100()}, {}, 0, after, t1, TopOrder::Limited, 10);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].source.str(), "198.18.0.2");
    EXPECT_NEAR(top[0].fill, 0.5, 0.011);
    EXPECT_EQ(top[0].limits.at(0).aheadNs, kSec / 2);
    EXPECT_EQ(top[2].source.str(), "198.18.0.3");
}

TEST(Top, SkipsStateOfOtherPoliciesAndFilters)
{
    uint64_t t1 = 1000 * kSec;
    InstalledPolicy other = policy100();
    other.name = "other";
    other.stateTag = 9;
    std::vector<SourceEntry> after = {entry(1, t1 + kSec, 7), entry(2, t1 + kSec, 9), entry(3, t1, 1234)};
    EXPECT_EQ(rankSources({policy100(), other}, {}, 0, after, t1, TopOrder::Limited, 10).size(), 2u);
    auto only = rankSources({policy100(), other}, {}, 0, after, t1, TopOrder::Limited, 10, "other");
    ASSERT_EQ(only.size(), 1u);
    EXPECT_EQ(only[0].policy, "other");
}
