// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Action respond end to end: a Flask app under gunicorn in the receiver
// namespace, `sluice run` (the real binary) protecting its port, curl clients
// in a client namespace. Over the limit, curl gets sluice's 429 and the app
// never sees the request; without the responder, respond falls back to
// reject. Limits are "N per hour", so what passes is counted, not timed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api_fixture.h"

using namespace slit;

namespace {

constexpr int kLimit = 5;
const std::string kHeavy = "/api/v1/heavy-task";

class RespondTest : public ApiFixture {
protected:
    void SetUp() override {
        setUpApi(2, 2);
        if (IsSkipped())
            return;
        run_->writeConfig(policyConfig("connections = \"" + std::to_string(kLimit) +
                                       " per hour\"\naction = \"respond\"\n"));
    }

    std::string url(const std::string& addr) const {
        return urlOf(addr == link_->client4[0] || addr == link_->client4[1] ? link_->receiver4 : link_->receiver6,
                     kApiPort, kHeavy);
    }

    HttpResult get(const std::string& src) { return httpGet(*link_->client, src, url(src)); }

    // Over the limit from `src`: kLimit answers from the app, then sluice's
    // 429s, each with the fields of the IETF draft and Flask-Limiter's body.
    void expectHeldToLimit(const std::string& src) {
        for (int i = 0; i < kLimit; i++) {
            HttpResult r = get(src);
            ASSERT_EQ(r.status, 200) << "request " << i + 1 << " from " << src << " (curl exit " << r.curlExit
                                     << ")";
            EXPECT_NE(r.body.find("\"result\":\"done\""), std::string::npos) << r.body;
        }
        for (int i = 0; i < 3; i++) {
            HttpResult r = get(src);
            ASSERT_EQ(r.status, 429) << "request " << kLimit + i + 1 << " from " << src << " (curl exit "
                                     << r.curlExit << ")";
            // 5 per hour: the next connection is due in (0, 720] s.
            int retry = std::stoi(r.headers["retry-after"]);
            EXPECT_GE(retry, 1);
            EXPECT_LE(retry, 720);
            EXPECT_EQ(r.headers["ratelimit-policy"], "\"heavy-task\";q=5;w=3600");
            EXPECT_EQ(r.headers["ratelimit"], "\"heavy-task\";r=0;t=" + std::to_string(retry));
            EXPECT_EQ(r.headers["connection"], "close");
            EXPECT_EQ(r.headers["content-type"], "application/json");
            EXPECT_EQ(r.body, "{\"error\": \"ratelimit exceeded\", \"message\": \"5 per 1 hour\"}");
        }
    }

};

TEST_F(RespondTest, OverLimitIPv4ClientGets429AndTheAppNeverSeesIt) {
    ASSERT_TRUE(run_->start());
    ASSERT_TRUE(run_->waitLog("responder on", 0));
    expectHeldToLimit(link_->client4[0]);
    // Another client has its own bucket and reaches the app.
    EXPECT_EQ(get(link_->client4[1]).status, 200);
    auto stats = api_->stats();
    EXPECT_EQ(stats.served[kHeavy + " 200"], kLimit + 1);
    EXPECT_EQ(stats.served.count(kHeavy + " 429"), 0U) << "the app answered a 429 itself";
    EXPECT_EQ(stats.served.size(), 2U) << "only heavy-task 200 and the readiness /health";
    // The three refused SYNs were handed over (their later packets are not
    // charged under a connections-only limit, so they pass as admitted).
    EXPECT_EQ(counted(SLUICE_VERDICT_RESPONDED), 3U);
    EXPECT_EQ(counted(SLUICE_VERDICT_RESPOND_FALLBACK), 0U);
}

TEST_F(RespondTest, OverLimitIPv6ClientGets429AndTheAppNeverSeesIt) {
    ASSERT_TRUE(run_->start());
    expectHeldToLimit(link_->client6[0]);
    // ipv6_prefix defaults to 64: the other address of the /64 shares the
    // bucket and is refused too.
    EXPECT_EQ(get(link_->client6[1]).status, 429);
    EXPECT_EQ(api_->served(kHeavy, 200), kLimit);
}

TEST_F(RespondTest, StatusAndMetricsShowTheResponder) {
    ASSERT_TRUE(run_->start());
    CmdResult st = runCmd({"nsenter", "--net=" + bed_.receiver().path(), sluiceBinary(), "status", link_->receiverIf,
                           "--json"});
    ASSERT_EQ(st.status, 0) << st.err;
    auto j = nlohmann::json::parse(st.out);
    ASSERT_EQ(j.size(), 1U);
    EXPECT_EQ(j[0]["responder"], true);
    EXPECT_EQ(j[0]["respond_fallback"], false);

    for (int i = 0; i < kLimit + 2; i++)
        get(link_->client4[0]);
    HttpResult m = httpGet(bed_.receiver(), "127.0.0.1", "http://127.0.0.1:9464/metrics");
    ASSERT_EQ(m.status, 200);
    EXPECT_NE(m.body.find("sluice_responder_up 1"), std::string::npos);
    EXPECT_NE(m.body.find("sluice_responder_connections_total{result=\"answered\"} 2"), std::string::npos)
        << m.body;
    EXPECT_NE(m.body.find("verdict=\"responded\"} 2"), std::string::npos);
}

TEST_F(RespondTest, WithoutTheResponderRespondFallsBackToReject) {
    // --keep-on-exit: the XDP program stays, the responder (a thread of the
    // daemon) goes, and the kernel empties the socket map.
    ASSERT_TRUE(run_->start({"--keep-on-exit"}));
    for (int i = 0; i < kLimit; i++)
        ASSERT_EQ(get(link_->client4[0]).status, 200);
    ASSERT_EQ(run_->stop(), 0);

    HttpResult r = get(link_->client4[0]);
    EXPECT_EQ(r.curlExit, 7) << "connection refused (RST), not a timeout";
    EXPECT_EQ(r.status, 0);
    EXPECT_LT(r.seconds, 1.0) << "refused at once";
    EXPECT_EQ(counted(SLUICE_VERDICT_RESPOND_FALLBACK), 1U);
    EXPECT_EQ(counted(SLUICE_VERDICT_RESPONDED), 0U);

    CmdResult st = runCmd({"nsenter", "--net=" + bed_.receiver().path(), sluiceBinary(), "status", link_->receiverIf});
    ASSERT_EQ(st.status, 0) << st.err;
    EXPECT_NE(st.out.find("not running"), std::string::npos) << st.out;
    EXPECT_NE(st.out.find("action respond falls back to reject"), std::string::npos) << st.out;
    EXPECT_EQ(api_->served(kHeavy, 200), kLimit);

    // A new daemon adopts the live program and answers 429 again.
    ASSERT_TRUE(run_->start());
    EXPECT_EQ(get(link_->client4[0]).status, 429);
}

// A flood of refused connections that never send a request: the responder
// holds at most its fixed table, closes each at its deadline, and still
// answers afterwards.
TEST_F(RespondTest, ResponderStaysBoundedUnderIdleConnections) {
    ASSERT_TRUE(run_->start());
    const std::string src = link_->client4[0];
    for (int i = 0; i < kLimit; i++)
        ASSERT_EQ(get(src).status, 200);

    constexpr int kIdle = 400;  // > Responder::kMaxConnections (256)
    std::vector<int> fds;
    for (int i = 0; i < kIdle; i++) {
        int fd = link_->client->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
        sockaddr_in local{}, peer{};
        local.sin_family = peer.sin_family = AF_INET;
        inet_pton(AF_INET, src.c_str(), &local.sin_addr);
        inet_pton(AF_INET, link_->receiver4.c_str(), &peer.sin_addr);
        peer.sin_port = htons(kApiPort);
        ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local), 0);
        connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
    }
    auto metric = [&](const std::string& name) {
        HttpResult m = httpGet(bed_.receiver(), "127.0.0.1", "http://127.0.0.1:9464/metrics");
        std::smatch got;
        std::regex re("\n" + std::regex_replace(name, std::regex(R"([{}"])"), R"(\$&)") + " ([0-9]+)");
        return std::regex_search(m.body, got, re) ? std::stoll(got[1]) : -1LL;
    };
    int64_t peak = 0;
    const int64_t end = monoNs() + 6'000'000'000LL;  // two deadlines and slack
    while (monoNs() < end) {
        int64_t open = metric("sluice_responder_open_connections");
        ASSERT_GE(open, 0) << "no sluice_responder_open_connections";
        EXPECT_LE(open, 256);
        peak = std::max(peak, open);
        if (metric("sluice_responder_connections_total{result=\"timeout\"}") >= kIdle)
            break;
        std::this_thread::sleep_for(Millis(100));
    }
    for (int fd : fds)
        close(fd);
    EXPECT_EQ(peak, 256) << "the table filled";
    EXPECT_GE(metric("sluice_responder_connections_total{result=\"timeout\"}"), kIdle);
    EXPECT_EQ(get(src).status, 429) << "still answering after the flood";
    EXPECT_EQ(api_->served(kHeavy, 200), kLimit) << "no idle connection reached the app";
}

}  // namespace
