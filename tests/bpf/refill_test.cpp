// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// After its bucket refills, a source gets its burst and no more: no unit
// charged earlier may be spent on top of it (a per-CPU lease of units did
// exactly that, and was removed). Timing-based, unlike the table rows: the
// bucket needs real time to refill, so the period here is one second, and
// the allowance counts what refills while the burst is sent.
#include <sched.h>
#include <unistd.h>

#include "harness.h"

namespace sluice::test {
namespace {

TEST(Refill, BurstIsNeverExceededAfterARefill)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    cpu_set_t saved, one;
    ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);

    constexpr uint64_t kBurst = 64;
    Datapath dp = Datapath::loadUnattached();
    dp.install(Rules{{tcpPolicy("refill", {port(80)},
                                {Limit{LimitKind::Packets, kBurst, 1'000'000'000ULL, 0}})}}
                   .make());
    const Frame syn = Packet::v4("10.9.9.9", kServer4).tcp(1, 80, tcpflag::Syn).build();
    const Frame ack = Packet::v4("10.9.9.9", kServer4).tcp(1, 80, tcpflag::Ack).build();
    uint32_t action = 0;
    // Give the source state, as a returning client has.
    ASSERT_EQ(testRun(dp.progFd(), syn, &action), 0);
    ASSERT_EQ(testRun(dp.progFd(), ack, &action), 0);
    // Let the bucket refill completely, then send twice the burst at once.
    usleep(1'100'000);
    uint64_t start = Datapath::nowNs(), admitted = 0;
    for (uint64_t i = 0; i < 2 * kBurst; i++) {
        ASSERT_EQ(testRun(dp.progFd(), ack, &action), 0);
        admitted += action == XDP_PASS;
    }
    double ms = static_cast<double>(Datapath::nowNs() - start) / 1e6;
    sched_setaffinity(0, sizeof(saved), &saved);
    // At most the burst, plus what refilled while sending (one unit per 15.6 ms).
    uint64_t refill = static_cast<uint64_t>(ms / 15.625) + 1;
    EXPECT_LE(admitted, kBurst + refill)
        << "a full bucket of " << kBurst << " admitted " << admitted << " packets in " << ms
        << " ms: units charged before the refill were spent on top of it";
    EXPECT_GE(admitted, kBurst);
}

}  // namespace
}  // namespace sluice::test
