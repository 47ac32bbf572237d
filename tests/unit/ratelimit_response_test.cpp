// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The 429 answer of action respond, byte for byte where it matters.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "ratelimit_response.h"

namespace sluice {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ULL;

struct Parsed {
    std::string statusLine;
    std::map<std::string, std::string> fields;
    std::string body;
};

Parsed parse(const std::string& resp)
{
    Parsed p;
    size_t end = resp.find("\r\n\r\n");
    EXPECT_NE(end, std::string::npos) << resp;
    p.body = resp.substr(end + 4);
    std::string head = resp.substr(0, end);
    size_t pos = 0;
    bool first = true;
    while (pos <= head.size()) {
        size_t eol = head.find("\r\n", pos);
        std::string line = head.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
        if (first) {
            p.statusLine = line;
            first = false;
        } else {
            size_t colon = line.find(": ");
            EXPECT_NE(colon, std::string::npos) << line;
            EXPECT_FALSE(p.fields.count(line.substr(0, colon))) << "repeated field " << line;
            p.fields[line.substr(0, colon)] = line.substr(colon + 2);
        }
        if (eol == std::string::npos)
            break;
        pos = eol + 2;
    }
    return p;
}

LimitState state(LimitKind kind, uint64_t count, uint64_t periodNs, uint64_t remaining, uint64_t retryNs)
{
    LimitState s;
    s.limit = Limit{kind, count, periodNs, 0};
    s.remaining = remaining;
    s.retryAfterNs = retryNs;
    return s;
}

TEST(TooManyRequests, OneLimitFlaskLimiterStyle)
{
    RespondedConnection conn{"heavy-task",
                             {state(LimitKind::Connections, 5, 60 * kSecond, 0, 11 * kSecond + 1)}};
    Parsed p = parse(tooManyRequestsResponse(conn));
    EXPECT_EQ(p.statusLine, "HTTP/1.1 429 Too Many Requests");
    // 11 s and 1 ns: rounded up, a client that waits finds a unit.
    EXPECT_EQ(p.fields["Retry-After"], "12");
    EXPECT_EQ(p.fields["RateLimit-Policy"], "\"heavy-task\";q=5;w=60");
    EXPECT_EQ(p.fields["RateLimit"], "\"heavy-task\";r=0;t=12");
    EXPECT_EQ(p.fields["Connection"], "close");
    EXPECT_EQ(p.fields["Content-Type"], "application/json");
    EXPECT_EQ(p.body, "{\"error\": \"ratelimit exceeded\", \"message\": \"5 per 1 minute\"}");
    EXPECT_EQ(p.fields["Content-Length"], std::to_string(p.body.size()));
}

TEST(TooManyRequests, TheLongestWaitIsTheOneReported)
{
    RespondedConnection conn{"api",
                             {state(LimitKind::Connections, 5, 60 * kSecond, 3, 0),
                              state(LimitKind::Connections, 100, 86400 * kSecond, 0, 3600 * kSecond),
                              state(LimitKind::Packets, 50, kSecond, 0, kSecond / 50)}};
    Parsed p = parse(tooManyRequestsResponse(conn));
    EXPECT_EQ(p.fields["Retry-After"], "3600");
    EXPECT_EQ(p.fields["RateLimit-Policy"], "\"api\";q=5;w=60, \"api/2\";q=100;w=86400, \"api/3\";q=50;w=1");
    EXPECT_EQ(p.fields["RateLimit"], "\"api/2\";r=0;t=3600");
    EXPECT_NE(p.body.find("\"100 per 1 day\""), std::string::npos) << p.body;
}

TEST(TooManyRequests, RefilledSinceTheVerdictStillSaysOneSecond)
{
    RespondedConnection conn{"p", {state(LimitKind::Packets, 20, kSecond, 1, 0)}};
    Parsed p = parse(tooManyRequestsResponse(conn));
    EXPECT_EQ(p.fields["Retry-After"], "1");
    EXPECT_EQ(p.fields["RateLimit"], "\"p\";r=1;t=1");
}

TEST(TooManyRequests, BurstIsNotPartOfTheMessage)
{
    LimitState s = state(LimitKind::Packets, 50, kSecond, 0, kSecond);
    s.limit.burst = 100;
    Parsed p = parse(tooManyRequestsResponse(RespondedConnection{"p", {s}}));
    EXPECT_EQ(p.body, "{\"error\": \"ratelimit exceeded\", \"message\": \"50 per 1 second\"}");
}

TEST(TooManyRequests, QuotesInNamesAreEscaped)
{
    RespondedConnection conn{"a\"b\\c", {state(LimitKind::Packets, 1, kSecond, 0, kSecond)}};
    Parsed p = parse(tooManyRequestsResponse(conn));
    EXPECT_EQ(p.fields["RateLimit-Policy"], "\"a\\\"b\\\\c\";q=1;w=1");
}

TEST(TooManyRequests, WithoutARecord)
{
    Parsed p = parse(tooManyRequestsResponse());
    EXPECT_EQ(p.statusLine, "HTTP/1.1 429 Too Many Requests");
    EXPECT_EQ(p.fields["Retry-After"], "1");
    EXPECT_FALSE(p.fields.count("RateLimit-Policy"));
    EXPECT_FALSE(p.fields.count("RateLimit"));
    EXPECT_EQ(p.fields["Connection"], "close");
    EXPECT_EQ(p.fields["Content-Length"], std::to_string(p.body.size()));
}

}  // namespace
}  // namespace sluice
