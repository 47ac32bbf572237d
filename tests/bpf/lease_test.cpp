// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The per-CPU lease cache (struct sluice_lease): a known source spends
// leased units without the clock or the LRU, and leasing never admits more
// than the bucket holds, loses no units on eviction, and is cleared by reset.
#include <pthread.h>
#include <sched.h>

#include <bpf/libbpf.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>

#include "harness.h"

namespace sluice::test {
namespace {

constexpr uint16_t kPort = 7000;
constexpr uint64_t kBurst = 100;

Ruleset leasedRules()
{
    Ruleset r;
    r.policies = {udpPolicy("leased", {port(kPort)}, {pkts(kBurst)})};
    return r;
}

Frame udpFrom(const std::string& src)
{
    return Packet::v4(src, kServer4).udp(40000, kPort).payload(16).build();
}

// Pins the calling thread to one CPU for its lifetime, so that every test
// run uses that CPU's leases.
class PinnedToCpu {
public:
    explicit PinnedToCpu(int cpu)
    {
        pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_);
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        EXPECT_EQ(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
    }
    ~PinnedToCpu() { pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_); }

private:
    cpu_set_t saved_;
};

uint64_t sendUntilRefused(int progFd, const Frame& f, uint64_t max)
{
    uint64_t admitted = 0;
    for (uint64_t i = 0; i < max; i++) {
        uint32_t action = 0;
        EXPECT_EQ(testRun(progFd, f, &action), 0);
        if (action == XDP_PASS)
            admitted++;
    }
    return admitted;
}

uint64_t remainingOf(const Datapath& dp, const std::string& addr)
{
    auto st = dp.source("leased", Address::parse(addr));
    EXPECT_TRUE(st.has_value());
    return st ? st->limits.at(0).remaining : 0;
}

TEST(Lease, PolicyLeasesAFractionOfTheBurst)
{
    Datapath dp = Datapath::loadUnattached();
    dp.install(leasedRules());
    // The data path must really be leasing here, or the tests below prove nothing.
    EXPECT_GE(leaseUnits(leasedRules().policies[0].limits, 2), 2);
    EXPECT_EQ(leaseUnits({pkts(7)}, 2), 0) << "a small burst is never leased";
    EXPECT_EQ(leaseUnits({conns(1000)}, 2), 0) << "SYNs always go to the shared bucket";
}

TEST(Lease, OneCpuAdmitsExactlyTheBurst)
{
    PinnedToCpu pin(0);
    Datapath dp = Datapath::loadUnattached();
    dp.install(leasedRules());
    Frame f = udpFrom("198.18.1.1");
    EXPECT_EQ(sendUntilRefused(dp.progFd(), f, 3 * kBurst), kBurst);
    auto c = dp.counters();
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[1].verdicts[SLUICE_VERDICT_ADMITTED].packets, kBurst);
    EXPECT_EQ(c[1].verdicts[SLUICE_VERDICT_LIMITED].packets, 2 * kBurst);
}

TEST(Lease, BucketShowsLeasedUnitsAsSpent)
{
    PinnedToCpu pin(0);
    Datapath dp = Datapath::loadUnattached();
    dp.install(leasedRules());
    uint16_t lease = leaseUnits(leasedRules().policies[0].limits,
                                static_cast<unsigned>(libbpf_num_possible_cpus()));
    Frame f = udpFrom("198.18.1.2");
    sendUntilRefused(dp.progFd(), f, 2);  // a new source, then its first lease
    EXPECT_EQ(remainingOf(dp, "198.18.1.2"), kBurst - 1 - lease);
}

TEST(Lease, TwoCpusNeverAdmitMoreThanTheBurst)
{
    int cpus = libbpf_num_possible_cpus();
    if (cpus < 2 || std::thread::hardware_concurrency() < 2)
        GTEST_SKIP() << "needs two CPUs";
    Datapath dp = Datapath::loadUnattached();
    dp.install(leasedRules());
    uint16_t lease = leaseUnits(leasedRules().policies[0].limits, static_cast<unsigned>(cpus));
    Frame f = udpFrom("198.18.1.3");
    std::atomic<uint64_t> total{0};
    auto worker = [&](int cpu) {
        PinnedToCpu pin(cpu);
        total += sendUntilRefused(dp.progFd(), f, 2 * kBurst);
    };
    std::thread a(worker, 0), b(worker, 1);
    a.join();
    b.join();
    EXPECT_LE(total.load(), kBurst);
    // Units may stay parked in the other CPU's lease, at most one lease each.
    EXPECT_GE(total.load(), kBurst - 2 * lease);
}

// Two sources whose keys land in the same lease slot.
std::pair<std::string, std::string> collidingSources(const Datapath& dp)
{
    auto policies = dp.installedPolicies();
    uint32_t tag = policies.at(0).stateTag;
    auto slotOf = [&](uint32_t host) {
        sluice_source_key k{};
        k.state_tag = tag;
        Address a = Address::parse("198.18." + std::to_string(host >> 8) + "." +
                                   std::to_string(host & 0xff));
        std::memcpy(k.addr, a.bytes.data(), 16);
        return sluice_lease_index(&k);
    };
    std::map<uint32_t, uint32_t> seen;
    for (uint32_t host = 1; host < 65535; host++) {
        auto [it, fresh] = seen.emplace(slotOf(host), host);
        if (!fresh) {
            auto name = [](uint32_t h) {
                return "198.18." + std::to_string(h >> 8) + "." + std::to_string(h & 0xff);
            };
            return {name(it->second), name(host)};
        }
    }
    ADD_FAILURE() << "no colliding sources found";
    return {};
}

TEST(Lease, EvictedLeaseRefundsItsUnits)
{
    PinnedToCpu pin(0);
    Datapath dp = Datapath::loadUnattached();
    dp.install(leasedRules());
    auto [a, b] = collidingSources(dp);
    ASSERT_FALSE(a.empty());
    sendUntilRefused(dp.progFd(), udpFrom(a), 2);  // a holds a lease now
    uint64_t withLease = remainingOf(dp, a);
    sendUntilRefused(dp.progFd(), udpFrom(b), 2);  // b's lease evicts a's
    EXPECT_EQ(remainingOf(dp, a), kBurst - 2) << "a's unspent leased units come back";
    EXPECT_LT(withLease, kBurst - 2);
    // And a can still spend exactly what is left.
    EXPECT_EQ(sendUntilRefused(dp.progFd(), udpFrom(a), 2 * kBurst), kBurst - 2);
}

TEST(Lease, ResetClearsLeases)
{
    PinnedToCpu pin(0);
    Datapath dp = Datapath::loadUnattached();
    dp.install(leasedRules());
    Frame f = udpFrom("198.18.1.4");
    sendUntilRefused(dp.progFd(), f, 2);
    EXPECT_EQ(dp.resetSource(Address::parse("198.18.1.4")), 1u);
    // A fresh bucket and no leftover lease: exactly the burst again.
    EXPECT_EQ(sendUntilRefused(dp.progFd(), f, 3 * kBurst), kBurst);
    sendUntilRefused(dp.progFd(), f, 2);
    EXPECT_EQ(dp.resetAll(), 1u);
    EXPECT_EQ(sendUntilRefused(dp.progFd(), f, 3 * kBurst), kBurst);
}

TEST(Lease, ChangedLimitsDropTheOldLease)
{
    PinnedToCpu pin(0);
    Datapath dp = Datapath::loadUnattached();
    dp.install(leasedRules());
    Frame f = udpFrom("198.18.1.5");
    sendUntilRefused(dp.progFd(), f, 2);
    Ruleset bigger = leasedRules();
    bigger.policies[0].limits = {pkts(2 * kBurst)};
    dp.install(bigger);  // new limits: new buckets, and the old lease is not used
    EXPECT_EQ(sendUntilRefused(dp.progFd(), f, 5 * kBurst), 2 * kBurst);
}

}  // namespace
}  // namespace sluice::test
