// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The presence filter of sluice_sources (bpf/lib/known.h): the packet of a
// source whose bit is clear skips the table's lookup, so a source the table
// holds must always have its bit. These tests take the probation memory away
// from a promoted source and spend the new_sources budget: then only the
// table lookup, and so the source's bit, keeps it from being refused as new.
#include <arpa/inet.h>
#include <unistd.h>

#include <bit>
#include <bpf/bpf.h>

#include "harness.h"
#include "lib/admit.h"
#include "lib/known.h"

namespace sluice::test {
namespace {

constexpr uint32_t kMaxSources = 4096;

Frame udp4(const std::string& src) { return Packet::v4(src, kServer4).udp(1000, 53).build(); }

std::string v4(uint32_t host)
{
    in_addr a;
    a.s_addr = htonl(host);
    char buf[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &a, buf, sizeof buf);
}

// The probation memory forgets every source, as a flood that overwrote
// their slots would (lib/admit.h).
void forgetProbationMemory(const Datapath& dp)
{
    const int fd = dp.mapFd("sluice_admit_fp");
    const uint32_t empty = 0;
    for (uint32_t slot = 0; slot < SLUICE_ADMIT_SLOTS; slot++)
        ASSERT_EQ(bpf_map_update_elem(fd, &slot, &empty, BPF_ANY), 0) << slot;
}

std::vector<uint64_t> filterWords(const Datapath& dp)
{
    const int fd = dp.mapFd("sluice_known");
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    std::vector<uint64_t> words(info.max_entries);
    for (uint32_t i = 0; i < info.max_entries; i++)
        EXPECT_EQ(bpf_map_lookup_elem(fd, &i, &words[i]), 0) << i;
    return words;
}

size_t setBits(const std::vector<uint64_t>& words)
{
    size_t n = 0;
    for (uint64_t w : words)
        n += std::popcount(w);
    return n;
}

bool hasBit(const std::vector<uint64_t>& words, uint32_t stateTag, uint32_t host)
{
    const sluice_source_key k = sourceKeyV4(stateTag, host);
    const uint32_t h = source_fold_hash(&k);
    const uint32_t mask = uint32_t(words.size()) * SLUICE_KNOWN_WORD_BITS - 1;
    return words.at(known_word(h, mask)) & known_bit(h);
}

// What a later load finds: a table that holds sources, and a filter of its
// own that is empty and off.
void emptyTheFilter(const Datapath& dp)
{
    const int fd = dp.mapFd("sluice_known");
    const uint64_t none = 0;
    const uint32_t words = uint32_t(filterWords(dp).size());
    for (uint32_t i = 0; i < words; i++)
        ASSERT_EQ(bpf_map_update_elem(fd, &i, &none, BPF_ANY), 0);
    const uint32_t zero = 0, off = 0;
    ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_known_on"), &zero, &off, BPF_ANY), 0);
}

class KnownFilterRun : public testing::Test {
protected:
    void SetUp() override
    {
        if (geteuid() != 0)
            GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
        dp_.emplace(Datapath::loadUnattached(kMaxSources));
        // A budget of two new sources a day, spent below.
        dp_->install(Rules{{withNewSources(udpPolicy("dns", {port(53)}, {pkts(100)}), 2)}}.make());
        ASSERT_EQ(send(known_), uint32_t(XDP_PASS));
        ASSERT_EQ(send(known_), uint32_t(XDP_PASS)) << "its second packet promotes it";
        ASSERT_EQ(send("10.9.7.2"), uint32_t(XDP_PASS)) << "the budget's second source";
        ASSERT_EQ(send("10.9.7.3"), uint32_t(XDP_DROP)) << "the budget is spent";
        forgetProbationMemory(*dp_);
    }

    uint32_t send(const std::string& src)
    {
        uint32_t action = 0;
        EXPECT_EQ(testRun(dp_->progFd(), udp4(src), &action), 0);
        return action;
    }

    const std::string known_ = "10.9.7.1";
    std::optional<Datapath> dp_;
};

TEST_F(KnownFilterRun, APromotedSourceIsFoundWithItsMemoryGoneAndTheBudgetSpent)
{
    EXPECT_EQ(send(known_), uint32_t(XDP_PASS)) << "a source in the table was refused as new";
    auto st = dp_->source("dns", Address::parse(known_));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->limits.at(0).remaining, 97u) << "its own bucket was not the one charged";
}

// What a load does, and a rebuild: the filter is filled from the table
// before it is turned on.
TEST_F(KnownFilterRun, ItsFillFromTheTableFindsTheSourcesThere)
{
    emptyTheFilter(*dp_);
    EXPECT_EQ(send(known_), uint32_t(XDP_PASS)) << "a filter that is off must not skip the lookup";
    // On but empty, as it would be if a load skipped the fill: the source in
    // the table is taken for new. This is what the fill is for.
    const uint32_t zero = 0, on = 1;
    ASSERT_EQ(bpf_map_update_elem(dp_->mapFd("sluice_known_on"), &zero, &on, BPF_ANY), 0);
    EXPECT_EQ(send(known_), uint32_t(XDP_DROP));

    emptyTheFilter(*dp_);
    dp_->refreshKnownFilter();
    const uint32_t tag = dp_->installedPolicies().at(0).stateTag;
    EXPECT_TRUE(hasBit(filterWords(*dp_), tag, 0x0a090701u));
    EXPECT_EQ(send(known_), uint32_t(XDP_PASS)) << "the fill missed a source of the table";
    auto st = dp_->source("dns", Address::parse(known_));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->limits.at(0).remaining, 96u);
}

// The filter is what lets a spoofed source skip the table: only a promotion
// sets a bit, never a source's first packet, and the bit is the one that
// userspace computes for the source.
TEST(KnownFilter, OnlyPromotedSourcesSetTheirBits)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    dp.install(Rules{{udpPolicy("dns", {port(53)}, {pkts(100)})}}.make());
    const uint32_t tag = dp.installedPolicies().at(0).stateTag;
    uint32_t action = 0;
    constexpr uint32_t kFirst = 0x0b000001u, kSources = 1000, kPromoted = 10;
    for (uint32_t i = 0; i < kSources; i++) {
        ASSERT_EQ(testRun(dp.progFd(), udp4(v4(kFirst + i)), &action), 0);
        ASSERT_EQ(action, uint32_t(XDP_PASS));
    }
    EXPECT_EQ(setBits(filterWords(dp)), 0u) << "a source seen once set a bit";
    for (uint32_t i = 0; i < kPromoted; i++)
        ASSERT_EQ(testRun(dp.progFd(), udp4(v4(kFirst + i)), &action), 0);
    const auto words = filterWords(dp);
    EXPECT_GE(setBits(words), 1u);
    EXPECT_LE(setBits(words), size_t(kPromoted));
    for (uint32_t i = 0; i < kPromoted; i++)
        EXPECT_TRUE(hasBit(words, tag, kFirst + i)) << v4(kFirst + i);
}

// Bits are not cleared as sources leave the table. A rebuild clears the bits
// of the sources gone and keeps those of the sources there; `reset --all`
// (resetAll) rebuilds it.
TEST(KnownFilter, ARebuildKeepsOnlyTheBitsOfSourcesInTheTable)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    dp.install(Rules{{udpPolicy("dns", {port(53)}, {pkts(100)})}}.make());
    const uint32_t tag = dp.installedPolicies().at(0).stateTag;
    const size_t bits = filterWords(dp).size() * SLUICE_KNOWN_WORD_BITS;
    const uint32_t stay = 0x0a090601u;
    // A second source whose bit is another one.
    uint32_t gone = stay + 1;
    auto bitOf = [&](uint32_t host) {
        const sluice_source_key k = sourceKeyV4(tag, host);
        return source_fold_hash(&k) & uint32_t(bits - 1);
    };
    while (bitOf(gone) == bitOf(stay))
        gone++;
    uint32_t action = 0;
    for (uint32_t host : {stay, gone})
        for (int i = 0; i < 2; i++)
            ASSERT_EQ(testRun(dp.progFd(), udp4(v4(host)), &action), 0);
    EXPECT_EQ(setBits(filterWords(dp)), 2u);

    dp.resetSource(Address::parse(v4(gone)));
    ASSERT_FALSE(dp.source("dns", Address::parse(v4(gone))));
    EXPECT_TRUE(hasBit(filterWords(dp), tag, gone)) << "a source that left keeps its bit";

    dp.refreshKnownFilter();
    auto f = dp.knownFilter();
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->on);
    EXPECT_EQ(f->bits, bits);
    EXPECT_EQ(f->set, 1u);
    const auto words = filterWords(dp);
    EXPECT_TRUE(hasBit(words, tag, stay));
    EXPECT_FALSE(hasBit(words, tag, gone));
    ASSERT_EQ(testRun(dp.progFd(), udp4(v4(stay)), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS));
    EXPECT_EQ(dp.source("dns", Address::parse(v4(stay)))->limits.at(0).remaining, 97u)
        << "the source kept in the table is still found and charged";

    dp.resetAll();
    f = dp.knownFilter();
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->on);
    EXPECT_EQ(f->set, 0u) << "reset --all empties the table and so its filter";
}

}  // namespace
}  // namespace sluice::test
