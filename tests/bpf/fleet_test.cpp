// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The data path's half of fleet scope (docs/fleet.md): a policy of scope
// fleet counts the units it admits per source in sluice_fleet_units, and a
// source with an over-until in sluice_fleet_over gets the policy's
// over-limit verdict (and keeps its local units) until that time. A policy
// of scope host touches neither map.
#include <unistd.h>

#include <cstring>

#include <bpf/bpf.h>

#include "harness.h"

namespace sluice::test {
namespace {

class FleetDataPath : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (geteuid() != 0)
            GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    }

    // The key of a source as the program masks it (an IPv6 address given
    // already masked to the policy's prefix).
    static sluice_source_key keyOf(const Datapath& dp, const std::string& policy, const char* addr)
    {
        sluice_source_key k{};
        for (const auto& p : dp.installedPolicies())
            if (p.name == policy)
                k.state_tag = p.stateTag;
        Address a = Address::parse(addr);
        std::memcpy(k.addr, a.bytes.data(), 16);
        return k;
    }

    static std::optional<sluice_fleet_units> units(const Datapath& dp, const sluice_source_key& k)
    {
        sluice_fleet_units u{};
        if (bpf_map_lookup_elem(dp.mapFd("sluice_fleet_units"), &k, &u))
            return std::nullopt;
        return u;
    }

    static uint32_t send(const Datapath& dp, const Frame& f)
    {
        uint32_t action = 0;
        EXPECT_EQ(testRun(dp.progFd(), f, &action), 0);
        return action;
    }
};

TEST_F(FleetDataPath, CountsAdmittedUnitsPerLimitAndObeysOverUntil)
{
    Datapath dp = Datapath::loadUnattached();
    Policy p = tcpPolicy("fleet", {port(80)}, {conns(10), pkts(100), bytes(100000)});
    p.scope = Scope::Fleet;
    dp.install(Rules{{p}}.make());
    const Frame syn = Packet::v4("10.7.7.7", kServer4).tcp(1, 80, tcpflag::Syn).build();
    const Frame ack = Packet::v4("10.7.7.7", kServer4).tcp(1, 80, tcpflag::Ack).build();
    const sluice_source_key key = keyOf(dp, "fleet", "10.7.7.7");

    EXPECT_EQ(send(dp, syn), XDP_PASS);
    EXPECT_EQ(send(dp, ack), XDP_PASS);
    EXPECT_EQ(send(dp, ack), XDP_PASS);
    auto u = units(dp, key);
    ASSERT_TRUE(u.has_value()) << "no fleet units for the source";
    EXPECT_EQ(u->units[0], 1U) << "connections: one SYN";
    EXPECT_EQ(u->units[1], 3U) << "packets";
    EXPECT_EQ(u->units[2], syn.size() + 2 * ack.size()) << "bytes: frame lengths";

    // Over the fleet limit for a minute: refused, nothing counted or charged.
    uint64_t until = Datapath::nowNs() + 60'000'000'000ULL;
    ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_fleet_over"), &key, &until, BPF_ANY), 0);
    EXPECT_EQ(send(dp, syn), XDP_DROP);
    EXPECT_EQ(send(dp, ack), XDP_DROP);
    EXPECT_EQ(units(dp, key)->units[1], 3U);
    auto st = dp.source("fleet", Address::parse("10.7.7.7"));
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->limits[0].remaining, 9U) << "local units are kept while over the fleet limit";
    uint64_t limited = 0;
    for (const auto& c : dp.counters())
        if (c.policy == "fleet")
            limited = c.verdicts[SLUICE_VERDICT_LIMITED].packets;
    EXPECT_EQ(limited, 2U);

    // Another source is not affected.
    EXPECT_EQ(send(dp, Packet::v4("10.7.7.8", kServer4).tcp(1, 80, tcpflag::Syn).build()), XDP_PASS);

    // An until in the past is removed on sight and the source admitted.
    until = Datapath::nowNs() - 1;
    ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_fleet_over"), &key, &until, BPF_ANY), 0);
    EXPECT_EQ(send(dp, ack), XDP_PASS);
    uint64_t left = 0;
    EXPECT_NE(bpf_map_lookup_elem(dp.mapFd("sluice_fleet_over"), &key, &left), 0) << "expired entry kept";
    EXPECT_EQ(units(dp, key)->units[1], 4U);
}

// IPv6 sources are keyed by their /64 (the default ipv6_prefix): two
// addresses of one /64 add to one fleet count and share one over-until.
TEST_F(FleetDataPath, Ipv6SourcesCountAndStopPerPrefix)
{
    Datapath dp = Datapath::loadUnattached();
    Policy p = udpPolicy("fleet6", {port(53)}, {pkts(100)});
    p.scope = Scope::Fleet;
    dp.install(Rules{{p}}.make());
    const sluice_source_key key = keyOf(dp, "fleet6", "2001:db8:5::");
    EXPECT_EQ(send(dp, Packet::v6("2001:db8:5::1", kServer6).udp(1, 53).build()), XDP_PASS);
    EXPECT_EQ(send(dp, Packet::v6("2001:db8:5::2", kServer6).udp(1, 53).build()), XDP_PASS);
    auto u = units(dp, key);
    ASSERT_TRUE(u.has_value()) << "no fleet units for the /64";
    EXPECT_EQ(u->units[0], 2U);

    uint64_t until = Datapath::nowNs() + 60'000'000'000ULL;
    ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_fleet_over"), &key, &until, BPF_ANY), 0);
    EXPECT_EQ(send(dp, Packet::v6("2001:db8:5::3", kServer6).udp(1, 53).build()), XDP_DROP);
    EXPECT_EQ(send(dp, Packet::v6("2001:db8:6::3", kServer6).udp(1, 53).build()), XDP_PASS)
        << "another /64 is another source";
}

TEST_F(FleetDataPath, MonitorPassesAndHostScopeIgnoresTheFleetMaps)
{
    Datapath dp = Datapath::loadUnattached();
    Policy mon = udpPolicy("mon", {port(53)}, {pkts(100)}, Action::Monitor);
    mon.scope = Scope::Fleet;
    Policy host = udpPolicy("host", {port(54)}, {pkts(100)});
    dp.install(Rules{{mon, host}}.make());
    const sluice_source_key monKey = keyOf(dp, "mon", "10.7.7.7");
    const sluice_source_key hostKey = keyOf(dp, "host", "10.7.7.7");
    uint64_t until = Datapath::nowNs() + 60'000'000'000ULL;
    ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_fleet_over"), &monKey, &until, BPF_ANY), 0);
    ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_fleet_over"), &hostKey, &until, BPF_ANY), 0);

    EXPECT_EQ(send(dp, Packet::v4("10.7.7.7", kServer4).udp(1, 53).build()), XDP_PASS);
    EXPECT_EQ(send(dp, Packet::v4("10.7.7.7", kServer4).udp(1, 54).build()), XDP_PASS);
    EXPECT_FALSE(units(dp, hostKey).has_value()) << "host scope counts nothing for the fleet";
    for (const auto& c : dp.counters()) {
        if (c.policy == "mon") {
            EXPECT_EQ(c.verdicts[SLUICE_VERDICT_MONITORED].packets, 1U);
        } else if (c.policy == "host") {
            EXPECT_EQ(c.verdicts[SLUICE_VERDICT_ADMITTED].packets, 1U) << "host scope ignores over-until";
        }
    }
}

}  // namespace
}  // namespace sluice::test
