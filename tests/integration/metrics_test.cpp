// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What operators watch: /metrics of the real `sluice run` (scraped by this
// test and by a real Prometheus server), the XDP program's BPF run-time
// stats, the alerting rules and the dashboard, `sluice top` over a full
// million-entry table, and `sluice stats --watch` stopped by Ctrl-C.
//
// The daemon and Prometheus run in the receiver namespace of a testbed
// (`nsenter --net`, not `ip netns exec`, which would give them a private
// bpffs), both on that namespace's loopback, so nothing listens on the host.
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <httplib.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "datapath.h"
#include "netns.h"
#include "paths.h"
#include "process.h"
#include "sluice_abi.h"

using namespace slit;
using sluice::Datapath;
using Json = nlohmann::json;

namespace {

constexpr uint16_t kPort = 7000;
constexpr uint16_t kMetricsPort = 9464;
constexpr uint16_t kPrometheusPort = 9090;
constexpr Millis kWait(5000);

bool pathExists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

void writeFile(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string nsenter() { return pathExists("/usr/bin/nsenter") ? "/usr/bin/nsenter" : "/bin/nsenter"; }

using Process = ChildProcess;

std::string urlEncode(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += char(c);
        } else {
            char buf[4];
            snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

// name{labels} -> value of every sample in an exposition.
std::map<std::string, double> parseExposition(const std::string& text) {
    std::map<std::string, double> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        size_t sp = line.rfind(' ');
        out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
    return out;
}

class MetricsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (access(sluiceBinary().c_str(), X_OK) != 0)
            GTEST_SKIP() << sluiceBinary() << " is not built";
        char tmpl[] = "/tmp/sluice-metrics-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        config_ = dir_ + "/sluice.toml";
        log_ = dir_ + "/daemon.log";
        link_ = &bed_.addClient(3, 0);
        iface_ = link_->receiverIf;
        registerPinDir(pinDirOf(iface_));
        a_ = link_->client4[0];
        b_ = link_->client4[1];
    }

    void TearDown() override {
        if (HasFailure() && !log_.empty())
            std::fprintf(stderr, "[slit] daemon log:\n%s", readFile(log_).c_str());
    }

    ~MetricsTest() override {
        daemon_.reset();
        const std::string pins = pinDirOf(iface_);
        try {
            if (!iface_.empty() && (xdpAttached(bed_.receiver(), iface_) || pathExists(pins)))
                bed_.receiver().run([&] { Datapath::detach(iface_); });
        } catch (const std::exception& e) {
            std::fprintf(stderr, "[slit] cleanup: detach %s: %s\n", iface_.c_str(), e.what());
        }
        if (!iface_.empty() && pathExists(pins)) {
            runCmd({"rm", "-rf", pins});
            rmdir(SLUICE_PIN_ROOT);
        }
        if (!iface_.empty())
            unregisterPinDir(pins);
        if (!dir_.empty())
            runCmd({"rm", "-rf", dir_});
    }

    std::string configText(const std::string& packets = "5 per day") const {
        return "[sluice]\ninterfaces = [\"" + iface_ + "\"]\nmetrics = \"127.0.0.1:" +
               std::to_string(kMetricsPort) + "\"\nmax_sources = 4096\n\n[[policy]]\nname = \"api\"\n"
               "proto = \"udp\"\nports = [" + std::to_string(kPort) + "]\npackets = \"" + packets +
               "\"\naction = \"drop\"\n";
    }

    bool waitLog(const std::string& needle, size_t from = 0, Millis limit = kWait) const {
        const int64_t end = monoNs() + int64_t(limit.count()) * 1'000'000;
        do {
            std::string text = readFile(log_);
            if (text.size() > from && text.find(needle, from) != std::string::npos)
                return true;
            std::this_thread::sleep_for(Millis(20));
        } while (monoNs() < end);
        return false;
    }

    ::testing::AssertionResult startDaemon() {
        writeFile(config_, configText());
        daemon_.emplace(&bed_.receiver(), std::vector<std::string>{sluiceBinary(), "run", "--config", config_},
                        log_);
        if (!waitLog("sluice: running with " + config_))
            return ::testing::AssertionFailure() << "the daemon did not start; log:\n" << readFile(log_);
        if (!waitLog("serving metrics on http://127.0.0.1:" + std::to_string(kMetricsPort) + "/metrics"))
            return ::testing::AssertionFailure() << "no metrics server; log:\n" << readFile(log_);
        return ::testing::AssertionSuccess();
    }

    // GET http://127.0.0.1:PORT/PATH from inside the receiver namespace.
    std::pair<int, std::string> get(uint16_t port, const std::string& path) {
        return bed_.receiver().run([&] {
            httplib::Client c("127.0.0.1", port);
            c.set_connection_timeout(2);
            c.set_read_timeout(5);
            auto res = c.Get(path.c_str());
            return res ? std::make_pair(res->status, res->body) : std::make_pair(-1, std::string());
        });
    }

    std::map<std::string, double> scrape() {
        auto [status, body] = get(kMetricsPort, "/metrics");
        EXPECT_EQ(status, 200);
        return parseExposition(body);
    }

    std::string series(const std::string& name, const std::string& policy, const std::string& verdict) const {
        return name + "{interface=\"" + iface_ + "\",policy=\"" + policy + "\",verdict=\"" + verdict + "\"}";
    }

    // `count` datagrams from src; how many arrived.
    int send(const std::string& src, int count) {
        UdpCounter server(bed_.receiver(), link_->receiver4, kPort);
        EXPECT_EQ(udpSend(*link_->client, src, link_->receiver4, kPort, count, 100), count);
        return server.finish()[src];
    }

    Testbed bed_;
    Testbed::Link* link_ = nullptr;
    std::string iface_, a_, b_, dir_, config_, log_;
    std::optional<Process> daemon_;
};

}  // namespace

TEST_F(MetricsTest, ServesCountersInPrometheusFormat) {
    ASSERT_TRUE(startDaemon());
    EXPECT_EQ(send(a_, 10), 5);
    EXPECT_EQ(send(b_, 3), 3);

    auto [status, body] = get(kMetricsPort, "/metrics");
    ASSERT_EQ(status, 200);
    auto m = parseExposition(body);
    EXPECT_EQ(m[series("sluice_packets_total", "api", "admitted")], 8) << body;
    EXPECT_EQ(m[series("sluice_packets_total", "api", "limited")], 5);
    // 100-byte payloads: 14 + 20 + 8 + 100 bytes a frame.
    EXPECT_EQ(m[series("sluice_bytes_total", "api", "limited")], 5 * 142);
    EXPECT_TRUE(m.contains(series("sluice_packets_total", "(none)", "passed")));
    EXPECT_EQ(m["sluice_sources_tracked{interface=\"" + iface_ + "\"}"], 2);
    EXPECT_EQ(m["sluice_sources_capacity{interface=\"" + iface_ + "\"}"], 4096);
    // The presence filter of a 4096-source table (and its slack), with the
    // bit of each source promoted (at most the two tracked ones).
    EXPECT_EQ(m["sluice_source_filter_bits{interface=\"" + iface_ + "\"}"],
              sluice_known_bits(4096 + Datapath::lruSlack())) << body;
    EXPECT_GE(m["sluice_source_filter_bits_set{interface=\"" + iface_ + "\"}"], 1) << body;
    EXPECT_LE(m["sluice_source_filter_bits_set{interface=\"" + iface_ + "\"}"], 2) << body;
    // Both were on probation first, under a policy without new_sources,
    // which neither consults nor marks the probation table's filter.
    EXPECT_EQ(m["sluice_probation_filter_bits_set{interface=\"" + iface_ + "\"}"], 0) << body;
    EXPECT_EQ(m["sluice_xdp_attached{interface=\"" + iface_ + "\",mode=\"native\"}"], 1) << body;
    EXPECT_EQ(m["sluice_config_reloads_total{result=\"success\"}"], 0);
    EXPECT_EQ(m["sluice_config_reloads_total{result=\"failure\"}"], 0);
    EXPECT_EQ(m["sluice_reattaches_total"], 0);
    EXPECT_EQ(m["sluice_scrape_errors"], 0);
    if (pathExists(pinDirOf(iface_) + "/sluice_bans")) {
        EXPECT_EQ(m["sluice_sources_banned{interface=\"" + iface_ + "\"}"], 0) << body;
        EXPECT_GT(m["sluice_bans_capacity{interface=\"" + iface_ + "\"}"], 0) << body;
    }
    EXPECT_NE(body.find("sluice_build_info{version=\""), std::string::npos);
    EXPECT_NE(body.find("# TYPE sluice_packets_total counter"), std::string::npos);

    // Reloads by result.
    size_t from = readFile(log_).size();
    writeFile(config_, "[sluice]\ninterfaces = [\"" + iface_ + "\"]\n[[policy]]\nname = 1\n");
    daemon_->signal(SIGHUP);
    ASSERT_TRUE(waitLog("reload failed", from));
    from = readFile(log_).size();
    writeFile(config_, configText("6 per day"));
    daemon_->signal(SIGHUP);
    ASSERT_TRUE(waitLog("sluice: reloaded", from));
    m = scrape();
    EXPECT_EQ(m["sluice_config_reloads_total{result=\"success\"}"], 1);
    EXPECT_EQ(m["sluice_config_reloads_total{result=\"failure\"}"], 1);

    // Detached behind the daemon's back: the gauge the alert watches says so.
    bed_.receiver().ip({"link", "set", "dev", iface_, "xdp", "off"});
    m = scrape();
    EXPECT_EQ(m["sluice_xdp_attached{interface=\"" + iface_ + "\",mode=\"\"}"], 0);

    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait(), 0);
}

// The port is held by a listener that allows port sharing, as another
// `sluice run` (cpp-httplib's default is SO_REUSEPORT) does. The daemon must
// see the port taken and run on without /metrics, not share it: scrapes
// would then alternate between two daemons and their counters.
TEST_F(MetricsTest, ATakenPortIsNotSharedAndTheDaemonRunsWithoutMetrics) {
    int holder = bed_.receiver().run([] {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int yes = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &yes, sizeof yes);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(kMetricsPort);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) || ::listen(fd, 4)) {
            ::close(fd);
            return -1;
        }
        return fd;
    });
    ASSERT_GE(holder, 0) << "cannot hold 127.0.0.1:" << kMetricsPort;

    writeFile(config_, configText());
    daemon_.emplace(&bed_.receiver(), std::vector<std::string>{sluiceBinary(), "run", "--config", config_},
                    log_);
    bool started = waitLog("sluice: running with " + config_);
    std::string log = readFile(log_);
    ::close(holder);
    ASSERT_TRUE(started) << log;
    EXPECT_NE(log.find("sluice: cannot serve metrics on 127.0.0.1:" + std::to_string(kMetricsPort)),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("serving metrics on"), std::string::npos) << log;
    EXPECT_EQ(send(a_, 10), 5) << "protection first";
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait(), 0);
}

TEST_F(MetricsTest, ReportsBpfRunTimeWhenStatsAreOn) {
    std::string old = readFile("/proc/sys/kernel/bpf_stats_enabled");
    if (old.empty())
        GTEST_SKIP() << "no kernel.bpf_stats_enabled here";
    ASSERT_TRUE(startDaemon());
    writeFile("/proc/sys/kernel/bpf_stats_enabled", "1\n");
    struct Restore {
        std::string v;
        ~Restore() { std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << v; }
    } restore{old};

    auto before = scrape();
    std::string runs = "sluice_xdp_runs_total{interface=\"" + iface_ + "\"}";
    std::string time = "sluice_xdp_run_time_seconds_total{interface=\"" + iface_ + "\"}";
    ASSERT_TRUE(before.contains(runs));
    EXPECT_EQ(before["sluice_bpf_stats_enabled"], 1);
    EXPECT_EQ(send(a_, 20), 5);
    auto after = scrape();
    EXPECT_GE(after[runs] - before[runs], 20);
    double perRun = (after[time] - before[time]) / (after[runs] - before[runs]);
    EXPECT_GT(perRun, 0);
    EXPECT_LT(perRun, 100e-6) << "seconds per run";
    std::fprintf(stderr, "[slit] %.0f runs, %.0f ns per run (veth, with BPF stats on)\n", after[runs] - before[runs],
                 perRun * 1e9);
}

// A real Prometheus server scrapes the daemon every second; PromQL over the
// scraped series must show the counts of known traffic.
TEST_F(MetricsTest, PrometheusScrapesAndQueries) {
    if (access("/usr/bin/prometheus", X_OK) != 0)
        GTEST_SKIP() << "prometheus is not installed (make deps)";
    ASSERT_TRUE(startDaemon());
    std::string promLog = dir_ + "/prometheus.log";
    writeFile(dir_ + "/prometheus.yml",
              "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
              "rule_files:\n  - " + sourceDir() + "/packaging/prometheus/sluice-rules.yml\n"
              "scrape_configs:\n  - job_name: sluice\n    static_configs:\n"
              "      - targets: ['127.0.0.1:" + std::to_string(kMetricsPort) + "']\n");
    Process prom(&bed_.receiver(),
                 {"/usr/bin/prometheus", "--config.file=" + dir_ + "/prometheus.yml",
                  "--storage.tsdb.path=" + dir_ + "/tsdb", "--web.listen-address=127.0.0.1:" +
                  std::to_string(kPrometheusPort), "--log.level=warn"},
                 promLog);

    EXPECT_EQ(send(a_, 10), 5);
    EXPECT_EQ(send(b_, 3), 3);

    auto query = [&](const std::string& promql) -> std::optional<double> {
        auto [status, body] = get(kPrometheusPort, "/api/v1/query?query=" + urlEncode(promql));
        if (status != 200)
            return std::nullopt;
        Json j = Json::parse(body, nullptr, false);
        if (j.is_discarded() || j["status"] != "success" || j["data"]["result"].empty())
            return std::nullopt;
        return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
    };
    // Until a scrape after the traffic has landed (bounded: 30 s).
    std::string limited = "sum(sluice_packets_total{job=\"sluice\",policy=\"api\",verdict=\"limited\"})";
    std::optional<double> v;
    for (int i = 0; i < 300 && (v = query(limited)) != 5.0; i++)
        std::this_thread::sleep_for(Millis(100));
    ASSERT_EQ(v, 5.0) << "prometheus log:\n" << readFile(promLog);
    EXPECT_EQ(query("sum(sluice_packets_total{policy=\"api\",verdict=\"admitted\"})"), 8.0);
    EXPECT_EQ(query("sluice_sources_tracked{interface=\"" + iface_ + "\"} / sluice_sources_capacity"), 2.0 / 4096);
    EXPECT_EQ(query("up{job=\"sluice\"}"), 1.0);
    EXPECT_EQ(query("count(sluice_build_info)"), 1.0);
    // The shipped rules load into the server and evaluate.
    auto [status, rules] = get(kPrometheusPort, "/api/v1/rules");
    ASSERT_EQ(status, 200);
    Json r = Json::parse(rules, nullptr, false);
    ASSERT_FALSE(r.is_discarded());
    size_t n = 0;
    for (const auto& g : r["data"]["groups"])
        for (const auto& rule : g["rules"]) {
            n++;
            EXPECT_EQ(rule["health"], "ok") << rule.dump();
        }
    EXPECT_GE(n, 4u) << rules;
}

TEST(MetricsPackaging, PromtoolAcceptsTheAlertingRules) {
    if (access("/usr/bin/promtool", X_OK) != 0)
        GTEST_SKIP() << "promtool is not installed (make deps)";
    std::string rules = sourceDir() + "/packaging/prometheus/sluice-rules.yml";
    CmdResult r = runCmd({"promtool", "check", "rules", rules});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    std::string tests = sourceDir() + "/packaging/prometheus/sluice-rules.test.yml";
    if (pathExists(tests)) {
        r = runCmd({"promtool", "test", "rules", tests});
        EXPECT_EQ(r.status, 0) << r.out << r.err;
    }
}

// Every panel of the dashboard queries metrics sluice exports.
TEST(MetricsPackaging, DashboardQueriesExportedMetrics) {
    std::string text = readFile(sourceDir() + "/packaging/grafana/sluice.json");
    Json d = Json::parse(text, nullptr, false);
    ASSERT_FALSE(d.is_discarded()) << "not JSON";
    ASSERT_TRUE(d["panels"].is_array());
    static const std::set<std::string> known = {
        "sluice_packets_total", "sluice_bytes_total", "sluice_sources_tracked", "sluice_sources_capacity",
        "sluice_sources_banned", "sluice_bans_capacity", "sluice_config_reloads_total", "sluice_build_info",
        "sluice_xdp_attached", "sluice_xdp_run_time_seconds_total", "sluice_xdp_runs_total",
        "sluice_bpf_stats_enabled", "sluice_scrape_errors"};
    size_t exprs = 0;
    std::regex name(R"(sluice_[a-z_]+)");
    for (const auto& p : d["panels"])
        for (const auto& t : p.value("targets", Json::array())) {
            std::string e = t.value("expr", "");
            exprs++;
            for (auto it = std::sregex_iterator(e.begin(), e.end(), name); it != std::sregex_iterator(); ++it)
                EXPECT_TRUE(known.contains(it->str())) << it->str() << " in " << e;
        }
    EXPECT_GE(exprs, 6u);
}

// `sluice stats --watch 1`: redraws in place every second and exits 0 on
// Ctrl-C (SIGINT, as the terminal sends it).
TEST_F(MetricsTest, StatsWatchRedrawsAndStopsOnCtrlC) {
    ASSERT_TRUE(startDaemon());
    EXPECT_EQ(send(a_, 10), 5);
    std::string out = dir_ + "/watch.out";
    Process watch(&bed_.receiver(), {sluiceBinary(), "stats", iface_, "--watch", "1"}, out);
    std::this_thread::sleep_for(Millis(2500));
    watch.signal(SIGINT);
    EXPECT_EQ(watch.wait(Millis(2000)), 0) << readFile(out);
    std::string text = readFile(out);
    size_t redraws = 0;
    for (size_t at = text.find("\033[H"); at != std::string::npos; at = text.find("\033[H", at + 1))
        redraws++;
    EXPECT_GE(redraws, 2u) << text;
    EXPECT_NE(text.find("PACKETS/S"), std::string::npos) << text;
    EXPECT_NE(text.find("limited"), std::string::npos) << text;
}

// `sluice top` over a table of a million sources, filled through the pinned
// map (BPF_MAP_UPDATE_BATCH): it must answer within a second.
TEST_F(MetricsTest, TopOverAMillionSources) {
    constexpr uint32_t kSources = 1'000'000;
    sluice::Ruleset rules;
    sluice::Policy p;
    p.name = "api";
    p.proto = sluice::Proto::Udp;
    p.ports = {{kPort, kPort}};
    p.limits = {sluice::Limit{sluice::LimitKind::Packets, 100, 1'000'000'000ULL, 0}};
    rules.policies = {p};
    bed_.receiver().run([&] {
        Datapath dp = Datapath::attach({iface_, sluice::XdpMode::Auto, kSources});
        dp.install(rules);
    });
    Datapath dp = bed_.receiver().run([&] { return Datapath::open(iface_); });
    uint32_t tag = dp.installedPolicies().at(0).stateTag;

    int fd = bpf_obj_get((pinDirOf(iface_) + "/sluice_sources").c_str());
    ASSERT_GE(fd, 0);
    uint64_t now = Datapath::nowNs();
    std::vector<sluice_source_key> keys(kSources);
    std::vector<sluice_source_state> values(kSources);
    for (uint32_t i = 0; i < kSources; i++) {
        keys[i] = sluice_source_key{};
        keys[i].state_tag = tag;
        keys[i].addr[2] = htonl(0xffff);
        keys[i].addr[3] = htonl(0x0a000000u + i);  // 10.0.0.0/12
        values[i] = sluice_source_state{};
        // One in a thousand a full bucket (10 s) ahead: limited; the rest partly used.
        values[i].tat_ns[0] = now + (i % 1000 == 0 ? 10'000'000'000ULL : (i % 997) * 1'000'000ULL);
    }
    int64_t t0 = monoNs();
    for (uint32_t at = 0; at < kSources;) {
        uint32_t count = std::min<uint32_t>(65536, kSources - at);
        ASSERT_EQ(bpf_map_update_batch(fd, &keys[at], &values[at], &count, nullptr), 0) << at;
        at += count;
    }
    int64_t fillNs = monoNs() - t0;
    close(fd);
    uint64_t tracked = 0;
    {
        std::string o = runCmd({sluiceBinary(), "status", iface_, "--json"}).out;
        Json j = Json::parse(o, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << o;
        tracked = j[0]["tracked_sources"].get<uint64_t>();
    }
    EXPECT_GE(tracked, kSources * 9 / 10) << "the LRU kept too few";

    auto timed = [&](const std::vector<std::string>& extra, std::string* out) {
        std::vector<std::string> argv = {nsenter(), "--net=" + bed_.receiver().path(), sluiceBinary(), "top",
                                         iface_};
        argv.insert(argv.end(), extra.begin(), extra.end());
        int64_t s = monoNs();
        CmdResult r = runCmd(argv);
        double secs = double(monoNs() - s) / 1e9;
        EXPECT_EQ(r.status, 0) << r.err;
        *out = r.out;
        return secs;
    };
    std::string out;
    double snapshot = timed({"--interval", "0", "-n", "20"}, &out);
    // One source in a thousand is a full bucket ahead: those come first.
    EXPECT_TRUE(std::regex_search(out, std::regex("\\n(api +)?10\\.[0-9.]+ +limited"))) << out;
    double sampled = timed({"-n", "20"}, &out);
    double sampledJson = timed({"-n", "20", "--by", "passed", "--json"}, &out);
    Json j = Json::parse(out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out;
    EXPECT_EQ(j[iface_]["sources"].size(), 20u);
    std::fprintf(stderr,
                 "[slit] top over %llu tracked sources: one read %.3f s, default (two reads 0.5 s apart) "
                 "%.3f s, --by passed --json %.3f s; filling the table took %.3f s\n",
                 (unsigned long long)tracked, snapshot, sampled, sampledJson, double(fillNs) / 1e9);
    // <= 1 s is the goal on an idle machine; the bound here leaves room for
    // a loaded CI host.
    EXPECT_LT(sampled, 5.0);
    EXPECT_LT(snapshot, 4.0);
}
