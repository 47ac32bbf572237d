// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// new_sources (README "Spoofed sources"): a policy's budget of never-seen
// sources. A source the budget refuses is dropped whatever the action, gets
// no state anywhere, and costs no known source anything: sources already
// tracked, on probation or remembered by the probation memory are not new.
#include <arpa/inet.h>
#include <unistd.h>

#include "harness.h"

namespace sluice::test {
namespace {

Frame udp4(const std::string& src) { return Packet::v4(src, kServer4).udp(1000, 53).build(); }
Frame udp6(const std::string& src) { return Packet::v6(src, kServer6).udp(1000, 53).build(); }
Frame syn4(const std::string& src)
{
    return Packet::v4(src, kServer4).tcp(40000, 80, tcpflag::Syn).build();
}

Policy dns(uint64_t newPerDay, Action action = Action::Drop)
{
    return withNewSources(udpPolicy("dns", {port(53)}, {pkts(100)}, action), newPerDay);
}

std::vector<Row> newSourceRows()
{
    std::vector<Row> rows;
    rows.push_back({"v4_budget_of_two_refuses_the_third_source",
                    {{dns(2)}},
                    {admitted(udp4("10.9.0.1"), "dns"), admitted(udp4("10.9.0.2"), "dns"),
                     newSource(udp4("10.9.0.3"), "dns").noState("dns", "10.9.0.3"),
                     // Refused again: nothing of it was kept.
                     newSource(udp4("10.9.0.3"), "dns").noState("dns", "10.9.0.3"),
                     // The two admitted sources are known: the spent budget
                     // costs them nothing, and their buckets were charged.
                     admitted(udp4("10.9.0.1"), "dns").remaining("dns", "10.9.0.1", {98}),
                     admitted(udp4("10.9.0.2"), "dns").remaining("dns", "10.9.0.2", {98})}});
    // IPv6 sources are keyed by /64 (the default ipv6_prefix): three /64s.
    rows.push_back({"v6_budget_of_two_refuses_the_third_source",
                    {{dns(2)}},
                    {admitted(udp6("2001:db8:9:1::1"), "dns"), admitted(udp6("2001:db8:9:2::1"), "dns"),
                     newSource(udp6("2001:db8:9:3::1"), "dns").noState("dns", "2001:db8:9:3::1"),
                     // Another address in an admitted /64 is that source.
                     admitted(udp6("2001:db8:9:1::99"), "dns").remaining("dns", "2001:db8:9:1::1", {98})}});
    // A source on probation (one packet so far) is not new: its second packet
    // promotes it although the budget is spent.
    rows.push_back({"probation_source_is_not_new",
                    {{dns(1)}},
                    {admitted(udp4("10.9.1.1"), "dns"), newSource(udp4("10.9.1.2"), "dns"),
                     admitted(udp4("10.9.1.1"), "dns"), admitted(udp4("10.9.1.1"), "dns")
                                                            .remaining("dns", "10.9.1.1", {97})}});
    // The budget counts sources as the policy keys them: with a /24 prefix
    // the addresses of one /24 are one source.
    rows.push_back({"prefix_source_counts_once",
                    {{[] {
                        Policy p = dns(1);
                        p.ipv4Prefix = 24;
                        return p;
                    }()}},
                    {admitted(udp4("10.9.2.1"), "dns"), admitted(udp4("10.9.2.77"), "dns"),
                     newSource(udp4("10.9.3.1"), "dns")}});
    // Monitor reports what the budget would refuse and passes it.
    rows.push_back({"monitor_passes_and_counts_monitored",
                    {{dns(1, Action::Monitor)}},
                    {admitted(udp4("10.9.4.1"), "dns"),
                     monitored(udp4("10.9.4.2"), "dns").noState("dns", "10.9.4.2")}});
    // Reject answers an over-limit SYN with a RST, but not a refused new
    // source's: its address may be spoofed, a reply would reflect the flood.
    rows.push_back({"reject_drops_a_new_source_without_a_rst",
                    {{withNewSources(tcpPolicy("web", {port(80)}, {conns(5)}, Action::Reject), 1)}},
                    {admitted(syn4("10.9.5.1"), "web"), newSource(syn4("10.9.5.2"), "web")}});
    // Each policy has its own budget.
    rows.push_back({"budgets_are_per_policy",
                    {{dns(1), withNewSources(tcpPolicy("web", {port(80)}, {conns(5)}), 1)}},
                    {admitted(udp4("10.9.6.1"), "dns"), newSource(udp4("10.9.6.2"), "dns"),
                     admitted(syn4("10.9.6.2"), "web"), newSource(syn4("10.9.6.3"), "web")}});
    // Without new_sources nothing is refused for being new.
    rows.push_back({"no_budget_admits_every_new_source",
                    {{udpPolicy("dns", {port(53)}, {pkts(100)})}},
                    {admitted(udp4("10.9.7.1"), "dns"), admitted(udp4("10.9.7.2"), "dns"),
                     admitted(udp4("10.9.7.3"), "dns")}});
    return rows;
}

INSTANTIATE_TEST_SUITE_P(NewSources, BpfRow, testing::ValuesIn(newSourceRows()), rowName);

// What `sluice apply` compares a config with: the installed policy reads
// back with its budget, so an unchanged config shows no change.
TEST(NewSources, InstalledPolicyReadsBackItsBudget)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(4096);
    const Policy with = dns(7), without = udpPolicy("plain", {port(54)}, {pkts(100)});
    dp.install(Rules{{with, without}}.make());
    const Ruleset back = dp.installed();
    ASSERT_EQ(back.policies.size(), 2U);
    for (const auto& p : back.policies) {
        SCOPED_TRACE(p.name);
        const Policy& want = p.name == "dns" ? with : without;
        ASSERT_EQ(p.newSources.has_value(), want.newSources.has_value());
        if (want.newSources) {
            EXPECT_EQ(p.newSources->count, want.newSources->count);
            EXPECT_EQ(p.newSources->periodNs, want.newSources->periodNs);
        }
    }
}

// A source that lost its probation entry to a flood of one-packet sources
// but is still in the probation memory has been seen: it is not charged to
// the budget that the flood spent.
TEST(NewSources, RememberedSourceIsNotNew)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    constexpr uint32_t kMaxSources = 4096;
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    const uint32_t floodSources = 2 * sluice_probation_entries(kMaxSources);
    dp.install(Rules{{dns(floodSources + 1)}}.make());
    const Frame slow = udp4("10.9.8.1");
    uint32_t action = 0;
    ASSERT_EQ(testRun(dp.progFd(), slow, &action), 0);
    ASSERT_EQ(action, uint32_t(XDP_PASS));

    // Spend the rest of the budget on distinct one-packet sources, as a
    // flood would, skipping any that would land in the slow source's slot of
    // the probation memory (overwriting it is the memory's known limit).
    const uint32_t tag = dp.installedPolicies().at(0).stateTag;
    const uint32_t slowSlot = admitSlotV4(tag, 0x0a090801u);  // 10.9.8.1
    uint32_t sent = 0;
    for (uint32_t host = 0x0b000001u; sent < floodSources; host++) {
        if (admitSlotV4(tag, host) == slowSlot)
            continue;
        in_addr a;
        a.s_addr = htonl(host);
        char buf[INET_ADDRSTRLEN];
        const Frame f = udp4(inet_ntop(AF_INET, &a, buf, sizeof buf));
        ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
        ASSERT_EQ(action, uint32_t(XDP_PASS)) << "flood source " << sent << " within the budget";
        sent++;
    }
    ASSERT_EQ(testRun(dp.progFd(), udp4("10.9.8.2"), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP)) << "the budget is spent: a new source is refused";
    ASSERT_FALSE(dp.source("dns", Address::parse("10.9.8.1"))) << "the flood did not evict it from probation";

    ASSERT_EQ(testRun(dp.progFd(), slow, &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS)) << "a remembered source was refused as new";
    auto st = dp.source("dns", Address::parse("10.9.8.1"));
    ASSERT_TRUE(st) << "recognised, it was promoted";
    EXPECT_EQ(st->limits.at(0).remaining, 98u);
}

}  // namespace
}  // namespace sluice::test
