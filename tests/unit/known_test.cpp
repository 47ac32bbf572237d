// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The presence filter's size and bit mapping (sluice_abi.h, bpf/lib/known.h),
// compiled here as for BPF: a power of two of whole words, at least
// SLUICE_KNOWN_BITS_PER_ENTRY bits per entry of the table and per slot of
// the probation memory, and every hash lands inside it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "datapath.h"

extern "C" {
#include "sluice_abi.h"
#include "lib/known.h"
}

namespace sluice {
namespace {

bool powerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }

TEST(KnownFilter, SizedInWholeWordsFromTheTablesSize)
{
    // At least as many bits per slot of the probation memory, whose
    // sources a rebuild puts into the probation half.
    constexpr uint32_t kLeast = SLUICE_ADMIT_SLOTS * SLUICE_KNOWN_BITS_PER_ENTRY;
    EXPECT_EQ(sluice_known_bits(1), kLeast);
    EXPECT_EQ(sluice_known_bits(4096 + 258), kLeast);
    EXPECT_EQ(sluice_known_bits(SLUICE_ADMIT_SLOTS), kLeast);
    EXPECT_EQ(sluice_known_bits(SLUICE_ADMIT_SLOTS + 1), 2 * kLeast);
    // The default table (1M sources plus 2 CPUs' slack of 129 each).
    EXPECT_EQ(sluice_known_bits(1000000 + 258), 1u << 22);
    EXPECT_EQ(sluice_known_words(1000000 + 258), (1u << 22) / 64);
    // The largest tables: capped so that a 32-bit hash masks it.
    EXPECT_EQ(sluice_known_bits(UINT32_MAX), 1u << 31);
    EXPECT_EQ(sluice_known_bits((1u << 31) - 1 + 258), 1u << 31);
    std::mt19937 rng(5);
    for (int i = 0; i < 10000; i++) {
        const uint32_t entries = 1 + rng() % (1u << 29);
        const uint32_t bits = sluice_known_bits(entries);
        SCOPED_TRACE(entries);
        ASSERT_TRUE(powerOfTwo(bits));
        ASSERT_GE(uint64_t(bits), uint64_t(entries) * SLUICE_KNOWN_BITS_PER_ENTRY);
        ASSERT_GE(bits, kLeast);
        ASSERT_LT(uint64_t(bits), uint64_t(std::max(entries, SLUICE_ADMIT_SLOTS)) * 2 * SLUICE_KNOWN_BITS_PER_ENTRY);
        ASSERT_EQ(sluice_known_words(entries) * uint64_t(SLUICE_KNOWN_WORD_BITS), bits);
    }
}

TEST(KnownFilter, EveryHashHasOneBitInsideTheFilter)
{
    std::mt19937 rng(9);
    for (uint32_t entries : {1u, 4354u, 1000258u, UINT32_MAX}) {
        const uint32_t mask = sluice_known_bits(entries) - 1;
        const uint32_t words = sluice_known_words(entries);
        for (int i = 0; i < 100000; i++) {
            const uint32_t h = rng();
            ASSERT_LT(known_word(h, mask), words) << entries;
            ASSERT_TRUE(powerOfTwo(known_bit(h)));
            // Bit and word together are the hash's low bits: two hashes
            // equal under the mask share a bit, others never do.
            const uint32_t other = h ^ (1u << (rng() % 32));
            const bool same = (other & mask) == (h & mask);
            ASSERT_EQ(same, known_word(other, mask) == known_word(h, mask) && known_bit(other) == known_bit(h));
        }
    }
}

// The filter as a rebuild leaves it: one bit for each of `sources` hashes.
KnownFilterState filled(uint32_t entries, uint32_t sources, std::mt19937& rng)
{
    const uint32_t mask = sluice_known_bits(entries) - 1;
    std::vector<uint64_t> words(sluice_known_words(entries));
    KnownFilterState f;
    f.bits = uint64_t(words.size()) * SLUICE_KNOWN_WORD_BITS;
    f.on = true;
    for (uint32_t i = 0; i < sources; i++) {
        const uint32_t h = rng();
        uint64_t& w = words[known_word(h, mask)];
        f.set += (w & known_bit(h)) ? 0 : 1;
        w |= known_bit(h);
    }
    return f;
}

// `sluice run` rebuilds a filter that wantsRebuild(): a table full to its
// last entry never makes it due by itself, or the daemon would walk the
// table every minute for nothing; churn does, well before most spoofed
// sources pay the lookup again.
TEST(KnownFilter, DueForARebuildOnlyOnceSourcesThatLeftFillIt)
{
    std::mt19937 rng(11);
    for (uint32_t entries : {64u + 258u, 4096u + 258u, 1000000u + 258u}) {
        SCOPED_TRACE(entries);
        const KnownFilterState full = filled(entries, entries, rng);
        EXPECT_FALSE(full.wantsRebuild()) << full.set << " of " << full.bits;
        // As many promotions as the filter has bits (4 to 8 tables' worth),
        // most of them gone from the table since.
        const KnownFilterState churned = filled(entries, uint32_t(full.bits), rng);
        EXPECT_TRUE(churned.wantsRebuild()) << churned.set << " of " << churned.bits;
        // The probation table's filter, as large, fills at the rate sources
        // are put on probation: that alone makes both due.
        KnownFilterState probation = full;
        probation.probationSet = churned.set;
        EXPECT_TRUE(probation.wantsRebuild());
        probation.probationSet = filled(entries, sluice_probation_entries(entries), rng).set;
        EXPECT_FALSE(probation.wantsRebuild()) << "a full probation table: " << probation.probationSet;
        // A rebuild puts the probation memory's sources in too: with the
        // memory full as well it is still not due again.
        probation.probationSet =
            filled(entries, sluice_probation_entries(entries) + SLUICE_ADMIT_SLOTS, rng).set;
        EXPECT_FALSE(probation.wantsRebuild())
            << "a full probation table and memory: " << probation.probationSet << " of " << probation.bits;
        KnownFilterState off = full;
        off.on = false;
        EXPECT_TRUE(off.wantsRebuild()) << "a rebuild that failed half-way left it off";
    }
    KnownFilterState edge;
    edge.bits = 1000;
    edge.on = true;
    edge.set = 399;
    EXPECT_FALSE(edge.wantsRebuild());
    edge.set = 400;
    EXPECT_TRUE(edge.wantsRebuild()) << KnownFilterState::kRebuildPercent << "% set";
    EXPECT_FALSE(KnownFilterState{}.wantsRebuild()) << "no filter";
}

}  // namespace
}  // namespace sluice
