// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Accuracy and control-plane figures of sluice, with BPF_PROG_TEST_RUN on
// the real XDP program (no traffic leaves the process; root):
//  - units admitted against rate x time + burst for 1 and 100 sources, and
//    for one source charged from two CPUs at once;
//  - state kept for 100k and 1M sources (a limit that does not refill
//    during the run: any unit admitted beyond the burst is a lost state);
//  - Datapath::install of many policies and of 100k allow/deny CIDRs;
//  - a rebuild of the source filter from each of those 100k and 1M tables;
//  - bytes per tracked source, from the kernel's own accounting of the
//    per-source map (fdinfo "memlock", which is the map's memory usage).
// `make bench-accuracy` runs it; --json FILE and --markdown FILE (between
// <!-- accuracy:begin/end --> markers) keep the results.
#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../tools/flood/park.h"
#include "../bpf/packet.h"
#include "datapath.h"
#include "error.h"

using namespace sluice;
using sluice::test::Packet;

namespace {

constexpr uint16_t kPort = 9000;

struct Row {
    std::string name, detail;
    double expected = 0, measured = 0;  // units, or ms / bytes for the rest
    std::string unit;
    bool isError = true;                // print the error in %
};
std::vector<Row> g_rows;

Policy packetPolicy(const std::string& name, uint64_t count, uint64_t periodNs, uint64_t burst)
{
    Policy p;
    p.name = name;
    p.proto = Proto::Udp;
    p.ports = {{kPort, kPort}};
    p.limits = {{LimitKind::Packets, count, periodNs, burst}};
    p.ipv6Prefix = 128;
    return p;
}

std::vector<uint8_t> frameV4(uint32_t i)
{
    char src[32];
    std::snprintf(src, sizeof src, "198.18.%u.%u", 2 + i / 250, 1 + i % 250);
    return Packet::v4(src, "198.18.1.1").udp(40000, kPort).payload(18).build().bytes;
}

// IPv6 sources fd00:5c::X (X = i + 1): the source's last 4 bytes patched in.
std::vector<uint8_t> frameV6Template()
{
    return Packet::v6("fd00:5c::1", "fd00:5c::ffff:1").udp(40000, kPort).payload(18).build().bytes;
}

void setV6Source(std::vector<uint8_t>& f, uint32_t i)
{
    uint32_t x = i + 1;
    uint8_t* p = f.data() + 14 + 8 + 12;
    p[0] = uint8_t(x >> 24);
    p[1] = uint8_t(x >> 16);
    p[2] = uint8_t(x >> 8);
    p[3] = uint8_t(x);
}

void run(int progFd, std::vector<uint8_t>& frame, int repeat)
{
    DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                        .data_size_in = uint32_t(frame.size()), .repeat = repeat);
    if (int err = bpf_prog_test_run_opts(progFd, &opts))
        throwSys("BPF_PROG_TEST_RUN failed", err);
}

struct Verdicts {
    uint64_t admitted = 0, limited = 0;
};

Verdicts verdicts(const Datapath& dp, const std::string& policy)
{
    Verdicts v;
    for (const auto& s : dp.counters())
        if (s.policy == policy) {
            v.admitted += s.verdicts[SLUICE_VERDICT_ADMITTED].packets;
            v.limited += s.verdicts[SLUICE_VERDICT_LIMITED].packets;
        }
    return v;
}

void pinTo(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

double seconds(uint64_t ns) { return double(ns) / 1e9; }

// A data path for test runs, kept in the XDP dispatcher (tools/flood/park.h)
// so that a test-run call costs microseconds, not an RCU grace period.
struct Loaded {
    Datapath dp;
    int parkFd = -1;
    explicit Loaded(uint32_t maxSources) : dp(Datapath::loadUnattached(maxSources))
    {
        std::string why;
        parkFd = flood::parkInDispatcher(dp.progFd(), &why);
        if (parkFd < 0)
            std::fprintf(stderr, "note: every test run will wait for an RCU grace period (%s)\n",
                         why.c_str());
    }
    ~Loaded()
    {
        if (parkFd >= 0)
            close(parkFd);
    }
};

// ---------------------------------------------------------------- accuracy

// Sources round robin, `repeat` packets per call, for `secs`, on the given
// CPUs (one thread each, all on the same sources). The offered load must be
// continuous for rate x time + burst to be the right expectation: a thread
// that is descheduled offers nothing meanwhile, and a bucket keeps at most
// `burst` units of the time it missed. So the burst is kept at >= 0.1 s of
// the rate: gaps shorter than that cost nothing.
void rateAccuracy(const std::string& name, uint32_t sources, uint64_t rate, uint64_t burst,
                  double secs, std::vector<int> cpus, int repeat)
{
    Loaded l(std::max<uint32_t>(4096, sources * 2));
    Datapath& dp = l.dp;
    Ruleset rules;
    rules.policies = {packetPolicy("acc", rate, kNsPerSecond, burst)};
    dp.install(rules);

    std::vector<std::vector<uint8_t>> frames;
    for (uint32_t i = 0; i < sources; i++)
        frames.push_back(frameV4(i));

    std::atomic<bool> go{false};
    std::atomic<int> ready{0};
    uint64_t t0 = 0, t1 = 0;
    std::vector<std::thread> threads;
    for (int cpu : cpus) {
        threads.emplace_back([&, cpu] {
            pinTo(cpu);
            std::vector<std::vector<uint8_t>> mine = frames;
            ready++;
            while (!go.load()) {
            }
            const uint64_t end = t0 + uint64_t(secs * 1e9);
            while (Datapath::nowNs() < end)
                for (auto& f : mine)
                    run(dp.progFd(), f, repeat);
        });
    }
    while (ready.load() < int(cpus.size())) {
    }
    t0 = Datapath::nowNs();
    go = true;
    for (auto& t : threads)
        t.join();
    t1 = Datapath::nowNs();
    Verdicts v = verdicts(dp, "acc");
    // Every source starts full and refills at `rate` from its first packet
    // (just after t0) to its last (before t1).
    // ... unless fewer packets were offered than that.
    double expected = std::min(double(v.admitted + v.limited),
                               double(sources) * (double(burst) + double(rate) * seconds(t1 - t0)));
    char detail[200];
    std::snprintf(detail, sizeof detail,
                  "%u source(s), %llu/s burst %llu, %.2f s, %zu CPU(s), %llu packets offered",
                  sources, (unsigned long long)rate, (unsigned long long)burst, seconds(t1 - t0),
                  cpus.size(), (unsigned long long)(v.admitted + v.limited));
    g_rows.push_back({name, detail, expected, double(v.admitted), "units", true});
}

double msSince(std::chrono::steady_clock::time_point t)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// N sources, a limit that cannot refill during the run ("burst per hour"),
// two passes of 2 x burst packets each: with every state kept, exactly
// N x burst are admitted; each state lost in between (LRU eviction) lets
// another burst through.
void stateRetention(const std::string& name, uint32_t sources, uint32_t maxSources)
{
    constexpr uint64_t kBurst = 10;
    Loaded l(maxSources);
    Datapath& dp = l.dp;
    Ruleset rules;
    rules.policies = {packetPolicy("keep", kBurst, 3600 * kNsPerSecond, kBurst)};
    dp.install(rules);

    std::vector<uint8_t> f = frameV6Template();
    const uint64_t t0 = Datapath::nowNs();
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < sources; i++) {
            setV6Source(f, i);
            run(dp.progFd(), f, int(2 * kBurst));
        }
    const uint64_t t1 = Datapath::nowNs();
    Verdicts v = verdicts(dp, "keep");
    double expected = double(sources) * double(kBurst);
    char detail[240];
    std::snprintf(detail, sizeof detail,
                  "%u sources, max_sources %u, 2 passes of %llu packets each, %.1f s; "
                  "%zu tracked at the end; excess/burst = states lost: %.0f",
                  sources, maxSources, (unsigned long long)(2 * kBurst), seconds(t1 - t0),
                  dp.trackedSources(), (double(v.admitted) - expected) / double(kBurst));
    g_rows.push_back({name, detail, expected, double(v.admitted), "units", true});

    // What `sluice run` does to a filter filled by sources that left
    // (KnownFilterState::wantsRebuild), on this full table.
    const auto r = std::chrono::steady_clock::now();
    dp.refreshKnownFilter();
    const double rebuildMs = msSince(r);
    const auto filter = dp.knownFilter();
    std::snprintf(detail, sizeof detail, "Datapath::refreshKnownFilter: %zu tracked, %llu of %llu bits set after",
                  dp.trackedSources(), (unsigned long long)(filter ? filter->set : 0),
                  (unsigned long long)(filter ? filter->bits : 0));
    g_rows.push_back({"rebuild the source filter, " + name, detail, 0, rebuildMs, "ms", false});
}

// ---------------------------------------------------------------- control plane

void installPolicies(uint32_t n)
{
    Datapath dp = Datapath::loadUnattached(4096);
    Ruleset rules;
    for (uint32_t i = 0; i < n; i++) {
        Policy p = packetPolicy("p" + std::to_string(i), 100 + i, kNsPerSecond, 0);
        p.proto = i % 2 ? Proto::Udp : Proto::Tcp;
        p.ports = {{uint16_t(1 + i / 2), uint16_t(1 + i / 2)}};
        rules.policies.push_back(p);
    }
    auto t = std::chrono::steady_clock::now();
    try {
        dp.install(rules);
    } catch (const Error& e) {
        g_rows.push_back({"apply " + std::to_string(n) + " policies",
                          std::string("refused: ") + e.what(), 0, msSince(t), "ms", false});
        return;
    }
    double first = msSince(t);
    g_rows.push_back({"apply " + std::to_string(n) + " policies", "Datapath::install, first apply",
                      0, first, "ms", false});
    rules.policies[0].limits[0].count += 1;  // a change: the other generation is written
    t = std::chrono::steady_clock::now();
    dp.install(rules);
    g_rows.push_back({"re-apply " + std::to_string(n) + " policies",
                      "one limit changed: the whole inactive generation rewritten", 0, msSince(t),
                      "ms", false});
}

void installCidrs(uint32_t n)
{
    Datapath dp = Datapath::loadUnattached(4096);
    Ruleset rules;
    rules.policies = {packetPolicy("web", 100, kNsPerSecond, 0)};
    // Half allow, half deny, IPv4 /32s inside 198.18.0.0/15 and IPv6 /128s
    // inside fd00:5c::/64, none overlapping.
    char buf[64];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = i / 2;
        if (i % 4 < 2)
            std::snprintf(buf, sizeof buf, "198.%u.%u.%u/32", 18 + (i % 2), (k >> 8) & 0xff, k & 0xff);
        else
            std::snprintf(buf, sizeof buf, "fd00:5c::%x:%x/128", (i % 2) + 1, k);
        (i % 2 ? rules.deny : rules.allow).push_back(Cidr::parse(buf));
    }
    auto t = std::chrono::steady_clock::now();
    try {
        dp.install(rules);
    } catch (const Error& e) {
        g_rows.push_back({"apply " + std::to_string(n) + " CIDRs", std::string("refused: ") + e.what(),
                          0, msSince(t), "ms", false});
        return;
    }
    g_rows.push_back({"apply " + std::to_string(n) + " allow/deny CIDRs",
                      "half allow, half deny; IPv4 /32 and IPv6 /128; first apply", 0, msSince(t),
                      "ms", false});
    rules.deny.pop_back();
    t = std::chrono::steady_clock::now();
    dp.install(rules);
    g_rows.push_back({"re-apply " + std::to_string(n) + " allow/deny CIDRs", "one entry removed", 0,
                      msSince(t), "ms", false});
}

// The kernel's accounting of our own maps, from /proc/self/fdinfo.
struct MapInfo {
    uint32_t type = 0, keySize = 0, valueSize = 0, maxEntries = 0;
    uint64_t memlock = 0;
};

MapInfo mapInfo(const std::string& fd)
{
    std::ifstream in("/proc/self/fdinfo/" + fd);
    MapInfo m;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string key;
        uint64_t value = 0;
        if (!(ls >> key >> value))
            continue;  // e.g. map_extra in hex
        if (key == "map_type:")
            m.type = uint32_t(value);
        else if (key == "key_size:")
            m.keySize = uint32_t(value);
        else if (key == "value_size:")
            m.valueSize = uint32_t(value);
        else if (key == "max_entries:")
            m.maxEntries = uint32_t(value);
        else if (key == "memlock:")
            m.memlock = value;
    }
    return m;
}

std::vector<MapInfo> ownMaps()
{
    std::vector<MapInfo> maps;
    DIR* d = opendir("/proc/self/fd");
    if (!d)
        return maps;
    while (dirent* e = readdir(d)) {
        std::string fd = e->d_name;
        char link[256] = {};
        if (readlink(("/proc/self/fd/" + fd).c_str(), link, sizeof link - 1) <= 0 ||
            std::string(link) != "anon_inode:bpf-map")
            continue;
        maps.push_back(mapInfo(fd));
    }
    closedir(d);
    return maps;
}

// Per source it holds for sure: max_sources, not the map's max_entries,
// which adds the LRU's slack (sluice_abi.h, sluice_lru_slack).
void bytesPerSource(uint32_t maxSources)
{
    const uint32_t entries = maxSources + Datapath::lruSlack();
    Datapath dp = Datapath::loadUnattached(maxSources);
    // The presence filters (bpf/lib/known.h) grow with it too: its own and
    // the probation table's, sized alike.
    const MapInfo filter = mapInfo(std::to_string(dp.mapFd("sluice_seen")));
    for (const auto& m : ownMaps()) {
        if (m.type != BPF_MAP_TYPE_LRU_HASH || m.maxEntries != entries)
            continue;
        char detail[240];
        std::snprintf(detail, sizeof detail,
                      "per-source LRU: key %u B, value %u B, max_entries %u (max_sources %u), memlock %.1f MiB; "
                      "its and the probation table's filters %.2f MiB",
                      m.keySize, m.valueSize, m.maxEntries, maxSources, double(m.memlock) / (1 << 20),
                      double(filter.memlock) / (1 << 20));
        g_rows.push_back({"bytes per tracked source", detail, 0,
                          double(m.memlock + filter.memlock) / double(maxSources), "B", false});
    }
    uint64_t total = 0;
    for (const auto& m : ownMaps())
        total += m.memlock;
    char detail[120];
    std::snprintf(detail, sizeof detail, "every map of one loaded data path, max_sources %u",
                  maxSources);
    g_rows.push_back({"data path memory", detail, 0, double(total) / (1 << 20), "MiB", false});
}

// ---------------------------------------------------------------- output

std::string esc(const std::string& s)
{
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\')
            o += '\\';
        o += c;
    }
    return o;
}

std::string markdown(const std::string& when, const std::string& machine)
{
    std::ostringstream o;
    o << "| measurement | setup | expected | measured | error |\n|---|---|---|---|---|\n";
    char buf[128];
    for (const auto& r : g_rows) {
        std::string err = "-", expected = "-";
        if (r.isError) {
            std::snprintf(buf, sizeof buf, "%.0f", r.expected);
            expected = buf;
            std::snprintf(buf, sizeof buf, "%+.3f%%", 100 * (r.measured - r.expected) / r.expected);
            err = buf;
        }
        std::snprintf(buf, sizeof buf, r.unit == "units" ? "%.0f %s" : "%.1f %s", r.measured,
                      r.unit.c_str());
        o << "| " << r.name << " | " << r.detail << " | " << expected << " | " << buf << " | " << err
          << " |\n";
    }
    o << "\nRun: `make bench-accuracy`, " << when << "; " << machine << ".\n";
    return o.str();
}

}  // namespace

int main(int argc, char** argv)
{
    std::string jsonPath, mdPath;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--json" && i + 1 < argc)
            jsonPath = argv[++i];
        else if (a == "--markdown" && i + 1 < argc)
            mdPath = argv[++i];
        else if (a == "--quick")
            quick = true;
        else {
            std::fprintf(stderr, "usage: %s [--quick] [--json FILE] [--markdown FILE]\n", argv[0]);
            return 2;
        }
    }
    try {
        const double secs = quick ? 0.5 : 2;
        const int ncpu = int(std::thread::hardware_concurrency());
        std::printf("accuracy (BPF_PROG_TEST_RUN on the sluice program)...\n");
        rateAccuracy("1 source", 1, 1000, 1000, secs, {0}, 1000);
        rateAccuracy("100 sources", 100, 1000, 1000, secs, {0}, 100);
        if (ncpu >= 2) {
            rateAccuracy("1 source, 2 CPUs at once", 1, 1000, 1000, secs, {0, 1}, 1000);
            rateAccuracy("1 source, 1 CPU, high rate", 1, 1000000, 100000, secs, {0}, 1000);
            rateAccuracy("1 source, 2 CPUs at once, high rate", 1, 1000000, 100000, secs, {0, 1}, 1000);
        }
        std::printf("state retention...\n");
        stateRetention("100k sources kept", 100000, SLUICE_DEFAULT_MAX_SOURCES);
        if (!quick) {
            stateRetention("1M sources kept", 1000000, SLUICE_DEFAULT_MAX_SOURCES);
            stateRetention("1M sources kept, table of 2M", 1000000, 2000000);
        }
        std::printf("control plane...\n");
        installPolicies(1000);
        installPolicies(10000);
        installCidrs(quick ? 10000 : 100000);
        bytesPerSource(SLUICE_DEFAULT_MAX_SOURCES);

        char when[64];
        time_t now = time(nullptr);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        std::string cpu;
        {
            std::ifstream in("/proc/cpuinfo");
            std::string line;
            while (std::getline(in, line))
                if (line.rfind("model name", 0) == 0) {
                    cpu = line.substr(line.find(':') + 2);
                    break;
                }
        }
        std::string kernel;
        {
            std::ifstream in("/proc/sys/kernel/osrelease");
            std::getline(in, kernel);
        }
        std::string load;
        {
            std::ifstream in("/proc/loadavg");
            in >> load;
        }
        std::string machine = "load average " + load + " at the end, kernel " + kernel + ", " + cpu + ", " + std::to_string(ncpu) + " cores" +
                              (quick ? ", --quick" : "");
        std::string md = markdown(when, machine);
        std::printf("\n%s", md.c_str());

        if (!jsonPath.empty()) {
            std::ofstream j(jsonPath);
            j << "{\"date\": \"" << when << "\", \"machine\": \"" << esc(machine) << "\", \"results\": [";
            for (size_t i = 0; i < g_rows.size(); i++) {
                const auto& r = g_rows[i];
                j << (i ? ", " : "") << "{\"name\": \"" << esc(r.name) << "\", \"detail\": \""
                  << esc(r.detail) << "\", \"unit\": \"" << r.unit << "\", \"measured\": " << r.measured;
                if (r.isError)
                    j << ", \"expected\": " << r.expected
                      << ", \"error_pct\": " << 100 * (r.measured - r.expected) / r.expected;
                j << "}";
            }
            j << "]}\n";
        }
        if (!mdPath.empty()) {
            std::ifstream in(mdPath);
            std::stringstream ss;
            ss << in.rdbuf();
            std::string doc = ss.str();
            const std::string b = "<!-- accuracy:begin -->", e = "<!-- accuracy:end -->";
            size_t bi = doc.find(b), ei = doc.find(e);
            if (bi == std::string::npos || ei == std::string::npos || ei < bi) {
                std::fprintf(stderr, "%s has no %s ... %s markers\n", mdPath.c_str(), b.c_str(), e.c_str());
                return 1;
            }
            doc = doc.substr(0, bi + b.size()) + "\n" + md + doc.substr(ei);
            std::ofstream(mdPath) << doc;
            std::printf("written into %s\n", mdPath.c_str());
        }
        return 0;
    } catch (const Error& e) {
        std::fprintf(stderr, "accuracy_bench: %s\n", e.what());
        return e.exitCode();
    }
}
