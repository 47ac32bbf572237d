// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The over-limit cache (bpf/lib/overcache.h): a refused source is dropped
// from a per-CPU entry until its limit's next unit is due. It must never
// admit (only the LRU path does), never outlive a reset, an apply or the due
// time, and never refuse a packet its entry's limit does not charge. Rows
// run pinned to one CPU, so `.over(n)` sees the entries the steps wrote.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <stdexcept>

#include "harness.h"
#include "lib/overcache.h"

namespace sluice::test {
namespace {

const std::string kA = "10.6.0.1";
const std::string kB = "10.6.0.2";
const std::string kA6 = "2001:db8:6::1";

Frame syn(const std::string& src = kA, size_t payload = 0)
{
    return Packet::v4(src, kServer4).tcp(40000, 80, tcpflag::Syn).payload(payload).build();
}
Frame ack(const std::string& src = kA) { return Packet::v4(src, kServer4).tcp(40000, 80, tcpflag::Ack).build(); }
Frame syn6(const std::string& src = kA6) { return Packet::v6(src, kServer6).tcp(40000, 80, tcpflag::Syn).build(); }

std::vector<Row> overCacheRows()
{
    std::vector<Row> rows;
    const Policy web1 = tcpPolicy("web", {port(80)}, {pkts(1)});
    // kB's own refusal gets an entry of its own only where its slot differs
    // from kA's, which depends on the install's random tag: that step is
    // OverCache.EachRefusedSourceHasItsOwnEntry's.
    rows.push_back({"over_cache_holds_a_refused_source_not_others",
                    {{web1}},
                    {admitted(syn(), "web").over(0), limited(syn(), "web").over(1), limited(syn(), "web").over(1),
                     admitted(syn(kB), "web").over(1), limited(syn(kB), "web")}});
    rows.push_back({"over_cache_reset_admits_next_packet",
                    {{web1}},
                    {admitted(syn(), "web"), limited(syn(), "web").over(1), limited(syn(), "web"),
                     admitted(syn(), "web").resetFirst(kA).over(0), limited(syn(), "web").over(1)}});
    rows.push_back({"over_cache_reset_admits_ipv6",
                    {{web1}},
                    {admitted(syn6(), "web"), limited(syn6(), "web").over(1),
                     admitted(syn6(), "web").resetFirst(kA6).over(0)}});
    rows.push_back({"over_cache_changed_limits_admit",
                    {{web1}},
                    {admitted(syn(), "web"), limited(syn(), "web").over(1),
                     install({{tcpPolicy("web", {port(80)}, {pkts(2)})}}).over(0),
                     admitted(syn(), "web")}});
    // Same name and limits: the state is kept, so the source is still over.
    rows.push_back({"over_cache_reapply_keeps_limiting",
                    {{web1}},
                    {admitted(syn(), "web"), limited(syn(), "web").over(1), install({{web1}}).over(0),
                     limited(syn(), "web").over(1)}});
    rows.push_back({"over_cache_action_change_applies",
                    {{web1}},
                    {admitted(syn(), "web"), limited(syn(), "web"),
                     install({{tcpPolicy("web", {port(80)}, {pkts(1)}, Action::Monitor)}}),
                     monitored(syn(), "web"), monitored(syn(), "web")}});
    // A SYN refused by the connections limit must not hold the source's
    // other packets, which only the packets limit charges.
    rows.push_back({"over_cache_connection_refusal_spares_other_packets",
                    {{tcpPolicy("web", {port(80)}, {conns(1), pkts(5)})}},
                    {admitted(syn(), "web"), limited(syn(), "web").over(1), admitted(ack(), "web"),
                     limited(syn(), "web"), admitted(ack(), "web").remaining("web", kA, {0, 2})}});
    // 210 bytes a day: a 150-byte frame leaves 60; the next 150-byte frame
    // is refused, but a 60-byte one still fits. An entry timed by the
    // refused frame's size would hold it. Only an empty bucket (less than
    // one byte left) is cached: one byte is the smallest charge.
    rows.push_back({"over_cache_bytes_refusal_spares_smaller_frames",
                    {{tcpPolicy("web", {port(80)}, {bytes(210)})}},
                    {admitted(syn(kA, 96), "web"), limited(syn(kA, 96), "web").over(0),
                     admitted(syn(kA, 6), "web").remaining("web", kA, {0}),
                     limited(syn(kA, 6), "web").over(1), limited(syn(kA, 6), "web").over(1)}});
    // Bans share the path: a refused packet still charges ban_after (not
    // cached), a ban is cached until it ends, and reset lifts it.
    const uint64_t hour = 3600ULL * 1'000'000'000ULL;
    rows.push_back({"over_cache_ban_charged_then_cached_then_reset",
                    {{withBan(web1, 2, hour)}},
                    {admitted(syn(), "web"), limited(syn(), "web").over(0), limited(syn(), "web").over(0),
                     banned(syn(), "web").over(0), banned(syn(), "web").over(1), banned(ack(), "web").over(1),
                     admitted(syn(), "web").resetFirst(kA).over(0)}});
    // The ban taken out of the policy: its cached ban no longer applies.
    rows.push_back({"over_cache_ban_removed_by_apply",
                    {{withBan(web1, 1, hour)}},
                    {admitted(syn(), "web"), limited(syn(), "web"), banned(syn(), "web"),
                     banned(syn(), "web").over(1), install({{web1}}).over(0), limited(syn(), "web"),
                     admitted(ack(kB), "web")}});
    // Fast entries (sluice_over_fast): a drop policy's refusal, found before
    // the port and policy lookups. Counted under the policy like any
    // refusal (the rows check every counter).
    rows.push_back({"fast_entry_for_a_drop_refusal_only_its_port",
                    {{web1, tcpPolicy("api", {port(81)}, {pkts(1)})}},
                    {admitted(syn(), "web").fast(0), limited(syn(), "web").fast(1), limited(syn(), "web").fast(1),
                     admitted(Packet::v4(kA, kServer4).tcp(40000, 81, tcpflag::Syn).build(), "api").fast(1),
                     admitted(syn(kB), "web").fast(1)}});
    rows.push_back({"fast_entry_not_for_monitor_or_reject",
                    {{tcpPolicy("web", {port(80)}, {pkts(1)}, Action::Monitor),
                      tcpPolicy("api", {port(81)}, {pkts(1)}, Action::Reject)}},
                    {admitted(syn(), "web"), monitored(syn(), "web").fast(0),
                     admitted(Packet::v4(kA, kServer4).tcp(40000, 81, tcpflag::Syn).build(), "api"),
                     rejected(Packet::v4(kA, kServer4).tcp(40000, 81, tcpflag::Syn).build(), "api").fast(0)}});
    // Allow-listed by an apply: the entry was written under the old
    // generation and epoch, and holds nothing.
    rows.push_back({"fast_entry_allow_list_applies_at_once",
                    {{web1}},
                    {admitted(syn(), "web"), limited(syn(), "web").fast(1),
                     install(Rules{{web1}, {kA + "/32"}, {}}).fast(0), allowed(syn(), "web"),
                     allowed(syn(), "web")}});
    rows.push_back({"fast_entry_policy_removed_passes",
                    {{web1}},
                    {admitted(syn(), "web"), limited(syn(), "web").fast(1), install(Rules{}).fast(0),
                     passed(syn()), passed(syn())}});
    // A SYN refused by a connections limit: its entry holds SYNs only.
    rows.push_back({"fast_entry_connection_refusal_spares_other_packets",
                    {{tcpPolicy("web", {port(80)}, {conns(1), pkts(5)})}},
                    {admitted(syn(), "web"), limited(syn(), "web").fast(1), admitted(ack(), "web").fast(1),
                     limited(syn(), "web").fast(1), admitted(ack(), "web")}});
    // The same 32 bits as an IPv4-mapped IPv6 source: another family, and
    // under the default /64 another bucket; the IPv4 entry must not hold it.
    rows.push_back({"fast_entry_holds_one_family",
                    {{web1}},
                    {admitted(syn(), "web"), limited(syn(), "web").fast(1),
                     admitted(syn6("::ffff:" + kA), "web").fast(1), limited(syn6("::ffff:" + kA), "web"),
                     limited(syn(), "web")}});
    return rows;
}

INSTANTIATE_TEST_SUITE_P(OverCache, BpfRow, testing::ValuesIn(overCacheRows()), rowName);

// With real time: a source flooding at 1 unit per 40 ms is admitted exactly
// when its unit is due. Each run's clock reading lies between the test's
// reading before and after it, so: no admission less than an interval after
// the previous one (the cache never admits early), and no refusal of a
// packet sent an interval after the previous admission had returned (the
// cache never holds past the due time). Not timing-fragile: a preempted test
// only sends later.
TEST(OverCache, RefusesUntilTheNextUnitIsDueAndNotLonger)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    PinnedHere pin;
    ASSERT_TRUE(pin.ok());
    constexpr uint64_t kInterval = 40'000'000;  // 25 per second, burst 1
    constexpr uint64_t kRunNs = 600'000'000;
    constexpr int kMaxPackets = 2'000'000;
    Datapath dp = Datapath::loadUnattached();
    dp.install(Rules{{tcpPolicy("flood", {port(80)}, {Limit{LimitKind::Packets, 25, 1'000'000'000ULL, 1}})}}
                   .make());
    const Frame f = syn();
    uint64_t lastAdmitBefore = 0, lastAdmitAfter = 0, admitted = 0, refused = 0, earlyRefusals = 0;
    size_t maxLive = 0;
    const uint64_t start = Datapath::nowNs();
    for (int i = 0; i < kMaxPackets && Datapath::nowNs() - start < kRunNs; i++) {
        uint32_t action = 0;
        uint64_t before = Datapath::nowNs();
        ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
        uint64_t after = Datapath::nowNs();
        if (action == XDP_PASS) {
            if (admitted) {
                ASSERT_GE(after - lastAdmitBefore, kInterval) << "admitted early, packet " << i;
            }
            lastAdmitBefore = before;
            lastAdmitAfter = after;
            admitted++;
        } else {
            ASSERT_EQ(action, uint32_t(XDP_DROP));
            refused++;
            if (admitted && before >= lastAdmitAfter + kInterval)
                earlyRefusals++;
            if (refused % 1000 == 1)
                maxLive = std::max(maxLive, liveOverEntries(dp));
        }
    }
    EXPECT_EQ(earlyRefusals, 0U) << "refused after the next unit was due (held past T)";
    EXPECT_GE(admitted, 2U);
    EXPECT_GT(refused, admitted);
    EXPECT_EQ(maxLive, 1U) << "the refusals were not served from the over-limit cache";
}

// IPv4 sources, one per state tag, in over-limit cache slots of their own.
// Tags are random per install, so two fixed sources would share a slot in
// about one run in 1024, and the later refusal would evict the other's entry.
std::vector<std::string> sourcesInOwnSlots(const std::vector<uint32_t>& tags)
{
    std::set<uint32_t> taken;
    std::vector<std::string> out;
    uint32_t host = 0x0a060001;  // 10.6.0.1
    for (uint32_t tag : tags) {
        while (!taken.insert(overSlotV4(tag, host)).second)
            host++;
        const in_addr a{htonl(host++)};
        char text[INET_ADDRSTRLEN];
        out.push_back(inet_ntop(AF_INET, &a, text, sizeof text));
    }
    return out;
}

uint32_t stateTagOf(const Datapath& dp, const std::string& policy)
{
    for (const InstalledPolicy& p : dp.installedPolicies())
        if (p.name == policy)
            return p.stateTag;
    throw std::runtime_error("no installed policy " + policy);
}

// Two refused sources of one policy, each held by its own entry.
TEST(OverCache, EachRefusedSourceHasItsOwnEntry)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    PinnedHere pin;
    ASSERT_TRUE(pin.ok());
    Datapath dp = Datapath::loadUnattached();
    dp.install(Rules{{tcpPolicy("web", {port(80)}, {pkts(1)})}}.make());
    const uint32_t tag = stateTagOf(dp, "web");
    const std::vector<std::string> src = sourcesInOwnSlots({tag, tag});
    uint32_t action = 0;
    for (const std::string& s : src)
        for (uint32_t want : {XDP_PASS, XDP_DROP}) {
            ASSERT_EQ(testRun(dp.progFd(), syn(s), &action), 0);
            ASSERT_EQ(action, want) << s;
        }
    EXPECT_EQ(liveOverEntries(dp), 2U);
    for (const std::string& s : src) {
        ASSERT_EQ(testRun(dp.progFd(), syn(s), &action), 0);
        EXPECT_EQ(action, uint32_t(XDP_DROP)) << s << " is still refused";
    }
    EXPECT_EQ(liveOverEntries(dp), 2U) << "one source's hit evicted the other's entry";
}

// The kernel's tick, from the config libbpf resolves the program's CONFIG_HZ
// from (the release's /boot config, else /proc/config.gz); 0 when neither is
// readable, and then the program has no tick either.
uint64_t kernelTickNs()
{
    utsname u{};
    uname(&u);
    for (const std::string& path : {std::string("/boot/config-") + u.release, std::string("/proc/config.gz")}) {
        std::unique_ptr<gzFile_s, decltype(&gzclose)> f(gzopen(path.c_str(), "rb"), &gzclose);
        if (!f)
            continue;
        char line[256];
        while (gzgets(f.get(), line, sizeof line)) {
            unsigned hz = 0;
            if (std::sscanf(line, "CONFIG_HZ=%u", &hz) == 1 && hz > 0)
                return 1'000'000'000ULL / hz;
        }
    }
    return 0;
}

// The source's entry among this CPU's live ones.
std::optional<sluice_over_entry> overEntryOf(const Datapath& dp, const std::string& src)
{
    in_addr a{};
    if (inet_pton(AF_INET, src.c_str(), &a) != 1)
        return std::nullopt;
    for (const sluice_over_entry& e : liveOverEntryList(dp))
        if (e.key.addr[3] == a.s_addr)
            return e;
    return std::nullopt;
}

// A refusal carries a jiffies deadline (served without reading the clock)
// only when its limit's bucket has room for two ticks of units beyond one:
// 2 per day has a day's room, 1 per day none. A ban always carries one.
// Without a known tick, none does.
TEST(OverCache, JiffiesDeadlineOnlyWhereTheBucketHasRoom)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    PinnedHere pin;
    ASSERT_TRUE(pin.ok());
    Datapath dp = Datapath::loadUnattached();
    const uint64_t hour = 3600ULL * 1'000'000'000ULL;
    dp.install(Rules{{tcpPolicy("roomy", {port(80)}, {pkts(2)}), tcpPolicy("tight", {port(81)}, {pkts(1)}),
                      withBan(tcpPolicy("ban", {port(82)}, {pkts(1)}), 1, hour)}}
                   .make());
    const std::vector<std::string> src =
        sourcesInOwnSlots({stateTagOf(dp, "roomy"), stateTagOf(dp, "tight"), stateTagOf(dp, "ban")});
    const std::string &kRoomy = src[0], &kTight = src[1], &kBanned = src[2];
    const Frame roomy = syn(kRoomy);
    const Frame tight = Packet::v4(kTight, kServer4).tcp(40000, 81, tcpflag::Syn).build();
    const Frame banning = Packet::v4(kBanned, kServer4).tcp(40000, 82, tcpflag::Syn).build();
    uint32_t action = 0;
    for (uint32_t want : {XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP}) {
        ASSERT_EQ(testRun(dp.progFd(), banning, &action), 0);
        ASSERT_EQ(action, want);
    }
    for (uint32_t want : {XDP_PASS, XDP_PASS, XDP_DROP}) {
        ASSERT_EQ(testRun(dp.progFd(), roomy, &action), 0);
        ASSERT_EQ(action, want);
    }
    for (uint32_t want : {XDP_PASS, XDP_DROP}) {
        ASSERT_EQ(testRun(dp.progFd(), tight, &action), 0);
        ASSERT_EQ(action, want);
    }
    const auto r = overEntryOf(dp, kRoomy), t = overEntryOf(dp, kTight), b = overEntryOf(dp, kBanned);
    ASSERT_TRUE(r && t && b) << "the refusals and the ban are cached";
    EXPECT_EQ(b->what, uint32_t(SLUICE_OVER_BANNED));
    EXPECT_EQ(t->until_jiffies, 0U) << "no room: every hit reads the clock";
    if (kernelTickNs() > 0) {
        EXPECT_GT(r->until_jiffies, 0U) << "room and a known tick: hits need no clock";
        EXPECT_GT(b->until_jiffies, 0U) << "a ban's hits need no clock";
    } else {
        EXPECT_EQ(r->until_jiffies, 0U) << "no tick known to the test, none to libbpf either";
        EXPECT_EQ(b->until_jiffies, 0U);
    }
    // Still refused from the entry, and a reset still lifts it.
    ASSERT_EQ(testRun(dp.progFd(), roomy, &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP));
    EXPECT_EQ(dp.resetSource(Address::parse(kRoomy)).states, 1U);
    ASSERT_EQ(testRun(dp.progFd(), roomy, &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS)) << "the entry outlived a reset";
}

// Where neither /boot/config-RELEASE nor /proc/config.gz opens, libbpf would
// refuse the program ("failed to open system Kconfig"); sluice then loads it
// with CONFIG_HZ=0: no jiffies deadlines, every cached refusal reads the
// clock and still ends on time. A child process hides both files in a mount
// namespace of its own (tmpfs over /boot and /proc), so nothing outside it
// changes; it reports what went wrong on stderr and in its exit status.
TEST(OverCache, LoadsWithoutAKernelConfigAndReadsTheClock)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN and mount namespaces need root";
    auto child = [] () -> std::string {
        if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            return std::string("cannot make a mount namespace: ") + std::strerror(errno);
        for (const char* dir : {"/boot", "/proc"})
            if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") != 0)
                return std::string("cannot hide ") + dir + ": " + std::strerror(errno);
        if (kernelTickNs() != 0)
            return "the kernel config is still readable";
        PinnedHere pin;
        if (!pin.ok())
            return "cannot pin to one CPU";
        try {
            Datapath dp = Datapath::loadUnattached();
            dp.install(Rules{{tcpPolicy("roomy", {port(80)}, {pkts(2)})}}.make());
            const Frame roomy = syn(kA);
            uint32_t action = 0;
            for (uint32_t want : {XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP})
                if (testRun(dp.progFd(), roomy, &action) != 0 || action != want)
                    return "packet verdict " + std::to_string(action) + ", not " + std::to_string(want);
            const auto e = overEntryOf(dp, kA);
            if (!e)
                return "the refusal was not cached";
            if (e->until_jiffies != 0)
                return "a jiffies deadline without a known tick";
            if (e->until_ns == 0)
                return "no clock deadline either";
        } catch (const std::exception& ex) {
            return std::string("load: ") + ex.what();
        }
        return "";
    };
    std::fflush(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) {
        std::string problem = child();
        if (!problem.empty())
            std::fprintf(stderr, "tick-less load: %s\n", problem.c_str());
        _exit(problem.empty() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the child's problem is on stderr above (status " << status << ")";
}

// The program takes an entry's jiffies deadline as the answer, without the
// clock: an entry written by hand for a source its bucket still admits
// refuses it while either deadline is ahead, and only then. (Were the
// jiffies deadline ignored, the first such packet would be admitted.)
TEST(OverCache, JiffiesDeadlineAloneRefuses)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    PinnedHere pin;
    ASSERT_TRUE(pin.ok());
    Datapath dp = Datapath::loadUnattached();
    dp.install(Rules{{tcpPolicy("roomy", {port(80)}, {pkts(3)})}}.make());
    uint32_t action = 0;
    ASSERT_EQ(testRun(dp.progFd(), syn(kA), &action), 0);
    ASSERT_EQ(action, uint32_t(XDP_PASS)) << "one of three units";

    uint32_t zero = 0;
    sluice_config cfg{};
    ASSERT_EQ(bpf_map_lookup_elem(dp.mapFd("sluice_config"), &zero, &cfg), 0);
    in_addr a{};
    ASSERT_EQ(inet_pton(AF_INET, kA.c_str(), &a), 1);
    const sluice_source_key key = sourceKeyV4(stateTagOf(dp, "roomy"), ntohl(a.s_addr));
    const int cpu = sched_getcpu(), ncpus = libbpf_num_possible_cpus();
    ASSERT_TRUE(cpu >= 0 && cpu < ncpus);
    uint32_t slot = over_slot(&key);
    auto writeEntry = [&](uint64_t untilNs, uint64_t untilJiffies) {
        std::vector<sluice_over_entry> percpu(static_cast<size_t>(ncpus));
        ASSERT_EQ(bpf_map_lookup_elem(dp.mapFd("sluice_over"), &slot, percpu.data()), 0);
        over_put(&percpu[static_cast<size_t>(cpu)], &key, cfg.cache_epoch, 0, untilNs, untilJiffies);
        ASSERT_EQ(bpf_map_update_elem(dp.mapFd("sluice_over"), &slot, percpu.data(), BPF_ANY), 0);
    };
    writeEntry(0, UINT64_MAX);
    ASSERT_EQ(testRun(dp.progFd(), syn(kA), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP)) << "a jiffies deadline ahead refuses, the clock unread";
    writeEntry(UINT64_MAX, 0);
    ASSERT_EQ(testRun(dp.progFd(), syn(kA), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP)) << "no jiffies deadline: the clock refuses";
    writeEntry(0, 0);
    ASSERT_EQ(testRun(dp.progFd(), syn(kA), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS)) << "both behind: the bucket decides, and has a unit";
}

// With real time, a limit with room (1000 per second, burst 50): refusals
// are served by jiffies deadlines, which may outlast a due time by up to a
// tick. The units due meanwhile wait in the bucket, so the source is never
// admitted beyond burst + rate x time, and never falls more than two ticks'
// units (a tick, and one for a late tick) behind it. Not timing-fragile: a
// preempted test only sends later, which both bounds allow for.
TEST(OverCache, JiffiesRefusalsLoseNoUnits)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    PinnedHere pin;
    ASSERT_TRUE(pin.ok());
    const uint64_t tick = kernelTickNs();
    if (tick == 0)
        GTEST_SKIP() << "the kernel config is not readable: the program has no jiffies deadlines";
    constexpr uint64_t kInterval = 1'000'000;  // 1000 per second
    constexpr uint64_t kBurst = 50;
    constexpr uint64_t kRunNs = 600'000'000;
    constexpr int kMaxPackets = 3'000'000;
    ASSERT_GE((kBurst - 1) * kInterval, SLUICE_OVER_SLACK_TICKS * tick) << "the limit must have room";
    Datapath dp = Datapath::loadUnattached();
    dp.install(Rules{{tcpPolicy("flood", {port(80)}, {Limit{LimitKind::Packets, 1000, 1'000'000'000ULL, kBurst}})}}
                   .make());
    const Frame f = syn();
    const uint64_t lag = SLUICE_OVER_SLACK_TICKS * tick;
    uint64_t admitted = 0, refused = 0, firstBefore = 0, firstAfter = 0, behind = 0, maxBehind = 0;
    const uint64_t start = Datapath::nowNs();
    for (int i = 0; i < kMaxPackets && Datapath::nowNs() - start < kRunNs; i++) {
        uint32_t action = 0;
        const uint64_t before = Datapath::nowNs();
        ASSERT_EQ(testRun(dp.progFd(), f, &action), 0);
        const uint64_t after = Datapath::nowNs();
        if (action == XDP_PASS) {
            if (!admitted) {
                firstBefore = before;
                firstAfter = after;
            }
            admitted++;
            // The bucket started full no earlier than firstBefore.
            ASSERT_LE(admitted, kBurst + (after - firstBefore) / kInterval) << "admitted early, packet " << i;
            continue;
        }
        ASSERT_EQ(action, uint32_t(XDP_DROP));
        refused++;
        // Units due by `before`, less the ones a refusal may hold back.
        if (admitted && before > firstAfter + lag) {
            const uint64_t due = kBurst + (before - firstAfter - lag) / kInterval;
            if (admitted + 1 < due) {
                behind++;
                maxBehind = std::max(maxBehind, due - admitted);
            }
        }
    }
    EXPECT_EQ(behind, 0U) << "refusals held units back more than two ticks, by up to " << maxBehind;
    EXPECT_GT(admitted, kBurst + 400) << "over ~600 ms the rate admits ~600 after the burst";
    EXPECT_GT(refused, admitted);
}

// Without the cache (the load `make bench-prog` compares against), the same
// refusals come from the LRU path and nothing is cached.
TEST(OverCache, OffLoadCachesNothing)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    PinnedHere pin;
    ASSERT_TRUE(pin.ok());
    Datapath dp = Datapath::loadUnattached(4096, false);
    dp.install(Rules{{tcpPolicy("web", {port(80)}, {pkts(1)})}}.make());
    uint32_t action = 0;
    ASSERT_EQ(testRun(dp.progFd(), syn(), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(testRun(dp.progFd(), syn(), &action), 0);
        EXPECT_EQ(action, uint32_t(XDP_DROP));
    }
    EXPECT_EQ(liveOverEntries(dp), 0U);
}

}  // namespace
}  // namespace sluice::test
