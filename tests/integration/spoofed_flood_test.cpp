// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Issue 7, point 2: the admission step under a spoofed-source flood, through
// real traffic. `sluice run` polices UDP ports 9000-9001 per source on the
// receiver's veth with a small table (max_sources 4096), which is filled with
// established sources first. Then build/sluice-flood sends UDP from random
// IPv6 sources in a /104 (2^24 = 16.8M addresses, every frame on the test's
// own veth pair) to port 9001 at the generator's top rate, while legitimate
// IPv4 and IPv6 sources send within their limit and IPv4 and IPv6 sources
// send at 10x and 1.5x it, to port 9000, and at 50/s against 5/s to port
// 9002, where UDP listeners count what arrives.
// Checked: the legitimate sources keep >= 99% of their datagrams, the
// over-limit ones get at most burst + rate x time, and the table was full.
// A second test sends the flood against a new_sources budget instead.
// The flood's rate and the figures are printed ([spoofed-flood]);
// `make bench-spoofed` runs the same test for longer (SLUICE_SPOOFED_SECONDS).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datapath.h"
#include "flood_gen.h"
#include "netns.h"
#include "paths.h"
#include "process.h"
#include "sluice_run.h"

using namespace slit;

namespace {

constexpr uint16_t kPort = 9000;       // legitimate and over-limit senders, counted
constexpr uint16_t kFloodPort = 9001;  // the flood: the same policy, nothing listens
// A tight limit, for a source that is over it while sending far more slowly
// than the flood cycles the probation table.
constexpr uint16_t kTightPort = 9002;
constexpr int kTightRatePps = 5;
constexpr int kTightBurst = 5;
constexpr int kTightSenderPps = 50;
constexpr uint32_t kMaxSources = 4096;
constexpr int kRatePps = 100;
constexpr int kBurst = 100;
constexpr int kLegitPps = kRatePps / 2;
constexpr int kOverPps = 10 * kRatePps;
// Over its limit by half, evenly spaced: 6.7 ms apart, longer than a
// probation entry lasts at the flood's top rate here.
constexpr int kSlowOverPps = 3 * kRatePps / 2;
constexpr const char* kPolicy = "udp-api";
// What a datagram may wait in the senders' qdisc for room in the ring.
constexpr double kQueueSlackSeconds = 0.25;
// The probation memory's known limit (README "Spoofed sources"): the flood
// may overwrite a source's slot between two of its packets while it is on
// probation, and the unit its evicted probation entry held is lost, so it
// gets one unit more. Here ~9% per gap for the 50/s sender (0.29 Mpps x
// 20 ms / 65,536 slots); allowing three such losses leaves a chance of
// ~0.01% (two left ~0.1%, too much for a test every CI run takes). Still
// below the tight limit's burst (5) that a fresh bucket would add.
constexpr int kMemoryOverwriteUnits = 3;
// 24 random host bits: 16,777,216 distinct sources, none of them the
// testbed's own addresses (fd00:5c::k:0/112).
constexpr const char* kFloodPrefix = "fd00:5c::5d00:0:0/104";
// Established sources that fill the table before the flood: pools of
// consecutive IPv4 addresses, each smaller than the probation table, so that
// each source's second frame finds its first one's entry and is promoted.
constexpr const char* kFillPrefix = "198.19.0.0/16";
constexpr int kFillPools = 12;
constexpr int kFillPoolSize = 500;
constexpr int kFillFramesPerSource = 4;

// The flood's length: 8 s in `make test`; `make bench-spoofed` sets more.
int floodSeconds() {
    const char* env = std::getenv("SLUICE_SPOOFED_SECONDS");
    int s = env ? std::atoi(env) : 8;
    return std::clamp(s, 4, 120);
}

// The flood's rate cap in frames/s (SLUICE_SPOOFED_RATE); 0, the default:
// the generator's top rate, several times what the receiving veth takes on
// this 2-core machine (the rest is lost at its 256-frame ring, see noQueue()).
uint64_t floodRate() {
    const char* env = std::getenv("SLUICE_SPOOFED_RATE");
    return env ? std::strtoull(env, nullptr, 10) : 0;
}

// SLUICE_SPOOFED_MEASURE=1 (make bench-spoofed): print the figures, check
// nothing (the top-rate run loses datagrams at the ring, see above).
// The client's veth gets a FIFO qdisc unless SLUICE_SPOOFED_NOQUEUE=1 (the
// kernel's default for veth, noqueue). With a qdisc, a datagram of the
// senders that finds the receiver's ring full waits in it (veth stops its
// queue and wakes it when the ring drains) instead of being dropped before
// any XDP program sees it: what the test then measures is the data path, not
// how this VM's scheduler served the receiving softirq. The generator's
// XDP_TX frames never pass through a qdisc: the flood still overfills the
// ring.
bool noQueue() {
    const char* env = std::getenv("SLUICE_SPOOFED_NOQUEUE");
    return env && *env == '1';
}

bool measureOnly() {
    const char* env = std::getenv("SLUICE_SPOOFED_MEASURE");
    return env && *env == '1';
}

int64_t secondsNs(double s) { return int64_t(s * 1e9); }

// Sends one 64-byte datagram at a time from src to [dst]:port, `pps` a
// second, on an absolute schedule (evenly spaced, as a client that is over
// its limit by its rate and not by bursts), until `ns_` have passed.
// Returns the datagrams the kernel accepted.
int pacedSend(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port, int pps,
              int64_t durationNs) {
    const bool v6 = isV6(src);
    int fd = ns.socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC);
    sockaddr_storage from = {}, to = {};
    socklen_t len;
    if (v6) {
        auto* f = reinterpret_cast<sockaddr_in6*>(&from);
        auto* t = reinterpret_cast<sockaddr_in6*>(&to);
        f->sin6_family = t->sin6_family = AF_INET6;
        t->sin6_port = htons(port);
        inet_pton(AF_INET6, src.c_str(), &f->sin6_addr);
        inet_pton(AF_INET6, dst.c_str(), &t->sin6_addr);
        len = sizeof(sockaddr_in6);
    } else {
        auto* f = reinterpret_cast<sockaddr_in*>(&from);
        auto* t = reinterpret_cast<sockaddr_in*>(&to);
        f->sin_family = t->sin_family = AF_INET;
        t->sin_port = htons(port);
        inet_pton(AF_INET, src.c_str(), &f->sin_addr);
        inet_pton(AF_INET, dst.c_str(), &t->sin_addr);
        len = sizeof(sockaddr_in);
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), len) < 0) {
        close(fd);
        throw std::runtime_error("bind " + src + " failed");
    }
    timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const char payload[64] = "slit spoofed-flood";
    const int64_t start = monoNs(), gapNs = 1'000'000'000LL / pps;
    const int total = int(durationNs / gapNs);
    int sent = 0;
    for (int i = 0; i < total; i++) {
        const int64_t due = start + i * gapNs, now = monoNs();
        if (due > now)
            std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
        if (sendto(fd, payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&to), len) == sizeof payload)
            sent++;
    }
    close(fd);
    return sent;
}

// Entries of one of the data path's source maps (sluice_sources,
// sluice_probation), counted key by key.
size_t mapEntries(int fd) {
    size_t n = 0;
    sluice_source_key key{}, next{};
    int err = bpf_map_get_next_key(fd, nullptr, &next);
    while (!err) {
        n++;
        key = next;
        err = bpf_map_get_next_key(fd, &key, &next);
    }
    return n;
}

// "KEY NUMBER" somewhere in a sluice-flood report, or -1.
double numberAfter(const std::string& text, const std::string& key) {
    auto at = text.find(key);
    return at == std::string::npos ? -1 : std::atof(text.c_str() + at + key.size());
}

// Frames the client's veth dropped on transmit: the kernel's own datagrams
// that found the receiver's ring full (the generator's XDP_TX frames that
// did are its "transmit errors").
uint64_t txDropped(const Netns& ns, const std::string& iface) {
    auto j = nlohmann::json::parse(ns.ip({"-s", "-j", "link", "show", iface}));
    return j.at(0).at("stats64").at("tx").at("dropped").get<uint64_t>();
}

struct Sender {
    std::string src;
    int pps = 0;
    uint16_t port = kPort;
    int ratePps = kRatePps, burst = kBurst;
    int sent = 0;
    int received = 0;
    int64_t firstNs = 0, lastNs = 0;
};

class SpoofedFlood : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access(sluiceBinary().c_str(), X_OK) != 0 || ::access(floodBinary().c_str(), X_OK) != 0)
            GTEST_SKIP() << "build/sluice or build/sluice-flood is not built (make all)";
        link_ = &bed_.addClient(6, 6);
        if (!noQueue())
            link_->client->run([&] {
                mustRun({"tc", "qdisc", "replace", "dev", link_->clientIf, "root", "pfifo", "limit", "100000"});
            });
        run_ = std::make_unique<SluiceRun>(bed_.receiver(), std::vector<std::string>{link_->receiverIf});
    }

    void TearDown() override {
        if (HasFailure() && run_)
            std::fprintf(stderr, "[slit] sluice run log:\n%s", run_->log().c_str());
    }

    // sluice-flood from the client namespace to the receiver's veth; its
    // report in `log` (inside the run's temporary directory).
    std::unique_ptr<ChildProcess> flood(const std::vector<std::string>& args, const std::string& log,
                                        uint16_t port = kFloodPort) {
        std::vector<std::string> argv = {"--proto", "udp", "--dport", std::to_string(port)};
        argv.insert(argv.end(), args.begin(), args.end());
        return startFlood(bed_.receiver(), *link_, argv, run_->dir() + "/" + log);
    }

    // Entries of sluice_sources now, and the probation table's size. Under
    // churn a key walk restarts when its current key is evicted, so a count
    // taken during the flood may be a little high: the checks use the one
    // taken after it.
    std::pair<size_t, uint32_t> occupancy() {
        return bed_.receiver().run([&] {
            auto dp = sluice::Datapath::open(link_->receiverIf);
            bpf_map_info info = {};
            uint32_t len = sizeof info;
            if (bpf_obj_get_info_by_fd(dp.mapFd("sluice_probation"), &info, &len))
                throw std::runtime_error("cannot read sluice_probation's size");
            return std::make_pair(mapEntries(dp.mapFd("sluice_sources")), info.max_entries);
        });
    }

    Testbed bed_;
    Testbed::Link* link_ = nullptr;
    std::unique_ptr<SluiceRun> run_;
};

TEST_F(SpoofedFlood, FullTableKeepsLegitimateSourcesAndLimitsOverLimitOnes) {
    char policy[1024];
    std::snprintf(policy, sizeof policy,
                  "[sluice]\ninterfaces = [\"%s\"]\nmax_sources = %u\n\n[[policy]]\nname = \"%s\"\n"
                  "proto = \"udp\"\nports = [%u, %u]\npackets = \"%d/second burst %d\"\n"
                  "ipv4_prefix = 32\nipv6_prefix = 128\naction = \"drop\"\n\n[[policy]]\nname = \"tight\"\n"
                  "proto = \"udp\"\nports = [%u]\npackets = \"%d/second burst %d\"\nipv4_prefix = 32\n"
                  "ipv6_prefix = 128\naction = \"drop\"\n",
                  link_->receiverIf.c_str(), kMaxSources, kPolicy, kPort, kFloodPort, kRatePps, kBurst,
                  kTightPort, kTightRatePps, kTightBurst);
    run_->writeConfig(policy);
    ASSERT_TRUE(run_->start());

    // 1. Fill the table with established sources (6000 > 4096).
    for (int p = 0; p < kFillPools; p++) {
        char first[32];
        std::snprintf(first, sizeof first, "198.19.%d.1", p * 2);
        auto gen = flood({"--dst", link_->receiver4, "--src", first, "--src-prefix", kFillPrefix, "--sources",
                          std::to_string(kFillPoolSize), "--count",
                          std::to_string(kFillPoolSize * kFillFramesPerSource), "--rate", "50000", "--duration",
                          "5s"},
                         "fill.log");
        auto st = gen->wait(Millis(15000));
        ASSERT_TRUE(st.has_value() && *st == 0) << readFile(run_->dir() + "/fill.log");
    }
    auto [filled, probationSize] = occupancy();
    EXPECT_GE(filled, size_t(kMaxSources) * 9 / 10) << "the table was not filled before the flood";

    // 2. The flood, and the senders during it.
    const uint64_t droppedBefore = txDropped(*link_->client, link_->clientIf);
    UdpCounter count4(bed_.receiver(), link_->receiver4, kPort), count6(bed_.receiver(), link_->receiver6, kPort);
    UdpCounter tight4(bed_.receiver(), link_->receiver4, kTightPort),
        tight6(bed_.receiver(), link_->receiver6, kTightPort);
    const int seconds = floodSeconds();
    auto gen = flood({"--dst", link_->receiver6, "--src-prefix", kFloodPrefix, "--sources", "random", "--count",
                      "2000000000", "--duration", std::to_string(seconds) + "s", "--rate", std::to_string(floodRate())},
                     "flood.log");
    std::this_thread::sleep_for(Millis(500));  // the flood is under way before the first legitimate datagram

    std::vector<Sender> senders;
    for (int i = 0; i < 3; i++) {
        senders.push_back({link_->client4[size_t(i)], kLegitPps});
        senders.push_back({link_->client6[size_t(i)], kLegitPps});
    }
    const size_t firstOver = senders.size();
    senders.push_back({link_->client4[3], kOverPps});
    senders.push_back({link_->client6[3], kOverPps});
    // Sources whose packets are further apart than the flood takes to cycle
    // the probation table (~4 ms at the top rate here, ~10 ms at 100k
    // frames/s): 6.7 ms and 20 ms. Without the probation memory (lib/admit.h)
    // each of their packets found its probation entry gone and was charged
    // to a fresh bucket: the 50/s source got 5.8x its bound of 39.
    senders.push_back({link_->client4[4], kSlowOverPps});
    senders.push_back({link_->client6[4], kSlowOverPps});
    senders.push_back({link_->client4[5], kTightSenderPps, kTightPort, kTightRatePps, kTightBurst});
    senders.push_back({link_->client6[5], kTightSenderPps, kTightPort, kTightRatePps, kTightBurst});
    // The senders stop 1 s before the flood does.
    const int64_t sendNs = secondsNs(seconds - 1.5);
    std::vector<std::thread> threads;
    for (auto& s : senders)
        threads.emplace_back([&, sp = &s] {
            sp->firstNs = monoNs();
            sp->sent = pacedSend(*link_->client, sp->src, isV6(sp->src) ? link_->receiver6 : link_->receiver4,
                                 sp->port, sp->pps, sendNs);
            sp->lastNs = monoNs();
        });
    for (auto& t : threads)
        t.join();
    const size_t during = occupancy().first;

    auto status = gen->wait(Millis((seconds + 15) * 1000));
    ASSERT_TRUE(status.has_value()) << "the generator did not stop";
    const std::string genLog = readFile(run_->dir() + "/flood.log");
    ASSERT_EQ(*status, 0) << genLog;
    const uint64_t ringDrops = txDropped(*link_->client, link_->clientIf) - droppedBefore;
    auto got4 = count4.finish(), got6 = count6.finish(), gotTight4 = tight4.finish(), gotTight6 = tight6.finish();
    const size_t after = occupancy().first;
    const bool check = !measureOnly();
    for (auto& s : senders)
        s.received = s.port == kTightPort ? (isV6(s.src) ? gotTight6[s.src] : gotTight4[s.src])
                                          : (isV6(s.src) ? got6[s.src] : got4[s.src]);

    const double frames = numberAfter(genLog, "sent "), genSeconds = numberAfter(genLog, "\nin ");
    double genPps = -1;
    if (auto at = genLog.find("\nin "); at != std::string::npos)
        std::sscanf(genLog.c_str() + at, "\nin %*f s: %lf frames/s", &genPps);
    const double handed = numberAfter(genLog, "device counters: ");
    const double handedPps = genSeconds > 0 && handed >= 0 ? handed / genSeconds : -1;
    const double xmitErrors = numberAfter(genLog, "handed to the peer, ");
    // The client veth counts both: what is left are the senders' datagrams.
    const double sendersDropped = xmitErrors >= 0 ? double(ringDrops) - xmitErrors : -1;
    EXPECT_NE(genLog.find("stopped by duration"), std::string::npos) << "the flood lasted through the senders\n"
                                                                      << genLog;
    const uint64_t rate = floodRate();
    if (check) {
        EXPECT_GE(frames, rate ? 0.9 * double(rate) * seconds : 1e6) << "the generator fell short\n" << genLog;
    }

    // (a) Legitimate sources keep >= 99% of their datagrams.
    int legitSent = 0, legitGot = 0;
    std::string report;
    for (size_t i = 0; i < firstOver; i++) {
        const Sender& s = senders[i];
        legitSent += s.sent;
        legitGot += s.received;
        if (!check)
            continue;
        EXPECT_GE(s.received * 100, s.sent * 99) << s.src << " sent " << s.sent << " within its limit";
        EXPECT_GE(s.sent, int(sendNs / 1'000'000'000LL) * s.pps * 9 / 10) << s.src << " could not send";
    }
    // (b) The over-limit sources get at most burst + rate x the time their
    // datagrams reached the data path (first send to last, plus what a
    // datagram may wait in the qdisc, plus kMemoryOverwriteUnits); a fresh
    // bucket after an eviction would add another burst, and a source never
    // promoted out of a churning probation table would get all it sent. They
    // do get most of their limit: the bound is not met by everything being
    // lost.
    for (size_t i = firstOver; i < senders.size(); i++) {
        const Sender& s = senders[i];
        const double window = double(s.lastNs - s.firstNs) / 1e9 + kQueueSlackSeconds;
        const double bound = s.burst + s.ratePps * window + kMemoryOverwriteUnits;
        const double expected =
            std::min(double(s.sent), s.burst + s.ratePps * double(s.lastNs - s.firstNs) / 1e9);
        if (check) {
            EXPECT_LE(s.received, bound) << s.src << " sent " << s.sent << " at " << s.pps
                                         << "/s, over its limit: it got more than burst + rate x time";
            EXPECT_GE(s.received, expected * 0.8) << s.src << " got far less than its limit";
            EXPECT_GE(s.sent, int(sendNs / 1'000'000'000LL) * s.pps * 8 / 10) << s.src << " could not send";
        }
        char line[320];
        std::snprintf(line, sizeof line, "%s%s at %d/s (limit %d/s burst %d): %d sent, %d received (bound %.0f)",
                      report.empty() ? "" : "; ", s.src.c_str(), s.pps, s.ratePps, s.burst,
                      s.sent, s.received, bound);
        report += line;
    }
    // The table was full: the flood ran against a full sluice_sources.
    if (check) {
        EXPECT_GE(after, size_t(kMaxSources) * 9 / 10) << "the table was not full after the flood";
    }

    std::printf("[spoofed-flood] %d s flood from %s (cap %s, senders' veth %s): %.0f frames, generator %.3f Mpps, %.3f Mpps handed to "
                "the receiver\n"
                "[spoofed-flood] legitimate (%d sources at %d/s, limit %d/s burst %d): %d of %d datagrams (%.2f%%)\n"
                "[spoofed-flood] over the limit: %s\n"
                "[spoofed-flood] table: %zu of %u sources before the flood, %zu during it, %zu after it; probation "
                "table of %u\n"
                "[spoofed-flood] dropped at the receiver's full ring: %.0f of the flood's frames, %.0f of the senders' "
                "datagrams\n",
                seconds, kFloodPrefix, rate ? (std::to_string(rate) + "/s").c_str() : "none, top rate", noQueue() ? "noqueue" : "pfifo", frames, genPps / 1e6, handedPps / 1e6, int(firstOver), kLegitPps, kRatePps,
                kBurst, legitGot, legitSent, legitSent ? 100.0 * legitGot / legitSent : 0.0,
                report.c_str(), filled, kMaxSources, during, after, probationSize, xmitErrors, sendersDropped);
    std::printf("[spoofed-flood] generator: %s", genLog.c_str());
}

// new_sources (README "Spoofed sources"): with a budget of kNewPerSecond
// never-seen sources a second, the same 16M-source flood, now aimed at the
// port where the UDP listener counts what arrives, gets datagrams of at most
// burst + rate x time of its sources to the application; the rest is dropped
// in XDP and counted `new_source`. (A random address that comes back after
// it was admitted is a known source then: its datagrams pass, so the bound
// is on sources, not datagrams.) Sources seen before the flood are
// not new: they keep >= 99% of their datagrams.
TEST_F(SpoofedFlood, NewSourcesBudgetKeepsTheFloodFromTheApplication) {
    constexpr int kNewPerSecond = 100;
    char policy[512];
    std::snprintf(policy, sizeof policy,
                  "[sluice]\ninterfaces = [\"%s\"]\nmax_sources = %u\n\n[[policy]]\nname = \"%s\"\n"
                  "proto = \"udp\"\nports = [%u]\npackets = \"%d/second burst %d\"\nipv6_prefix = 128\n"
                  "new_sources = \"%d per second\"\n",
                  link_->receiverIf.c_str(), kMaxSources, kPolicy, kPort, kRatePps, kBurst, kNewPerSecond);
    run_->writeConfig(policy);
    ASSERT_TRUE(run_->start());

    UdpCounter count4(bed_.receiver(), link_->receiver4, kPort), count6(bed_.receiver(), link_->receiver6, kPort);
    // Known before the flood: two datagrams each (probation, then promoted).
    std::vector<Sender> senders;
    for (int i = 0; i < 3; i++) {
        senders.push_back({link_->client4[size_t(i)], kLegitPps});
        senders.push_back({link_->client6[size_t(i)], kLegitPps});
    }
    for (auto& s : senders)
        pacedSend(*link_->client, s.src, isV6(s.src) ? link_->receiver6 : link_->receiver4, kPort, 20,
                  secondsNs(0.1));
    auto before4 = count4.collect(), before6 = count6.collect();
    for (const auto& s : senders)
        ASSERT_EQ((isV6(s.src) ? before6 : before4)[s.src], 2) << s.src << " before the flood (budget burst "
                                                               << kNewPerSecond << ")";

    const int seconds = 4;
    const int64_t floodStart = monoNs();
    auto gen = flood({"--dst", link_->receiver6, "--src-prefix", kFloodPrefix, "--sources", "random", "--count",
                      "2000000000", "--duration", std::to_string(seconds) + "s"},
                     "flood.log", kPort);
    std::this_thread::sleep_for(Millis(500));
    const int64_t sendNs = secondsNs(seconds - 1.5);
    std::vector<std::thread> threads;
    for (auto& s : senders)
        threads.emplace_back([&, sp = &s] {
            sp->sent = pacedSend(*link_->client, sp->src, isV6(sp->src) ? link_->receiver6 : link_->receiver4,
                                 kPort, sp->pps, sendNs);
        });
    for (auto& t : threads)
        t.join();
    auto status = gen->wait(Millis((seconds + 15) * 1000));
    ASSERT_TRUE(status.has_value()) << "the generator did not stop";
    const double floodSecondsRun = double(monoNs() - floodStart) / 1e9;
    const std::string genLog = readFile(run_->dir() + "/flood.log");
    ASSERT_EQ(*status, 0) << genLog;
    auto got4 = count4.finish(), got6 = count6.finish();

    int legitSent = 0, legitGot = 0;
    for (auto& s : senders) {
        s.received = isV6(s.src) ? got6[s.src] : got4[s.src];
        legitSent += s.sent;
        legitGot += s.received;
        EXPECT_GE(s.received * 100, s.sent * 99) << s.src << " sent " << s.sent << ", known before the flood";
        EXPECT_GE(s.sent, int(sendNs / 1'000'000'000LL) * s.pps * 9 / 10) << s.src << " could not send";
    }
    // Every other source the listener heard from is one of the flood's.
    int floodSources = 0, floodDelivered = 0;
    for (const auto& [src, n] : got6)
        if (std::none_of(senders.begin(), senders.end(), [&](const Sender& s) { return s.src == src; })) {
            floodSources++;
            floodDelivered += n;
        }
    // Budget: its burst (the count) plus its rate over the flood, from the
    // generator's start to its end as seen here (an upper bound).
    const double bound = kNewPerSecond + kNewPerSecond * floodSecondsRun;
    EXPECT_LE(floodSources, bound) << "more flood sources reached the application than the budget admits";

    uint64_t refused = 0;
    bed_.receiver().run([&] {
        for (const auto& sc : sluice::Datapath::open(link_->receiverIf).counters())
            if (sc.policy == kPolicy)
                refused = sc.verdicts[SLUICE_VERDICT_NEW_SOURCE].packets;
    });
    const double frames = numberAfter(genLog, "sent ");
    // The flood was judged in XDP in quantity, not lost before it: at least
    // 100k of its frames (~0.25 Mpps reach the data path here) were refused.
    EXPECT_GE(refused, 100'000U) << genLog;
    std::printf("[spoofed-flood] new_sources = \"%d per second\", %d s flood of %.0f frames: %d datagrams of %d "
                "flood sources reached the application (bound %.0f sources), %llu refused in XDP as new_source; "
                "legitimate %d of %d\n",
                kNewPerSecond, seconds, frames, floodDelivered, floodSources, bound, (unsigned long long)refused,
                legitGot, legitSent);
}

}  // namespace
