// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The probation memory's hashes (bpf/lib/admit.h), compiled here as for BPF:
// a fingerprint is never 0 (the empty slot), slots stay in range and spread
// evenly, and two sources sharing a slot are told apart by the fingerprint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

extern "C" {
#include "sluice_abi.h"
#include "lib/admit.h"
}

namespace sluice {
namespace {

sluice_source_key randomKey(std::mt19937& rng)
{
    sluice_source_key k{};
    k.state_tag = rng() % 8;
    for (auto& w : k.addr)
        w = rng();
    return k;
}

TEST(AdmitHash, FingerprintIsNeverEmptyAndSlotsStayInRange)
{
    std::mt19937 rng(1);
    for (int i = 0; i < 100000; i++) {
        const sluice_source_key k = randomKey(rng);
        EXPECT_NE(admit_fingerprint(&k), 0u);
        EXPECT_LT(admit_slot(&k), SLUICE_ADMIT_SLOTS);
    }
    const sluice_source_key zero{};
    EXPECT_NE(admit_fingerprint(&zero), 0u);
}

// 4 keys per slot on average; random IPv4 /32 keys (3 zero words) like a
// flood's: no slot gets more than a few times its share.
TEST(AdmitHash, SlotsSpreadEvenly)
{
    std::mt19937 rng(2);
    std::vector<uint32_t> load(SLUICE_ADMIT_SLOTS);
    const uint32_t keys = 4 * SLUICE_ADMIT_SLOTS;
    for (uint32_t i = 0; i < keys; i++) {
        sluice_source_key k{};
        k.state_tag = 1;
        k.addr[0] = rng();
        load[admit_slot(&k)]++;
    }
    EXPECT_LE(*std::max_element(load.begin(), load.end()), 20u);
    EXPECT_LT(std::count(load.begin(), load.end(), 0u), long(SLUICE_ADMIT_SLOTS) / 25);
}

// The same address under two policies (state tags) is two sources.
TEST(AdmitHash, SourcesSharingASlotHaveTheirOwnFingerprints)
{
    std::mt19937 rng(3);
    std::map<uint32_t, std::vector<uint32_t>> fpsBySlot;
    for (int i = 0; i < 200000; i++) {
        const sluice_source_key k = randomKey(rng);
        fpsBySlot[admit_slot(&k)].push_back(admit_fingerprint(&k));
    }
    size_t shared = 0, same = 0;
    for (auto& [slot, fps] : fpsBySlot) {
        std::sort(fps.begin(), fps.end());
        shared += fps.size() - 1;
        same += fps.size() - size_t(std::unique(fps.begin(), fps.end()) - fps.begin());
    }
    EXPECT_GT(shared, 100000u);
    EXPECT_EQ(same, 0u) << "two sources in one slot with one fingerprint";

    sluice_source_key a{}, b{};
    a.state_tag = 1;
    b.state_tag = 2;
    a.addr[0] = b.addr[0] = 0x0a000001;
    EXPECT_NE(admit_fingerprint(&a), admit_fingerprint(&b));
}

}  // namespace
}  // namespace sluice
