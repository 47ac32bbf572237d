// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Admission (README "Spoofed sources"): a flood of one-packet sources fills
// the probation table only. Sources that have shown themselves (two packets)
// keep their state in sluice_sources: an over-limit one stays limited (no
// eviction hands it a fresh bucket) and a within-limit one keeps its count.
#include <arpa/inet.h>
#include <unistd.h>

#include <random>

#include "harness.h"


namespace sluice::test {
namespace {

constexpr uint32_t kMaxSources = 4096;
// Four times the per-source table in one-packet sources.
constexpr uint32_t kFloodSources = 4 * kMaxSources;

std::string floodAddress(std::mt19937& rng)
{
    in_addr a;
    a.s_addr = htonl(0x0b000000u | (rng() & 0x00ffffffu));  // 11.0.0.0/8
    char buf[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &a, buf, sizeof buf);
}

TEST(Admission, OneShotFloodNeverEvictsEstablishedSources)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    dp.install(Rules{{udpPolicy("api", {port(53)}, {pkts(5)})}}.make());
    const Frame over = Packet::v4("10.8.0.1", kServer4).udp(1, 53).build();
    const Frame within = Packet::v4("10.8.0.2", kServer4).udp(1, 53).build();
    uint32_t action = 0;

    // The over-limit source spends its 5 and is refused the 6th.
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(testRun(dp.progFd(), over, &action), 0);
        ASSERT_EQ(action, uint32_t(XDP_PASS)) << i;
    }
    ASSERT_EQ(testRun(dp.progFd(), over, &action), 0);
    ASSERT_EQ(action, uint32_t(XDP_DROP));
    // The within-limit source spends 2 of 5: promoted, 3 left.
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(testRun(dp.progFd(), within, &action), 0);

    std::mt19937 rng(7);
    for (uint32_t i = 0; i < kFloodSources; i++) {
        const Frame f = Packet::v4(floodAddress(rng).c_str(), kServer4).udp(1, 53).build();
        ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
        // A fresh source on probation is within its limit.
        ASSERT_EQ(action, uint32_t(XDP_PASS)) << i;
        if (i % 1024 == 0) {
            // Touch the over-limit source during the flood, as a flooding
            // client would: still refused.
            ASSERT_EQ(testRun(dp.progFd(), over, &action), 0);
            ASSERT_EQ(action, uint32_t(XDP_DROP)) << "after " << i << " flood sources";
        }
    }

    auto overState = dp.source("api", Address::parse("10.8.0.1"));
    ASSERT_TRUE(overState) << "the over-limit source lost its state";
    EXPECT_EQ(overState->limits.at(0).remaining, 0u);
    ASSERT_EQ(testRun(dp.progFd(), over, &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP)) << "eviction handed the over-limit source a fresh bucket";

    // Idle through the flood, the within-limit source kept its count.
    auto withinState = dp.source("api", Address::parse("10.8.0.2"));
    ASSERT_TRUE(withinState) << "the within-limit source was evicted by the flood";
    EXPECT_EQ(withinState->limits.at(0).remaining, 3u);

    // The flood stayed on probation: the per-source table holds the two
    // established sources, probation at most its size.
    EXPECT_LE(dp.trackedSources(), size_t(2 + sluice_probation_entries(kMaxSources)));
}

TEST(Admission, ProbationIsChargedAndTheSecondPacketCarriesTheState)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    // A limit of 1: the probation bucket admits the first packet and its
    // charge must follow the source into sluice_sources.
    dp.install(Rules{{udpPolicy("one", {port(53)}, {pkts(1)})}}.make());
    const Frame f = Packet::v4("10.8.1.1", kServer4).udp(1, 53).build();
    uint32_t action = 0;
    ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS));
    auto st = dp.source("one", Address::parse("10.8.1.1"));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->limits.at(0).remaining, 0u) << "the probation entry was not charged";
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
        EXPECT_EQ(action, uint32_t(XDP_DROP)) << "packet " << i + 2 << " got a fresh bucket";
    }
    dp.resetSource(Address::parse("10.8.1.1"));
    EXPECT_FALSE(dp.source("one", Address::parse("10.8.1.1")));
}

// A source whose packets are further apart than a flood takes to cycle the
// probation table (here: the flood runs between its packets) finds its
// probation entry gone. The probation memory recognises it: it is promoted
// with the state it had, and a source over its limit stays refused instead
// of being charged to a fresh bucket at every packet. `reset` forgets it.
TEST(Admission, SourceEvictedFromProbationIsNotHandedAFreshBucket)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    dp.install(Rules{{udpPolicy("one", {port(53)}, {pkts(1)})}}.make());
    const Address slow = Address::parse("10.8.2.1");
    const Frame f = Packet::v4("10.8.2.1", kServer4).udp(1, 53).build();
    uint32_t action = 0;
    ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
    ASSERT_EQ(action, uint32_t(XDP_PASS)) << "its first packet, within the limit of 1";

    // Twice the probation table in one-packet sources, skipping any that
    // would land in the slow source's slot of the memory: one that did would
    // overwrite it, which is the memory's limit (README "Spoofed sources").
    // The slot depends on the policy's state tag, random per install.
    const uint32_t tag = dp.installedPolicies().at(0).stateTag;
    const uint32_t slowSlot = admitSlotV4(tag, 0x0a080201u);  // 10.8.2.1
    std::mt19937 rng(11);
    const uint32_t floodSources = 2 * sluice_probation_entries(kMaxSources);
    for (uint32_t sent = 0; sent < floodSources;) {
        const std::string a = floodAddress(rng);
        in_addr host{};
        ASSERT_EQ(inet_pton(AF_INET, a.c_str(), &host), 1);
        if (admitSlotV4(tag, ntohl(host.s_addr)) == slowSlot)
            continue;
        const Frame ff = Packet::v4(a.c_str(), kServer4).udp(1, 53).build();
        ASSERT_EQ(testRun(dp.progFd(), ff, &action), 0);
        sent++;
    }
    ASSERT_FALSE(dp.source("one", slow)) << "the flood did not evict the slow source from probation";

    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
        EXPECT_EQ(action, uint32_t(XDP_DROP)) << "packet " << i + 2 << " was charged to a fresh bucket";
    }
    auto st = dp.source("one", slow);
    ASSERT_TRUE(st) << "recognised, it was promoted into sluice_sources";
    EXPECT_EQ(st->limits.at(0).remaining, 0u);

    // `reset` forgets the memory too: a fresh bucket on purpose.
    dp.resetSource(slow);
    for (uint32_t i = 0; i < floodSources; i++) {
        const Frame ff = Packet::v4(floodAddress(rng).c_str(), kServer4).udp(1, 53).build();
        ASSERT_EQ(testRun(dp.progFd(), ff, &action), 0);
    }
    ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS)) << "reset did not forget the source";
}

}  // namespace
}  // namespace sluice::test
