// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The data path's rate math (bpf/lib/gcra.h), compiled here as it is for BPF
// and driven with synthetic time. Limits are built by hand, independently of
// the policy compiler, so a compiler bug cannot hide a gcra.h bug.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "sluice_abi.h"
#include "lib/gcra.h"
#include "lib/overcache.h"
}

namespace sluice {
namespace {

using u128 = unsigned __int128;

constexpr uint64_t kUs = 1'000ULL;
constexpr uint64_t kMs = 1'000'000ULL;
constexpr uint64_t kSecond = 1'000'000'000ULL;
constexpr uint64_t kMinute = 60 * kSecond;
constexpr uint64_t kHour = 60 * kMinute;
constexpr uint64_t kDay = 24 * kHour;
constexpr uint64_t kYear = 360 * kDay;
// A realistic ktime (11.6 days of uptime): most tests start here rather than
// at 0, so they do not lean on "a zero TAT is a full bucket".
constexpr uint64_t kT0 = 1'000'000 * kSecond;

constexpr uint8_t kConn = SLUICE_LIMIT_CONNECTIONS;
constexpr uint8_t kPkts = SLUICE_LIMIT_PACKETS;
constexpr uint8_t kBytes = SLUICE_LIMIT_BYTES;

// "count per period burst N" in kernel form, in the representation the
// policy compiler uses (written out here, not called): a bytes limit keeps
// the interval as whole ns and 2^-32 ns, other kinds round it to the ns; the
// capacity is what `burst` units cost with the fraction rounded up.
sluice_limit makeLimit(uint8_t kind, uint64_t count, uint64_t periodNs,
                       uint64_t burst = 0)
{
    if (burst == 0)
        burst = count;
    sluice_limit l{};
    l.kind = kind;
    const u128 intervalQ32 = (static_cast<u128>(periodNs) << 32) / count;
    if (kind == kBytes) {
        l.interval_ns = static_cast<uint64_t>(intervalQ32 >> 32);
        l.interval_frac = static_cast<uint32_t>(intervalQ32);
    } else {
        l.interval_ns = static_cast<uint64_t>((intervalQ32 + (u128{1} << 31)) >> 32);
    }
    l.capacity_ns = static_cast<uint64_t>(
        static_cast<u128>(burst) * l.interval_ns +
        ((static_cast<u128>(burst) * l.interval_frac + 0xffffffffULL) >> 32));
    l.count = count;
    l.period_ns = periodNs;
    l.burst = burst;
    return l;
}

sluice_policy makePolicy(std::initializer_list<sluice_limit> limits)
{
    sluice_policy p{};
    for (const sluice_limit& l : limits)
        p.limits[p.nlimits++] = l;
    return p;
}

bool admit(sluice_source_state& st, const sluice_policy& p, uint64_t now,
           bool syn = false, uint32_t len = 100)
{
    return gcra_charge(&st, &p, syn ? 1 : 0, len, now) == SLUICE_ADMIT;
}

// Charges `tries` identical packets at one instant; returns how many passed.
uint64_t admitMany(sluice_source_state& st, const sluice_policy& p, uint64_t now,
                   uint64_t tries, bool syn = false, uint32_t len = 100)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < tries; i++)
        n += admit(st, p, now, syn, len);
    return n;
}

std::string describe(const sluice_limit& l)
{
    return std::to_string(l.count) + " per " + std::to_string(l.period_ns) +
           "ns burst " + std::to_string(l.burst) + " kind " + std::to_string(l.kind);
}

TEST(GcraUnits, EachKindChargesWhatItCounts)
{
    struct Case {
        uint8_t kind;
        int syn;
        uint32_t len;
        uint64_t units;
    };
    const Case cases[] = {
        {kConn, 1, 60, 1},     {kConn, 0, 60, 0},      {kPkts, 0, 60, 1},
        {kPkts, 1, 9000, 1},   {kBytes, 0, 60, 60},    {kBytes, 1, 1514, 1514},
        {kBytes, 0, 65535, 65535}, {0, 1, 1500, 0},    {7, 1, 1500, 0},
    };
    for (const Case& c : cases)
        EXPECT_EQ(gcra_units(c.kind, c.syn, c.len), c.units)
            << "kind " << int(c.kind) << " syn " << c.syn << " len " << c.len;
}

TEST(GcraBurst, FivePerMinuteFromTimeZero)
{
    const sluice_policy p = makePolicy({makeLimit(kPkts, 5, kMinute)});
    sluice_source_state st{};
    EXPECT_EQ(admitMany(st, p, 0, 5), 5u);
    EXPECT_FALSE(admit(st, p, 0));
    EXPECT_FALSE(admit(st, p, 12 * kSecond - 1));
    EXPECT_TRUE(admit(st, p, 12 * kSecond));
    EXPECT_FALSE(admit(st, p, 12 * kSecond));
}

// gcra_take (ban_after, new_sources): one unit of a shared TAT at a time,
// with gcra_charge's arithmetic; a refusal leaves the TAT as it was.
TEST(GcraTake, BurstThenOnePerIntervalAndRefusalChangesNothing)
{
    const sluice_limit l = makeLimit(kPkts, 5, kMinute);  // 12 s a unit
    const uint64_t t0 = 1'000 * kSecond;
    __u64 tat = 0;
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(gcra_take(&tat, &l, t0), 1) << i;
    const uint64_t full = tat;
    EXPECT_EQ(full, t0 + 5 * 12 * kSecond);
    EXPECT_EQ(gcra_take(&tat, &l, t0), 0);
    EXPECT_EQ(tat, full) << "a refusal moved the TAT";
    EXPECT_EQ(gcra_take(&tat, &l, t0 + 12 * kSecond - 1), 0);
    EXPECT_EQ(gcra_take(&tat, &l, t0 + 12 * kSecond), 1);
    EXPECT_EQ(gcra_take(&tat, &l, t0 + 12 * kSecond), 0);
    // Idle for an hour: a full burst again, and no more.
    const uint64_t later = t0 + 3600 * kSecond;
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(gcra_take(&tat, &l, later), 1) << i;
    EXPECT_EQ(gcra_take(&tat, &l, later), 0);
}

// A full bucket admits `burst` at once; afterwards one unit per interval,
// a partial refill only what has accrued, and an idle bucket never more
// than burst.
TEST(GcraBurst, BurstThenOnePerInterval)
{
    struct Case {
        uint64_t count, period, burst;
    };
    const Case cases[] = {
        {5, kMinute, 0},      {1, kSecond, 0},       {10, kSecond, 3},
        {2000, kSecond, 4000}, {100, kHour, 1},      {3, kDay, 30},
    };
    for (const Case& c : cases) {
        const sluice_limit l = makeLimit(kPkts, c.count, c.period, c.burst);
        const sluice_policy p = makePolicy({l});
        const uint64_t burst = l.burst;
        const uint64_t iv = l.interval_ns;
        SCOPED_TRACE(describe(l));
        sluice_source_state st{};

        EXPECT_EQ(admitMany(st, p, kT0, burst + 10), burst);
        EXPECT_FALSE(admit(st, p, kT0 + iv - 1));
        EXPECT_TRUE(admit(st, p, kT0 + iv));
        EXPECT_FALSE(admit(st, p, kT0 + iv));

        const uint64_t k = std::max<uint64_t>(1, burst / 2);
        EXPECT_EQ(admitMany(st, p, kT0 + (1 + k) * iv, burst + 10), k);

        const uint64_t idle = kT0 + (1 + k) * iv + (burst + 50) * iv;
        EXPECT_EQ(admitMany(st, p, idle, burst + 10), burst);
    }
}

// Offered faster than the rate for a long run, a limit admits exactly its
// burst plus one unit per interval elapsed.
TEST(GcraSteadyRate, AdmitsRateTimesTimePlusBurst)
{
    struct Case {
        uint64_t count, period, burst;
        uint64_t step;      // time between offers
        uint64_t perStep;   // packets offered each step
        uint64_t duration;  // offers at 0, step, ..., duration
        uint64_t expected;
    };
    const Case cases[] = {
        {5, kMinute, 0, kSecond, 1, kHour, 5 + 3600 / 12},
        {100, kSecond, 100, kMs, 1, 100 * kSecond, 100 + 100 * 100},
        {2000, kSecond, 4000, 100 * kUs, 1, 10 * kSecond, 4000 + 2000 * 10},
        {1, kSecond, 1, kMs, 3, 1000 * kSecond, 1 + 1000},
        {1'000'000'000, kSecond, 1000, 1, 2, kMs, 1000 + 1'000'000},
        {7, kSecond, 7, kMs, 2, 1000 * kSecond, 7 + 7 * 1000},
        {1'000'000, kYear, 0, kHour, 200, 720 * kDay, 1'000'000 + 2'000'000},
    };
    for (const Case& c : cases) {
        const sluice_limit l = makeLimit(kPkts, c.count, c.period, c.burst);
        const sluice_policy p = makePolicy({l});
        SCOPED_TRACE(describe(l));
        sluice_source_state st{};
        uint64_t admitted = 0;
        for (uint64_t t = 0; t <= c.duration; t += c.step)
            admitted += admitMany(st, p, kT0 + t, c.perStep);
        // Packet intervals are whole ns: 7/s runs at one per 142857143 ns,
        // which is one unit short of 7007 after 1000 s.
        EXPECT_NEAR(double(admitted), double(c.expected), 1.0);
        EXPECT_LE(admitted, c.expected);
    }
}

TEST(GcraStacked, RefusalBySecondLimitRefundsTheFirst)
{
    const sluice_limit loose = makeLimit(kPkts, 10, kSecond);  // 100 ms
    const sluice_limit tight = makeLimit(kPkts, 2, kSecond);   // 500 ms
    const sluice_policy p = makePolicy({loose, tight});
    sluice_source_state st{};

    EXPECT_EQ(gcra_charge(&st, &p, 0, 100, kT0), SLUICE_ADMIT);
    EXPECT_EQ(gcra_charge(&st, &p, 0, 100, kT0), SLUICE_ADMIT);
    const sluice_source_state before = st;
    EXPECT_EQ(before.tat_ns[0], kT0 + 2 * 100 * kMs);
    EXPECT_EQ(before.tat_ns[1], kT0 + 2 * 500 * kMs);

    for (int i = 0; i < 20; i++) {
        EXPECT_EQ(gcra_charge(&st, &p, 0, 100, kT0), 1);
        EXPECT_EQ(st.tat_ns[0], before.tat_ns[0]);
        EXPECT_EQ(st.tat_ns[1], before.tat_ns[1]);
    }
    // The loose limit kept its 8 units: once the tight one refills, they are there.
    EXPECT_EQ(gcra_remaining(&loose, st.tat_ns[0], kT0), 8u);
}

TEST(GcraStacked, RefusalByFirstLimitChargesNoLaterOne)
{
    const sluice_policy p =
        makePolicy({makeLimit(kPkts, 2, kSecond), makeLimit(kPkts, 10, kSecond)});
    sluice_source_state st{};
    EXPECT_EQ(admitMany(st, p, kT0, 2), 2u);
    for (int i = 0; i < 20; i++)
        EXPECT_EQ(gcra_charge(&st, &p, 0, 100, kT0), 0);
    EXPECT_EQ(st.tat_ns[1], kT0 + 2 * 100 * kMs);
}

TEST(GcraStacked, RefusalByLastOfFourRefundsAllEarlier)
{
    const sluice_policy p = makePolicy({
        makeLimit(kPkts, 100, kSecond),
        makeLimit(kConn, 10, kSecond),
        makeLimit(kBytes, 10'000'000, kSecond),  // 100 ns per byte
        makeLimit(kPkts, 3, kSecond),
    });
    sluice_source_state st{};
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(gcra_charge(&st, &p, 1, 1000, kT0), SLUICE_ADMIT);
    const sluice_source_state before = st;
    EXPECT_EQ(before.tat_ns[2], kT0 + 3 * 1000 * 100);
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(gcra_charge(&st, &p, 1, 1000, kT0), 3);
    for (int i = 0; i < SLUICE_MAX_LIMITS; i++)
        EXPECT_EQ(st.tat_ns[i], before.tat_ns[i]) << "limit " << i;
}

// A refund of a charge made on an idle bucket leaves that bucket as full as
// it was (its TAT may move up to `now`, which is the same full bucket).
TEST(GcraStacked, RefusalLeavesAnIdleBucketFull)
{
    const sluice_limit pkts = makeLimit(kPkts, 10, kSecond);
    const sluice_limit conns = makeLimit(kConn, 1, kMinute);
    const sluice_policy p = makePolicy({pkts, conns});
    sluice_source_state st{};
    ASSERT_TRUE(admit(st, p, kT0, true));
    const uint64_t later = kT0 + 5 * kSecond;
    EXPECT_EQ(gcra_charge(&st, &p, 1, 60, later), 1);
    EXPECT_EQ(gcra_remaining(&pkts, st.tat_ns[0], later), 10u);
    EXPECT_EQ(gcra_retry_after_ns(&pkts, st.tat_ns[0], later), 0u);
    EXPECT_EQ(admitMany(st, p, later, 100), 10u);  // non-SYN: packets limit only
}

TEST(GcraStacked, LimitsBeyondNlimitsAreIgnored)
{
    sluice_policy p = makePolicy({makeLimit(kPkts, 5, kSecond)});
    p.limits[1] = makeLimit(kPkts, 1, kYear);
    p.limits[2] = makeLimit(kBytes, 1, kYear);
    sluice_source_state st{};
    EXPECT_EQ(admitMany(st, p, kT0, 10, true, 1500), 5u);
    EXPECT_EQ(st.tat_ns[1], 0u);
    EXPECT_EQ(st.tat_ns[2], 0u);
}

TEST(GcraConnections, OnlySynPacketsAreCharged)
{
    const sluice_policy p = makePolicy({makeLimit(kConn, 2, kSecond)});
    sluice_source_state st{};
    EXPECT_EQ(admitMany(st, p, kT0, 1000, false), 1000u);
    EXPECT_EQ(st.tat_ns[0], 0u);
    EXPECT_EQ(admitMany(st, p, kT0, 5, true), 2u);
    EXPECT_EQ(admitMany(st, p, kT0, 1000, false), 1000u);
    EXPECT_TRUE(admit(st, p, kT0 + 500 * kMs, true));
}

TEST(GcraConnections, MixedWithPacketsLimit)
{
    const sluice_policy p =
        makePolicy({makeLimit(kConn, 1, kMinute), makeLimit(kPkts, 5, kSecond)});
    sluice_source_state st{};
    EXPECT_TRUE(admit(st, p, kT0, true));
    EXPECT_EQ(gcra_charge(&st, &p, 1, 60, kT0), 0);  // a second connection
    EXPECT_EQ(admitMany(st, p, kT0, 10, false), 4u);  // the packets limit's rest
    EXPECT_EQ(gcra_charge(&st, &p, 0, 60, kT0), 1);
    EXPECT_EQ(st.tat_ns[0], kT0 + kMinute);
}

TEST(GcraBytes, ChargesTheFrameLength)
{
    // 10 MB/s with a 10 MB bucket: 100 ns per byte, 1 s of capacity.
    const sluice_limit l = makeLimit(kBytes, 10'000'000, kSecond);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    EXPECT_EQ(admitMany(st, p, kT0, 10'000, false, 1500), 6666u);
    EXPECT_EQ(st.tat_ns[0], kT0 + 6666ULL * 1500 * 100);
    EXPECT_FALSE(admit(st, p, kT0, false, 1001));
    EXPECT_TRUE(admit(st, p, kT0, false, 1000));
    EXPECT_FALSE(admit(st, p, kT0, false, 1));
    EXPECT_FALSE(admit(st, p, kT0 + 99, false, 1));
    EXPECT_TRUE(admit(st, p, kT0 + 100, false, 1));
    EXPECT_TRUE(admit(st, p, kT0 + 100 + 1500 * 100, false, 1500));
}

TEST(GcraBytes, SubNanosecondCostUsesTheFraction)
{
    // 3 GB/s: a byte costs 1/3 ns, all of it in interval_frac.
    const sluice_limit l = makeLimit(kBytes, 3'000'000'000ULL, kSecond, 3'000'000);
    ASSERT_EQ(l.interval_ns, 0u);
    ASSERT_NE(l.interval_frac, 0u);
    EXPECT_NEAR(double(gcra_cost_ns(&l, 3'000'000)), 1e6, 1.0);
    EXPECT_NEAR(double(gcra_cost_ns(&l, 65535)), 21845.0, 1.0);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    const uint64_t admitted = admitMany(st, p, kT0, 10'000, false, 9000);
    EXPECT_GE(admitted, 333u);
    EXPECT_LE(admitted, 334u);
}

// Saturated for a long synthetic run, a bytes limit admits rate * time +
// burst bytes to within 0.1%, whatever the frame size. Truncating each
// frame's sub-ns cost would over-admit by up to 1 ns per frame.
TEST(GcraBytes, LongRunNeverOverAndUnderByAtMostOneNsPerFrame)
{
    struct Case {
        uint64_t bytesPerSecond;
        uint32_t frameLen;
    };
    const Case cases[] = {
        {3'000'000'000ULL, 64},   {3'000'000'000ULL, 1500}, {3'000'000'000ULL, 9000},
        {3'000'000'000ULL, 65535}, {2'500'000'000ULL, 1500}, {1'000'000'000ULL, 64},
        {10'000'000ULL, 1500},     {10'000'000ULL, 64},      {123'456'789ULL, 1514},
    };
    for (const Case& c : cases) {
        const uint64_t burst = std::max<uint64_t>(65535, c.bytesPerSecond / 1000);
        const sluice_limit l = makeLimit(kBytes, c.bytesPerSecond, kSecond, burst);
        const sluice_policy p = makePolicy({l});
        SCOPED_TRACE(describe(l) + " frames of " + std::to_string(c.frameLen));

        // About two million frames, offered a little faster than they drain.
        const double frameNs = double(c.frameLen) * 1e9 / double(c.bytesPerSecond);
        const uint64_t step = std::max<uint64_t>(1, uint64_t(frameNs * 0.7));
        const uint64_t duration = uint64_t(frameNs * 2e6);
        sluice_source_state st{};
        uint64_t bytes = 0;
        for (uint64_t t = 0; t <= duration; t += step)
            while (admit(st, p, kT0 + t, false, c.frameLen))
                bytes += c.frameLen;

        const uint64_t lastOffer = duration - duration % step;
        const double expected =
            double(c.bytesPerSecond) * double(lastOffer) / 1e9 + double(burst);
        const double error = (double(bytes) - expected) / expected;
        // A frame's cost is rounded up to the ns: never more than the limit
        // (one frame of slack for the last partial interval), and less by
        // at most 1 ns per frame (plus 0.1% for the burst edge).
        const double underBound = 1.0 / frameNs + 0.001;
        EXPECT_LE(double(bytes), expected + c.frameLen)
            << "admitted " << bytes << " bytes, expected " << expected;
        EXPECT_GE(error, -underBound)
            << "admitted " << bytes << " bytes, expected " << expected << " (relative error "
            << error * 100 << "%, bound " << underBound * 100 << "%)";
    }
}

TEST(GcraExtremes, OnePerYear)
{
    const sluice_limit l = makeLimit(kPkts, 1, kYear);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    EXPECT_TRUE(admit(st, p, kT0));
    EXPECT_FALSE(admit(st, p, kT0));
    EXPECT_EQ(gcra_retry_after_ns(&l, st.tat_ns[0], kT0), kYear);
    EXPECT_FALSE(admit(st, p, kT0 + kYear - 1));
    EXPECT_TRUE(admit(st, p, kT0 + kYear));
    EXPECT_FALSE(admit(st, p, kT0 + kYear));
    EXPECT_EQ(admitMany(st, p, kT0 + 100 * kYear, 10), 1u);
}

TEST(GcraExtremes, MillionPerYear)
{
    const sluice_limit l = makeLimit(kPkts, 1'000'000, kYear);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    EXPECT_EQ(gcra_remaining(&l, 0, kT0), 1'000'000u);
    EXPECT_EQ(admitMany(st, p, kT0, 1'000'010), 1'000'000u);
    EXPECT_EQ(st.tat_ns[0], kT0 + kYear);
    EXPECT_FALSE(admit(st, p, kT0 + l.interval_ns - 1));
    EXPECT_TRUE(admit(st, p, kT0 + l.interval_ns));
}

// The largest bucket the compiler allows, capacity exactly SLUICE_MAX_SPAN_NS
// (1 per year with burst 10^6 would need 6745 times that: the compiler
// refuses it), with `now` near 2^62 and near 2^63.
TEST(GcraExtremes, MaximumSpanDoesNotOverflow)
{
    const uint64_t burst = 1'000'000;
    sluice_limit big{};
    big.kind = kPkts;
    big.interval_ns = SLUICE_MAX_SPAN_NS / burst;
    big.capacity_ns = big.interval_ns * burst;
    sluice_limit single{};
    single.kind = kPkts;
    single.interval_ns = SLUICE_MAX_SPAN_NS;
    single.capacity_ns = SLUICE_MAX_SPAN_NS;
    sluice_limit frame{};  // one 65535-byte frame costs the whole span
    frame.kind = kBytes;
    frame.interval_ns = SLUICE_MAX_SPAN_NS / 65535;
    frame.capacity_ns = SLUICE_MAX_SPAN_NS;

    // gcra.h promises no overflow while now stays below 2^63.
    const uint64_t nows[] = {(1ULL << 62) + 12345, (1ULL << 63) - (1ULL << 44)};
    for (uint64_t now : nows) {
        SCOPED_TRACE("now " + std::to_string(now));
        {
            const sluice_policy p = makePolicy({big});
            sluice_source_state st{};
            EXPECT_EQ(gcra_remaining(&big, 0, now), burst);
            EXPECT_EQ(admitMany(st, p, now, burst + 5), burst);
            EXPECT_EQ(st.tat_ns[0], now + big.capacity_ns);
            EXPECT_FALSE(admit(st, p, now + big.interval_ns - 1));
            EXPECT_TRUE(admit(st, p, now + big.interval_ns));
        }
        {
            const sluice_policy p = makePolicy({single});
            sluice_source_state st{};
            EXPECT_EQ(admitMany(st, p, now, 5), 1u);
            EXPECT_EQ(st.tat_ns[0], now + SLUICE_MAX_SPAN_NS);
            EXPECT_EQ(gcra_retry_after_ns(&single, st.tat_ns[0], now), SLUICE_MAX_SPAN_NS);
            EXPECT_EQ(gcra_remaining(&single, st.tat_ns[0], now), 0u);
        }
        {
            const sluice_policy p = makePolicy({frame});
            sluice_source_state st{};
            EXPECT_TRUE(admit(st, p, now, false, 65535));
            EXPECT_FALSE(admit(st, p, now, false, 65535));
            EXPECT_FALSE(admit(st, p, now, false, 1));
        }
    }
}

TEST(GcraExtremes, BillionPerSecond)
{
    const sluice_limit l = makeLimit(kPkts, 1'000'000'000, kSecond);
    ASSERT_EQ(l.interval_ns, 1u);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0), 1'000'000'000u);
    EXPECT_TRUE(admit(st, p, kT0));
    EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0), 999'999'999u);
    st.tat_ns[0] = kT0 + kSecond;  // drained
    EXPECT_FALSE(admit(st, p, kT0));
    EXPECT_EQ(admitMany(st, p, kT0 + 1, 5), 1u);
    EXPECT_EQ(admitMany(st, p, kT0 + 1001, 5000), 1000u);
}

TEST(GcraFrozenTime, ExactlyBurstThenNothing)
{
    struct Case {
        sluice_limit limit;
        bool syn;
        uint32_t len;
        uint64_t expected;
    };
    const Case cases[] = {
        {makeLimit(kPkts, 5, kMinute), false, 100, 5},
        {makeLimit(kPkts, 1000, kSecond, 250), false, 100, 250},
        {makeLimit(kConn, 7, kSecond), true, 60, 7},
        {makeLimit(kPkts, 7, kSecond), false, 60, 7},
        {makeLimit(kBytes, 10'000'000, kSecond, 15'000), false, 1500, 10},
        {makeLimit(kPkts, 1, kYear), false, 60, 1},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(describe(c.limit));
        const sluice_policy p = makePolicy({c.limit});
        for (uint64_t now : {uint64_t(0), kT0}) {
            sluice_source_state st{};
            EXPECT_EQ(admitMany(st, p, now, c.expected, c.syn, c.len), c.expected);
            EXPECT_EQ(admitMany(st, p, now, 100'000, c.syn, c.len), 0u);
        }
    }
}

TEST(GcraBackwardsTime, ExhaustedBucketStaysShut)
{
    const sluice_limit l = makeLimit(kPkts, 5, kMinute);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    ASSERT_EQ(admitMany(st, p, kT0, 5), 5u);
    for (uint64_t back : {uint64_t(1), 12 * kSecond, kHour, kT0 - 1, kT0})
        EXPECT_FALSE(admit(st, p, kT0 - back)) << "back " << back;
    EXPECT_EQ(admitMany(st, p, kT0 + 12 * kSecond, 5), 1u);
}

TEST(GcraBackwardsTime, JumpBackGivesNothingExtra)
{
    const sluice_limit l = makeLimit(kPkts, 5, kMinute);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    ASSERT_TRUE(admit(st, p, kT0));
    EXPECT_EQ(admitMany(st, p, kT0 - 10 * kMinute, 10), 0u);
    EXPECT_EQ(admitMany(st, p, kT0 - 30 * kSecond, 10), 1u);
    EXPECT_EQ(admitMany(st, p, kT0, 10), 3u);
}

// Admission is monotonic in `now`: from any state, an earlier clock admits
// no more than a later one, unit by unit and in total.
TEST(GcraBackwardsTime, EarlierClockNeverAdmitsMore)
{
    std::mt19937_64 rng(42);
    const sluice_limit l = makeLimit(kPkts, 100, kSecond, 20);
    const sluice_policy p = makePolicy({l, makeLimit(kBytes, 1'000'000, kSecond)});
    for (int i = 0; i < 20'000; i++) {
        sluice_source_state st{};
        st.tat_ns[0] = kT0 + rng() % (2 * l.capacity_ns);
        st.tat_ns[1] = kT0 + rng() % (2 * kSecond);
        const uint64_t later = kT0 + rng() % (2 * kSecond);
        const uint64_t earlier = later - rng() % (kSecond + 1);
        const uint32_t len = 60 + rng() % 1440;
        sluice_source_state a = st, b = st;
        const uint64_t nEarlier = admitMany(a, p, earlier, 40, false, len);
        const uint64_t nLater = admitMany(b, p, later, 40, false, len);
        ASSERT_LE(nEarlier, nLater) << "tat " << st.tat_ns[0] << "/" << st.tat_ns[1]
                                    << " earlier " << earlier << " later " << later;
    }
}

TEST(GcraQuery, RemainingAndRetryAfterFivePerMinute)
{
    const sluice_limit l = makeLimit(kPkts, 5, kMinute);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0), 5u);
    EXPECT_EQ(gcra_retry_after_ns(&l, st.tat_ns[0], kT0), 0u);
    ASSERT_EQ(admitMany(st, p, kT0, 2), 2u);
    EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0), 3u);
    EXPECT_EQ(gcra_retry_after_ns(&l, st.tat_ns[0], kT0), 0u);
    ASSERT_EQ(admitMany(st, p, kT0, 3), 3u);
    EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0), 0u);
    EXPECT_EQ(gcra_retry_after_ns(&l, st.tat_ns[0], kT0), 12 * kSecond);

    struct At {
        uint64_t offset, remaining, retryAfter;
    };
    const At ats[] = {
        {kSecond, 0, 11 * kSecond},  {6 * kSecond, 0, 6 * kSecond},
        {12 * kSecond - 1, 0, 1},    {12 * kSecond, 1, 0},
        {30 * kSecond, 2, 0},        {60 * kSecond, 5, 0},
        {kDay, 5, 0},
    };
    for (const At& a : ats) {
        EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0 + a.offset), a.remaining)
            << "at +" << a.offset;
        EXPECT_EQ(gcra_retry_after_ns(&l, st.tat_ns[0], kT0 + a.offset), a.retryAfter)
            << "at +" << a.offset;
    }
    // Before the TAT was set (the clock went back), the bucket looks emptier.
    EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0 - kSecond), 0u);
    EXPECT_EQ(gcra_retry_after_ns(&l, st.tat_ns[0], kT0 - kSecond), 13 * kSecond);
}

// What the queries report is what the charge then does: `remaining` units
// pass at that instant and no more, and a unit passes exactly `retry_after`
// from now and not a nanosecond sooner.
TEST(GcraQuery, AgreesWithCharge)
{
    const sluice_limit limits[] = {
        makeLimit(kPkts, 5, kMinute),          makeLimit(kPkts, 2000, kSecond, 4000),
        makeLimit(kPkts, 7, kSecond),          makeLimit(kConn, 3, kHour, 10),
        makeLimit(kBytes, 10'000'000, kSecond), makeLimit(kPkts, 1, kYear),
    };
    std::mt19937_64 rng(7);
    for (const sluice_limit& l : limits) {
        SCOPED_TRACE(describe(l));
        const sluice_policy p = makePolicy({l});
        const bool syn = l.kind == kConn;
        const uint32_t len = 1;  // a unit of a bytes limit is one byte
        for (int i = 0; i < 300; i++) {
            const uint64_t now = kT0 + rng() % (2 * l.capacity_ns + 1);
            const uint64_t tat = kT0 + rng() % (l.capacity_ns + 1);
            const uint64_t remaining = gcra_remaining(&l, tat, now);
            const uint64_t retry = gcra_retry_after_ns(&l, tat, now);
            EXPECT_EQ(remaining == 0, retry != 0) << "tat " << tat << " now " << now;

            if (remaining < 100'000) {
                sluice_source_state st{};
                st.tat_ns[0] = tat;
                EXPECT_EQ(admitMany(st, p, now, remaining + 3, syn, len), remaining)
                    << "tat " << tat << " now " << now;
            }
            sluice_source_state st{};
            st.tat_ns[0] = tat;
            if (retry > 0) {
                EXPECT_FALSE(admit(st, p, now + retry - 1, syn, len))
                    << "tat " << tat << " now " << now << " retry " << retry;
            }
            EXPECT_TRUE(admit(st, p, now + retry, syn, len))
                << "tat " << tat << " now " << now << " retry " << retry;
        }
    }
}

// `inspect` of a bytes limit faster than 1 byte/ns: the interval is all
// fraction, and the remaining bytes must still be reported.
TEST(GcraQuery, RemainingOfSubNanosecondBytesLimit)
{
    const sluice_limit l = makeLimit(kBytes, 3'000'000'000ULL, kSecond, 3'000'000);
    ASSERT_EQ(l.interval_ns, 0u);
    EXPECT_NEAR(double(gcra_remaining(&l, 0, kT0)), 3e6, 2.0);
    EXPECT_NEAR(double(gcra_remaining(&l, kT0 + l.capacity_ns / 2, kT0)), 1.5e6, 2.0);
    EXPECT_EQ(gcra_remaining(&l, kT0 + l.capacity_ns, kT0), 0u);
}

TEST(GcraPacketUnits, PerLimitUnitsOfOnePacket)
{
    sluice_policy p = makePolicy({makeLimit(kConn, 5, kSecond), makeLimit(kPkts, 5, kSecond),
                                  makeLimit(kBytes, 5000, kSecond)});
    p.limits[3] = makeLimit(kPkts, 1, kSecond);  // beyond nlimits: not charged
    __u64 units[SLUICE_MAX_LIMITS];
    EXPECT_TRUE(gcra_packet_units(&p, 1, 1500, units));
    EXPECT_EQ(std::vector<__u64>(units, units + 4), (std::vector<__u64>{1, 1, 1500, 0}));
    EXPECT_TRUE(gcra_packet_units(&p, 0, 60, units));
    EXPECT_EQ(std::vector<__u64>(units, units + 4), (std::vector<__u64>{0, 1, 60, 0}));

    const sluice_policy conns = makePolicy({makeLimit(kConn, 5, kSecond)});
    EXPECT_FALSE(gcra_packet_units(&conns, 0, 1500, units));
    EXPECT_EQ(std::vector<__u64>(units, units + 4), (std::vector<__u64>{0, 0, 0, 0}));
    EXPECT_TRUE(gcra_packet_units(&conns, 1, 1500, units));
    const sluice_policy none = makePolicy({});
    EXPECT_FALSE(gcra_packet_units(&none, 1, 1500, units));
}

// Several units in one charge (a frame's bytes): all of them fit or none is
// taken.
TEST(GcraChargeUnits, SeveralUnitsAreAllOrNothing)
{
    const sluice_limit l = makeLimit(kPkts, 5, kMinute);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    const __u64 three[SLUICE_MAX_LIMITS] = {3};
    const __u64 two[SLUICE_MAX_LIMITS] = {2};
    EXPECT_EQ(gcra_charge_units(&st, &p, three, kT0), SLUICE_ADMIT);
    EXPECT_EQ(st.tat_ns[0], kT0 + 36 * kSecond);
    EXPECT_EQ(gcra_charge_units(&st, &p, three, kT0), 0);
    EXPECT_EQ(st.tat_ns[0], kT0 + 36 * kSecond);
    EXPECT_EQ(gcra_charge_units(&st, &p, two, kT0), SLUICE_ADMIT);
    EXPECT_EQ(gcra_remaining(&l, st.tat_ns[0], kT0), 0u);
}

TEST(GcraChargeUnits, StackedRefusalRefundsEveryEarlierLimit)
{
    // 4 packets of 1500 bytes at a time against a 15000-byte bucket.
    const sluice_policy p =
        makePolicy({makeLimit(kPkts, 100, kSecond), makeLimit(kBytes, 10'000'000, kSecond, 15'000)});
    sluice_source_state st{};
    const __u64 four[SLUICE_MAX_LIMITS] = {4, 4 * 1500};
    EXPECT_EQ(gcra_charge_units(&st, &p, four, kT0), SLUICE_ADMIT);
    EXPECT_EQ(gcra_charge_units(&st, &p, four, kT0), SLUICE_ADMIT);
    const sluice_source_state before = st;
    EXPECT_EQ(gcra_charge_units(&st, &p, four, kT0), 1);
    EXPECT_EQ(st.tat_ns[0], before.tat_ns[0]);
    EXPECT_EQ(st.tat_ns[1], before.tat_ns[1]);
    const __u64 rest[SLUICE_MAX_LIMITS] = {2, 2 * 1500};
    EXPECT_EQ(gcra_charge_units(&st, &p, rest, kT0), SLUICE_ADMIT);
}

// A give-back larger than the TAT (the entry was re-created meanwhile)
// leaves a full bucket: it must not wrap the TAT around and shut the
// source out.
TEST(GcraGiveBack, ClampsAtZero)
{
    const sluice_limit l = makeLimit(kPkts, 10, kSecond);
    const sluice_policy p = makePolicy({l});
    sluice_source_state st{};
    st.tat_ns[0] = 5 * l.interval_ns;
    gcra_give_back(&st.tat_ns[0], 31 * l.interval_ns);
    EXPECT_EQ(st.tat_ns[0], 0u);
    EXPECT_EQ(admitMany(st, p, kT0, 20), 10u);
    st.tat_ns[0] = kT0 + 7;
    gcra_give_back(&st.tat_ns[0], 5);
    EXPECT_EQ(st.tat_ns[0], kT0 + 2);
}

// A plain model of the documented semantics, in 128-bit arithmetic: every
// charging limit must have room; if one lacks it, nothing is charged.
struct ModelSource {
    uint64_t tat[SLUICE_MAX_LIMITS] = {};

    int charge(const sluice_policy& p, bool syn, uint32_t len, uint64_t now)
    {
        u128 next[SLUICE_MAX_LIMITS] = {};
        for (int i = 0; i < p.nlimits; i++) {
            const sluice_limit& l = p.limits[i];
            const u128 units = gcra_units(l.kind, syn, len);
            if (units == 0)
                continue;
            const u128 cost =
                units * l.interval_ns + ((units * l.interval_frac + 0xffffffffULL) >> 32);
            next[i] = std::max<u128>(tat[i], now) + cost;
            if (next[i] - now > l.capacity_ns)
                return i;
        }
        for (int i = 0; i < p.nlimits; i++)
            if (next[i])
                tat[i] = static_cast<uint64_t>(next[i]);
        return SLUICE_ADMIT;
    }
};

TEST(GcraModel, MatchesReferenceOnRandomTraffic)
{
    std::mt19937_64 rng(2024);
    const uint8_t kinds[] = {kConn, kPkts, kBytes};
    const uint64_t periods[] = {kSecond, kMinute, kHour, kDay, 100 * kMs};
    for (int run = 0; run < 200; run++) {
        sluice_policy p{};
        p.nlimits = static_cast<uint8_t>(1 + rng() % SLUICE_MAX_LIMITS);
        for (int i = 0; i < p.nlimits; i++) {
            const uint8_t kind = kinds[rng() % 3];
            const uint64_t count = kind == kBytes ? 1000 + rng() % 100'000'000 : 1 + rng() % 500;
            const uint64_t burst = rng() % 2 ? 0 : count / 3 + 1 + rng() % 1000;
            p.limits[i] = makeLimit(kind, count, periods[rng() % 5], burst);
        }
        sluice_source_state st{};
        ModelSource model;
        uint64_t now = kT0;
        for (int i = 0; i < 5000; i++) {
            now += rng() % 4 == 0 ? rng() % (2 * kSecond) : rng() % kMs;
            const bool syn = rng() % 5 == 0;
            const uint32_t len = 60 + rng() % 9000;
            const int want = model.charge(p, syn, len, now);
            ASSERT_EQ(gcra_charge(&st, &p, syn, len, now), want)
                << "run " << run << " packet " << i;
            for (int j = 0; j < p.nlimits; j++)
                ASSERT_EQ(std::max<uint64_t>(st.tat_ns[j], now), std::max(model.tat[j], now))
                    << "run " << run << " packet " << i << " limit " << j;
        }
    }
}

// Several CPUs charging one source at the same instant: the CAS makes the
// total exact. Each thread keeps charging until the bucket reads empty, so
// a charge that gave up under contention cannot end the round early.
uint64_t raceRound(const sluice_policy& p, uint64_t now, int threads,
                   sluice_source_state& st)
{
    std::atomic<int> ready{0};
    std::atomic<uint64_t> total{0};
    auto roomLeft = [&] {
        for (int i = 0; i < p.nlimits; i++) {
            const uint64_t tat = __atomic_load_n(&st.tat_ns[i], __ATOMIC_ACQUIRE);
            if (gcra_remaining(&p.limits[i], tat, now) == 0)
                return false;
        }
        return true;
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
        pool.emplace_back([&] {
            ready.fetch_add(1);
            while (ready.load() < threads)
                std::this_thread::yield();
            uint64_t mine = 0;
            while (roomLeft())
                mine += gcra_charge(&st, &p, 0, 100, now) == SLUICE_ADMIT;
            total.fetch_add(mine);
        });
    for (std::thread& t : pool)
        t.join();
    return total.load();
}

TEST(GcraConcurrency, SharedBucketAdmitsExactlyBurst)
{
    const uint64_t burst = 1000;
    const sluice_limit l = makeLimit(kPkts, 100, kSecond, burst);
    const sluice_policy p = makePolicy({l});
    for (int threads : {2, 4}) {
        for (int round = 0; round < 300; round++) {
            sluice_source_state st{};
            ASSERT_EQ(raceRound(p, kT0, threads, st), burst)
                << threads << " threads, round " << round;
            ASSERT_EQ(st.tat_ns[0], kT0 + burst * l.interval_ns);
        }
    }
}

TEST(GcraConcurrency, StackedLimitsRefundExactly)
{
    const uint64_t burst = 500;
    const sluice_limit loose = makeLimit(kPkts, 1'000'000, kSecond);
    const sluice_limit tight = makeLimit(kPkts, 10, kSecond, burst);
    const sluice_policy p = makePolicy({loose, tight});
    for (int threads : {2, 4}) {
        for (int round = 0; round < 300; round++) {
            sluice_source_state st{};
            ASSERT_EQ(raceRound(p, kT0, threads, st), burst)
                << threads << " threads, round " << round;
            // Every refund landed: the loose limit paid for admitted packets only.
            ASSERT_EQ(st.tat_ns[0], kT0 + burst * loose.interval_ns);
            ASSERT_EQ(st.tat_ns[1], kT0 + burst * tight.interval_ns);
        }
    }
}

// A limit of any kind, rate and burst, for the randomised tests below.
sluice_limit randomLimit(std::mt19937_64& rng)
{
    const uint8_t kind = std::array<uint8_t, 3>{kConn, kPkts, kBytes}[rng() % 3];
    const uint64_t count = 1 + rng() % 100000;
    const uint64_t period = std::array<uint64_t, 4>{kSecond, kMinute, kHour, kDay}[rng() % 4];
    const uint64_t burst = 1 + rng() % 1000;
    return makeLimit(kind, count, period, burst);
}

// The over-limit cache's due time (lib/overcache.h): for random limits and
// states, every charge before it is refused, and one unit at it is admitted.
TEST(GcraDue, NothingIsAdmittedBeforeItAndOneUnitIsAt)
{
    std::mt19937_64 rng(11);
    for (int i = 0; i < 20000; i++) {
        const sluice_limit l = randomLimit(rng);
        const uint64_t tat = kT0 + rng() % (2 * l.capacity_ns + 1);
        const uint64_t due = gcra_due_ns(&l, tat);
        SCOPED_TRACE(describe(l) + " tat " + std::to_string(tat) + " due " + std::to_string(due));
        __u64 next = 0;
        if (due > kT0) {
            for (uint64_t units : {uint64_t{1}, uint64_t{2}, uint64_t{64}, uint64_t{1500}})
                ASSERT_FALSE(gcra_step(tat, due - 1, gcra_cost_ns(&l, units), l.capacity_ns, &next))
                    << units << " units admitted 1 ns before the due time";
            ASSERT_TRUE(gcra_step(tat, due, gcra_cost_ns(&l, 1), l.capacity_ns, &next))
                << "one unit refused at the due time: the cache would hold it too long";
        } else {
            ASSERT_TRUE(gcra_step(tat, kT0, gcra_cost_ns(&l, 1), l.capacity_ns, &next));
        }
    }
}

// A hit as the program tests one (over_cached, source_banned): the entry
// matches, and its deadline by the clock, or by jiffies, is ahead.
bool overHit(const sluice_over_entry* e, const sluice_source_key* key, uint32_t epoch, uint32_t what,
              uint64_t now)
{
    return over_match(e, key, epoch, what) && over_ahead(e, now);
}

bool overHitJiffies(const sluice_over_entry* e, const sluice_source_key* key, uint32_t epoch,
                      uint32_t what, uint64_t jiffies)
{
    return over_match(e, key, epoch, what) && over_ahead_jiffies(e, jiffies);
}

TEST(OverCacheEntry, HitNeedsItsKeyEpochLimitAndTime)
{
    sluice_source_key k{};
    k.state_tag = 7;
    k.addr[3] = 0x0a000001;
    sluice_over_entry e{};
    EXPECT_FALSE(overHit(&e, &k, 0, 0, kT0)) << "an empty entry";
    over_put(&e, &k, 3, 1, kT0 + kSecond, 0);
    EXPECT_TRUE(overHit(&e, &k, 3, 1, kT0));
    EXPECT_TRUE(overHit(&e, &k, 3, 1, kT0 + kSecond - 1));
    EXPECT_FALSE(overHit(&e, &k, 3, 1, kT0 + kSecond)) << "at the due time";
    EXPECT_FALSE(overHit(&e, &k, 4, 1, kT0)) << "another epoch (reset, apply)";
    EXPECT_FALSE(overHit(&e, &k, 3, 0, kT0)) << "another limit";
    EXPECT_FALSE(overHit(&e, &k, 3, SLUICE_OVER_BANNED, kT0)) << "a refusal is not a ban";
    for (int f = 0; f < 5; f++) {
        sluice_source_key other = k;
        if (f == 0)
            other.state_tag ^= 1;
        else
            other.addr[f - 1] ^= 0x100;
        EXPECT_FALSE(overHit(&e, &other, 3, 1, kT0)) << "key word " << f << " differs";
        EXPECT_LT(over_slot(&other), SLUICE_OVER_SLOTS);
    }
}

TEST(OverCacheEntry, JiffiesHitNeedsItsKeyEpochLimitAndDeadline)
{
    sluice_source_key k{};
    k.addr[3] = 0x0a000001;
    sluice_over_entry e{};
    over_put(&e, &k, 3, 1, kT0 + kSecond, 0);
    EXPECT_FALSE(overHitJiffies(&e, &k, 3, 1, 0)) << "no jiffies deadline: the clock decides";
    over_put(&e, &k, 3, 1, kT0 + kSecond, 500);
    EXPECT_TRUE(overHitJiffies(&e, &k, 3, 1, 499));
    EXPECT_FALSE(overHitJiffies(&e, &k, 3, 1, 500)) << "at the deadline";
    EXPECT_FALSE(overHitJiffies(&e, &k, 4, 1, 0)) << "another epoch (reset, apply)";
    EXPECT_FALSE(overHitJiffies(&e, &k, 3, 0, 0)) << "another limit";
    sluice_source_key other = k;
    other.addr[3] ^= 1;
    EXPECT_FALSE(overHitJiffies(&e, &other, 3, 1, 0)) << "another source";
}

// A fast entry (sluice_over_fast) holds only packets of its source, family,
// protocol and port, written under the same generation and epoch; one of a
// connections limit holds only SYNs.
TEST(OverCacheEntry, FastEntryNeedsItsSourceFamilyPortGenerationAndEpoch)
{
    const uint32_t src[4] = {0, 0, htonl(0xffff), htonl(0x0a000001)};
    sluice_fast_entry e{};
    EXPECT_FALSE(fast_match(&e, src, 80, IPPROTO_TCP, 0, 1, 0, 0)) << "an empty entry";
    fast_put(&e, src, 80, IPPROTO_TCP, fast_flags(0, 0), 1, 3, 9, kT0 + kSecond, 500);
    EXPECT_EQ(e.slot, 9u);
    EXPECT_EQ(e.until_ns, kT0 + kSecond);
    EXPECT_EQ(e.until_jiffies, 500u);
    EXPECT_TRUE(fast_match(&e, src, 80, IPPROTO_TCP, 0, 1, 1, 3));
    EXPECT_TRUE(fast_match(&e, src, 80, IPPROTO_TCP, 0, 0, 1, 3)) << "a packets limit holds every packet";
    EXPECT_FALSE(fast_match(&e, src, 81, IPPROTO_TCP, 0, 1, 1, 3)) << "another port";
    EXPECT_FALSE(fast_match(&e, src, 80, IPPROTO_UDP, 0, 1, 1, 3)) << "another protocol";
    EXPECT_FALSE(fast_match(&e, src, 80, IPPROTO_TCP, 1, 1, 1, 3)) << "the same bits as an IPv6 source";
    EXPECT_FALSE(fast_match(&e, src, 80, IPPROTO_TCP, 0, 1, 0, 3)) << "another generation";
    EXPECT_FALSE(fast_match(&e, src, 80, IPPROTO_TCP, 0, 1, 1, 4)) << "another epoch (reset, apply)";
    for (int w = 0; w < 4; w++) {
        uint32_t other[4] = {src[0], src[1], src[2], src[3]};
        other[w] ^= 0x100;
        EXPECT_FALSE(fast_match(&e, other, 80, IPPROTO_TCP, 0, 1, 1, 3)) << "address word " << w;
        EXPECT_LT(fast_slot(other, 80, IPPROTO_TCP), uint32_t(SLUICE_OVER_SLOTS));
    }
    fast_put(&e, src, 80, IPPROTO_TCP, fast_flags(1, 1), 1, 3, 9, kT0 + kSecond, 500);
    EXPECT_TRUE(fast_match(&e, src, 80, IPPROTO_TCP, 1, 1, 1, 3)) << "a SYN";
    EXPECT_FALSE(fast_match(&e, src, 80, IPPROTO_TCP, 1, 0, 1, 3)) << "not a SYN: a connections limit spares it";
    EXPECT_FALSE(fast_match(&e, src, 80, IPPROTO_TCP, 0, 1, 1, 3)) << "the same bits as an IPv4 source";
    EXPECT_NE(fast_slot(src, 80, IPPROTO_TCP), fast_slot(src, 81, IPPROTO_TCP)) << "the port moves the slot";
}

// The jiffies deadline: ends after due (never cuts a refusal short) and within
// one tick of it; given only when the bucket has room for the units that come
// due meanwhile, so that none is lost.
TEST(OverCacheEntry, JiffiesDeadlineEndsWithinOneTickOfDueAndOnlyWithRoom)
{
    constexpr uint64_t kTick = 4'000'000;  // HZ=250
    std::mt19937_64 rng(23);
    for (int i = 0; i < 20000; i++) {
        const sluice_limit l = randomLimit(rng);
        const uint64_t now = kT0 + rng() % kSecond;
        const uint64_t due = now + 1 + rng() % (l.capacity_ns + 1);
        // jiffies0 was reached at some time in (now - tick, now].
        const uint64_t jiffies0 = 1000 + rng() % 1000;
        const uint64_t reachedAt = now - rng() % kTick;
        const uint64_t until = over_until_jiffies(&l, now, due, jiffies0, kTick);
        SCOPED_TRACE(describe(l) + " now " + std::to_string(now) + " due " + std::to_string(due));
        const uint64_t room = l.capacity_ns - gcra_cost_ns(&l, 1);
        if (room < SLUICE_OVER_SLACK_TICKS * kTick) {
            ASSERT_EQ(until, 0U) << "a bucket without room for two ticks of units";
            continue;
        }
        ASSERT_GT(until, jiffies0);
        // Ticks come every kTick: jiffy j is reached at reachedAt + (j - jiffies0) * kTick.
        const uint64_t endsAt = reachedAt + (until - jiffies0) * kTick;
        ASSERT_LT(endsAt, due + kTick) << "the refusal would outlast due by a tick or more";
    }
    // A ban's deadline: no room needed, the same bound.
    EXPECT_EQ(over_deadline_jiffies(kT0, kT0 + kSecond, 7, 0), 0U) << "an unknown tick";
    EXPECT_EQ(over_deadline_jiffies(kT0, kT0, 7, kTick), 0U) << "a ban already over";
    EXPECT_EQ(over_deadline_jiffies(kT0, kT0 + 1, 7, kTick), 8U);
    EXPECT_EQ(over_deadline_jiffies(kT0, kT0 + kSecond, 7, kTick), 7U + kSecond / kTick);
    const sluice_limit roomy = makeLimit(kPkts, 1000, kSecond, 1000);
    EXPECT_EQ(over_until_jiffies(&roomy, kT0, kT0 + 1'000'000, 7, 0), 0U) << "an unknown tick";
    EXPECT_EQ(over_until_jiffies(&roomy, kT0, kT0, 7, kTick), 0U) << "nothing to refuse";
    EXPECT_EQ(over_until_jiffies(&roomy, kT0, kT0 + 1'000'000, 7, kTick), 8U);
    EXPECT_EQ(over_until_jiffies(&roomy, kT0, kT0 + kTick + 1, 7, kTick), 9U);
}

}  // namespace
}  // namespace sluice
