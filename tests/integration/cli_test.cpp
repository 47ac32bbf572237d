// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The admin CLI, the real binary (build/sluice), against a real attached
// program in the receiver namespace of a testbed (DESIGN.md §1): every verb,
// human tables and --json, exit codes 0/1/2, bad input that must change
// nothing, atomic `apply` with bad configs, and `apply` under a flood.
//
// The CLI runs as `nsenter --net=/run/netns/NAME build/sluice ...`, not `ip
// netns exec`, which would remount /sys and give it a private bpffs where the
// pins are invisible. Limits are "N per day", so what passes is counted, not
// timed. Configs go to a unique temp directory; namespaces, pins and the
// directory are removed by the fixture even when a test fails.
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datapath.h"
#include "netns.h"
#include "paths.h"

using namespace slit;
using Json = nlohmann::json;

namespace {

constexpr uint16_t kUdpPort = 7000;     // the policed UDP port
constexpr uint16_t kSteadyPort = 7001;  // a policy that keeps its name across applies
constexpr uint64_t kDayNs = 86400ULL * 1'000'000'000ULL;
// A 64-byte UDP payload on the wire: + 8 UDP + 20 IPv4 + 14 Ethernet.
constexpr uint64_t kFrame4 = 64 + 8 + 20 + 14;

bool pathExists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

// The kernel's CONFIG_HZ from the config libbpf reads (the release's /boot
// config, else /proc/config.gz); 0 when neither has it.
unsigned kernelHz() {
    CmdResult c = runCmd({"sh", "-c",
                          "{ cat /boot/config-$(uname -r) 2>/dev/null || zcat /proc/config.gz 2>/dev/null; } | "
                          "sed -n 's/^CONFIG_HZ=//p'"});
    unsigned hz = 0;
    return std::sscanf(c.out.c_str(), "%u", &hz) == 1 ? hz : 0;
}

// One CLI run: the command line and what came back, printable in failures.
struct Cli {
    std::string cmd;
    int status = -1;
    std::string out, err;
};

std::ostream& operator<<(std::ostream& os, const Cli& r) {
    return os << "\n$ " << r.cmd << "\n[exit " << r.status << "]\n[stdout]\n"
              << r.out << "[stderr]\n" << r.err;
}

Cli runSluice(const std::string& netnsPath, const std::vector<std::string>& args) {
    std::vector<std::string> argv;
    if (!netnsPath.empty())
        argv = {"nsenter", "--net=" + netnsPath};
    argv.push_back(sluiceBinary());
    Cli r;
    r.cmd = "sluice";
    for (const auto& a : args) {
        argv.push_back(a);
        r.cmd += " " + (a.find(' ') != std::string::npos || a.empty() ? "'" + a + "'" : a);
    }
    CmdResult c = runCmd(argv);
    r.status = c.status;
    r.out = std::move(c.out);
    r.err = std::move(c.err);
    return r;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string l;
    while (std::getline(ss, l))
        out.push_back(l);
    return out;
}

std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string w;
    while (ss >> w)
        out.push_back(w);
    return out;
}

// The row of a human table whose first cells are `first`...; empty if none.
std::vector<std::string> tableRow(const std::string& text, const std::vector<std::string>& first) {
    for (const auto& l : lines(text)) {
        auto w = words(l);
        if (w.size() >= first.size() && std::equal(first.begin(), first.end(), w.begin()))
            return w;
    }
    return {};
}

// A unique temporary directory for configs, removed with its contents.
// Named /tmp/sluice-cli-PID-XXXXXX: directories of runs that were killed
// (whose PID is gone) are removed by the next run.
class TempDir {
public:
    TempDir() {
        reapStaleDirs();
        std::string tmpl = "/tmp/sluice-cli-" + std::to_string(getpid()) + "-XXXXXX";
        if (!mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() { runCmd({"rm", "-rf", path_}); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string write(const std::string& name, const std::string& text) const {
        std::string p = path_ + "/" + name;
        std::ofstream out(p, std::ios::trunc);
        out << text;
        out.close();
        if (!out.good())
            throw std::runtime_error("cannot write " + p);
        return p;
    }
    const std::string& path() const { return path_; }

private:
    static void reapStaleDirs() {
        DIR* d = opendir("/tmp");
        if (!d)
            return;
        std::vector<std::string> stale;
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            const std::string prefix = "sluice-cli-";
            if (name.rfind(prefix, 0) != 0)
                continue;
            char* end = nullptr;
            long pid = strtol(name.c_str() + prefix.size(), &end, 10);
            if (pid > 0 && end && *end == '-' && kill(pid_t(pid), 0) != 0 && errno == ESRCH)
                stale.push_back("/tmp/" + name);
        }
        closedir(d);
        for (const auto& p : stale)
            runCmd({"rm", "-rf", p});
    }

    std::string path_;
};

// ---------------------------------------------------------------- JSON views

// `sluice stats --json`: {IFACE: [{policy, verdicts: {NAME: {packets, bytes}}}]}
// `policy` "" stands for the slot of traffic that matched no policy (null).
uint64_t statOf(const Json& stats, const std::string& iface, const std::string& policy,
                const std::string& verdict, const char* field = "packets") {
    if (!stats.contains(iface)) {
        ADD_FAILURE() << "stats --json has no " << iface << ": " << stats.dump();
        return ~0ULL;
    }
    for (const auto& e : stats[iface]) {
        bool match = policy.empty() ? e["policy"].is_null()
                                    : (e["policy"].is_string() && e["policy"] == policy);
        if (match)
            return e["verdicts"][verdict][field].get<uint64_t>();
    }
    ADD_FAILURE() << "stats --json has no policy '" << policy << "': " << stats.dump();
    return ~0ULL;
}

uint64_t statTotal(const Json& stats, const std::string& iface, const std::string& verdict) {
    uint64_t n = 0;
    for (const auto& e : stats[iface])
        n += e["verdicts"][verdict]["packets"].get<uint64_t>();
    return n;
}

// `sluice top --json`: {IFACE: [source...]}, or {IFACE: {..., "sources": [source...]}}.
Json topSources(const Json& top, const std::string& iface) {
    if (!top.contains(iface)) {
        ADD_FAILURE() << "top --json has no " << iface << ": " << top.dump();
        return Json::array();
    }
    const Json& t = top[iface];
    if (t.is_object() && t.contains("sources"))
        return t["sources"];
    return t;
}

const Json* findPolicy(const Json& list, const std::string& iface, const std::string& name) {
    if (!list.contains(iface))
        return nullptr;
    for (const auto& p : list[iface])
        if (p["name"] == name)
            return &p;
    return nullptr;
}

// ---------------------------------------------------------------- raw map views

// Per-slot packet counters from the pinned per-CPU stats map, summed over
// CPUs, for every verdict (slots of removed policies are not in `stats`).
using VerdictPackets = std::array<uint64_t, SLUICE_VERDICT_COUNT>;

class StatsReader {
public:
    explicit StatsReader(const std::string& iface)
        : fd_(bpf_obj_get((pinDirOf(iface) + "/sluice_stats").c_str())),
          ncpus_(libbpf_num_possible_cpus()) {}
    ~StatsReader() {
        if (fd_ >= 0)
            close(fd_);
    }
    StatsReader(const StatsReader&) = delete;
    StatsReader& operator=(const StatsReader&) = delete;
    bool ok() const { return fd_ >= 0 && ncpus_ > 0; }

    VerdictPackets slot(uint32_t slot) const {
        VerdictPackets out{};
        std::vector<sluice_counter> percpu(size_t(std::max(ncpus_, 1)));
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++) {
            uint32_t key = slot * SLUICE_VERDICT_COUNT + v;
            if (bpf_map_lookup_elem(fd_, &key, percpu.data()) != 0) {
                ADD_FAILURE() << "cannot read sluice_stats key " << key;
                continue;
            }
            for (const auto& c : percpu)
                out[v] += c.packets;
        }
        return out;
    }

private:
    int fd_;
    int ncpus_;
};

uint64_t sum(const VerdictPackets& v) {
    uint64_t n = 0;
    for (auto x : v)
        n += x;
    return n;
}

// A pinned array map's bytes, through a read-only mapping (the ruleset's
// arrays are BPF_F_MMAPABLE): a byte-exact compare that costs far less than
// a bpftool dump (13 MB for the port map).
std::string arrayMapBytes(const std::string& iface, const char* map, size_t entries, size_t valueSize) {
    std::string path = pinDirOf(iface) + "/" + map;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
        ADD_FAILURE() << "cannot open " << path;
        return {};
    }
    size_t size = entries * ((valueSize + 7) / 8 * 8);
    long page = sysconf(_SC_PAGESIZE);
    size_t mapped = (size + size_t(page) - 1) / size_t(page) * size_t(page);
    void* p = mmap(nullptr, mapped, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        ADD_FAILURE() << "cannot mmap " << path << ": " << strerror(errno);
        return {};
    }
    std::string out(static_cast<const char*>(p), size);
    munmap(p, mapped);
    return out;
}

// The maps that hold the ruleset, as `bpftool map dump pinned` prints them,
// and the two big arrays' raw bytes. Dumping those two takes bpftool over a
// second (3.6 and 13 MB of text): only when `full`.
struct MapsSnapshot {
    std::map<std::string, std::string> dumps;
    std::string policyBytes, portBytes;
};

MapsSnapshot snapshotMaps(const std::string& iface, bool full) {
    MapsSnapshot s;
    std::vector<std::string> maps = {"sluice_lists4", "sluice_lists6", "sluice_config"};
    if (full) {
        maps.push_back("sluice_policies");
        maps.push_back("sluice_ports");
    }
    for (const auto& m : maps)
        s.dumps[m] = mustRun({"bpftool", "map", "dump", "pinned", pinDirOf(iface) + "/" + m});
    s.policyBytes = arrayMapBytes(iface, "sluice_policies", size_t(SLUICE_GENERATIONS) * SLUICE_MAX_POLICIES,
                                  sizeof(sluice_policy));
    s.portBytes = arrayMapBytes(iface, "sluice_ports", SLUICE_PORT_ENTRIES, sizeof(uint32_t));
    return s;
}

// Where two dumps first differ, with a little context.
std::string firstDifference(const std::string& a, const std::string& b) {
    auto la = lines(a), lb = lines(b);
    size_t i = 0;
    while (i < la.size() && i < lb.size() && la[i] == lb[i])
        i++;
    std::string out = "first difference at line " + std::to_string(i + 1) + ":\n";
    for (size_t j = i >= 3 ? i - 3 : 0; j < i + 3; j++) {
        out += "  before: " + (j < la.size() ? la[j] : "<end>") + "\n";
        out += "  after:  " + (j < lb.size() ? lb[j] : "<end>") + "\n";
    }
    return out;
}

void expectSameMaps(const MapsSnapshot& before, const MapsSnapshot& after, const std::string& when) {
    for (const auto& [name, dump] : before.dumps) {
        auto it = after.dumps.find(name);
        if (it == after.dumps.end())
            continue;
        EXPECT_TRUE(dump == it->second) << name << " changed " << when << "\n"
                                        << firstDifference(dump, it->second);
    }
    EXPECT_TRUE(before.policyBytes == after.policyBytes) << "sluice_policies changed " << when;
    EXPECT_TRUE(before.portBytes == after.portBytes) << "sluice_ports changed " << when;
}

// ---------------------------------------------------------------- fixture

// A receiver namespace with one client link; the CLI acts on the receiver's
// veth end.
class CliNet : public ::testing::Test {
protected:
    void SetUp() override {
        link_ = &bed_.addClient(3, 3);
        iface_ = link_->receiverIf;
        registerPinDir(pinDirOf(iface_));
    }

    ~CliNet() override {
        // Whatever the test left: the program on the veth, the pins.
        try {
            if (pathExists(pinDirOf(iface_)) || xdpAttached(receiver(), iface_))
                receiver().run([&] { sluice::Datapath::detach(iface_); });
        } catch (const std::exception& e) {
            std::fprintf(stderr, "[slit] cleanup: detach %s: %s\n", iface_.c_str(), e.what());
        }
        if (pathExists(pinDirOf(iface_))) {
            runCmd({"rm", "-rf", pinDirOf(iface_)});
            rmdir(SLUICE_PIN_ROOT);  // only succeeds when no interface is left
        }
        unregisterPinDir(pinDirOf(iface_));
        // bed_ (a member) deletes the namespaces after this, tmp_ the configs.
    }

    Netns& receiver() { return bed_.receiver(); }
    Netns& client() { return *link_->client; }
    const std::string& src(size_t i) const { return link_->client4.at(i); }
    const std::string& dst() const { return link_->receiver4; }

    // The CLI inside the receiver namespace.
    Cli sluice(const std::vector<std::string>& args) { return runSluice(receiver().path(), args); }

    // Runs a verb that must succeed and print JSON; returns it parsed.
    Json sluiceJson(const std::vector<std::string>& args) {
        Cli r = sluice(args);
        EXPECT_EQ(r.status, 0) << r;
        try {
            return Json::parse(r.out);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "not JSON (" << e.what() << "):" << r;
            return Json();
        }
    }

    Json stats() { return sluiceJson({"stats", iface_, "--json"}); }

    // The header every config of these tests starts with.
    std::string header() const {
        return "[sluice]\ninterfaces = [\"" + iface_ + "\"]\nmax_sources = 4096\n\n";
    }

    void attach(const std::string& config = "") {
        std::vector<std::string> args = {"attach", iface_, "--mode", "native"};
        if (!config.empty()) {
            args.push_back("--config");
            args.push_back(config);
        }
        Cli r = sluice(args);
        ASSERT_EQ(r.status, 0) << r;
    }

    // Sends `n` datagrams from a client address to `port` and returns how
    // many the receiver got from it.
    int sendUdp(const std::string& from, uint16_t port, int n) {
        UdpCounter server(receiver(), dst(), port);
        EXPECT_EQ(udpSend(client(), from, dst(), port, n), n);
        return server.finish()[from];
    }

    // The client veth's transmit counters: what it handed to the receiver's
    // end (packets) and what it could not (dropped).
    std::pair<uint64_t, uint64_t> clientTx() {
        Json j = Json::parse(client().ip({"-s", "-j", "link", "show", link_->clientIf}));
        const Json& tx = j.at(0).at("stats64").at("tx");
        return {tx.at("packets").get<uint64_t>(), tx.at("dropped").get<uint64_t>()};
    }

    // UDP datagrams the receiver namespace's stack dropped for a full
    // socket buffer (/proc/net/snmp, Udp: RcvbufErrors).
    uint64_t udpRcvbufErrors() {
        std::string snmp = mustRun({"nsenter", "--net=" + receiver().path(), "cat", "/proc/net/snmp"});
        std::vector<std::string> names, values;
        for (const auto& l : lines(snmp)) {
            if (l.rfind("Udp: ", 0) != 0)
                continue;
            (names.empty() ? names : values) = words(l);
        }
        for (size_t i = 0; i < names.size() && i < values.size(); i++)
            if (names[i] == "RcvbufErrors")
                return std::stoull(values[i]);
        ADD_FAILURE() << "no Udp RcvbufErrors in /proc/net/snmp:\n" << snmp;
        return 0;
    }

    std::map<std::string, uint32_t> slotsByName() {
        std::map<std::string, uint32_t> out;
        sluice::Datapath dp = sluice::Datapath::open(iface_);
        for (const auto& p : dp.installedPolicies())
            out[p.name] = p.slot;
        return out;
    }

    Testbed bed_;
    Testbed::Link* link_ = nullptr;
    std::string iface_;
    TempDir tmp_;
};

std::string udpPolicy(const std::string& name, const std::string& ports, const std::string& packets,
                      const std::string& action = "drop", const std::string& extra = "") {
    return "[[policy]]\nname = \"" + name + "\"\nproto = \"udp\"\nports = [" + ports +
           "]\npackets = \"" + packets + "\"\naction = \"" + action + "\"\n" + extra + "\n";
}

}  // namespace

// ---------------------------------------------------------------- --help

void expectHelpWithExample(const std::vector<std::vector<std::string>>& verbs) {
    for (auto args : verbs) {
        args.push_back("--help");
        Cli r = runSluice("", args);
        EXPECT_EQ(r.status, 0) << r;
        EXPECT_TRUE(contains(r.out, "Example:")) << "no example in the help of `" << r.cmd << "`" << r;
        EXPECT_EQ(r.err, "") << r;
    }
}

TEST(CliHelp, EveryVerbHasAnExample) {
    expectHelpWithExample({
        {"attach"},         {"detach"},           {"status"},         {"apply"},
        {"policy", "list"}, {"policy", "add"},    {"policy", "remove"},
        {"allow", "add"},   {"allow", "remove"},  {"allow", "list"},
        {"deny", "add"},    {"deny", "remove"},   {"deny", "list"},
        {"stats"},          {"top"},              {"inspect"},        {"reset"},
        {"run"},
    });
}

// `sluice policy --help` is where a user looks first for how to add one.
TEST(CliHelp, VerbGroupsHaveAnExample) {
    expectHelpWithExample({{"policy"}, {"allow"}, {"deny"}});
}

TEST(CliHelp, TopLevelHelpListsEveryVerb) {
    Cli top = runSluice("", {"--help"});
    EXPECT_EQ(top.status, 0) << top;
    for (const char* verb : {"attach", "detach", "status", "apply", "policy", "allow", "deny", "stats",
                             "top", "inspect", "reset", "run"})
        EXPECT_TRUE(contains(top.out, verb)) << verb << " missing from `sluice --help`" << top;
}

// ---------------------------------------------------------------- attach, status, detach

TEST_F(CliNet, AttachStatusDetach) {
    std::string cfg = tmp_.write("api.toml", header() +
                                                 "[[allow]]\ncidr = \"198.18.200.0/24\"\n\n"
                                                 "[[deny]]\ncidr = \"fd00:5c::dead\"\n\n" +
                                                 udpPolicy("udp-ten", "7000", "10 per day") +
                                                 "[[policy]]\nname = \"tcp-five\"\nproto = \"tcp\"\n"
                                                 "ports = [8080]\nconnections = \"5 per day\"\n");
    // A bad config attaches nothing.
    std::string bad = tmp_.write("bad.toml", header() + udpPolicy("x", "0", "10 per day"));
    Cli r = sluice({"attach", iface_, "--config", bad, "--mode", "native"});
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_TRUE(contains(r.err, bad + ":")) << r;
    EXPECT_FALSE(pathExists(pinDirOf(iface_))) << "a rejected attach left pins";
    EXPECT_FALSE(xdpAttached(receiver(), iface_)) << "a rejected attach left a program";

    r = sluice({"attach", iface_, "--config", cfg, "--mode", "native"});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_EQ(r.err, "") << r;
    EXPECT_TRUE(contains(r.out, "attached to " + iface_)) << r;
    EXPECT_TRUE(contains(r.out, "native mode")) << "the mode is not stated" << r;
    EXPECT_TRUE(contains(r.out, "dispatcher") || contains(r.out, "single program"))
        << "does not say whether libxdp's dispatcher is used" << r;
    EXPECT_TRUE(contains(r.out, "with 2 policies from " + cfg)) << r;
    const bool dispatcher = contains(r.out, "through libxdp's multi-program dispatcher");
    std::printf("[slit] %s", r.out.c_str());

    std::string how;
    ASSERT_TRUE(xdpAttached(receiver(), iface_, &how));
    EXPECT_TRUE(contains(how, "mode=native")) << how;
    EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config"));

    // status, human.
    r = sluice({"status", iface_});
    ASSERT_EQ(r.status, 0) << r;
    auto head = tableRow(r.out, {"INTERFACE", "MODE", "DISPATCHER", "TICK", "POLICIES", "SOURCES", "CAPACITY"});
    EXPECT_FALSE(head.empty()) << "no header" << r;
    auto row = tableRow(r.out, {iface_});
    ASSERT_GE(row.size(), 7u) << r;
    EXPECT_EQ(row[1], "native") << r;
    EXPECT_EQ(row[2], dispatcher ? "yes" : "no") << r;
    const unsigned hz = kernelHz();
    char tick[32];
    std::snprintf(tick, sizeof tick, 1000 % std::max(hz, 1u) ? "%.1fms" : "%.0fms", hz ? 1000.0 / hz : 0.0);
    EXPECT_EQ(row[3], hz ? tick : "none") << "the program's tick" << r;
    EXPECT_EQ(row[4], "2") << r;
    EXPECT_EQ(row[5], "0") << r;
    EXPECT_EQ(row[6], "4096") << "max_sources of the config" << r;

    // status, JSON.
    Json st = sluiceJson({"status", iface_, "--json"});
    ASSERT_TRUE(st.is_array() && st.size() == 1) << st.dump(2);
    const Json& s = st[0];
    EXPECT_EQ(s.value("interface", ""), iface_);
    EXPECT_EQ(s.value("mode", ""), "native");
    ASSERT_TRUE(s.contains("dispatcher") && s["dispatcher"].is_boolean()) << s.dump(2);
    EXPECT_EQ(s["dispatcher"].get<bool>(), dispatcher) << "attach and status disagree" << s.dump(2);
    EXPECT_EQ(s.value("policies", -1), 2);
    EXPECT_EQ(s.value("tracked_sources", -1), 0);
    EXPECT_EQ(s.value("source_capacity", -1), 4096);
    ASSERT_TRUE(s.contains("tick_hz") && s["tick_hz"].is_number_unsigned()) << s.dump(2);
    EXPECT_EQ(s["tick_hz"].get<unsigned>(), hz) << "the program's CONFIG_HZ, 0 without a kernel config" << s.dump(2);
    EXPECT_TRUE(s.contains("note") && s["note"].is_string()) << s.dump(2);

    // The pins are seen from every network namespace, the interface only
    // from its own: from the test's namespace, status says so.
    Cli elsewhere = runSluice("", {"status", iface_, "--json"});
    ASSERT_EQ(elsewhere.status, 0) << elsewhere;
    EXPECT_TRUE(contains(Json::parse(elsewhere.out).at(0).value("note", ""),
                         "interface " + iface_ + " not found in this network namespace"))
        << elsewhere;

    // A second attach is refused and leaves the first in place.
    r = sluice({"attach", iface_, "--mode", "native"});
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_TRUE(contains(r.err, "already attached")) << r;
    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_EQ(sluiceJson({"status", iface_, "--json"})[0].value("policies", -1), 2);

    // detach: no program, no pins; a second detach has nothing to do.
    r = sluice({"detach", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "detached from " + iface_)) << r;
    EXPECT_FALSE(xdpAttached(receiver(), iface_, &how)) << how;
    EXPECT_FALSE(pathExists(pinDirOf(iface_))) << "pins left under " << pinDirOf(iface_);
    r = sluice({"detach", iface_});
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_TRUE(contains(r.err, "not attached")) << r;
    r = sluice({"status", iface_});
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_TRUE(contains(r.err, "sluice attach " + iface_)) << "should say what to do" << r;

    // And traffic is unlimited again.
    EXPECT_EQ(sendUdp(src(0), kUdpPort, 20), 20);
}

// A kernel config without CONFIG_HZ (an empty one, bound over the real ones
// in the attaching process's own mount namespace only): the program runs
// without a tick, and attach and status both say so.
TEST_F(CliNet, StatusSaysWhenTheProgramHasNoTick) {
    std::string empty = tmp_.write("empty-kconfig", "");
    CmdResult c = runCmd({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                          "for f in /boot/config-$(uname -r) /proc/config.gz; do "
                          "[ ! -e \"$f\" ] || mount --bind \"$1\" \"$f\" || exit 97; done; shift; exec \"$@\"",
                          "sh", empty, "nsenter", "--net=" + receiver().path(), sluiceBinary(), "attach", iface_,
                          "--mode", "native"});
    ASSERT_EQ(c.status, 0) << c.out << c.err;
    EXPECT_TRUE(contains(c.out, "tick is unknown")) << c.out;

    Cli r = sluice({"status", iface_});
    ASSERT_EQ(r.status, 0) << r;
    auto row = tableRow(r.out, {iface_});
    ASSERT_GE(row.size(), 4u) << r;
    EXPECT_EQ(row[3], "none") << r;
    EXPECT_TRUE(contains(r.out, "cached refusals read the clock")) << r;
    Json st = sluiceJson({"status", iface_, "--json"});
    ASSERT_TRUE(st.is_array() && st.size() == 1) << st.dump(2);
    EXPECT_EQ(st[0].value("tick_hz", 1u), 0u) << st.dump(2);
}

// A user who may not read the pins (not root) is told that (exit 1), not
// that sluice is not attached and should be attached.
TEST_F(CliNet, UnreadablePinsAreNotNotAttached) {
    attach();
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"status", iface_}, {"status"}, {"stats", iface_, "--json"}, {"policy", "list"}}) {
        std::vector<std::string> argv = {"nsenter", "--net=" + receiver().path(), "setpriv", "--reuid=65534",
                                         "--regid=65534", "--clear-groups", sluiceBinary()};
        argv.insert(argv.end(), args.begin(), args.end());
        CmdResult c = runCmd(argv);
        Cli r{"(as uid 65534) sluice", c.status, c.out, c.err};
        for (const auto& a : args)
            r.cmd += " " + a;
        if (c.status == 126 || c.status == 127)
            GTEST_SKIP() << "uid 65534 cannot run " << sluiceBinary() << r;
        EXPECT_EQ(r.status, 1) << r;
        EXPECT_EQ(r.out, "") << r;
        EXPECT_TRUE(contains(r.err, "cannot read " SLUICE_PIN_ROOT)) << r;
        EXPECT_TRUE(contains(r.err, "Permission denied")) << r;
        EXPECT_TRUE(contains(r.err, "run as root")) << r;
        EXPECT_FALSE(contains(r.err, "not attached")) << r;
    }
}

// A policy whose prefix puts a network in one bucket: inspect and top name
// the bucket by that network ("198.18.k.0/24", "fd00:5c::/64"), and --json
// gives the prefix beside the masked source.
TEST_F(CliNet, InspectAndTopNameANetworkBucketWithItsPrefix) {
    std::string cfg = tmp_.write("p.toml", header() + udpPolicy("per-net", "7000", "10 per day", "drop",
                                                                "ipv4_prefix = 24\nipv6_prefix = 64\n"));
    attach(cfg);
    const std::string a = src(0), net4 = a.substr(0, a.rfind('.')) + ".0/24";
    EXPECT_EQ(sendUdp(a, kUdpPort, 3), 3);
    const std::string a6 = link_->client6.at(0);
    {
        UdpCounter server(receiver(), link_->receiver6, kUdpPort);
        EXPECT_EQ(udpSend(client(), a6, link_->receiver6, kUdpPort, 2), 2);
        EXPECT_EQ(server.finish()[a6], 2);
    }

    Cli r = sluice({"inspect", iface_, a});
    ASSERT_EQ(r.status, 0) << r;
    auto row = tableRow(r.out, {net4, "per-net"});
    ASSERT_FALSE(row.empty()) << "no row for " << net4 << r;
    EXPECT_EQ(row.back(), "now") << r;
    r = sluice({"inspect", iface_, a6});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_FALSE(tableRow(r.out, {"fd00:5c::/64", "per-net"}).empty()) << r;
    Json in = sluiceJson({"inspect", iface_, a6, "--json"});
    ASSERT_TRUE(in.is_array() && in.size() == 1) << in.dump(2);
    EXPECT_EQ(in[0].value("source", ""), "fd00:5c::") << in.dump(2);
    EXPECT_EQ(in[0].value("prefix", 0), 64) << in.dump(2);

    r = sluice({"top", iface_});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, " " + net4 + " ")) << r;
    EXPECT_TRUE(contains(r.out, " fd00:5c::/64 ")) << r;
    Json top = sluiceJson({"top", iface_, "--json"});
    std::map<std::string, int> prefixes;
    for (const auto& e : top[iface_]["sources"])
        prefixes[e.value("source", "")] = e.value("prefix", -1);
    EXPECT_EQ(prefixes, (std::map<std::string, int>{{net4.substr(0, net4.find('/')), 24}, {"fd00:5c::", 64}}))
        << top.dump(2);
}

// Two attaches of one interface at once (a CLI attach while `sluice run`
// attaches): one wins, the other is told the interface is taken, and the
// winner's program and pins stay intact.
TEST_F(CliNet, ConcurrentAttachesLeaveTheWinnerIntact) {
    for (int round = 0; round < 3; round++) {
        auto first = std::async(std::launch::async, [&] { return sluice({"attach", iface_, "--mode", "native"}); });
        auto second = std::async(std::launch::async, [&] { return sluice({"attach", iface_, "--mode", "native"}); });
        const Cli a = first.get(), b = second.get();
        ASSERT_EQ((a.status == 0) + (b.status == 0), 1) << "round " << round << a << b;
        const Cli& loser = a.status == 0 ? b : a;
        EXPECT_EQ(loser.status, 2) << loser;
        EXPECT_TRUE(contains(loser.err, "already attached")) << loser;
        EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config")) << "the winner's pins are gone";
        EXPECT_TRUE(xdpAttached(receiver(), iface_));
        Cli st = sluice({"status", iface_});
        EXPECT_EQ(st.status, 0) << st;
        Cli d = sluice({"detach", iface_});
        ASSERT_EQ(d.status, 0) << d;
    }
}

// ---------------------------------------------------------------- apply, --dry-run

TEST_F(CliNet, ApplyAndDryRun) {
    attach();
    Cli r = sluice({"policy", "list", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "no policies")) << r;

    std::string a = tmp_.write("a.toml", header() + "[[allow]]\ncidr = \"198.18.200.0/24\"\n\n" +
                                             "[[deny]]\ncidr = \"" + src(2) + "\"\n\n" +
                                             udpPolicy("udp-ten", "7000", "10 per day") +
                                             "[[policy]]\nname = \"tcp-five\"\nproto = \"tcp\"\n"
                                             "ports = [8080, \"9000-9010\"]\nconnections = \"5 per day\"\n");
    std::string b = tmp_.write("b.toml", header() + "[[allow]]\ncidr = \"198.18.200.0/24\"\n\n" +
                                             udpPolicy("udp-ten", "7000", "20 per day", "monitor"));

    // --dry-run prints the changes and changes nothing.
    MapsSnapshot before = snapshotMaps(iface_, false);
    Json policiesBefore = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    r = sluice({"apply", iface_, "--config", a, "--dry-run"});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "+ policy udp-ten: udp 7000, packets 10 per 1 day, drop")) << r;
    EXPECT_TRUE(contains(r.out, "+ policy tcp-five: tcp 8080,9000-9010, connections 5 per 1 day, drop")) << r;
    EXPECT_TRUE(contains(r.out, "+ allow 198.18.200.0/24")) << r;
    EXPECT_TRUE(contains(r.out, "+ deny " + src(2) + "/32")) << r;
    EXPECT_TRUE(contains(r.out, "dry run: nothing applied")) << r;
    expectSameMaps(before, snapshotMaps(iface_, false), "by apply --dry-run");
    EXPECT_EQ(sluiceJson({"policy", "list", "--iface", iface_, "--json"}), policiesBefore);
    EXPECT_EQ(sendUdp(src(0), kUdpPort, 15), 15) << "the dry run installed a limit";

    // The real thing.
    r = sluice({"apply", iface_, "--config", a});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "+ policy udp-ten")) << r;
    EXPECT_TRUE(contains(r.out, "applied " + a + " to " + iface_ + ": 2 policies, 1 allow, 1 deny")) << r;
    Json list = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    const Json* p = findPolicy(list, iface_, "udp-ten");
    ASSERT_TRUE(p) << list.dump(2);
    EXPECT_EQ((*p)["proto"], "udp");
    EXPECT_EQ((*p)["ports"], Json::parse(R"([{"first":7000,"last":7000}])"));
    ASSERT_EQ((*p)["limits"].size(), 1u) << p->dump(2);
    EXPECT_EQ((*p)["limits"][0]["kind"], "packets");
    EXPECT_EQ((*p)["limits"][0]["count"], 10);
    EXPECT_EQ((*p)["limits"][0]["period_ns"].get<uint64_t>(), kDayNs);
    EXPECT_EQ((*p)["limits"][0]["burst"], 10);
    EXPECT_EQ((*p)["action"], "drop");
    const Json* t = findPolicy(list, iface_, "tcp-five");
    ASSERT_TRUE(t) << list.dump(2);
    EXPECT_EQ((*t)["ports"], Json::parse(R"([{"first":8080,"last":8080},{"first":9000,"last":9010}])"));
    EXPECT_EQ((*t)["limits"][0]["kind"], "connections");
    EXPECT_EQ(sluiceJson({"allow", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": [\"198.18.200.0/24\"]}"));
    EXPECT_EQ(sluiceJson({"deny", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": [\"" + src(2) + "/32\"]}"));
    EXPECT_EQ(sendUdp(src(1), kUdpPort, 15), 10) << "the applied limit is live";
    EXPECT_EQ(sendUdp(src(2), kUdpPort + 5, 3), 0) << "the applied deny entry is live";

    // The same config again changes nothing.
    r = sluice({"apply", iface_, "--config", a});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "no changes")) << r;

    // B: a changed limit and action, a removed policy, a removed deny entry.
    before = snapshotMaps(iface_, false);
    r = sluice({"apply", iface_, "--config", b, "--dry-run"});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "~ policy udp-ten: limits packets 10 per 1 day -> packets 20 per 1 day "
                                "(buckets reset), action drop -> monitor"))
        << r;
    EXPECT_TRUE(contains(r.out, "- policy tcp-five")) << r;
    EXPECT_TRUE(contains(r.out, "- deny " + src(2) + "/32")) << r;
    EXPECT_FALSE(contains(r.out, "allow")) << "the allow list did not change" << r;
    EXPECT_TRUE(contains(r.out, "dry run: nothing applied")) << r;
    expectSameMaps(before, snapshotMaps(iface_, false), "by apply --dry-run");
    r = sluice({"apply", iface_, "--config", b});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "1 policies, 1 allow, 0 deny")) << r;
    list = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    ASSERT_EQ(list[iface_].size(), 1u) << list.dump(2);
    EXPECT_EQ(list[iface_][0]["action"], "monitor");
    EXPECT_EQ(list[iface_][0]["limits"][0]["count"], 20);
    EXPECT_EQ(sluiceJson({"deny", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": []}"));
    EXPECT_EQ(sendUdp(src(2), kUdpPort, 25), 25) << "monitor passes everything";
    Json s = stats();
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "admitted"), 10u + 20u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "monitored"), 5u) << s.dump();
}

// `policy list` shows what a config installed beyond the limits: the ban,
// the new-source budget and the redirect target, read back from the kernel.
TEST_F(CliNet, PolicyListShowsBanNewSourcesAndRedirect) {
    attach();
    std::string cfg = tmp_.write("extras.toml", header() +
                                                    "[[policy]]\nname = \"guard\"\nproto = \"tcp\"\nports = [8080]\n"
                                                    "connections = \"5 per day\"\nban_after = \"20 per minute\"\n"
                                                    "ban = \"10 minutes\"\nnew_sources = \"100 per second\"\n\n" +
                                                    udpPolicy("redir", "7000", "5 per day", "redirect",
                                                              "redirect_to = \"" + iface_ + "\""));
    Cli r = sluice({"apply", iface_, "--config", cfg});
    ASSERT_EQ(r.status, 0) << r;

    r = sluice({"policy", "list", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_EQ(tableRow(r.out, {"POLICY"}),
              (std::vector<std::string>{"POLICY", "PROTO", "PORTS", "LIMITS", "ACTION", "KEY", "BAN", "NEW",
                                        "SOURCES"}))
        << r;
    EXPECT_EQ(tableRow(r.out, {"guard"}),
              (std::vector<std::string>{"guard", "tcp", "8080", "connections", "5", "per", "1", "day", "drop",
                                        "source", "/32", "/64", "after", "20", "per", "1", "minute,", "for",
                                        "10m00s", "100", "per", "1", "second"}))
        << r;
    EXPECT_EQ(tableRow(r.out, {"redir"}),
              (std::vector<std::string>{"redir", "udp", "7000", "packets", "5", "per", "1", "day", "redirect",
                                        "to", iface_, "source", "/32", "/64", "-", "-"}))
        << r;

    Json list = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    const Json* guard = findPolicy(list, iface_, "guard");
    const Json* redir = findPolicy(list, iface_, "redir");
    ASSERT_TRUE(guard && redir) << list.dump(2);
    EXPECT_EQ((*guard)["ban"]["after"]["count"], 20) << guard->dump(2);
    EXPECT_EQ((*guard)["ban"]["after"]["period_ns"].get<uint64_t>(), 60ULL * 1'000'000'000ULL);
    EXPECT_EQ((*guard)["ban"]["for_ns"].get<uint64_t>(), 600ULL * 1'000'000'000ULL);
    EXPECT_EQ((*guard)["new_sources"]["count"], 100);
    EXPECT_EQ((*guard)["new_sources"]["period_ns"].get<uint64_t>(), 1'000'000'000ULL);
    EXPECT_TRUE((*guard)["redirect_to"].is_null());
    EXPECT_EQ((*redir)["redirect_to"], iface_);
    EXPECT_TRUE((*redir)["ban"].is_null());
    EXPECT_TRUE((*redir)["new_sources"].is_null());
}

// `policy add` takes what a config's policy can have beyond its limits, and
// refuses the same mistakes with the same words, adding nothing.
TEST_F(CliNet, PolicyAddTakesBanNewSourcesAndRedirect) {
    attach();
    const std::vector<std::string> guard = {"policy", "add", "--iface", iface_, "--proto", "tcp", "--ports", "8080",
                                            "--connections", "5 per day"};
    auto with = [](std::vector<std::string> args, const std::vector<std::string>& more) {
        args.insert(args.end(), more.begin(), more.end());
        return args;
    };
    Cli r = sluice(with(guard, {"--name", "guard", "--ban-after", "20 per minute", "--ban", "10 minutes",
                                "--new-sources", "100 per second"}));
    ASSERT_EQ(r.status, 0) << r;
    r = sluice({"policy", "add", "--iface", iface_, "--name", "redir", "--proto", "udp", "--ports", "7000",
                "--packets", "5 per day", "--action", "redirect", "--redirect-to", iface_});
    ASSERT_EQ(r.status, 0) << r;
    Json list = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    const Json* g = findPolicy(list, iface_, "guard");
    const Json* d = findPolicy(list, iface_, "redir");
    ASSERT_TRUE(g && d) << list.dump(2);
    EXPECT_EQ((*g)["ban"]["after"]["count"], 20) << g->dump(2);
    EXPECT_EQ((*g)["ban"]["for_ns"].get<uint64_t>(), 600ULL * 1'000'000'000ULL);
    EXPECT_EQ((*g)["new_sources"]["count"], 100);
    EXPECT_EQ((*d)["action"], "redirect");
    EXPECT_EQ((*d)["redirect_to"], iface_);

    const struct {
        std::vector<std::string> more;
        std::string says;
    } mistakes[] = {
        {{"--name", "half", "--ban-after", "20 per minute"}, "ban_after and ban go together"},
        {{"--name", "half2", "--ban", "10 minutes"}, "ban_after and ban go together"},
        {{"--name", "glob", "--key", "global", "--new-sources", "1 per second"}, "new_sources needs key"},
        {{"--name", "two", "--new-sources", "1 per second; 5 per minute"}, "--new-sources takes one rate"},
        {{"--name", "when", "--ban-after", "20 per minute", "--ban", "soon"}, "soon"},
        {{"--name", "nowhere", "--action", "redirect"}, "redirect needs redirect_to"},
        {{"--name", "stray", "--redirect-to", iface_}, "redirect_to is only for action redirect"},
    };
    for (const auto& m : mistakes) {
        r = sluice(with(guard, m.more));
        EXPECT_EQ(r.status, 2) << r;
        EXPECT_TRUE(contains(r.err, m.says)) << r;
    }
    list = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    EXPECT_EQ(list[iface_].size(), 2u) << "a refused policy was added: " << list.dump(2);
}

// ---------------------------------------------------------------- policy, allow, deny

TEST_F(CliNet, PolicyAllowAndDenyEdits) {
    attach();
    const std::string a = src(0), b = src(1), c = src(2);

    Cli r = sluice({"policy", "add", "--iface", iface_, "--name", "udp-ten", "--proto", "udp", "--ports",
                    "7000", "--packets", "10 per day"});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "added policy udp-ten")) << r;
    r = sluice({"policy", "add", "--iface", iface_, "--name", "tcp-web", "--proto", "tcp", "--ports",
                "8080,9000-9010", "--connections", "5 per day", "--action", "monitor", "--ipv6-prefix",
                "128", "--scope", "fleet"});
    ASSERT_EQ(r.status, 0) << r;

    r = sluice({"policy", "list", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, iface_ + ":")) << r;
    EXPECT_EQ(tableRow(r.out, {"udp-ten"}),
              (std::vector<std::string>{"udp-ten", "udp", "7000", "packets", "10", "per", "1", "day", "drop",
                                        "source", "/32", "/64", "-", "-"}))
        << r;
    EXPECT_EQ(tableRow(r.out, {"tcp-web"}),
              (std::vector<std::string>{"tcp-web", "tcp", "8080,9000-9010", "connections", "5", "per", "1",
                                        "day", "monitor", "source", "/32", "/128", "-", "-"}))
        << r;
    Json list = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    ASSERT_EQ(list[iface_].size(), 2u) << list.dump(2);
    const Json* web = findPolicy(list, iface_, "tcp-web");
    ASSERT_TRUE(web) << list.dump(2);
    EXPECT_EQ((*web)["proto"], "tcp");
    EXPECT_EQ((*web)["ports"], Json::parse(R"([{"first":8080,"last":8080},{"first":9000,"last":9010}])"));
    EXPECT_EQ((*web)["limits"][0]["kind"], "connections");
    EXPECT_EQ((*web)["limits"][0]["count"], 5);
    EXPECT_EQ((*web)["action"], "monitor");
    EXPECT_EQ((*web)["ipv6_prefix"], 128);
    EXPECT_EQ((*web)["scope"], "fleet") << "read back from the kernel's policy";
    EXPECT_EQ((*findPolicy(list, iface_, "udp-ten"))["scope"], "host");

    r = sluice({"policy", "remove", "tcp-web", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "removed policy tcp-web")) << r;
    list = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    ASSERT_EQ(list[iface_].size(), 1u) << list.dump(2);
    EXPECT_EQ(list[iface_][0]["name"], "udp-ten");

    // allow B, deny C; both lists by human and JSON output.
    r = sluice({"allow", "add", b, "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "added " + b + "/32 to the allow list")) << r;
    r = sluice({"allow", "add", "198.18.200.0/24", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    r = sluice({"deny", "add", c, "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "added " + c + "/32 to the deny list")) << r;
    r = sluice({"deny", "add", "fd00:5c::dead/128", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    r = sluice({"allow", "list", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_EQ(lines(r.out), (std::vector<std::string>{iface_ + ":", "  " + b + "/32", "  198.18.200.0/24"})) << r;
    EXPECT_EQ(sluiceJson({"allow", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": [\"" + b + "/32\", \"198.18.200.0/24\"]}"));
    r = sluice({"deny", "list", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_EQ(lines(r.out), (std::vector<std::string>{iface_ + ":", "  " + c + "/32", "  fd00:5c::dead/128"}))
        << r;
    EXPECT_EQ(sluiceJson({"deny", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": [\"" + c + "/32\", \"fd00:5c::dead/128\"]}"));

    // They are live: A is limited, B allowed, C denied.
    EXPECT_EQ(sendUdp(a, kUdpPort, 20), 10);
    EXPECT_EQ(sendUdp(b, kUdpPort, 20), 20);
    EXPECT_EQ(sendUdp(c, kUdpPort, 5), 0);
    Json s = stats();
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "admitted"), 10u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "limited"), 10u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "allowed"), 20u) << s.dump();
    EXPECT_EQ(statTotal(s, iface_, "denied"), 5u) << s.dump();

    // An entry added twice is there once; inspect says why a listed source's
    // buckets do not decide its packets, the IPv6 deny entry included.
    r = sluice({"allow", "add", b, "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, b + "/32 is already on the allow list")) << r;
    EXPECT_EQ(sluiceJson({"allow", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": [\"" + b + "/32\", \"198.18.200.0/24\"]}"));
    r = sluice({"inspect", iface_, b});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, b + " is on the allow list (" + b + "/32): never limited")) << r;
    EXPECT_FALSE(contains(r.out, "every limit is full")) << r;
    r = sluice({"inspect", iface_, "fd00:5c::dead"});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "is on the deny list (fd00:5c::dead/128): every packet of it is dropped")) << r;
    Json in = sluiceJson({"inspect", iface_, c, "--json"});
    ASSERT_TRUE(in.is_array() && !in.empty()) << in.dump(2);
    EXPECT_EQ(in[0]["listed"], Json::parse("{\"list\": \"deny\", \"cidr\": \"" + c + "/32\"}")) << in.dump(2);
    in = sluiceJson({"inspect", iface_, a, "--json"});
    ASSERT_TRUE(in.is_array() && !in.empty()) << in.dump(2);
    EXPECT_TRUE(in[0]["listed"].is_null()) << in.dump(2);

    // Removing the entries makes B an ordinary source and lets C through.
    r = sluice({"allow", "remove", b, "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "removed " + b + "/32 from the allow list")) << r;
    r = sluice({"deny", "remove", c + "/32", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "removed " + c + "/32 from the deny list")) << r;
    EXPECT_EQ(sluiceJson({"allow", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": [\"198.18.200.0/24\"]}"));
    EXPECT_EQ(sluiceJson({"deny", "list", "--iface", iface_, "--json"}),
              Json::parse("{\"" + iface_ + "\": [\"fd00:5c::dead/128\"]}"));
    EXPECT_EQ(sendUdp(b, kUdpPort, 15), 10) << "B is limited once off the allow list";
    EXPECT_EQ(sendUdp(c, kUdpPort, 5), 5) << "C passes once off the deny list";

    // Without the policy the port is unpoliced.
    r = sluice({"policy", "remove", "udp-ten", "--iface", iface_});
    EXPECT_EQ(r.status, 0) << r;
    r = sluice({"policy", "list", "--iface", iface_});
    EXPECT_TRUE(contains(r.out, "no policies")) << r;
    EXPECT_EQ(sendUdp(a, kUdpPort, 30), 30);
}

// Without --iface an edit goes to every attached interface; one that an
// interface refuses changes none of them. Run in a bpffs of its own (a
// private mount namespace), so "every interface" is this test's two.
TEST_F(CliNet, EditOfEveryInterfaceRefusedByOneChangesNone) {
    const std::string other = bed_.addClient(1, 1).receiverIf;
    // In pin order (sorted by name), the edit reaches `first` before `last`.
    const std::string first = std::min(iface_, other), last = std::max(iface_, other);
    const std::string dir = tmp_.path();
    std::string script = "mount -t bpf bpf /sys/fs/bpf || exit 99\nS=" + sluiceBinary() + "\n";
    int step = 0;
    auto add = [&](const std::string& args) {
        std::string out = dir + "/" + std::to_string(step++);
        script += "$S " + args + " >" + out + ".out 2>" + out + ".err; echo $? >" + out + ".rc\n";
    };
    add("attach " + first + " --mode native");  // step 0
    add("attach " + last + " --mode native");
    add("policy add --iface " + last + " --name other --proto udp --ports 7100 --packets '5 per day'");
    add("allow add 198.18.200.0/24 --iface " + first);
    add("policy list --json");  // step 4
    add("allow list --json");
    add("policy add --name p --proto udp --ports 7100 --packets '5 per day'");  // step 6: last refuses
    add("allow remove 198.18.200.0/24");                                       // step 7: last refuses
    add("policy list --json");  // step 8
    add("allow list --json");
    add("detach " + first);  // step 10
    add("detach " + last);
    CmdResult c = runCmd({"nsenter", "--net=" + receiver().path(), "unshare", "--mount", "--propagation",
                          "private", "sh", "-c", script});
    ASSERT_EQ(c.status, 0) << c.err;
    auto result = [&](int i) {
        std::string base = dir + "/" + std::to_string(i);
        return Cli{"step " + std::to_string(i), std::stoi(readFile(base + ".rc")), readFile(base + ".out"),
                   readFile(base + ".err")};
    };
    for (int i : {0, 1, 2, 3, 4, 5, 10, 11})
        EXPECT_EQ(result(i).status, 0) << result(i);
    Cli r = result(6);
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_TRUE(contains(r.err, "already covered by policy 'other'")) << r;
    r = result(7);
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_TRUE(contains(r.err, "not on the allow list")) << r;
    EXPECT_EQ(Json::parse(result(8).out), Json::parse(result(4).out)) << "a refused policy add changed a list";
    EXPECT_EQ(Json::parse(result(9).out), Json::parse(result(5).out)) << "a refused allow remove changed a list";
}

// ---------------------------------------------------------------- stats, top, inspect, reset

TEST_F(CliNet, StatsTopInspectReset) {
    std::string cfg = tmp_.write("c.toml", header() + udpPolicy("udp-ten", "7000", "10 per day"));
    attach(cfg);
    const std::string a = src(0), b = src(1), c = src(2);

    // B first, so A is not first in the table by arrival.
    EXPECT_EQ(sendUdp(b, kUdpPort, 3), 3);
    Json s0 = stats();
    EXPECT_EQ(sendUdp(a, kUdpPort, 50), 10);
    Json s = stats();
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "admitted") - statOf(s0, iface_, "udp-ten", "admitted"), 10u);
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "limited") - statOf(s0, iface_, "udp-ten", "limited"), 40u);
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "admitted"), 13u) << s.dump(2);
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "limited"), 40u) << s.dump(2);
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "admitted", "bytes"), 13 * kFrame4) << s.dump(2);
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "limited", "bytes"), 40 * kFrame4) << s.dump(2);
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "monitored"), 0u);

    Cli r = sluice({"stats", iface_});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_FALSE(tableRow(r.out, {"POLICY", "VERDICT", "PACKETS", "BYTES"}).empty()) << r;
    EXPECT_EQ(tableRow(r.out, {"udp-ten", "admitted"}),
              (std::vector<std::string>{"udp-ten", "admitted", "13", std::to_string(13 * kFrame4)}))
        << r;
    EXPECT_EQ(tableRow(r.out, {"udp-ten", "limited"}),
              (std::vector<std::string>{"udp-ten", "limited", "40", std::to_string(40 * kFrame4)}))
        << r;

    EXPECT_EQ(sluiceJson({"status", iface_, "--json"})[0].value("tracked_sources", -1), 2);

    // top: the over-limit source first, in the table (the first row that
    // names a source) and in JSON.
    r = sluice({"top", iface_});
    EXPECT_EQ(r.status, 0) << r;
    {
        std::vector<std::string> order;
        for (const auto& l : lines(r.out))
            for (const auto& w : words(l))
                if (w == a || w == b)
                    order.push_back(w);
        EXPECT_EQ(order, (std::vector<std::string>{a, b})) << "the over-limit source is not first" << r;
        EXPECT_TRUE(contains(r.out, "udp-ten")) << r;
    }
    Json top = sluiceJson({"top", iface_, "--json"});
    Json list = topSources(top, iface_);
    ASSERT_EQ(list.size(), 2u) << top.dump(2);
    EXPECT_EQ(list[0]["source"], a) << top.dump(2);
    EXPECT_EQ(list[0]["policy"], "udp-ten");
    EXPECT_EQ(list[0]["limits"][0]["remaining"], 0);
    EXPECT_EQ(list[1]["source"], b);
    EXPECT_EQ(list[1]["limits"][0]["remaining"], 7);
    top = sluiceJson({"top", iface_, "-n", "1", "--json"});
    list = topSources(top, iface_);
    ASSERT_EQ(list.size(), 1u) << top.dump(2);
    EXPECT_EQ(list[0]["source"], a);
    top = sluiceJson({"top", iface_, "--policy", "udp-ten", "--json"});
    EXPECT_EQ(topSources(top, iface_).size(), 2u) << top.dump(2);
    // An unknown policy: an empty list, or (better) a usage error.
    r = sluice({"top", iface_, "--policy", "no-such-policy", "--json"});
    if (r.status == 0)
        EXPECT_EQ(topSources(Json::parse(r.out), iface_).size(), 0u) << r;
    else
        EXPECT_TRUE(r.status == 2 && contains(r.err, "no-such-policy")) << r;

    // A policy without sources: the table's count stays, the list says whose is empty.
    r = sluice({"policy", "add", "--iface", iface_, "--name", "idle", "--proto", "udp", "--ports", "7999",
                "--packets", "5 per day"});
    ASSERT_EQ(r.status, 0) << r;
    r = sluice({"top", iface_, "--policy", "idle"});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "2 tracked sources")) << r;
    EXPECT_TRUE(contains(r.out, "no tracked sources under policy idle")) << r;
    ASSERT_EQ(sluice({"policy", "remove", "idle", "--iface", iface_}).status, 0);

    // inspect: remaining 0 and when the next unit comes (86400 s / 10).
    r = sluice({"inspect", iface_, a});
    EXPECT_EQ(r.status, 0) << r;
    auto row = tableRow(r.out, {a, "udp-ten"});
    ASSERT_FALSE(row.empty()) << r;
    ASSERT_GE(row.size(), 2u);
    EXPECT_EQ(row[row.size() - 2], "0") << "REMAINING" << r;
    EXPECT_TRUE(std::regex_match(row.back(), std::regex("2h2[34]m"))) << "NEXT UNIT IN" << r;
    Json in = sluiceJson({"inspect", iface_, a, "--json"});
    ASSERT_TRUE(in.is_array() && in.size() == 1) << in.dump(2);
    EXPECT_EQ(in[0]["policy"], "udp-ten");
    EXPECT_EQ(in[0]["source"], a);
    ASSERT_EQ(in[0]["limits"].size(), 1u) << in.dump(2);
    EXPECT_EQ(in[0]["limits"][0]["remaining"], 0);
    uint64_t retry = in[0]["limits"][0]["retry_after_ns"].get<uint64_t>();
    EXPECT_GT(retry, kDayNs / 10 - 60ULL * 1'000'000'000ULL) << in.dump(2);
    EXPECT_LE(retry, kDayNs / 10) << in.dump(2);
    in = sluiceJson({"inspect", iface_, b, "--json"});
    EXPECT_EQ(in[0]["limits"][0]["remaining"], 7);
    EXPECT_EQ(in[0]["limits"][0]["retry_after_ns"], 0);
    r = sluice({"inspect", iface_, b});
    row = tableRow(r.out, {b, "udp-ten"});
    ASSERT_FALSE(row.empty()) << r;
    EXPECT_EQ(row.back(), "now") << r;
    r = sluice({"inspect", iface_, c});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, c + " has no bucket state")) << r;
    in = sluiceJson({"inspect", iface_, c, "--json"});
    ASSERT_EQ(in.size(), 1u) << in.dump(2);
    EXPECT_TRUE(in[0]["limits"].is_null()) << in.dump(2);

    // reset ADDRESS: A gets its burst again; B keeps its state.
    r = sluice({"reset", iface_, a});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "forgot 1 bucket state, lifted 0 bans")) << r;
    EXPECT_TRUE(sluiceJson({"inspect", iface_, a, "--json"})[0]["limits"].is_null());
    EXPECT_EQ(sluiceJson({"inspect", iface_, b, "--json"})[0]["limits"][0]["remaining"], 7);
    EXPECT_EQ(sendUdp(a, kUdpPort, 15), 10) << "a reset source has its burst again";
    s = stats();
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "admitted"), 23u) << s.dump(2);
    EXPECT_EQ(statOf(s, iface_, "udp-ten", "limited"), 45u) << s.dump(2);

    // reset --all, which also rebuilds the table's presence filter: the
    // bits of A and B (promoted) go with their states.
    Json filter = sluiceJson({"status", iface_, "--json"})[0]["source_filter"];
    ASSERT_TRUE(filter.is_object()) << filter.dump();
    EXPECT_GE(filter.value("set", 0), 1) << filter.dump();
    EXPECT_LE(filter.value("set", 0), 2) << filter.dump();
    EXPECT_EQ(filter.value("probation_set", -1), 0) << "no new_sources: the probation filter is unused\n"
                                                    << filter.dump();
    r = sluice({"reset", iface_, "--all"});
    EXPECT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "forgot 2 bucket states, lifted 0 bans")) << r;
    EXPECT_EQ(sluiceJson({"status", iface_, "--json"})[0].value("tracked_sources", -1), 0);
    filter = sluiceJson({"status", iface_, "--json"})[0]["source_filter"];
    EXPECT_EQ(filter.value("set", -1), 0) << filter.dump();
    EXPECT_EQ(filter.value("probation_set", -1), 0) << filter.dump();
    EXPECT_TRUE(filter.value("on", false)) << filter.dump();
    EXPECT_TRUE(topSources(sluiceJson({"top", iface_, "--json"}), iface_).empty());
    r = sluice({"top", iface_});
    EXPECT_TRUE(contains(r.out, "no tracked sources")) << r;
    EXPECT_EQ(sendUdp(a, kUdpPort, 12), 10);
    EXPECT_EQ(sendUdp(b, kUdpPort, 12), 10);
}

// ---------------------------------------------------------------- bad command lines

TEST_F(CliNet, BadCommandLinesExit2AndChangeNothing) {
    std::string cfg = tmp_.write("c.toml", header() + "[[allow]]\ncidr = \"198.18.200.0/24\"\n\n" +
                                               "[[deny]]\ncidr = \"fd00:5c::dead\"\n\n" +
                                               udpPolicy("udp-ten", "7000", "10 per day"));
    attach(cfg);
    auto lists = [&] {
        return std::vector<Json>{sluiceJson({"policy", "list", "--iface", iface_, "--json"}),
                                 sluiceJson({"allow", "list", "--iface", iface_, "--json"}),
                                 sluiceJson({"deny", "list", "--iface", iface_, "--json"})};
    };
    const auto listsBefore = lists();
    const MapsSnapshot mapsBefore = snapshotMaps(iface_, false);
    const std::string nosuch = "slnone" + std::to_string(getpid() % 100000);
    const std::string missing = tmp_.path() + "/missing.toml";
    // A name that is a path: detach once emptied whatever directory it reached.
    const std::string victim = tmp_.write("victim", "keep me");
    const std::string traversal = "../../../.." + tmp_.path();
    // Loads, but its install fails: the dry run must say so too.
    const std::string redirect =
        tmp_.write("redirect.toml", header() + udpPolicy("redir", "7100", "5 per day", "redirect",
                                                         "redirect_to = \"" + nosuch + "\""));

    struct Case {
        std::vector<std::string> args;
        std::string message;  // in stderr
    };
    const std::vector<Case> cases = {
        // unknown interfaces
        {{"attach", nosuch, "--mode", "native"}, "unknown interface '" + nosuch + "'"},
        {{"status", nosuch}, "not attached to " + nosuch},
        {{"apply", nosuch, "--config", cfg}, "not attached to " + nosuch},
        {{"policy", "add", "--iface", nosuch, "--name", "p", "--proto", "udp", "--ports", "7100", "--packets",
          "5 per day"},
         "not attached to " + nosuch},
        {{"allow", "add", "10.1.0.0/16", "--iface", nosuch}, "not attached to " + nosuch},
        {{"stats", nosuch}, "not attached to " + nosuch},
        {{"reset", nosuch, "--all"}, "not attached to " + nosuch},
        // interface names that are paths
        {{"detach", traversal}, "invalid interface name '" + traversal + "'"},
        {{"status", ".."}, "invalid interface name '..'"},
        {{"policy", "list", "--iface", traversal}, "invalid interface name"},
        // malformed CIDRs and addresses
        {{"allow", "add", "10.0.0.300/24", "--iface", iface_}, "10.0.0.300"},
        {{"deny", "add", "10.0.0.300/24", "--iface", iface_}, "10.0.0.300"},
        {{"deny", "add", "2001:db8::/129", "--iface", iface_}, "/129"},
        {{"allow", "add", "2001:db8::/129", "--iface", iface_}, "/129"},
        {{"allow", "add", "10.0.0.0/33", "--iface", iface_}, "/33"},
        {{"allow", "remove", "10.0.0.300/24", "--iface", iface_}, "10.0.0.300"},
        {{"allow", "remove", "10.9.9.0/24", "--iface", iface_}, "not on the allow list"},
        {{"deny", "remove", "10.9.9.0/24", "--iface", iface_}, "not on the deny list"},
        {{"inspect", iface_, "not-an-address"}, "not-an-address"},
        {{"reset", iface_, "300.1.1.1"}, "300.1.1.1"},
        // ports
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "70000", "--packets",
          "5 per day"},
         "70000"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "0", "--packets",
          "5 per day"},
         "'0'"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "9010-9000",
          "--packets", "5 per day"},
         "9010-9000"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "7000", "--packets",
          "5 per day"},
         "already covered by policy 'udp-ten'"},
        // policies
        {{"policy", "remove", "no-such-policy", "--iface", iface_}, "no policy named 'no-such-policy'"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "7100", "--packets",
          "5 per sec"},
         "unknown unit 'sec'"},
        {{"policy", "add", "--iface", iface_, "--name", "udp-ten", "--proto", "udp", "--ports", "7100",
          "--packets", "5 per day"},
         "a policy named 'udp-ten' exists"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "7100"},
         "--connections, --packets or --bytes"},
        // Not UTF-8: it would break every --json output and metric label.
        {{"policy", "add", "--iface", iface_, "--name", "bad\xff", "--proto", "udp", "--ports", "7100",
          "--packets", "5 per day"},
         "a policy name must be UTF-8 text"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "7100",
          "--connections", "5 per day"},
         "tcp"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "7100", "--packets",
          "5 per day", "--action", "respond"},
         "respond needs proto tcp"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "icmp", "--ports", "7100", "--packets",
          "5 per day"},
         "--proto"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--proto", "udp", "--ports", "7100", "--packets",
          "5 per day", "--ipv4-prefix", "33"},
         "--ipv4-prefix"},
        // unknown options, missing arguments
        {{"status", iface_, "--bogus"}, "--bogus"},
        {{"stats", iface_, "--frobnicate"}, "--frobnicate"},
        {{"top", iface_, "-n", "0"}, "-n: Value 0 not in range 1"},
        {{"attach", iface_, "--mode", "turbo"}, "turbo"},
        // --max-sources as bounded as the config's max_sources: 0 is not "the default"
        {{"attach", nosuch, "--max-sources", "0"}, "--max-sources: Value 0 not in range 1 to 2147483647"},
        {{"attach", nosuch, "--max-sources", "2147483648"}, "not in range 1 to 2147483647"},
        {{"policy", "list", "--iface", iface_, "--colour"}, "--colour"},
        {{"frobnicate"}, "subcommand"},  // CLI11 does not name the unknown verb
        {{}, "subcommand"},
        {{"policy"}, "subcommand"},
        {{"inspect", iface_}, "ADDRESS is required"},
        {{"apply", iface_}, "--config is required"},
        {{"policy", "add", "--iface", iface_, "--ports", "7100", "--packets", "5 per day"}, "--name is required"},
        {{"policy", "add", "--iface", iface_, "--name", "p", "--packets", "5 per day"}, "--ports is required"},
        {{"allow", "add", "--iface", iface_}, "CIDR is required"},
        {{"detach"}, "IFACE is required"},
        // reset needs exactly one of ADDRESS and --all
        {{"reset", iface_}, "give either an ADDRESS or --all"},
        {{"reset", iface_, src(0), "--all"}, "give either an ADDRESS or --all"},
        // config files that cannot be read
        {{"apply", iface_, "--config", missing}, "cannot read config " + missing},
        {{"apply", iface_, "--config", missing, "--dry-run"}, "cannot read config " + missing},
        // refused by the install, not the config reader: no change listed
        {{"apply", iface_, "--config", redirect}, "redirect_to interface '" + nosuch + "' does not exist"},
        {{"apply", iface_, "--config", redirect, "--dry-run"},
         "redirect_to interface '" + nosuch + "' does not exist"},
    };
    for (const auto& c : cases) {
        Cli r = sluice(c.args);
        EXPECT_EQ(r.status, 2) << r;
        EXPECT_EQ(r.out, "") << "an error must not print to stdout" << r;
        EXPECT_FALSE(r.err.empty()) << r;
        EXPECT_TRUE(contains(r.err, c.message)) << "expected \"" << c.message << "\" in stderr" << r;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n') <= 3, true) << "a clear message, not a dump" << r;
    }
    EXPECT_FALSE(pathExists(pinDirOf(nosuch)));
    // --watch redraws a table with terminal escapes where a script expects
    // JSON; refused like the rows above (timeout: unrefused, it runs on).
    CmdResult w = runCmd({"timeout", "5", "nsenter", "--net=" + receiver().path(), sluiceBinary(), "stats",
                          iface_, "--json", "--watch", "1"});
    EXPECT_EQ(w.status, 2) << w.out << w.err;
    EXPECT_EQ(w.out, "");
    EXPECT_TRUE(contains(w.err, "--json excludes --watch") || contains(w.err, "--watch excludes --json")) << w.err;
    EXPECT_EQ(readFile(victim), "keep me") << "detach removed files outside " << SLUICE_PIN_ROOT;
    EXPECT_EQ(lists(), listsBefore) << "a refused command changed the live ruleset";
    expectSameMaps(mapsBefore, snapshotMaps(iface_, false), "by a refused command");
    EXPECT_EQ(sendUdp(src(0), kUdpPort, 12), 10) << "the installed policy still works";
}

// ---------------------------------------------------------------- atomic apply

// Each bad config marks the line its error must point at with "# <-".
TEST_F(CliNet, BadConfigsChangeNothing) {
    const std::string h = header();
    const std::string good = h + "[[allow]]\ncidr = \"198.18.200.0/24\"\n\n" +
                             "[[allow]]\ncidr = \"fd00:5c::beef/128\"\n\n" +
                             "[[deny]]\ncidr = \"" + src(2) + "\"\n\n" +
                             "[[deny]]\ncidr = \"fd00:5c::dead/128\"\n\n" +
                             udpPolicy("udp-ten", "7000", "10 per day") +
                             "[[policy]]\nname = \"tcp-web\"\nproto = \"tcp\"\nports = [8080, \"9000-9010\"]\n"
                             "connections = \"5 per minute; 100 per day\"\npackets = \"50/second burst 100\"\n";
    attach();
    Cli r = sluice({"apply", iface_, "--config", tmp_.write("good.toml", good)});
    ASSERT_EQ(r.status, 0) << r;

    const std::string p = "[[policy]]\nname = \"p\"\nproto = \"udp\"\n";
    struct Case {
        std::string name, text, message;
    };
    const std::vector<Case> cases = {
        {"unknown-key", h + udpPolicy("udp-ten", "7000", "10 per day", "drop", "colour = \"red\"  # <-"),
         "unknown key 'colour'"},
        {"unknown-top-key", "verbose = true  # <-\n" + h, "unknown key 'verbose'"},
        {"unknown-sluice-key", "[sluice]\nmetric = \"127.0.0.1:9464\"  # <-\n", "did you mean 'metrics'"},
        {"ports-not-array", h + p + "ports = 7000  # <-\npackets = \"10 per day\"\n", "ports must be an array"},
        {"rate-not-string", h + p + "ports = [7000]\npackets = 10  # <-\n", "must be a string"},
        {"name-not-string", h + "[[policy]]\nname = 5  # <-\nproto = \"udp\"\nports = [7000]\npackets = \"1 per day\"\n",
         "name must be a string"},
        {"port-0", h + p + "ports = [0]  # <-\npackets = \"10 per day\"\n", "port 0"},
        {"port-70000", h + p + "ports = [70000]  # <-\npackets = \"10 per day\"\n", "port 70000"},
        {"reversed-range", h + p + "ports = [\"9000-8000\"]  # <-\npackets = \"10 per day\"\n", "reversed"},
        {"range-garbage", h + p + "ports = [\"80-http\"]  # <-\npackets = \"10 per day\"\n", "80-http"},
        {"empty-ports", h + p + "ports = []  # <-\npackets = \"10 per day\"\n", "ports must not be empty"},
        {"bad-cidr4", h + "[[allow]]\ncidr = \"10.0.0.300/24\"  # <-\n", "10.0.0.300"},
        {"bad-cidr6", h + "[[deny]]\ncidr = \"2001:db8::/129\"  # <-\n", "/129"},
        {"list-without-cidr", h + "[[allow]]  # <-\ncomment = \"x\"\n", "needs a cidr"},
        {"two-policies-one-port",
         h + udpPolicy("udp-ten", "7000", "10 per day") +
             "[[policy]]\nname = \"other\"\nproto = \"udp\"\nports = [\"6990-7010\"]  # <-\npackets = \"1 per day\"\n",
         "already covered by policy 'udp-ten'"},
        {"duplicate-name",
         h + udpPolicy("udp-ten", "7000", "10 per day") +
             "[[policy]]\nname = \"udp-ten\"  # <-\nproto = \"udp\"\nports = [7001]\npackets = \"1 per day\"\n",
         "defined twice"},
        {"bad-rate-unit", h + p + "ports = [7000]\npackets = \"10 per fortnight\"  # <-\n", "fortnight"},
        {"bad-rate-sec", h + p + "ports = [7000]\npackets = \"5 per sec\"  # <-\n", "'sec'"},
        {"zero-rate", h + p + "ports = [7000]\npackets = \"0 per day\"  # <-\n", "admits nothing"},
        {"burst-overflow", h + p + "ports = [7000]\npackets = \"1 per year burst 99999999999999\"  # <-\n", "2^62"},
        {"five-limits",
         h + "[[policy]]  # <-\nname = \"p\"\nproto = \"tcp\"\nports = [7000]\n"
             "connections = \"1 per second; 10 per minute\"\npackets = \"100 per second; 1000 per minute\"\n"
             "bytes = \"1 MB per second\"\n",
         "at most 4"},
        {"connections-on-udp", h + p + "ports = [7000]\nconnections = \"10 per day\"  # <-\n", "tcp"},
        {"no-limits", h + "[[policy]]  # <-\nname = \"p\"\nproto = \"udp\"\nports = [7000]\n", "no limits"},
        // respond is for TCP.
        {"respond-on-udp", h + p + "ports = [7000]\npackets = \"1 per day\"\naction = \"respond\"  # <-\n",
         "respond"},
        {"unknown-action", h + p + "ports = [7000]\npackets = \"1 per day\"\naction = \"shout\"  # <-\n", "shout"},
        {"ban-after-without-ban",
         h + p + "ports = [7000]\npackets = \"1 per day\"\nban_after = \"20 per minute\"  # <-\n", "ban"},
        {"fleet-scope-without-fleet", h + p + "ports = [7000]\npackets = \"1 per day\"\nscope = \"fleet\"  # <-\n",
         "needs a [fleet] section"},
        {"fleet-without-redis", h + "[fleet]  # <-\nnode = \"api-1\"\n", "[fleet] needs redis"},
        {"toml-syntax", h + "[[policy]]\nname = = \"p\"  # <-\n", ""},
        {"toml-unclosed-table", h + "[[policy]  # <-\nname = \"p\"\n", ""},
        {"missing-name", h + "[[policy]]  # <-\nproto = \"udp\"\nports = [7000]\npackets = \"1 per day\"\n",
         "needs a name"},
        {"missing-proto", h + "[[policy]]  # <-\nname = \"p\"\nports = [7000]\npackets = \"1 per day\"\n",
         "needs a proto"},
        {"name-too-long",
         h + "[[policy]]\nname = \"" + std::string(60, 'n') + "\"  # <-\nproto = \"udp\"\nports = [7000]\n"
             "packets = \"1 per day\"\n",
         "longer than"},
        {"bad-proto", h + "[[policy]]\nname = \"p\"\nproto = \"icmp\"  # <-\nports = [7000]\npackets = \"1 per day\"\n",
         "icmp"},
        {"bad-key-mode", h + p + "ports = [7000]\npackets = \"1 per day\"\nkey = \"weird\"  # <-\n", "weird"},
        {"bad-prefix", h + p + "ports = [7000]\npackets = \"1 per day\"\nipv4_prefix = 33  # <-\n", "ipv4_prefix"},
        {"zero-max-sources", "[sluice]\ninterfaces = [\"" + iface_ + "\"]\nmax_sources = 0  # <-\n", "max_sources"},
        {"bad-interface-name", "[sluice]\ninterfaces = [\"bad/name\"]  # <-\n", "bad/name"},
        {"interfaces-not-array", "[sluice]\ninterfaces = \"" + iface_ + "\"  # <-\n", "must be an array"},
        {"bad-metrics", "[sluice]\nmetrics = \"example.com:80\"  # <-\n", "example.com"},
    };
    ASSERT_GE(cases.size(), 20u);

    const auto t0 = std::chrono::steady_clock::now();
    const MapsSnapshot before = snapshotMaps(iface_, true);  // all five maps, bpftool
    const Json policiesBefore = sluiceJson({"policy", "list", "--iface", iface_, "--json"});
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        // The line the error must name: the one marked "# <-".
        int want = 0, n = 0;
        for (const auto& l : lines(c.text)) {
            n++;
            if (contains(l, "# <-"))
                want = n;
        }
        ASSERT_GT(want, 0) << "case without a marked line";
        std::string path = tmp_.write(c.name + ".toml", c.text);
        for (bool dry : {false, true}) {
            std::vector<std::string> args = {"apply", iface_, "--config", path};
            if (dry)
                args.push_back("--dry-run");
            r = sluice(args);
            EXPECT_EQ(r.status, 2) << r;
            EXPECT_EQ(r.out, "") << "nothing on stdout for a rejected config" << r;
            std::smatch m;
            std::regex where("sluice: " + std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                             R"(:(\d+):(\d+): (.*))");
            if (!std::regex_search(r.err, m, where)) {
                ADD_FAILURE() << "no FILE:LINE:COL: in the message" << r;
                continue;
            }
            EXPECT_EQ(std::stoi(m[1]), want) << "wrong line\n" << c.text << r;
            EXPECT_GE(std::stoi(m[2]), 1) << r;
            EXPECT_TRUE(contains(m[3], c.message)) << "expected \"" << c.message << "\"" << r;
        }
        // The live ruleset, byte for byte (the policy and port arrays through
        // their mappings here; bpftool dumps them at the start and the end).
        expectSameMaps(before, snapshotMaps(iface_, false), "by a rejected config");
    }
    expectSameMaps(before, snapshotMaps(iface_, true), "by the rejected configs");
    EXPECT_EQ(sluiceJson({"policy", "list", "--iface", iface_, "--json"}), policiesBefore);
    std::printf("[slit] %zu bad configs, each applied and dry-run, maps compared: %.1f s\n", cases.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    // The good config is still what the data path enforces.
    EXPECT_EQ(sendUdp(src(0), kUdpPort, 15), 10);
    EXPECT_EQ(sendUdp(src(2), kUdpPort + 50, 5), 0) << "the deny entry is still live";
}

// ---------------------------------------------------------------- apply under traffic

// A flood from one source to port P while `apply` flips between A (policy
// "pa" on P, monitor) and B (policy "pb" on P, drop), both "1 per day". A
// packet judged by a mix of generations would show as a LIMITED count under
// "pa", a MONITORED one under "pb", a second admitted packet within one
// epoch (each reintroduction is a new policy with a fresh bucket), or a
// count outside "pa"/"pb". Every frame that reached the interface is counted
// exactly once. "steady" (port S, in both configs) keeps its counters and
// its buckets through every flip. The flood runs on CPU 1 and the applies on
// CPU 0, so installs and packets overlap: a build of sluice that rewrites the
// live generation in place instead of flipping fails this test (tried).
TEST_F(CliNet, ApplyUnderTrafficIsAtomic) {
    const std::string flooder = src(0), steadySrc = src(1), steadySrc2 = src(2);
    const std::string steady = udpPolicy("steady", std::to_string(kSteadyPort), "5 per day");
    const std::string a = tmp_.write("a.toml", header() + "[[allow]]\ncidr = \"198.18.77.0/24\"\n\n" +
                                                   udpPolicy("pa", std::to_string(kUdpPort), "1 per day", "monitor") +
                                                   steady);
    const std::string b = tmp_.write("b.toml", header() + "[[deny]]\ncidr = \"198.18.78.0/24\"\n\n" +
                                                   udpPolicy("pb", std::to_string(kUdpPort), "1 per day", "drop") +
                                                   steady);
    attach(a);
    EXPECT_EQ(sendUdp(steadySrc, kSteadyPort, 8), 5);
    Json s = stats();
    ASSERT_EQ(statOf(s, iface_, "steady", "admitted"), 5u);
    ASSERT_EQ(statOf(s, iface_, "steady", "limited"), 3u);

    StatsReader raw(iface_);
    ASSERT_TRUE(raw.ok());
    auto slots = slotsByName();
    ASSERT_TRUE(slots.count("pa") && slots.count("steady"));
    const uint32_t steadySlot = slots["steady"];
    // The client's transmit counters bracket each read of the data path's:
    // a frame its stack sends on its own in between (an IPv6 multicast
    // listener report) may land on either side.
    const auto txBefore1 = clientTx();
    const VerdictPackets slot0Before = raw.slot(SLUICE_SLOT_NONE);
    const VerdictPackets steadyBefore = raw.slot(steadySlot);
    const VerdictPackets paBefore = raw.slot(slots["pa"]);
    const auto txBefore2 = clientTx();
    VerdictPackets steadyLast = steadyBefore;

    struct Epoch {
        std::string policy;
        uint32_t slot;
        VerdictPackets counts{};
    };
    std::vector<Epoch> epochs;
    Epoch current{"pa", slots["pa"], {}};

    const uint64_t rcvbufBefore = udpRcvbufErrors();
    UdpCounter server(receiver(), dst(), kUdpPort);
    std::atomic<bool> stop{false};
    std::atomic<int> sent{0};
    std::atomic<bool> senderDone{false};
    // On two CPUs, the flood (and with it, on veth, the XDP program) runs on
    // CPU 1 and every `apply` on CPU 0, so installs and packets truly overlap.
    const bool twoCpus = std::thread::hardware_concurrency() >= 2;
    auto pinTo = [](int cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    };
    cpu_set_t savedAffinity;
    pthread_getaffinity_np(pthread_self(), sizeof savedAffinity, &savedAffinity);
    // A steady 10000 datagrams a second until the flips are done, at most
    // 60000, at most 10 s: 40 flips take ~2.6 s here. A fixed 2 s of flood
    // ended before the 30th flip whenever an apply took over ~45 ms.
    constexpr int kMaxDatagrams = 60000;
    constexpr int64_t kGapNs = 100'000;
    std::thread sender([&] {
        if (twoCpus)
            pinTo(1);
        const int64_t start = monoNs(), deadline = start + 10'000'000'000LL;
        while (!stop && sent < kMaxDatagrams && monoNs() < deadline) {
            int due = std::min<int64_t>((monoNs() - start) / kGapNs + 1, kMaxDatagrams) - sent;
            if (due > 0)
                sent += udpSend(client(), flooder, dst(), kUdpPort, std::min(due, 64), 64, Millis(1000));
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
        senderDone = true;
    });
    for (int i = 0; i < 200 && sent < 300; i++)
        std::this_thread::sleep_for(Millis(5));

    if (twoCpus)
        pinTo(0);  // inherited by the CLI processes
    int flips = 0, steadyExtra = 0;
    std::vector<double> applyMs;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 1; i <= 40 && !(senderDone && i > 30); i++) {
        const bool toB = i % 2 == 1;
        auto ta = std::chrono::steady_clock::now();
        Cli r = sluice({"apply", iface_, "--config", toB ? b : a});
        applyMs.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ta).count());
        if (r.status != 0) {
            ADD_FAILURE() << "apply " << i << " failed" << r;
            break;
        }
        flips++;
        Epoch prev = current;
        slots = slotsByName();
        current = {toB ? "pb" : "pa", slots[toB ? "pb" : "pa"], {}};
        EXPECT_EQ(slots["steady"], steadySlot) << "steady kept its name: it keeps its slot";
        EXPECT_NE(current.slot, prev.slot);
        // The previous policy's slot only stops counting when the flip is
        // seen by every CPU; its counters are reset when the name comes
        // back, two applies on. Read them in between.
        std::this_thread::sleep_for(Millis(20));
        prev.counts = raw.slot(prev.slot);
        epochs.push_back(prev);
        // steady: counters only grow across applies.
        if (i % 4 == 0) {
            udpSend(client(), steadySrc2, dst(), kSteadyPort, 1);
            steadyExtra++;
        }
        VerdictPackets now = raw.slot(steadySlot);
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++)
            EXPECT_GE(now[v], steadyLast[v]) << "steady's " << sluice::verdictName(v) << " counter went back at flip "
                                             << i;
        steadyLast = now;
    }
    const double flipSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int sentWhileFlipping = sent.load();
    pthread_setaffinity_np(pthread_self(), sizeof savedAffinity, &savedAffinity);
    stop = true;
    sender.join();
    auto received = server.finish();
    const uint64_t rcvbufDrops = udpRcvbufErrors() - rcvbufBefore;
    std::this_thread::sleep_for(Millis(50));
    const auto txAfter1 = clientTx();
    current.counts = raw.slot(current.slot);
    epochs.push_back(current);
    const VerdictPackets slot0After = raw.slot(SLUICE_SLOT_NONE);
    const VerdictPackets steadyAfter = raw.slot(steadySlot);
    const auto txAfter2 = clientTx();
    if (!epochs.empty())
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++)
            epochs[0].counts[v] -= paBefore[v];  // zero: nothing was sent to the port before

    ASSERT_GE(flips, 30);
    uint64_t judged = 0, passed = 0, admittedTotal = 0;
    int epochsWithTraffic = 0;
    for (size_t e = 0; e < epochs.size(); e++) {
        const Epoch& ep = epochs[e];
        SCOPED_TRACE("epoch " + std::to_string(e) + " (" + ep.policy + ", slot " + std::to_string(ep.slot) + ")");
        const auto& c = ep.counts;
        judged += sum(c);
        passed += c[SLUICE_VERDICT_ADMITTED] + c[SLUICE_VERDICT_MONITORED];
        admittedTotal += c[SLUICE_VERDICT_ADMITTED];
        epochsWithTraffic += sum(c) > 0;
        if (ep.policy == "pa")
            EXPECT_EQ(c[SLUICE_VERDICT_LIMITED], 0u) << "a monitor policy dropped: judged by pb's generation";
        else
            EXPECT_EQ(c[SLUICE_VERDICT_MONITORED], 0u) << "a drop policy monitored: judged by pa's generation";
        EXPECT_LE(c[SLUICE_VERDICT_ADMITTED], 1u) << "more than the burst of 1 in one epoch: a mixed bucket";
        for (uint32_t v : {SLUICE_VERDICT_PASS, SLUICE_VERDICT_ALLOWED, SLUICE_VERDICT_DENIED,
                           SLUICE_VERDICT_MALFORMED, SLUICE_VERDICT_FRAGMENT})
            EXPECT_EQ(c[v], 0u) << sluice::verdictName(v);
    }
    uint64_t slot0 = sum(slot0After) - sum(slot0Before);
    const uint64_t steadyDelta = sum(steadyAfter) - sum(steadyBefore);
    const uint64_t reachedLo = txAfter1.first - txBefore2.first, reachedHi = txAfter2.first - txBefore1.first;
    const uint64_t reached = reachedHi, dropped = txAfter2.second - txBefore1.second;
    std::string applyStats;
    if (!applyMs.empty()) {
        std::sort(applyMs.begin(), applyMs.end());
        char buf[128];
        std::snprintf(buf, sizeof buf, "apply median %.1f ms, max %.1f ms", applyMs[applyMs.size() / 2],
                      applyMs.back());
        applyStats = buf;
    }
    std::printf("[slit] %d flips in %.2f s (%s); %d datagrams sent (%d while flipping), %llu reached the "
                "interface, %llu dropped by veth; %d of %zu epochs saw traffic; judged under pa/pb %llu, "
                "passed %llu, admitted %llu; slot 0 %llu; steady +%llu; received %d (+%llu socket drops)\n",
                flips, flipSeconds, applyStats.c_str(), sent.load(), sentWhileFlipping,
                (unsigned long long)reached, (unsigned long long)dropped, epochsWithTraffic, epochs.size(),
                (unsigned long long)judged, (unsigned long long)passed, (unsigned long long)admittedTotal,
                (unsigned long long)slot0, (unsigned long long)steadyDelta, received[flooder],
                (unsigned long long)rcvbufDrops);

    EXPECT_GE(epochsWithTraffic, 30) << "the flood did not span the flips";
    // Every frame that reached the receiver's veth was judged and counted once.
    EXPECT_GE(judged + slot0 + steadyDelta, reachedLo);
    EXPECT_LE(judged + slot0 + steadyDelta, reachedHi);
    // ... and every flood datagram under pa or pb: none fell into slot 0 (a
    // port lookup in a half-written generation), none was counted twice.
    // (Slot 0 holds the few frames the client's stack sends on its own, e.g.
    // IPv6 multicast listener reports.)
    EXPECT_EQ(judged, uint64_t(sent.load()) - dropped) << "flood datagrams judged outside pa/pb, or twice";
    EXPECT_EQ(uint64_t(received[flooder]) + rcvbufDrops, passed) << "what passed is what reached the server";

    // steady: counters kept through every apply, and its buckets too.
    s = stats();
    const uint64_t extraAdmitted = uint64_t(std::min(steadyExtra, 5));
    EXPECT_EQ(statOf(s, iface_, "steady", "admitted"), 5 + extraAdmitted) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "steady", "limited"), 3 + uint64_t(steadyExtra) - extraAdmitted) << s.dump();
    EXPECT_EQ(sendUdp(steadySrc, kSteadyPort, 3), 0) << "the first source's spent bucket survived " << flips
                                                      << " applies";
    Json in = sluiceJson({"inspect", iface_, steadySrc, "--json"});
    bool found = false;
    for (const auto& e : in)
        if (e["policy"] == "steady" && e["limits"].is_array()) {
            found = true;
            EXPECT_EQ(e["limits"][0]["remaining"], 0);
        }
    EXPECT_TRUE(found) << in.dump(2);
}

// A policy whose limits did not change keeps its buckets and its counters;
// one whose limits changed starts fresh buckets; a renamed one fresh counters.
TEST_F(CliNet, ApplyKeepsStateOfUnchangedPolicies) {
    const std::string steady = udpPolicy("steady", std::to_string(kSteadyPort), "5 per day");
    const std::string extra = udpPolicy("extra", "7100", "3 per day");
    attach(tmp_.write("c1.toml", header() + steady));
    const std::string x = src(0);
    EXPECT_EQ(sendUdp(x, kSteadyPort, 8), 5);

    // Only another policy added: steady's bucket and counters stay.
    std::string c2 = tmp_.write("c2.toml", header() + steady + extra);
    Cli r = sluice({"apply", iface_, "--config", c2});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "+ policy extra")) << r;
    EXPECT_FALSE(contains(r.out, "steady")) << "steady did not change" << r;
    EXPECT_EQ(sendUdp(x, kSteadyPort, 3), 0) << "a spent bucket was refilled by an apply that only added a policy";
    Json in = sluiceJson({"inspect", iface_, x, "--json"});
    for (const auto& e : in)
        if (e["policy"] == "steady") {
            ASSERT_TRUE(e["limits"].is_array()) << in.dump(2);
            EXPECT_EQ(e["limits"][0]["remaining"], 0);
        }
    Json s = stats();
    EXPECT_EQ(statOf(s, iface_, "steady", "admitted"), 5u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "steady", "limited"), 6u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "extra", "admitted"), 0u) << s.dump();

    // Only the action changed: still the same buckets.
    std::string c3 = tmp_.write("c3.toml", header() + udpPolicy("steady", std::to_string(kSteadyPort), "5 per day",
                                                                 "monitor") + extra);
    r = sluice({"apply", iface_, "--config", c3});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "~ policy steady: action drop -> monitor")) << r;
    EXPECT_FALSE(contains(r.out, "buckets reset")) << r;
    EXPECT_EQ(sendUdp(x, kSteadyPort, 2), 2);
    s = stats();
    EXPECT_EQ(statOf(s, iface_, "steady", "monitored"), 2u) << "the spent bucket survived the action change";
    EXPECT_EQ(statOf(s, iface_, "steady", "admitted"), 5u);

    // Changed limits: fresh buckets, the same counters.
    std::string c4 = tmp_.write("c4.toml", header() + udpPolicy("steady", std::to_string(kSteadyPort), "6 per day") +
                                               extra);
    r = sluice({"apply", iface_, "--config", c4, "--dry-run"});
    EXPECT_TRUE(contains(r.out, "~ policy steady: limits packets 5 per 1 day -> packets 6 per 1 day (buckets reset)"))
        << r;
    r = sluice({"apply", iface_, "--config", c4});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_EQ(sendUdp(x, kSteadyPort, 8), 6);
    s = stats();
    EXPECT_EQ(statOf(s, iface_, "steady", "admitted"), 11u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "steady", "limited"), 8u) << s.dump();

    // Renamed: a new policy, counters from zero (and its own buckets).
    std::string c5 = tmp_.write("c5.toml", header() + udpPolicy("steady2", std::to_string(kSteadyPort), "6 per day") +
                                               extra);
    r = sluice({"apply", iface_, "--config", c5});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "+ policy steady2")) << r;
    EXPECT_TRUE(contains(r.out, "- policy steady")) << r;
    s = stats();
    EXPECT_EQ(statOf(s, iface_, "steady2", "admitted"), 0u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "steady2", "limited"), 0u) << s.dump();
    EXPECT_EQ(sendUdp(x, kSteadyPort, 8), 6);
}

// The program taken off by hand (`ip link set dev IFACE xdp off`), its pins
// left: `sluice attach` reuses them, so a spent bucket stays spent. Before,
// libbpf refused the pinned sluice_redirect (the kernel adds
// BPF_F_RDONLY_PROG to a devmap, the object asked for no flags), and attach
// failed until a detach threw the state away.
TEST_F(CliNet, AttachOverPinsLeftByHandKeepsTheBuckets) {
    const std::string config = tmp_.write("c.toml", header() + udpPolicy("steady", std::to_string(kSteadyPort),
                                                                          "5 per day"));
    attach(config);
    const std::string x = src(0);
    EXPECT_EQ(sendUdp(x, kSteadyPort, 8), 5);
    receiver().ip({"link", "set", "dev", iface_, "xdp", "off"});
    EXPECT_EQ(sendUdp(x, kSteadyPort, 3), 3) << "nothing limits with the program off";
    Cli r = sluice({"status", iface_});
    EXPECT_TRUE(contains(r.out, "pinned state present but the program is not attached")) << r;

    // Those pins hold a table of 4096 sources: another size cannot reuse
    // them, and says so rather than blaming another version.
    r = sluice({"attach", iface_, "--mode", "native", "--config", config, "--max-sources", "8192"});
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_TRUE(contains(r.err, "pinned source table (its buckets, in " + pinDirOf(iface_) +
                                    ") holds 4096 sources, not 8192: attach with --max-sources 4096"))
        << r;
    EXPECT_FALSE(xdpAttached(receiver(), iface_));

    // A config whose install fails takes the program off again, but the
    // pins it was attached over are not its own to remove.
    const std::string nosuch = "slnone" + std::to_string(getpid() % 100000);
    const std::string redirect =
        tmp_.write("redirect.toml", header() + udpPolicy("redir", "7100", "5 per day", "redirect",
                                                         "redirect_to = \"" + nosuch + "\""));
    r = sluice({"attach", iface_, "--mode", "native", "--config", redirect});
    EXPECT_NE(r.status, 0) << r;
    EXPECT_TRUE(contains(r.err, nosuch)) << r;
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_sources")) << "the failed attach removed the pins";

    attach(config);
    EXPECT_EQ(sendUdp(x, kSteadyPort, 3), 0) << "the spent bucket was kept";
    Json s = stats();
    EXPECT_EQ(statOf(s, iface_, "steady", "admitted"), 5u) << s.dump();
    EXPECT_EQ(statOf(s, iface_, "steady", "limited"), 6u) << "counters kept: " << s.dump();
}

// ---------------------------------------------------------------- examples/

// Each shipped example installs on a real interface (its `interfaces` names
// eth0; apply takes the interface from the command line; fleet.toml's Redis
// is only dialled by `sluice run`), and dns.toml's
// limit holds real datagrams.
TEST_F(CliNet, ExamplesInstallOnARealInterface) {
    attach();
    const std::vector<std::pair<std::string, std::vector<std::string>>> examples = {
        {"api.toml", {"heavy-task", "api-default", "dns"}},
        {"login.toml", {"login"}},
        {"fleet.toml", {"heavy-task", "api-default"}},
        {"dns.toml", {"dns", "dns-tcp"}},
    };
    for (const auto& [file, policies] : examples) {
        Cli r = sluice({"apply", iface_, "--config", sourceDir() + "/examples/" + file});
        ASSERT_EQ(r.status, 0) << file << r;
        Json live = sluiceJson({"policy", "list", "--iface", iface_, "--json"}).at(iface_);
        std::vector<std::string> names;
        for (const auto& p : live)
            names.push_back(p.at("name").get<std::string>());
        EXPECT_EQ(names, policies) << file;
    }
    // dns.toml is installed last: 20/second burst 40 per source on UDP 53.
    int got = sendUdp(src(0), 53, 60);
    EXPECT_GE(got, 40) << "the burst";
    EXPECT_LT(got, 60) << "the excess was dropped: " << stats().dump();
    EXPECT_EQ(sendUdp(src(1), 53, 10), 10) << "another source has its own bucket";
}
