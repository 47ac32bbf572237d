// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Issue 7, point 4 (crash safety) under a flood, and point 3's "a program
// that fails to load leaves the previous one attached and working", through
// real traffic on a testbed's veth pair.
//
// The flood is build/sluice-flood from one over-limit IPv4 source and one
// IPv6 source at a capped rate, bounded in frames and time. Which kernel
// objects are ours is read from /proc/PID/fdinfo of each daemon (prog_id,
// map_id) and from the attached program's map_ids (bpftool): other
// engineers' tests load sluice programs on this machine at the same time, so
// a before/after count of every sluice_* object would not be ours alone.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datapath.h"
#include "flood_gen.h"
#include "netns.h"
#include "paths.h"
#include "process.h"
#include "sluice_run.h"

using namespace slit;
using sluice::Address;
using sluice::Datapath;
using Json = nlohmann::json;

namespace {

constexpr uint16_t kPort = 7000;
constexpr uint16_t kMetricsPort = 9464;
constexpr const char* kPolicy = "udp-api";
// "per day": what passes is counted, not timed.
constexpr int kLimit = 20;
// The flood: well within what this shared 2-core machine sends, and bounded.
constexpr int kFloodPps = 20000;
constexpr int kFloodSeconds = 30;
constexpr int kFloodFrames = kFloodPps * kFloodSeconds;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

struct BpfIds {
    std::set<uint32_t> progs, maps;
    void add(const BpfIds& o) {
        progs.insert(o.progs.begin(), o.progs.end());
        maps.insert(o.maps.begin(), o.maps.end());
    }
};

// The BPF programs and maps PID holds open, from its fdinfo; none when it
// cannot be read.
BpfIds heldByQuiet(pid_t pid) {
    BpfIds out;
    const std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
    DIR* d = opendir(dir.c_str());
    if (!d)
        return out;
    while (dirent* e = readdir(d)) {
        std::ifstream in(dir + "/" + e->d_name);
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("prog_id:", 0) == 0)
                out.progs.insert(uint32_t(std::stoul(line.substr(8))));
            else if (line.rfind("map_id:", 0) == 0)
                out.maps.insert(uint32_t(std::stoul(line.substr(7))));
        }
    }
    closedir(d);
    return out;
}

BpfIds heldBy(pid_t pid) {
    BpfIds out = heldByQuiet(pid);
    EXPECT_FALSE(out.progs.empty() && out.maps.empty()) << "process " << pid << " holds no BPF object";
    return out;
}

// Ids of every program and map the kernel has now, by bpftool.
BpfIds liveIds() {
    BpfIds out;
    for (const char* kind : {"prog", "map"}) {
        Json all = Json::parse(mustRun({"bpftool", "-j", kind, "show"}));
        for (const auto& o : all)
            (std::string(kind) == "prog" ? out.progs : out.maps).insert(o.at("id").get<uint32_t>());
    }
    return out;
}

// The XDP program attached to IFACE in NS and its maps, by bpftool.
BpfIds attachedIds(const Netns& ns, const std::string& iface) {
    BpfIds out;
    Json link = Json::parse(ns.ip({"-j", "-d", "link", "show", "dev", iface}));
    if (!link.at(0).contains("xdp")) {
        ADD_FAILURE() << "nothing attached to " << iface;
        return out;
    }
    uint32_t id = link.at(0).at("xdp").at("prog").at("id").get<uint32_t>();
    out.progs.insert(id);
    Json prog = Json::parse(mustRun({"bpftool", "-j", "prog", "show", "id", std::to_string(id)}));
    for (const auto& m : prog.at("map_ids"))
        out.maps.insert(m.get<uint32_t>());
    return out;
}

// Those of `ours` that still exist, polled until none do (<= 5 s): the
// kernel frees programs and maps after an RCU grace period.
BpfIds leaked(const BpfIds& ours) {
    BpfIds left;
    const int64_t end = monoNs() + 5'000'000'000LL;
    do {
        BpfIds live = liveIds();
        left = {};
        for (uint32_t id : ours.progs)
            if (live.progs.contains(id))
                left.progs.insert(id);
        for (uint32_t id : ours.maps)
            if (live.maps.contains(id))
                left.maps.insert(id);
        if (left.progs.empty() && left.maps.empty())
            break;
        std::this_thread::sleep_for(Millis(100));
    } while (monoNs() < end);
    return left;
}

// Processes that hold one of `ids` open ("PID COMM"), to say who leaks.
std::string holders(const BpfIds& ids) {
    std::string out;
    DIR* proc = opendir("/proc");
    if (!proc)
        return out;
    while (dirent* e = readdir(proc)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        BpfIds held = heldByQuiet(std::atoi(e->d_name));
        bool hit = false;
        for (uint32_t id : ids.progs)
            hit = hit || held.progs.contains(id);
        for (uint32_t id : ids.maps)
            hit = hit || held.maps.contains(id);
        if (hit)
            out += std::string(" ") + e->d_name + " " + readFile("/proc/" + std::string(e->d_name) + "/comm");
    }
    closedir(proc);
    return out.empty() ? " none (held by the kernel)" : out;
}

std::string idList(const std::set<uint32_t>& ids) {
    std::string out;
    for (uint32_t id : ids)
        out += (out.empty() ? "" : " ") + std::to_string(id);
    return out;
}

class CrashSafety : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access(sluiceBinary().c_str(), X_OK) != 0 || ::access(floodBinary().c_str(), X_OK) != 0)
            GTEST_SKIP() << "build/sluice or build/sluice-flood is not built (make all)";
        link_ = &bed_.addClient(2, 2);
        iface_ = link_->receiverIf;
        run_ = std::make_unique<SluiceRun>(bed_.receiver(), std::vector<std::string>{iface_});
    }
    void TearDown() override {
        if (HasFailure() && run_)
            std::fprintf(stderr, "[slit] sluice run log:\n%s", run_->log().c_str());
    }

    // ipv6_prefix 128: the testbed's IPv6 clients share one /64.
    std::string config(int limit = kLimit) const {
        return "[sluice]\ninterfaces = [\"" + iface_ + "\"]\nmax_sources = 4096\n\n[[policy]]\nname = \"" +
               kPolicy + "\"\nproto = \"udp\"\nports = [" + std::to_string(kPort) + "]\npackets = \"" +
               std::to_string(limit) + " per day\"\nipv6_prefix = 128\naction = \"drop\"\n";
    }

    // From src (either family) to the receiver's kPort; how many arrived.
    int send(const std::string& src, int count) {
        const std::string dst = isV6(src) ? link_->receiver6 : link_->receiver4;
        UdpCounter server(bed_.receiver(), dst, kPort);
        EXPECT_EQ(udpSend(*link_->client, src, dst, kPort, count), count);
        return server.finish()[src];
    }

    uint64_t limited() {
        return bed_.receiver().run([&]() -> uint64_t {
            for (const auto& sc : Datapath::open(iface_).counters())
                if (sc.policy == kPolicy)
                    return sc.verdicts.at(SLUICE_VERDICT_LIMITED).packets;
            return 0;
        });
    }

    // Units left in src's bucket, or -1 when it has none.
    int64_t remaining(const std::string& src) {
        return bed_.receiver().run([&] {
            auto st = Datapath::open(iface_).source(kPolicy, Address::parse(src));
            return st && !st->limits.empty() ? int64_t(st->limits[0].remaining) : int64_t{-1};
        });
    }

    // A flood from `src` (one address) to the receiver's kPort.
    std::unique_ptr<ChildProcess> flood(const std::string& src, const std::string& log) {
        const std::string dst = isV6(src) ? link_->receiver6 : link_->receiver4;
        return startFlood(bed_.receiver(), *link_,
                          {"--dst", dst, "--src", src, "--proto", "udp", "--dport", std::to_string(kPort),
                           "--rate", std::to_string(kFloodPps), "--count", std::to_string(kFloodFrames),
                           "--duration", std::to_string(kFloodSeconds) + "s"},
                          run_->dir() + "/" + log);
    }

    Testbed bed_;
    Testbed::Link* link_ = nullptr;
    std::string iface_;
    std::unique_ptr<SluiceRun> run_;
};

}  // namespace

// kill -9 of `sluice run` in the middle of a flood from over-limit IPv4 and
// IPv6 sources: the XDP program keeps dropping their excess (the limited
// counter keeps moving, their own datagrams stay limited, a source within
// its limit is served); the next daemon adopts the buckets; `sluice detach`
// while the flood still runs exits 0 and leaves no program on the link, no
// pin, and none of the programs and maps either daemon had open.
TEST_F(CrashSafety, KillDuringAFloodKeepsProtectionAndDetachLeaksNothing) {
    const std::string a4 = link_->client4[0], a6 = link_->client6[0];
    const std::string b4 = link_->client4[1], b6 = link_->client6[1];
    run_->writeConfig(config());
    ASSERT_TRUE(run_->start());
    BpfIds ours = heldBy(run_->pid());
    const BpfIds attached = attachedIds(bed_.receiver(), iface_);
    ASSERT_EQ(attached.progs.size(), 1u);
    ours.add(attached);

    auto flood4 = flood(a4, "flood4.log");
    auto flood6 = flood(a6, "flood6.log");
    // Until both floods' sources are over their limit (<= 10 s).
    const int64_t end = monoNs() + 10'000'000'000LL;
    while ((remaining(a4) != 0 || remaining(a6) != 0 || limited() < 1000) && monoNs() < end)
        std::this_thread::sleep_for(Millis(50));
    ASSERT_EQ(remaining(a4), 0) << readFile(run_->dir() + "/flood4.log");
    ASSERT_EQ(remaining(a6), 0) << readFile(run_->dir() + "/flood6.log");

    // 1. kill -9 mid-flood.
    EXPECT_EQ(run_->stop(SIGKILL), -1) << "killed by the signal";
    const uint64_t atKill = limited();
    EXPECT_EQ(attachedIds(bed_.receiver(), iface_).progs, attached.progs) << "the same program stays attached";
    EXPECT_EQ(::access((pinDirOf(iface_) + "/sluice_config").c_str(), F_OK), 0);
    std::this_thread::sleep_for(Millis(500));
    const uint64_t afterKill = limited();
    EXPECT_GT(afterKill, atKill) << "the data path keeps limiting the flood with no daemon";
    EXPECT_EQ(send(a4, 5), 0) << "the flooding IPv4 source stays limited";
    EXPECT_EQ(send(a6, 5), 0) << "the flooding IPv6 source stays limited";
    EXPECT_EQ(send(b4, 5), 5) << "a source within its limit is served";
    EXPECT_EQ(send(b6, 5), 5);

    // 2. The next daemon adopts the state, the flood still on.
    size_t from = run_->log().size();
    ASSERT_TRUE(run_->start({"--keep-on-exit"}));
    EXPECT_TRUE(run_->waitLog("sluice: adopted " + iface_ + " (", from)) << run_->log();
    EXPECT_FALSE(has(run_->log().substr(from), "sluice: attached")) << run_->log();
    ours.add(heldBy(run_->pid()));
    EXPECT_EQ(remaining(a4), 0) << "A's spent bucket was kept, not reset";
    EXPECT_EQ(remaining(b4), kLimit - 5) << "so was B's";
    EXPECT_EQ(send(b4, kLimit), kLimit - 5);
    EXPECT_GT(limited(), afterKill) << "counters were kept and keep moving";
    EXPECT_EQ(run_->stop(SIGTERM), 0);
    EXPECT_TRUE(has(run_->log().substr(from), "--keep-on-exit")) << run_->log();

    // 3. sluice detach while the flood still runs.
    ASSERT_FALSE(flood4->wait(Millis(0)).has_value()) << "the flood ended before the detach";
    CmdResult r = runCmd({"nsenter", "--net=" + bed_.receiver().path(), sluiceBinary(), "detach", iface_});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(has(r.out, "detached from " + iface_)) << r.out;
    EXPECT_FALSE(flood4->wait(Millis(0)).has_value()) << "the flood ran through the detach";
    EXPECT_FALSE(xdpAttached(bed_.receiver(), iface_));
    EXPECT_FALSE(ipShowsXdp(bed_.receiver(), iface_)) << "`ip link` shows no XDP program";
    EXPECT_NE(::access(pinDirOf(iface_).c_str(), F_OK), 0) << "no pins left";
    EXPECT_EQ(send(a4, 5), 5) << "detached: nothing limits A any more";
    BpfIds left = leaked(ours);
    EXPECT_TRUE(left.progs.empty()) << "programs left of the " << ours.progs.size() << " ours: " << idList(left.progs)
                                     << "; held by" << holders(left);
    EXPECT_TRUE(left.maps.empty()) << "maps left of the " << ours.maps.size() << " ours: " << idList(left.maps);
    std::printf("[crash] %llu limited before the kill, %llu 500 ms after it; %zu programs and %zu maps, none left\n",
                (unsigned long long)atKill, (unsigned long long)afterKill, ours.progs.size(), ours.maps.size());
}

// A daemon that keeps running after it detached an interface (a reload
// dropped it) holds nothing of it: the program and its maps are freed, even
// after /metrics scrapes and an adopting start (each of which opened the
// pins and queried the link while it was attached).
TEST_F(CrashSafety, AReloadThatDropsAnInterfaceFreesItsProgramAndMaps) {
    Testbed::Link& other = bed_.addClient(1, 0);
    run_.reset();
    run_ = std::make_unique<SluiceRun>(bed_.receiver(), std::vector<std::string>{iface_, other.receiverIf});
    auto text = [&](const std::vector<std::string>& ifaces) {
        std::string list;
        for (const auto& i : ifaces)
            list += (list.empty() ? "\"" : ", \"") + i + "\"";
        std::string c = config();
        return "[sluice]\ninterfaces = [" + list + "]\nmetrics = \"127.0.0.1:" + std::to_string(kMetricsPort) +
               "\"\n" + c.substr(c.find("max_sources"));
    };
    run_->writeConfig(text({iface_, other.receiverIf}));
    ASSERT_TRUE(run_->start());
    ASSERT_TRUE(run_->stop(SIGKILL).has_value());
    ASSERT_TRUE(run_->start()) << "adopting both";
    const BpfIds dropped = attachedIds(bed_.receiver(), iface_);
    ASSERT_EQ(dropped.progs.size(), 1u);
    for (int i = 0; i < 3; i++)
        EXPECT_TRUE(has(run_->scrape(kMetricsPort), "sluice_sources_tracked")) << "scrape " << i;
    EXPECT_EQ(send(link_->client4[0], kLimit + 5), kLimit);

    size_t from = run_->log().size();
    run_->writeConfig(text({other.receiverIf}));
    ASSERT_TRUE(run_->waitLog("sluice: reloaded " + run_->configPath(), from)) << run_->log();
    EXPECT_TRUE(has(run_->log().substr(from), "sluice: detached " + iface_)) << run_->log();
    EXPECT_FALSE(xdpAttached(bed_.receiver(), iface_));
    BpfIds left = leaked(dropped);
    EXPECT_TRUE(left.progs.empty() && left.maps.empty())
        << left.progs.size() << " programs and " << left.maps.size() << " maps of " << iface_
        << " outlive its detach; held by" << holders(left);
    EXPECT_EQ(run_->wait(Millis(0)), std::nullopt) << "the daemon still runs";
    EXPECT_EQ(run_->stop(), 0);
}

// A load that fails leaves what was attached as it was, limiting: a second
// `sluice attach` of the same interface is refused before loading anything;
// a load that the kernel refuses (here: another interface whose pin
// directory holds a sluice_config of another layout, as a different sluice
// version would leave it) fails with a clear error at `sluice attach`, at
// `sluice run`'s start and on its reload, and the first interface keeps its
// program (the same id) and its buckets throughout.
TEST_F(CrashSafety, AFailedLoadLeavesThePreviousProgramAttachedAndLimiting) {
    Testbed::Link& other = bed_.addClient(1, 0);
    const std::string otherIf = other.receiverIf;
    run_.reset();
    run_ = std::make_unique<SluiceRun>(bed_.receiver(), std::vector<std::string>{iface_, otherIf});
    auto sluice = [&](const std::vector<std::string>& args) {
        std::vector<std::string> argv = {"nsenter", "--net=" + bed_.receiver().path(), sluiceBinary()};
        argv.insert(argv.end(), args.begin(), args.end());
        return runCmd(argv);
    };
    auto withInterfaces = [&](const std::string& list) {
        std::string c = config();
        return "[sluice]\ninterfaces = [" + list + "]\n" + c.substr(c.find("max_sources"));
    };
    const std::string a4 = link_->client4[0], b4 = link_->client4[1];

    run_->writeConfig(config());
    CmdResult r = sluice({"attach", iface_, "--config", run_->configPath()});
    ASSERT_EQ(r.status, 0) << r.err;
    const BpfIds first = attachedIds(bed_.receiver(), iface_);
    EXPECT_EQ(send(a4, kLimit + 5), kLimit);

    // 1. Attaching again is refused before anything is loaded.
    r = sluice({"attach", iface_, "--config", run_->configPath()});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_TRUE(has(r.err, "sluice is already attached to " + iface_)) << r.err;
    EXPECT_EQ(attachedIds(bed_.receiver(), iface_).progs, first.progs);
    EXPECT_EQ(send(a4, 5), 0) << "still limiting, A's bucket kept";

    // 2. A load the kernel refuses: foreign pins on the other interface.
    const std::string foreign = pinDirOf(otherIf);
    ASSERT_EQ(::mkdir(foreign.c_str(), 0700), 0) << foreign;
    mustRun({"bpftool", "map", "create", foreign + "/sluice_config", "type", "array", "key", "4", "value", "8",
             "entries", "1", "name", "sluice_config"});
    r = sluice({"attach", otherIf});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "cannot attach to " + otherIf)) << r.err;
    EXPECT_TRUE(has(r.err, "do not match this sluice's")) << r.err;
    EXPECT_TRUE(has(r.err, "`sluice detach " + otherIf + "`")) << r.err;
    EXPECT_FALSE(xdpAttached(bed_.receiver(), otherIf));
    EXPECT_EQ(::access((foreign + "/sluice_config").c_str(), F_OK), 0) << "pins it did not create are kept";

    // 3. `sluice run` over both: adopts the first, fails on the other, exits
    // 1 and leaves the first as it found it.
    run_->writeConfig(withInterfaces("\"" + iface_ + "\", \"" + otherIf + "\""));
    size_t from = run_->log().size();
    run_->launch();
    auto status = run_->wait(Millis(10000));
    ASSERT_TRUE(status.has_value()) << "still running 10 s after a failed start";
    EXPECT_EQ(*status, 1);
    const std::string startLog = run_->log().substr(from);
    EXPECT_TRUE(has(startLog, "sluice: adopted " + iface_)) << startLog;
    EXPECT_TRUE(has(startLog, "cannot start: cannot attach to " + otherIf)) << startLog;
    EXPECT_FALSE(has(startLog, "detached " + iface_)) << startLog;
    EXPECT_EQ(attachedIds(bed_.receiver(), iface_).progs, first.progs);
    EXPECT_EQ(send(a4, 5), 0);
    EXPECT_EQ(send(b4, kLimit + 5), kLimit);

    // 4. The same on a reload of a running daemon: refused, counted, the
    // first interface untouched.
    run_->writeConfig(config());
    ASSERT_TRUE(run_->start());
    from = run_->log().size();
    run_->writeConfig(withInterfaces("\"" + iface_ + "\", \"" + otherIf + "\""));
    ASSERT_TRUE(run_->waitLog("sluice: reload failed, keeping the running config: cannot attach to " + otherIf, from,
                              Millis(10000)))
        << run_->log();
    EXPECT_EQ(attachedIds(bed_.receiver(), iface_).progs, first.progs);
    EXPECT_FALSE(xdpAttached(bed_.receiver(), otherIf));
    EXPECT_EQ(send(a4, 5), 0);
    EXPECT_EQ(run_->stop(), 0);
}
