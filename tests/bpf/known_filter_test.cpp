// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The presence filters of sluice_sources and sluice_probation (map
// sluice_seen, bpf/lib/known.h): the packet of a source whose bit is clear
// skips that table's lookup, so a source a table holds must always have its
// bit there. These tests take the probation memory away and spend the
// new_sources budget: then only the table lookups, and so the source's bits,
// keep a promoted source or one on probation from being refused as new.
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
// New sources a day: more than any test here sends.
constexpr uint64_t kBigBudget = 100000;

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

uint32_t seenWords(const Datapath& dp)
{
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    EXPECT_EQ(bpf_obj_get_info_by_fd(dp.mapFd("sluice_seen"), &info, &len), 0);
    return info.max_entries;
}

// The words of each half of sluice_seen.
struct Filters {
    std::vector<uint64_t> table, probation;
};

Filters filterWords(const Datapath& dp)
{
    const int fd = dp.mapFd("sluice_seen");
    const uint32_t n = seenWords(dp);
    Filters f{std::vector<uint64_t>(n / 2), std::vector<uint64_t>(n / 2)};
    for (uint32_t i = 0; i < n; i++)
        EXPECT_EQ(bpf_map_lookup_elem(fd, &i, i < n / 2 ? &f.table[i] : &f.probation[i - n / 2]), 0) << i;
    return f;
}

size_t setBits(const std::vector<uint64_t>& words)
{
    size_t n = 0;
    for (uint64_t w : words)
        n += std::popcount(w);
    return n;
}

// `words`: one half; both map a source to the same bit.
bool hasBit(const std::vector<uint64_t>& words, uint32_t stateTag, uint32_t host)
{
    const sluice_source_key k = sourceKeyV4(stateTag, host);
    const uint32_t h = source_fold_hash(&k);
    const uint32_t mask = uint32_t(words.size()) * SLUICE_KNOWN_WORD_BITS - 1;
    return words.at(known_word(h, mask)) & known_bit(h);
}

// What a later load finds: tables that hold sources, and filters of its
// own that are empty and off.
void emptyTheFilter(const Datapath& dp)
{
    const int fd = dp.mapFd("sluice_seen");
    const uint64_t none = 0;
    const uint32_t words = seenWords(dp);
    for (uint32_t i = 0; i < words; i++)
        ASSERT_EQ(bpf_map_update_elem(fd, &i, &none, BPF_ANY), 0);
    const uint32_t zero = 0, off = 0;
    ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_known_on"), &zero, &off, BPF_ANY), 0);
}

// A loaded program of its own and its verdict on one UDP packet.
class LoadedRun : public testing::Test {
protected:
    void SetUp() override
    {
        if (geteuid() != 0)
            GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
        dp_.emplace(Datapath::loadUnattached(kMaxSources));
    }

    uint32_t send(const std::string& src)
    {
        uint32_t action = 0;
        EXPECT_EQ(testRun(dp_->progFd(), udp4(src), &action), 0);
        return action;
    }

    std::optional<Datapath> dp_;
};

class KnownFilterRun : public LoadedRun {
protected:
    void SetUp() override
    {
        LoadedRun::SetUp();
        if (IsSkipped())
            return;
        // A budget of two new sources a day, spent below.
        dp_->install(Rules{{withNewSources(udpPolicy("dns", {port(53)}, {pkts(100)}), 2)}}.make());
        ASSERT_EQ(send(known_), uint32_t(XDP_PASS));
        ASSERT_EQ(send(known_), uint32_t(XDP_PASS)) << "its second packet promotes it";
        ASSERT_EQ(send(probation_), uint32_t(XDP_PASS)) << "the budget's second source";
        ASSERT_EQ(send("10.9.7.3"), uint32_t(XDP_DROP)) << "the budget is spent";
        forgetProbationMemory(*dp_);
    }

    const std::string known_ = "10.9.7.1";
    const std::string probation_ = "10.9.7.2";  // one packet: on probation
};

TEST_F(KnownFilterRun, APromotedSourceIsFoundWithItsMemoryGoneAndTheBudgetSpent)
{
    EXPECT_EQ(send(known_), uint32_t(XDP_PASS)) << "a source in the table was refused as new";
    auto st = dp_->source("dns", Address::parse(known_));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->limits.at(0).remaining, 97u) << "its own bucket was not the one charged";
}

TEST_F(KnownFilterRun, ASourceOnProbationIsFoundWithItsMemoryGoneAndTheBudgetSpent)
{
    EXPECT_EQ(send(probation_), uint32_t(XDP_PASS)) << "a source on probation was refused as new";
    auto st = dp_->source("dns", Address::parse(probation_));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->limits.at(0).remaining, 98u) << "its probation bucket was not the one promoted";
}

// What a load does, and a rebuild: the filters are filled from the tables
// before they are turned on.
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
    EXPECT_TRUE(hasBit(filterWords(*dp_).table, tag, 0x0a090701u));
    EXPECT_EQ(send(known_), uint32_t(XDP_PASS)) << "the fill missed a source of the table";
    auto st = dp_->source("dns", Address::parse(known_));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->limits.at(0).remaining, 96u);
}

TEST_F(KnownFilterRun, ItsFillFromTheProbationTableFindsTheSourcesThere)
{
    emptyTheFilter(*dp_);
    const uint32_t zero = 0, on = 1;
    ASSERT_EQ(bpf_map_update_elem(dp_->mapFd("sluice_known_on"), &zero, &on, BPF_ANY), 0);
    EXPECT_EQ(send(probation_), uint32_t(XDP_DROP)) << "on and empty: the source on probation is taken for new";

    emptyTheFilter(*dp_);
    dp_->refreshKnownFilter();
    const uint32_t tag = dp_->installedPolicies().at(0).stateTag;
    const Filters f = filterWords(*dp_);
    EXPECT_TRUE(hasBit(f.probation, tag, 0x0a090702u));
    EXPECT_FALSE(hasBit(f.table, tag, 0x0a090702u)) << "not promoted yet";
    EXPECT_EQ(send(probation_), uint32_t(XDP_PASS)) << "the fill missed a source of the probation table";
    auto st = dp_->source("dns", Address::parse(probation_));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->limits.at(0).remaining, 98u);
}

// The filters are what let a spoofed source skip the tables: under a policy
// with a new_sources budget a source's first packet sets its bit in the
// probation half only, its promotion the one in the table's half, and the
// bit is the one that userspace computes for the source.
TEST(KnownFilter, ASourceSetsItsBitOfEachTableItIsPutIn)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    dp.install(Rules{{withNewSources(udpPolicy("dns", {port(53)}, {pkts(100)}), kBigBudget)}}.make());
    const uint32_t tag = dp.installedPolicies().at(0).stateTag;
    uint32_t action = 0;
    constexpr uint32_t kFirst = 0x0b000001u, kSources = 1000, kPromoted = 10;
    for (uint32_t i = 0; i < kSources; i++) {
        ASSERT_EQ(testRun(dp.progFd(), udp4(v4(kFirst + i)), &action), 0);
        ASSERT_EQ(action, uint32_t(XDP_PASS));
    }
    Filters f = filterWords(dp);
    EXPECT_EQ(setBits(f.table), 0u) << "a source seen once set a bit of the table's filter";
    EXPECT_GE(setBits(f.probation), size_t(kSources) * 99 / 100) << "1000 sources in 262,144 bits";
    EXPECT_LE(setBits(f.probation), size_t(kSources));
    for (uint32_t i = 0; i < kSources; i++)
        ASSERT_TRUE(hasBit(f.probation, tag, kFirst + i)) << v4(kFirst + i);
    for (uint32_t i = 0; i < kPromoted; i++)
        ASSERT_EQ(testRun(dp.progFd(), udp4(v4(kFirst + i)), &action), 0);
    f = filterWords(dp);
    EXPECT_GE(setBits(f.table), 1u);
    EXPECT_LE(setBits(f.table), size_t(kPromoted));
    for (uint32_t i = 0; i < kPromoted; i++)
        EXPECT_TRUE(hasBit(f.table, tag, kFirst + i)) << v4(kFirst + i);
}

// Without a budget the probation filter is neither consulted nor marked: a
// spoofed flood would fill it within seconds and pay every mark for
// nothing. The table's filter is used as with one.
TEST(KnownFilter, WithoutABudgetOnlyPromotionsSetBits)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    dp.install(Rules{{udpPolicy("dns", {port(53)}, {pkts(100)})}}.make());
    const uint32_t tag = dp.installedPolicies().at(0).stateTag;
    uint32_t action = 0;
    constexpr uint32_t kFirst = 0x0b000001u, kSources = 100;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < kSources; i++)
            ASSERT_EQ(testRun(dp.progFd(), udp4(v4(kFirst + i)), &action), 0);
    const Filters f = filterWords(dp);
    EXPECT_EQ(setBits(f.probation), 0u);
    for (uint32_t i = 0; i < kSources; i++)
        ASSERT_TRUE(hasBit(f.table, tag, kFirst + i)) << v4(kFirst + i);
}

// A policy that gains a budget and keeps its state (same limits) starts
// consulting the probation filter, where the entries it made without one
// have no bits: the install rebuilds the filters around its flip, and so
// does an undo back to a generation with the budget.
class GainedBudget : public LoadedRun {
protected:
    // A source on probation under the budget's policy, its memory gone and
    // the budget (one new source a day) spent by another: only its
    // probation bit can lead its second packet to its entry.
    void expectFound()
    {
        const uint32_t tag = dp_->installedPolicies().at(0).stateTag;
        ASSERT_EQ(tag, tag_) << "the policy kept its state";
        EXPECT_TRUE(hasBit(filterWords(*dp_).probation, tag, 0x0a090801u));
        ASSERT_EQ(send("10.9.8.2"), uint32_t(XDP_PASS)) << "the budget's one source";
        ASSERT_EQ(send("10.9.8.3"), uint32_t(XDP_DROP)) << "the budget is spent";
        EXPECT_EQ(send(onProbation_), uint32_t(XDP_PASS)) << "the source on probation was refused as new";
        auto st = dp_->source("dns", Address::parse(onProbation_));
        ASSERT_TRUE(st);
        EXPECT_EQ(st->limits.at(0).remaining, 98u);
    }

    void firstPacketWithoutBudget()
    {
        tag_ = dp_->installedPolicies().at(0).stateTag;
        ASSERT_EQ(send(onProbation_), uint32_t(XDP_PASS));
        EXPECT_EQ(setBits(filterWords(*dp_).probation), 0u);
        forgetProbationMemory(*dp_);
    }

    const Policy plain_ = udpPolicy("dns", {port(53)}, {pkts(100)});
    const std::string onProbation_ = "10.9.8.1";
    uint32_t tag_ = 0;
};

TEST_F(GainedBudget, ByAnInstall)
{
    dp_->install(Rules{{plain_}}.make());
    firstPacketWithoutBudget();
    dp_->install(Rules{{withNewSources(plain_, 1)}}.make());
    expectFound();
}

TEST_F(GainedBudget, ByAnUndo)
{
    dp_->install(Rules{{withNewSources(plain_, 1)}}.make());
    dp_->install(Rules{{plain_}}.make());
    firstPacketWithoutBudget();
    dp_->undoInstall();
    expectFound();
}

// Under a budget the probation memory is read only behind the source's
// probation bit (sluice.bpf.c, admit_source), so a spoofed source skips its
// two hashes and its read. A source the memory holds, its probation entry
// evicted by a flood, must therefore keep that bit, through a rebuild too,
// which reads the memory's fold hashes.
class RememberedSource : public LoadedRun {
protected:
    void SetUp() override
    {
        LoadedRun::SetUp();
        if (IsSkipped())
            return;
        // One new source a day: the remembered one.
        dp_->install(Rules{{withNewSources(udpPolicy("dns", {port(53)}, {pkts(100)}), 1)}}.make());
        ASSERT_EQ(send(v4(kRemembered)), uint32_t(XDP_PASS));
        ASSERT_EQ(send(v4(kRemembered + 1)), uint32_t(XDP_DROP)) << "the budget is spent";
        key_ = sourceKeyV4(dp_->installedPolicies().at(0).stateTag, kRemembered);
        ASSERT_EQ(bpf_map_delete_elem(dp_->mapFd("sluice_probation"), &key_), 0) << "it was on probation";
    }

    bool hasProbationBit() const
    {
        return hasBit(filterWords(*dp_).probation, key_.state_tag, kRemembered);
    }

    // Its second packet resumes its bucket (one unit charged before), or
    // is refused as new.
    void expectRecalled()
    {
        EXPECT_EQ(send(v4(kRemembered)), uint32_t(XDP_PASS)) << "the remembered source was refused as new";
        auto st = dp_->source("dns", Address::parse(v4(kRemembered)));
        ASSERT_TRUE(st);
        EXPECT_EQ(st->limits.at(0).remaining, 98u);
    }

    static constexpr uint32_t kRemembered = 0x0a090501u;
    sluice_source_key key_{};
};

TEST_F(RememberedSource, IsRecalledBehindTheBitItsProbationEntrySet)
{
    EXPECT_TRUE(hasProbationBit());
    expectRecalled();
}

TEST_F(RememberedSource, KeepsItsBitThroughARebuild)
{
    dp_->refreshKnownFilter();
    auto f = dp_->knownFilter();
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->on);
    EXPECT_EQ(f->probationSet, 1u) << "only the remembered source: the refused one left nothing";
    EXPECT_TRUE(hasProbationBit()) << "the rebuild dropped the bit of a source the memory holds";
    expectRecalled();
}

TEST_F(RememberedSource, IsTakenForNewBehindAClearBit)
{
    const uint32_t h = source_fold_hash(&key_);
    const uint32_t half = seenWords(*dp_) / 2;
    const uint32_t w = probation_word(h, half * SLUICE_KNOWN_WORD_BITS - 1);
    uint64_t word = 0;
    ASSERT_EQ(bpf_map_lookup_elem(dp_->mapFd("sluice_seen"), &w, &word), 0);
    word &= ~known_bit(h);
    ASSERT_EQ(bpf_map_update_elem(dp_->mapFd("sluice_seen"), &w, &word, BPF_ANY), 0);
    ASSERT_FALSE(hasProbationBit());
    EXPECT_EQ(send(v4(kRemembered)), uint32_t(XDP_DROP)) << "the memory was read behind a clear bit";
    EXPECT_FALSE(dp_->source("dns", Address::parse(v4(kRemembered))));
}

// Bits are not cleared as sources leave the table. A rebuild clears the bits
// of the sources gone and keeps those of the sources there; `reset --all`
// (resetAll) rebuilds it.
TEST(KnownFilter, ARebuildKeepsOnlyTheBitsOfSourcesInTheTable)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached(kMaxSources);
    dp.install(Rules{{withNewSources(udpPolicy("dns", {port(53)}, {pkts(100)}), kBigBudget)}}.make());
    const uint32_t tag = dp.installedPolicies().at(0).stateTag;
    const size_t bits = filterWords(dp).table.size() * SLUICE_KNOWN_WORD_BITS;
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
    EXPECT_EQ(setBits(filterWords(dp).table), 2u);
    EXPECT_EQ(setBits(filterWords(dp).probation), 2u) << "both were on probation first";

    dp.resetSource(Address::parse(v4(gone)));
    ASSERT_FALSE(dp.source("dns", Address::parse(v4(gone))));
    EXPECT_TRUE(hasBit(filterWords(dp).table, tag, gone)) << "a source that left keeps its bit";

    dp.refreshKnownFilter();
    auto f = dp.knownFilter();
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->on);
    EXPECT_EQ(f->bits, bits);
    EXPECT_EQ(f->set, 1u);
    EXPECT_EQ(f->probationSet, 1u) << "the probation memory still holds the source that stayed";
    const Filters after = filterWords(dp);
    EXPECT_TRUE(hasBit(after.table, tag, stay));
    EXPECT_FALSE(hasBit(after.table, tag, gone));
    EXPECT_TRUE(hasBit(after.probation, tag, stay));
    EXPECT_FALSE(hasBit(after.probation, tag, gone)) << "reset forgot it in the memory too";
    ASSERT_EQ(testRun(dp.progFd(), udp4(v4(stay)), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS));
    EXPECT_EQ(dp.source("dns", Address::parse(v4(stay)))->limits.at(0).remaining, 97u)
        << "the source kept in the table is still found and charged";

    dp.resetAll();
    f = dp.knownFilter();
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->on);
    EXPECT_EQ(f->set, 0u) << "reset --all empties the table and so its filter";
    EXPECT_EQ(f->probationSet, 0u);
}

}  // namespace
}  // namespace sluice::test
