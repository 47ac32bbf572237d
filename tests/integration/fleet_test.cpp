// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Fleet-wide limits (docs/fleet.md) with three real nodes and one real Redis:
// three server namespaces, each running `sluice run` with the same [fleet]
// section, and a redis-server in a namespace of its own that every node
// reaches at one address (198.19.0.1, routed over a veth per node). Each
// node has its own client namespace; all three give the client the same
// source address (198.18.1.10), as a load balancer that keeps client
// addresses would: the fleet sees one client spread over three nodes.
//
// The policy is "connections = 12 per hour", action drop (a refused connect
// times out after 200 ms), scope fleet, sync_interval 100ms. The local bucket
// hardly refills during a test, so without the fleet each node admits 12 of
// a source's connections (36 in all). With the fleet, the documented bound
// is the limit plus what the client gets through while the nodes' view is
// stale (docs/fleet.md): 12 + R x S for a client at R connections per second.
// The test paces the client and takes S = 1.5 s, far more than 2 x 100 ms,
// so that a loaded machine does not fail it, yet below what local limits
// alone would let through.
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <httplib.h>

#include <cstring>

#include "datapath.h"
#include "fleet.h"
#include "netns.h"
#include "paths.h"
#include "process.h"
#include "sluice_run.h"

using namespace slit;

namespace {

constexpr int kNodes = 3;
constexpr uint16_t kPort = 7100;
constexpr uint16_t kRedisPort = 6390;
constexpr uint16_t kMetricsPort = 9470;
constexpr const char* kRedisAddr = "198.19.0.1";
constexpr const char* kRedisPassword = "fleet-test-pw";
constexpr int kLimit = 12;
// Staleness the assertions allow (documented bound: 2 x sync_interval + RTT).
constexpr double kStaleSeconds = 1.5;
constexpr Millis kWait(8000);
constexpr Millis kConnectTimeout(200);

bool pathExists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

// The value of one series in a Prometheus exposition, -1 if absent.
double metricValue(const std::string& body, const std::string& series) {
    size_t at = 0;
    while ((at = body.find(series + " ", at)) != std::string::npos) {
        if (at == 0 || body[at - 1] == '\n')
            return std::stod(body.substr(at + series.size() + 1));
        at++;
    }
    return -1;
}

// One server namespace and its client, with its daemon (destroyed first:
// it detaches and removes the pins while the namespace still exists).
struct Node {
    std::unique_ptr<Testbed> bed;
    Testbed::Link* link = nullptr;
    std::string iface, name;
    std::unique_ptr<SluiceRun> run;
};

class FleetTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (access(sluiceBinary().c_str(), X_OK) != 0)
            GTEST_SKIP() << sluiceBinary() << " is not built";
        if (!pathExists("/usr/bin/redis-server"))
            GTEST_SKIP() << "redis-server is not installed (tools/install-deps.sh)";
        char tmpl[] = "/tmp/sluice-fleet-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        redisLog_ = dir_ + "/redis.log";
        redisNs_ = std::make_unique<Netns>();
        redisNs_->ip({"addr", "add", std::string(kRedisAddr) + "/32", "dev", "lo"});
        for (int i = 0; i < kNodes; i++) {
            Node& n = nodes_[i];
            n.bed = std::make_unique<Testbed>();
            n.link = &n.bed->addClient(3, 0);
            n.iface = n.link->receiverIf;
            n.name = "node-" + std::to_string(i + 1);
            n.run = std::make_unique<SluiceRun>(n.bed->receiver(), std::vector<std::string>{n.iface});
            // The node's link to Redis: 198.19.(i+1).2 here, .1 on Redis's side.
            const std::string here = uniqueName('f'), there = uniqueName('g');
            const std::string net = "198.19." + std::to_string(i + 1) + ".";
            Netns& s = n.bed->receiver();
            s.ip({"link", "add", here, "type", "veth", "peer", "name", there, "netns", redisNs_->name()});
            s.ip({"addr", "add", net + "2/24", "dev", here});
            redisNs_->ip({"addr", "add", net + "1/24", "dev", there});
            s.ip({"link", "set", here, "up"});
            redisNs_->ip({"link", "set", there, "up"});
            s.ip({"route", "add", std::string(kRedisAddr) + "/32", "via", net + "1"});
            n.run->writeConfig(configText(n));
        }
        source_ = nodes_[0].link->client4[0];
        for (const auto& n : nodes_)
            ASSERT_EQ(n.link->client4[0], source_) << "every node must see the client at one address";
    }

    void TearDown() override {
        if (HasFailure()) {
            for (const auto& n : nodes_)
                if (n.run)
                    std::fprintf(stderr, "[slit] %s log:\n%s", n.name.c_str(), n.run->log().c_str());
            if (!redisLog_.empty())
                std::fprintf(stderr, "[slit] redis log (tail):\n%s", tail(readFile(redisLog_)).c_str());
        }
    }

    ~FleetTest() override {
        servers_.clear();
        for (auto& n : nodes_)
            n.run.reset();
        redis_.reset();
        if (!dir_.empty())
            runCmd({"rm", "-rf", dir_});
    }

    static std::string tail(const std::string& text) {
        return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
    }

    static std::string configText(const Node& n) {
        return "[sluice]\ninterfaces = [\"" + n.iface + "\"]\nmax_sources = 4096\nmetrics = \"127.0.0.1:" +
               std::to_string(kMetricsPort) + "\"\n\n[fleet]\nredis = [\"redis://:" + kRedisPassword + "@" +
               kRedisAddr + ":" + std::to_string(kRedisPort) + "\"]\nnode = \"" + n.name +
               "\"\nsync_interval = \"100ms\"\n\n[[policy]]\nname = \"heavy\"\nproto = \"tcp\"\n"
               "ports = [" + std::to_string(kPort) + "]\nconnections = \"" + std::to_string(kLimit) +
               " per hour\"\naction = \"drop\"\nscope = \"fleet\"\n";
    }

    ::testing::AssertionResult startRedis() {
        size_t from = readFile(redisLog_).size();
        redis_.emplace(redisNs_.get(),
                       std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(kRedisPort),
                                                "--bind", kRedisAddr, "--requirepass", kRedisPassword,
                                                "--save", "", "--appendonly", "no", "--dir", dir_,
                                                "--daemonize", "no", "--protected-mode", "no"},
                       redisLog_);
        if (waitFor([&] { return readFile(redisLog_).find("Ready to accept connections", from) != std::string::npos; }))
            return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "redis-server did not start; log:\n" << tail(readFile(redisLog_));
    }

    void stopRedis() {
        redis_->signal(SIGTERM);
        auto st = redis_->wait(kWait);
        EXPECT_TRUE(st.has_value()) << "redis-server still running after SIGTERM";
        redis_.reset();
    }

    template <class F>
    static bool waitFor(F cond, Millis limit = kWait) {
        const int64_t end = monoNs() + int64_t(limit.count()) * 1'000'000;
        do {
            if (cond())
                return true;
            std::this_thread::sleep_for(Millis(25));
        } while (monoNs() < end);
        return false;
    }

    // Starts the node's daemon and waits until its first round reached Redis.
    ::testing::AssertionResult startNode(Node& n) {
        size_t from = n.run->log().size();
        if (auto r = n.run->start(); !r)
            return r;
        if (!n.run->waitLog("is up: fleet limits apply", from, kWait))
            return ::testing::AssertionFailure() << n.name << " did not reach Redis; log:\n" << n.run->log();
        return ::testing::AssertionSuccess();
    }

    ::testing::AssertionResult startFleet() {
        if (auto r = startRedis(); !r)
            return r;
        for (auto& n : nodes_)
            if (auto r = startNode(n); !r)
                return r;
        return ::testing::AssertionSuccess();
    }

    std::string metrics(const Node& n) {
        return n.bed->receiver().run([&] {
            httplib::Client c("127.0.0.1", kMetricsPort);
            c.set_connection_timeout(2);
            c.set_read_timeout(5);
            auto res = c.Get("/metrics");
            return res && res->status == 200 ? res->body : std::string();
        });
    }

    double metric(const Node& n, const std::string& series) { return metricValue(metrics(n), series); }

    std::string nodeLabel(const Node& n) const { return "{node=\"" + n.name + "\"}"; }

    // One connect from `src` to node i; true if it connected. A refused
    // SYN is dropped: the connect gives up after kConnectTimeout.
    bool connectTo(int i, const std::string& src) {
        Node& n = nodes_[i];
        return tcpConnects(*n.link->client, src, n.link->receiver4, kPort, 1, kConnectTimeout) == 1;
    }

    // `perNode` connects to each node, `rate` per second in all, the nodes
    // interleaved (one thread per node, each at rate / 3, offset by a third
    // of its gap), so a refused connect waiting out its timeout on one node
    // does not hold up the others. Returns how many connected; per node in
    // *each if given.
    int spread(const std::string& src, int perNode, double rate, std::array<int, kNodes>* each = nullptr) {
        std::array<int, kNodes> got{};
        const auto gap = std::chrono::microseconds(static_cast<int64_t>(1e6 * kNodes / rate));
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::thread> threads;
        for (int i = 0; i < kNodes; i++)
            threads.emplace_back([&, i] {
                auto next = start + gap * i / kNodes;
                for (int k = 0; k < perNode; k++) {
                    std::this_thread::sleep_until(next);
                    next += gap;
                    got[i] += connectTo(i, src) ? 1 : 0;
                }
            });
        for (auto& t : threads)
            t.join();
        if (each)
            *each = got;
        return got[0] + got[1] + got[2];
    }

    // Listeners on every node (the accepted connections are closed at once).
    void listen() {
        for (auto& n : nodes_)
            servers_.push_back(std::make_unique<TcpCounter>(n.bed->receiver(), n.link->receiver4, kPort));
    }

    std::string dir_, redisLog_, source_;
    std::unique_ptr<Netns> redisNs_;
    std::array<Node, kNodes> nodes_;
    std::optional<ChildProcess> redis_;
    std::vector<std::unique_ptr<TcpCounter>> servers_;
};

}  // namespace

TEST_F(FleetTest, AClientSpreadOverThreeNodesIsHeldToTheFleetLimit) {
    ASSERT_TRUE(startFleet());
    listen();
    constexpr double kRate = 10;
    std::array<int, kNodes> each{};
    int admitted = spread(source_, 15, kRate, &each);
    const double bound = kLimit + kRate * kStaleSeconds;
    EXPECT_GE(admitted, kLimit) << "the fleet admits at least its limit";
    EXPECT_LE(admitted, bound) << "per node: " << each[0] << ", " << each[1] << ", " << each[2]
                               << " (local limits alone: " << 3 * kLimit << ")";
    for (int i = 0; i < kNodes; i++)
        EXPECT_LT(each[i], kLimit) << nodes_[i].name << " alone never reached its local limit";

    // What the nodes report: they synced this source and found it over.
    for (const auto& n : nodes_) {
        std::string m = metrics(n);
        EXPECT_GT(metricValue(m, "sluice_fleet_syncs_total" + nodeLabel(n)), 0) << n.name;
        EXPECT_GT(metricValue(m, "sluice_fleet_sources_synced_total" + nodeLabel(n)), 0) << n.name;
        EXPECT_GT(metricValue(m, "sluice_fleet_sync_duration_seconds_count" + nodeLabel(n)), 0) << n.name;
        EXPECT_EQ(metricValue(m, "sluice_fleet_fallback" + nodeLabel(n)), 0) << n.name;
        EXPECT_EQ(metricValue(m, "sluice_fleet_nodes" + nodeLabel(n)), kNodes) << n.name;
        std::string redis = std::string(kRedisAddr) + ":" + std::to_string(kRedisPort);
        EXPECT_EQ(metricValue(m, "sluice_fleet_redis_up{node=\"" + n.name + "\",redis=\"" + redis + "\"}"), 1);
    }
}

// 10 per node is under the local limit of 12 everywhere, 30 in all is over.
TEST_F(FleetTest, UnderTheLimitOnEachNodeButOverInTotalIsLimited) {
    ASSERT_TRUE(startFleet());
    listen();
    constexpr double kRate = 5;
    std::array<int, kNodes> each{};
    int admitted = spread(source_, 10, kRate, &each);
    EXPECT_GE(admitted, kLimit);
    EXPECT_LE(admitted, kLimit + kRate * kStaleSeconds)
        << "per node: " << each[0] << ", " << each[1] << ", " << each[2] << " (local limits alone: 30)";
    // Another source is not affected by the first one's fleet total.
    const std::string other = nodes_[0].link->client4[1];
    for (int i = 0; i < kNodes; i++)
        EXPECT_TRUE(connectTo(i, other)) << nodes_[i].name;
}

// Redis stops: each node holds the fleet's sources to its local limits only,
// and says so (log, metrics). Redis comes back (empty, as after a crash):
// the units admitted meanwhile are sent, and fleet limits hold again without
// a restart.
TEST_F(FleetTest, RedisDownFallsBackToLocalLimitsAndFleetLimitsResumeWhenItReturns) {
    ASSERT_TRUE(startFleet());
    listen();
    std::vector<size_t> marks;
    for (const auto& n : nodes_)
        marks.push_back(n.run->log().size());
    stopRedis();
    for (int i = 0; i < kNodes; i++)
        ASSERT_TRUE(nodes_[i].run->waitLog("fall back to local limits", marks[i], kWait))
            << nodes_[i].name << " did not notice Redis going away:\n" << nodes_[i].run->log();
    for (const auto& n : nodes_) {
        std::string m = metrics(n);
        EXPECT_EQ(metricValue(m, "sluice_fleet_fallback" + nodeLabel(n)), 1) << n.name;
        EXPECT_GE(metricValue(m, "sluice_fleet_fallbacks_total" + nodeLabel(n)), 1) << n.name;
        std::string redis = std::string(kRedisAddr) + ":" + std::to_string(kRedisPort);
        EXPECT_GE(metricValue(m, "sluice_fleet_sync_errors_total{node=\"" + n.name + "\",redis=\"" + redis + "\"}"), 1);
        EXPECT_EQ(metricValue(m, "sluice_fleet_redis_up{node=\"" + n.name + "\",redis=\"" + redis + "\"}"), 0);
    }

    // Local limits: 14 tries per node, 12 get through on each.
    const std::string local = nodes_[0].link->client4[1];
    std::array<int, kNodes> each{};
    EXPECT_EQ(spread(local, 14, 50, &each), 3 * kLimit);
    for (int i = 0; i < kNodes; i++)
        EXPECT_EQ(each[i], kLimit) << nodes_[i].name;
    // A source under its local limit everywhere: 6 per node, all admitted;
    // the units wait on each node for Redis.
    const std::string pending = nodes_[0].link->client4[2];
    EXPECT_EQ(spread(pending, 6, 50), 18);

    for (int i = 0; i < kNodes; i++)
        marks[i] = nodes_[i].run->log().size();
    ASSERT_TRUE(startRedis());
    for (int i = 0; i < kNodes; i++)
        ASSERT_TRUE(nodes_[i].run->waitLog("is back: fleet limits apply", marks[i], kWait))
            << nodes_[i].name << " did not resume:\n" << nodes_[i].run->log();
    // The round that logged "back" sent the outage's 18 units and marked the
    // source over; give it time to write the marks.
    std::this_thread::sleep_for(Millis(500));
    for (int i = 0; i < kNodes; i++)
        EXPECT_FALSE(connectTo(i, pending)) << nodes_[i].name
                                            << ": 18 units over a limit of 12, though 6 remain locally";
    for (const auto& n : nodes_)
        EXPECT_EQ(metric(n, "sluice_fleet_fallback" + nodeLabel(n)), 0) << n.name;

    // And a fresh spread source is held to the fleet limit again.
    constexpr double kRate = 10;
    int admitted = spread(source_, 15, kRate);
    EXPECT_GE(admitted, kLimit);
    EXPECT_LE(admitted, kLimit + kRate * kStaleSeconds);
}

// A node stopped (detached) and started again joins the fleet: it sends its
// units and takes the fleet's verdicts like the others.
TEST_F(FleetTest, ARestartedNodeRejoinsTheFleet) {
    ASSERT_TRUE(startFleet());
    listen();
    Node& n = nodes_[2];
    auto st = n.run->stop(SIGTERM);
    ASSERT_TRUE(st.has_value()) << "still running 5 s after SIGTERM";
    EXPECT_EQ(*st, 0);
    EXPECT_FALSE(xdpAttached(n.bed->receiver(), n.iface)) << "stopped without --keep-on-exit: detached";
    ASSERT_TRUE(startNode(n));

    constexpr double kRate = 10;
    std::array<int, kNodes> each{};
    int admitted = spread(source_, 15, kRate, &each);
    EXPECT_GE(admitted, kLimit);
    EXPECT_LE(admitted, kLimit + kRate * kStaleSeconds)
        << "per node: " << each[0] << ", " << each[1] << ", " << each[2];
    EXPECT_LT(each[2], kLimit) << "the restarted node takes the fleet's verdict";
    std::string m = metrics(n);
    EXPECT_GT(metricValue(m, "sluice_fleet_sources_synced_total" + nodeLabel(n)), 0);
    EXPECT_EQ(metricValue(m, "sluice_fleet_nodes" + nodeLabel(n)), kNodes);
}

// ---- client-side sharding over two Redis servers ---------------------------------

namespace {

// Two redis-servers on the loopback of a namespace of their own, and one
// node's sync engine run inside it over an unattached data path whose unit
// counters the test writes (as the XDP program would).
class FleetShardsTest : public ::testing::Test {
protected:
    static constexpr uint16_t kPorts[2] = {6391, 6392};

    void SetUp() override {
        if (!pathExists("/usr/bin/redis-server"))
            GTEST_SKIP() << "redis-server is not installed (tools/install-deps.sh)";
        char tmpl[] = "/tmp/sluice-shards-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        for (int i = 0; i < 2; i++)
            ASSERT_TRUE(startRedis(i));
        dp_.emplace(sluice::Datapath::loadUnattached(4096));
        sluice::Policy p;
        p.name = "sharded";
        p.proto = sluice::Proto::Tcp;
        p.ports = {{8080, 8080}};
        p.limits = {sluice::Limit{sluice::LimitKind::Connections, 5, 3600 * sluice::kNsPerSecond, 0}};
        p.scope = sluice::Scope::Fleet;
        sluice::Ruleset rules;
        rules.policies = {p};
        dp_->install(rules);
        target_ = sluice::FleetTarget{"shards", dp_->mapFd("sluice_fleet_units"), dp_->mapFd("sluice_fleet_over"),
                                      dp_->installedPolicies()};
        for (int i = 0; i < kSources; i++) {
            sluice_source_key k{};
            k.state_tag = target_.policies.at(0).stateTag;
            sluice::Address a = sluice::Address::parse("10.1.0." + std::to_string(i + 1));
            std::memcpy(k.addr, a.bytes.data(), 16);
            keys_.push_back(k);
        }
        config_.node = "shard-node";
        for (uint16_t port : kPorts)
            config_.redis.push_back(sluice::parseRedisUrl("redis://127.0.0.1:" + std::to_string(port)));
    }

    ~FleetShardsTest() override {
        for (auto& r : redis_)
            r.reset();
        if (!dir_.empty())
            runCmd({"rm", "-rf", dir_});
    }

    ::testing::AssertionResult startRedis(int i) {
        const std::string log = dir_ + "/redis" + std::to_string(i) + ".log";
        size_t from = readFile(log).size();
        redis_[i].emplace(&ns_,
                          std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(kPorts[i]),
                                                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                                   "--dir", dir_, "--daemonize", "no"},
                          log);
        const int64_t end = monoNs() + 8'000'000'000;
        while (monoNs() < end) {
            if (readFile(log).find("Ready to accept connections", from) != std::string::npos)
                return ::testing::AssertionSuccess();
            std::this_thread::sleep_for(Millis(25));
        }
        return ::testing::AssertionFailure() << "redis " << i << " did not start:\n" << readFile(log);
    }

    void setUnits(int i, uint64_t n) {
        sluice_fleet_units u{};
        u.units[0] = n;
        ASSERT_EQ(bpf_map_update_elem(target_.unitsFd, &keys_[i], &u, BPF_ANY), 0);
    }

    bool over(int i) {
        uint64_t until = 0;
        return bpf_map_lookup_elem(target_.overFd, &keys_[i], &until) == 0 && until > sluice::Datapath::nowNs();
    }

    sluice::FleetRound round(sluice::FleetEngine& engine) {
        return ns_.run([&] { return engine.round({target_}); });
    }

    // A command to shard i, inside the namespace: its integer answer, or -1.
    long long redisInt(int i, const std::vector<std::string>& args) {
        return ns_.run([&] {
            redisContext* c = redisConnect("127.0.0.1", kPorts[i]);
            long long v = -1;
            if (c && !c->err) {
                std::vector<const char*> argv;
                std::vector<size_t> lens;
                for (const auto& a : args) {
                    argv.push_back(a.c_str());
                    lens.push_back(a.size());
                }
                auto* r = static_cast<redisReply*>(redisCommandArgv(c, int(argv.size()), argv.data(), lens.data()));
                if (r && r->type == REDIS_REPLY_INTEGER)
                    v = r->integer;
                else if (r && r->type == REDIS_REPLY_STRING)
                    v = std::stoll(std::string(r->str, r->len));
                else if (r && r->type == REDIS_REPLY_NIL)
                    v = 0;
                freeReplyObject(r);
            }
            if (c)
                redisFree(c);
            return v;
        });
    }

    // The shard holding source i's key, and the key of this window.
    int shardOf(int i) const {
        return int(sluice::fleetShardOf(baseOf(i), 2));
    }
    std::string baseOf(int i) const {
        const auto& l = target_.policies.at(0).limits.at(0);
        std::string key = sluice::fleetKey("sharded", l, sluice::Address::parse("10.1.0." + std::to_string(i + 1)), 0);
        return key.substr(0, key.rfind(':'));
    }
    std::string windowKey(int i) const {
        const auto& l = target_.policies.at(0).limits.at(0);
        return baseOf(i) + ":" + std::to_string(realNowNs() / l.periodNs);
    }

    static uint64_t realNowNs() {
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return uint64_t(ts.tv_sec) * sluice::kNsPerSecond + uint64_t(ts.tv_nsec);
    }

    // The test reads the keys of the window its rounds wrote to, as of when
    // it reads them: a round before the hour turns and a read after it would
    // look in the next hour's keys (about one run in 2,500: the rounds and
    // reads span ~1.5 s). So it starts where the window has more than `needNs`
    // left, waiting out the turn when it is nearer.
    void awayFromTheWindowsEnd(uint64_t needNs) const {
        const uint64_t period = target_.policies.at(0).limits.at(0).periodNs;
        const uint64_t left = period - realNowNs() % period;
        if (left < needNs)
            std::this_thread::sleep_for(std::chrono::nanoseconds(left) + Millis(100));
    }

    static constexpr int kSources = 64;
    Netns ns_;
    std::string dir_;
    std::optional<ChildProcess> redis_[2];
    std::optional<sluice::Datapath> dp_;
    sluice::FleetTarget target_;
    std::vector<sluice_source_key> keys_;
    sluice::FleetConfig config_;
};

}  // namespace

TEST_F(FleetShardsTest, SourcesAreShardedAndADownShardKeepsItsUnitsUntilItReturns) {
    awayFromTheWindowsEnd(30 * sluice::kNsPerSecond);
    // Sources 0..7 are over the limit of 5 (6 units), the rest under (3).
    for (int i = 0; i < kSources; i++)
        setUnits(i, i < 8 ? 6 : 3);
    sluice::FleetEngine engine(config_);
    sluice::FleetRound r = round(engine);
    EXPECT_EQ(r.shardsFailed, 0U);
    EXPECT_EQ(r.items, uint64_t(kSources));
    EXPECT_EQ(r.over, 8U);
    long long keys0 = redisInt(0, {"DBSIZE"}), keys1 = redisInt(1, {"DBSIZE"});
    EXPECT_GT(keys0, 1) << "shard 0 holds some sources (and the node list)";
    EXPECT_GT(keys1, 0) << "shard 1 holds some sources";
    EXPECT_EQ(keys0 + keys1, kSources + 1) << "one key per source, plus sluice:nodes";
    for (int i = 0; i < kSources; i++) {
        EXPECT_EQ(redisInt(shardOf(i), {"GET", windowKey(i)}), i < 8 ? 6 : 3) << "source " << i;
        EXPECT_EQ(over(i), i < 8) << "source " << i;
    }

    // Shard 1 goes away: its sources' new units wait, shard 0's are sent.
    int on1 = -1, on0 = -1;
    for (int i = 8; i < kSources; i++)
        (shardOf(i) ? on1 : on0) = i;
    ASSERT_GE(on1, 0);
    ASSERT_GE(on0, 0);
    redis_[1]->signal(SIGKILL);
    redis_[1]->wait();
    redis_[1].reset();
    for (int i = 0; i < kSources; i++)
        setUnits(i, i < 8 ? 6 : 4);
    r = round(engine);
    EXPECT_EQ(r.shardsFailed, 1U);
    EXPECT_TRUE(sluice::fleetStats().fallback);
    EXPECT_EQ(redisInt(0, {"GET", windowKey(on0)}), 4);

    // Back (empty, as after a crash): after the retry delay the waiting
    // unit is sent; nothing is sent twice to the shard that stayed up.
    ASSERT_TRUE(startRedis(1));
    std::this_thread::sleep_for(Millis(1100));
    r = round(engine);
    EXPECT_EQ(r.shardsFailed, 0U);
    EXPECT_FALSE(sluice::fleetStats().fallback);
    EXPECT_EQ(redisInt(1, {"GET", windowKey(on1)}), 1) << "the unit admitted while shard 1 was down";
    EXPECT_EQ(redisInt(0, {"GET", windowKey(on0)}), 4);
}
