// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The mission on a real API: tests/integration/apps/api.py under gunicorn in
// the receiver namespace, `sluice run` protecting it, clients in a client
// namespace with several source addresses (IPv4 and IPv6). Each scenario is
// bounded in time and traffic and cleans up (SluiceRun, ApiServer, Testbed).
// The side-by-side figures against Flask-Limiter come from
// `make bench-api` (tests/bench/api_bench.cpp), not from here.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "api_fixture.h"
#include "flood_gen.h"
#include "http_load.h"

using namespace slit;

namespace {

const std::string kHeavy = "/api/v1/heavy-task";

std::string describe(const Outcomes& o) {
    std::string s;
    for (const auto& [k, v] : o)
        s += (s.empty() ? "" : ", ") + k + ": " + std::to_string(v);
    return s;
}

class Scenario : public ApiFixture {
protected:
    // 2 legitimate IPv4 sources, 12 attackers; 3 IPv6 addresses in one /64.
    void SetUp() override { setUpApi(14, 3); }

    std::vector<std::string> legitSources() const { return {link_->client4[0], link_->client4[1]}; }
    std::vector<std::string> attackSources() const {
        return {link_->client4.begin() + 2, link_->client4.end()};
    }
};

// "5 per minute" on the API port with action reject: 5 answers, then
// refusals at once, while another client keeps getting 200s.
TEST_F(Scenario, OverFivePerMinuteRejectRefusesWhileOthersAreServed) {
    run_->writeConfig(policyConfig("connections = \"5 per minute\"\naction = \"reject\"\n"));
    ASSERT_TRUE(run_->start());
    const std::string a = link_->client4[0], b = link_->client4[1];
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(quickGet(*link_->client, a, link_->receiver4, kApiPort, kHeavy).status, 200) << i + 1;
    for (int i = 0; i < 3; i++) {
        Probe p = quickGet(*link_->client, a, link_->receiver4, kApiPort, kHeavy);
        EXPECT_EQ(p.err, ECONNREFUSED) << "request " << 6 + i << ": " << outcomeOf(p);
        EXPECT_LT(p.seconds, 0.5) << "refused at once";
        EXPECT_EQ(quickGet(*link_->client, b, link_->receiver4, kApiPort, kHeavy).status, 200);
    }
    auto st = api_->stats();
    EXPECT_EQ(st.heavyBySource[a], 5);
    EXPECT_EQ(st.heavyBySource[b], 3);
}

// A flood from 12 addresses, 16 threads as fast as answers come, against
// "5 per minute" with action respond: the two legitimate clients within the
// limit keep >= 99% success, no over-limit request reaches the app, and the
// app's CPU stays near idle (it pays only for the attackers' admitted few).
TEST_F(Scenario, FloodFromManyAddressesLeavesLegitimateClientsServed) {
    run_->writeConfig(policyConfig("connections = \"5 per minute\"\naction = \"respond\"\n"));
    ASSERT_TRUE(run_->start());
    FloodPlan plan;
    plan.legitSources = legitSources();
    plan.attackSources = attackSources();
    plan.dst = link_->receiver4;
    plan.legitRequests = 4;  // one every 3 s: within 5 per minute
    plan.legitInterval = Millis(3000);
    FloodReport r = runFlood(*link_->client, *api_, plan);

    EXPECT_GE(r.legitOk(), r.legitSent() * 99 / 100) << "legitimate: " << r.legitOk() << "/" << r.legitSent();
    EXPECT_GT(r.attack["429"], 1000) << describe(r.attack);
    int attackServed = 0;
    for (const auto& src : plan.attackSources)
        attackServed += r.appAfter.heavyBySource[src];
    // 5 each, plus one refill per 12 s per source during the flood.
    const int bound = int(plan.attackSources.size()) * (5 + 1 + int(r.seconds / 12));
    EXPECT_LE(attackServed, bound) << "the app served the attackers more than their limit";
    EXPECT_EQ(r.attack["200"], attackServed) << "every 200 an attacker got was counted by the app";
    // Near idle: the admitted requests' CPU plus interpreter overhead, far
    // below one busy worker (r.seconds of CPU).
    EXPECT_LT(r.appCpuSeconds, 0.25 * r.seconds)
        << "the app burnt " << r.appCpuSeconds << " s of CPU in " << r.seconds << " s";
    std::printf("[flood] %.1f s: legitimate %d/%d, p99 %.3f s; attack %s; app CPU %.2f s; attackers served %d\n",
                r.seconds, r.legitOk(), r.legitSent(), r.legitP99(), describe(r.attack).c_str(),
                r.appCpuSeconds, attackServed);
}

// wrk keeps its connections alive, so after its first 5 connections a
// connections limit never fires again: the packets limit holds it, while a
// legitimate client on another address is served.
TEST_F(Scenario, KeepAliveFloodIsHeldByThePacketsLimit) {
    if (::access("/usr/bin/wrk", X_OK) != 0)
        GTEST_SKIP() << "wrk is not installed (tools/install-deps.sh installs it)";
    run_->writeConfig(policyConfig("connections = \"5 per minute\"\n"
                                                    "packets = \"10/second burst 20\"\naction = \"drop\"\n"));
    ASSERT_TRUE(run_->start());
    // wrk cannot pick its source: it uses the veth's primary address, client4[0].
    const std::string wrkSrc = link_->client4[0], legit = link_->client4[1];
    const int seconds = 8;
    ChildProcess wrk(link_->client.get(),
                     {"/usr/bin/wrk", "-t2", "-c10", "-d" + std::to_string(seconds) + "s", "--timeout", "2s",
                      urlOf(link_->receiver4, kApiPort, kHeavy)},
                     run_->dir() + "/wrk.log");
    LegitResult l = runLegit(*link_->client, legit, link_->receiver4, kApiPort, kHeavy, 4, Millis(1500));
    ASSERT_TRUE(wrk.wait(Millis((seconds + 10) * 1000)).has_value()) << "wrk did not finish";
    EXPECT_GE(l.ok, l.sent * 99 / 100) << describe(l.outcomes);
    auto st = api_->stats();
    // Every request wrk got answered cost it at least one packet to the
    // port: at most burst + rate x (its run + slack) of them passed.
    EXPECT_LE(st.heavyBySource[wrkSrc], 20 + 10 * (seconds + 3)) << readFile(run_->dir() + "/wrk.log");
    EXPECT_GT(counted(SLUICE_VERDICT_LIMITED), 0U);
    std::printf("[keep-alive] wrk served %d; wrk says:\n%s", st.heavyBySource[wrkSrc],
                readFile(run_->dir() + "/wrk.log").c_str());
}

// IPv6 clients rotating addresses inside one /64 share the /64's bucket.
TEST_F(Scenario, IPv6RotationInsideOneSlash64IsHeldToItsLimit) {
    run_->writeConfig(policyConfig("connections = \"5 per hour\"\nipv6_prefix = 64\n"
                                                    "action = \"respond\"\n"));
    ASSERT_TRUE(run_->start());
    int ok = 0, refused = 0;
    for (int i = 0; i < 12; i++) {
        const std::string& src = link_->client6[size_t(i) % link_->client6.size()];
        Probe p = quickGet(*link_->client, src, link_->receiver6, kApiPort, kHeavy);
        ok += p.status == 200;
        refused += p.status == 429;
    }
    EXPECT_EQ(ok, 5);
    EXPECT_EQ(refused, 7);
    int served = 0;
    for (const auto& src : link_->client6)
        served += api_->stats().heavyBySource[src];
    EXPECT_EQ(served, 5);
}

// A spoofed SYN flood from random IPv6 sources at the generator's top rate
// (bounded: 8 s, 200M frames; over 1M sent): legitimate IPv4 and IPv6
// clients within their limit, connecting all along, still connect.
TEST_F(Scenario, SpoofedSynFloodLeavesLegitimateClientsConnecting) {
    if (::access(floodBinary().c_str(), X_OK) != 0)
        GTEST_SKIP() << floodBinary() << " is not built (make flood)";
    // ipv6_prefix 128: the spoofed sources share the testbed's /64 with the
    // legitimate IPv6 client; per address, each is a source of its own (the
    // 1M-source case), and none shares the legitimate client's bucket.
    run_->writeConfig(policyConfig("connections = \"5 per second burst 20\"\n"
                                                    "ipv6_prefix = 128\naction = \"respond\"\n"));
    ASSERT_TRUE(run_->start());
    auto gen = startFlood(bed_.receiver(), *link_,
                          {"--dst", link_->receiver6, "--src-prefix", "fd00:5c::8000:0:0/96", "--sources", "random",
                           "--proto", "tcp-syn", "--size", "74", "--dport", std::to_string(kApiPort), "--count",
                           "200000000", "--duration", "8s"},
                          run_->dir() + "/flood.log");
    std::this_thread::sleep_for(Millis(500));
    LegitResult l4, l6;
    std::thread v6([&] {
        l6 = runLegit(*link_->client, link_->client6[0], link_->receiver6, kApiPort, "/health", 15, Millis(400));
    });
    l4 = runLegit(*link_->client, link_->client4[0], link_->receiver4, kApiPort, "/health", 15, Millis(400));
    v6.join();
    auto status = gen->wait(Millis(20000));
    ASSERT_TRUE(status.has_value()) << "the generator did not stop";
    std::string genLog = readFile(run_->dir() + "/flood.log");
    ASSERT_EQ(*status, 0) << genLog;
    unsigned long long sent = 0;
    ASSERT_EQ(std::sscanf(genLog.c_str(), "sent %llu", &sent), 1) << genLog;
    EXPECT_GE(sent, 1'000'000ULL) << "a flood of at least 1M random sources";
    EXPECT_NE(genLog.find("stopped by duration"), std::string::npos) << "it lasted through the clients";
    EXPECT_GE(l4.ok + l6.ok, (l4.sent + l6.sent) * 99 / 100)
        << "IPv4: " << describe(l4.outcomes) << "; IPv6: " << describe(l6.outcomes) << "\n" << genLog;
    std::printf("[spoofed] legitimate IPv4 %s, IPv6 %s; p99 %.3f s / %.3f s; during: %s", describe(l4.outcomes).c_str(),
                describe(l6.outcomes).c_str(), l4.p99(), l6.p99(), genLog.c_str());
}

}  // namespace
