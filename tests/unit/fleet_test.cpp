// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The pure parts of the fleet sync (userspace/fleet.h): Redis URLs, the
// sliding-window verdict and its over-until time, key names and sharding.
// The sync against a real Redis is in tests/integration/fleet_test.cpp.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "error.h"
#include "fleet.h"

namespace sluice {
namespace {

constexpr uint64_t kSecond = kNsPerSecond;
constexpr uint64_t kMinute = 60 * kSecond;

TEST(FleetRedisUrl, Forms)
{
    RedisEndpoint a = parseRedisUrl("redis://10.0.0.5");
    EXPECT_EQ(a.host, "10.0.0.5");
    EXPECT_EQ(a.port, 6379);
    EXPECT_EQ(a.password, "");
    EXPECT_EQ(a.db, 0U);

    RedisEndpoint b = parseRedisUrl("redis://:s%40cret@redis.internal:6380/3");
    EXPECT_EQ(b.host, "redis.internal");
    EXPECT_EQ(b.port, 6380);
    EXPECT_EQ(b.user, "");
    EXPECT_EQ(b.password, "s@cret");
    EXPECT_EQ(b.db, 3U);

    RedisEndpoint c = parseRedisUrl("redis://sluice:pw@[fd00::5]:7000");
    EXPECT_EQ(c.user, "sluice");
    EXPECT_EQ(c.password, "pw");
    EXPECT_EQ(c.host, "fd00::5");
    EXPECT_EQ(c.str(), "[fd00::5]:7000");
}

TEST(FleetRedisUrl, ErrorsNeverShowThePassword)
{
    for (const char* url : {"redis://:topsecret@h:0", "redis://:topsecret@h:99999", "redis://:topsecret@h/x",
                            "redis://:topsecret@"}) {
        try {
            parseRedisUrl(url);
            ADD_FAILURE() << url << " was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Usage);
            EXPECT_EQ(std::string(e.what()).find("topsecret"), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(parseRedisUrl("http://h"), Error);
    EXPECT_THROW(parseRedisUrl("redis://[::1"), Error);
    EXPECT_THROW(parseRedisUrl("redis://:@h"), Error);
}

// A host is a name or an address: nothing that breaks a log line or a
// config written back (config_fuzz found "10.\n'''x[" accepted).
TEST(FleetRedisUrl, HostIsANameOrAnAddress)
{
    EXPECT_EQ(parseRedisUrl("redis://redis_1.fleet-a.internal:6380").host, "redis_1.fleet-a.internal");
    EXPECT_EQ(parseRedisUrl("redis://" + std::string(253, 'h')).host.size(), 253U);
    EXPECT_EQ(parseRedisUrl("redis://[::1]:7000").host, "::1");
    for (const std::string& url : std::vector<std::string>{"redis://10.\n'''ne000[", "redis://a b:6379", "redis://h\t", "redis://h\x01",
                                  "redis://h\"q", "redis://caf\u00e9", "redis://" + std::string(254, 'h')}) {
        try {
            parseRedisUrl(url);
            ADD_FAILURE() << url << " was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Usage);
            EXPECT_NE(std::string(e.what()).find("the host must be a name"), std::string::npos) << e.what();
        }
    }
}

// Window 10 of a minute limit, 15 s in (f = 0.25).
constexpr uint64_t kWindowStart = 10 * kMinute;
constexpr uint64_t kNow = kWindowStart + 15 * kSecond;

TEST(FleetWindow, UnderTheLimitIsNotOver)
{
    EXPECT_EQ(fleetOverUntilNs(10, kMinute, kNow, 0, 0), 0U);
    EXPECT_EQ(fleetOverUntilNs(10, kMinute, kNow, 9, 0), 0U);
    // 4 + 0.75 * 7 = 9.25 < 10
    EXPECT_EQ(fleetOverUntilNs(10, kMinute, kNow, 4, 7), 0U);
}

TEST(FleetWindow, OverInThisWindowUntilThePreviousOneWeighsLessEnough)
{
    // 4 + 0.75 * 8 = 10: over until 8 * (1 - f) < 6, f > 0.25 + 1 ns.
    uint64_t until = fleetOverUntilNs(10, kMinute, kNow, 4, 8);
    EXPECT_GE(until, kNow + 1);
    EXPECT_LE(until, kNow + 2);
    // 5 + 0.75 * 12 = 14: until 12 * (1 - f) < 5, f > 7/12 = 35 s in.
    until = fleetOverUntilNs(10, kMinute, kNow, 5, 12);
    EXPECT_NEAR(static_cast<double>(until), static_cast<double>(kWindowStart + 35 * kSecond), 2.0);
}

TEST(FleetWindow, FullCurrentWindowIsOverIntoTheNext)
{
    // 10 of 10 in this window: over until 10 * (1 - f') < 10 in the next one.
    uint64_t until = fleetOverUntilNs(10, kMinute, kNow, 10, 0);
    EXPECT_GE(until, kWindowStart + kMinute);
    EXPECT_LE(until, kWindowStart + kMinute + 2);
    // 20 of 10: half of the next window.
    until = fleetOverUntilNs(10, kMinute, kNow, 20, 3);
    EXPECT_NEAR(static_cast<double>(until), static_cast<double>(kWindowStart + kMinute + 30 * kSecond), 2.0);
}

TEST(FleetKeys, NameThePolicyLimitSourceAndWindow)
{
    Limit l{LimitKind::Connections, 5, kMinute, 0};
    EXPECT_EQ(fleetKey("heavy-task", l, Address::parse("198.18.1.10"), 42),
              "sluice:heavy-task:c5/60s:198.18.1.10:42");
    Limit b{LimitKind::Bytes, 1000, kSecond, 0};
    EXPECT_EQ(fleetKey("up", b, Address::parse("fd00:5c::1"), 7), "sluice:up:b1000/1s:fd00:5c::1:7");
}

TEST(FleetKeys, ShardingIsStableAndSpreads)
{
    EXPECT_EQ(fleetShardOf("anything", 1), 0U);
    EXPECT_EQ(fleetShardOf("sluice:a:c5/1:10.0.0.1", 4), fleetShardOf("sluice:a:c5/1:10.0.0.1", 4));
    std::map<size_t, int> hits;
    for (int i = 0; i < 4000; i++)
        hits[fleetShardOf("sluice:a:c5/60000000000:10.0." + std::to_string(i / 256) + "." +
                              std::to_string(i % 256),
                          4)]++;
    ASSERT_EQ(hits.size(), 4U);
    for (const auto& [shard, n] : hits)
        EXPECT_GT(n, 800) << "shard " << shard;
}

}  // namespace
}  // namespace sluice
