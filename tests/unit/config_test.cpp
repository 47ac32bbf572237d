// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The TOML config (userspace/config.h): a full config read into the expected
// model, the defaults, the shipped examples, and every kind of invalid config
// with the exact FILE:LINE:COL it must point at.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "config.h"
#include "error.h"
#include "policy.h"
#include "source_root.h"

namespace sluice {
namespace {

constexpr uint64_t kSecond = kNsPerSecond;
constexpr uint64_t kMinute = 60 * kSecond;
constexpr uint64_t kDay = 86400 * kSecond;

Limit limit(LimitKind kind, uint64_t count, uint64_t periodNs, uint64_t burst = 0)
{
    Limit l;
    l.kind = kind;
    l.count = count;
    l.periodNs = periodNs;
    l.burst = burst;
    return l;
}

// Runs `fn`, which must throw sluice::Error of kind Usage; returns its message.
std::string usageError(const std::function<void()>& fn)
{
    try {
        fn();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Usage) << e.what();
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "threw something other than sluice::Error: " << e.what();
        return e.what();
    }
    ADD_FAILURE() << "did not throw";
    return "";
}

// A file under /tmp holding `text`, removed with the object.
class TempFile {
public:
    explicit TempFile(const std::string& text)
    {
        char name[] = "/tmp/sluice-config-test-XXXXXX";
        int fd = mkstemp(name);
        EXPECT_GE(fd, 0);
        path_ = name;
        EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
        close(fd);
    }
    ~TempFile() { unlink(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

const char* const kFull = R"([sluice]
interfaces = ["eth0", "ens3f1"]
metrics = "[::1]:9100"
max_sources = 4_096

[[allow]]
cidr = "192.0.2.0/24"
comment = "admin network"

[[allow]]
cidr = "10.1.0.0/16"

[[deny]]
cidr = "2001:db8:bad::/48"

[[deny]]
cidr = "10.1.2.0/24"   # inside an allow entry: allow wins

[[policy]]
name = "heavy"
proto = "tcp"
ports = [8080, "9000-9010"]
connections = "5 per minute; 100 per day"
packets = "50/second burst 100"
action = "monitor"
key = "global"
ipv4_prefix = 24
ipv6_prefix = 48

[[policy]]
name = "dns"
proto = "udp"
ports = [53, "5353-5354"]
bytes = "10 KiB/second"   # written before packets: the order of kinds is fixed
packets = "20/second"

[[policy]]
name = "dns-tcp"
proto = "tcp"
ports = [53]              # the same port as dns, another protocol
packets = '30 per 2 seconds'
)";

TEST(Config, FullConfigReadsEveryField)
{
    Config c = parseConfig(kFull, "full.toml");
    EXPECT_EQ(c.path, "full.toml");
    EXPECT_EQ(c.interfaces, (std::vector<std::string>{"eth0", "ens3f1"}));
    EXPECT_EQ(c.metrics, "[::1]:9100");
    EXPECT_EQ(c.maxSources, 4096U);

    EXPECT_EQ(c.rules.allow,
              (std::vector<Cidr>{Cidr::parse("192.0.2.0/24"), Cidr::parse("10.1.0.0/16")}));
    EXPECT_EQ(c.rules.deny,
              (std::vector<Cidr>{Cidr::parse("2001:db8:bad::/48"), Cidr::parse("10.1.2.0/24")}));

    ASSERT_EQ(c.rules.policies.size(), 3U);
    Policy heavy;
    heavy.name = "heavy";
    heavy.proto = Proto::Tcp;
    heavy.ports = {{8080, 8080}, {9000, 9010}};
    heavy.limits = {limit(LimitKind::Connections, 5, kMinute),
                    limit(LimitKind::Connections, 100, kDay),
                    limit(LimitKind::Packets, 50, kSecond, 100)};
    heavy.action = Action::Monitor;
    heavy.key = KeyMode::Global;
    heavy.ipv4Prefix = 24;
    heavy.ipv6Prefix = 48;
    EXPECT_EQ(c.rules.policies[0], heavy);
    EXPECT_EQ(c.rules.policies[0].limits[2].burst, 100U);

    Policy dns;
    dns.name = "dns";
    dns.proto = Proto::Udp;
    dns.ports = {{53, 53}, {5353, 5354}};
    dns.limits = {limit(LimitKind::Packets, 20, kSecond),
                  limit(LimitKind::Bytes, 10 * 1024, kSecond)};
    EXPECT_EQ(c.rules.policies[1], dns);

    Policy dnsTcp;
    dnsTcp.name = "dns-tcp";
    dnsTcp.proto = Proto::Tcp;
    dnsTcp.ports = {{53, 53}};
    dnsTcp.limits = {limit(LimitKind::Packets, 30, 2 * kSecond)};
    EXPECT_EQ(c.rules.policies[2], dnsTcp);
}

TEST(Config, ActionsAndBanAreRead)
{
    Config c = parseConfig(std::string("[[policy]]\nname = \"a\"\nproto = \"tcp\"\n") +
                           "ports = [80]\nconnections = \"5 per minute\"\naction = \"reject\"\n"
                           "ban_after = \"20 per minute\"\nban = \"10 minutes\"\n"
                           "[[policy]]\nname = \"b\"\nproto = \"udp\"\nports = [53]\n"
                           "packets = \"1/second\"\naction = \"redirect\"\nredirect_to = \"scrub0\"\n",
                           "t.toml");
    ASSERT_EQ(c.rules.policies.size(), 2U);
    const Policy& a = c.rules.policies[0];
    EXPECT_EQ(a.action, Action::Reject);
    ASSERT_TRUE(a.banAfter.has_value());
    EXPECT_EQ(*a.banAfter, limit(LimitKind::Packets, 20, kMinute));
    EXPECT_EQ(a.banNs, 10 * kMinute);
    const Policy& b = c.rules.policies[1];
    EXPECT_EQ(b.action, Action::Redirect);
    EXPECT_EQ(b.redirectTo, "scrub0");
    EXPECT_FALSE(b.banAfter.has_value());
    EXPECT_EQ(b.banNs, 0U);
}

TEST(Config, NewSourcesIsReadAndCompiled)
{
    Config c = parseConfig(std::string("[[policy]]\nname = \"a\"\nproto = \"udp\"\nports = [53]\n") +
                               "packets = \"10/second\"\nnew_sources = \"1000 per second\"\n"
                               "[[policy]]\nname = \"b\"\nproto = \"udp\"\nports = [54]\n"
                               "packets = \"10/second\"\n",
                           "t.toml");
    ASSERT_EQ(c.rules.policies.size(), 2U);
    ASSERT_TRUE(c.rules.policies[0].newSources.has_value());
    EXPECT_EQ(*c.rules.policies[0].newSources, limit(LimitKind::Packets, 1000, kSecond));
    EXPECT_FALSE(c.rules.policies[1].newSources.has_value());

    CompiledRuleset compiled = compileRuleset(c.rules, {});
    ASSERT_EQ(compiled.policies.size(), 2U);
    const sluice_limit& ns = compiled.policies[0].new_sources;
    EXPECT_EQ(ns.interval_ns, 1'000'000U);  // one source per ms
    EXPECT_EQ(ns.capacity_ns, 1000 * 1'000'000ULL) << "burst: the count, as for a limit";
    EXPECT_EQ(ns.kind, SLUICE_LIMIT_PACKETS);
    EXPECT_EQ(compiled.policies[1].new_sources.interval_ns, 0U) << "no budget: the data path skips it";

    // A changed budget is a change of the policy, but not of its buckets.
    Ruleset changed = c.rules;
    changed.policies[0].newSources = limit(LimitKind::Packets, 5, kSecond);
    EXPECT_FALSE(changed.policies[0] == c.rules.policies[0]);
}

TEST(Config, DenyInsideAllowIsKeptAndAllowWinsWhenCompiled)
{
    Config c = parseConfig(kFull, "full.toml");
    CompiledRuleset compiled = compileRuleset(c.rules, {});
    // Both IPv4 allow entries; the IPv4 deny inside 10.1.0.0/16 is dropped.
    EXPECT_EQ(compiled.lists4.size(), 2U);
    for (const auto& e : compiled.lists4)
        EXPECT_EQ(e.kind, static_cast<uint32_t>(SLUICE_LIST_ALLOW));
    ASSERT_EQ(compiled.lists6.size(), 1U);
    EXPECT_EQ(compiled.lists6[0].kind, static_cast<uint32_t>(SLUICE_LIST_DENY));
}

TEST(Config, Defaults)
{
    Config c = parseConfig(R"([[policy]]
name = "p"
proto = "tcp"
ports = [80]
packets = "10/second"
)",
                           "min.toml");
    EXPECT_TRUE(c.interfaces.empty());
    EXPECT_EQ(c.metrics, "127.0.0.1:9464");
    EXPECT_EQ(c.maxSources, static_cast<uint32_t>(SLUICE_DEFAULT_MAX_SOURCES));
    EXPECT_TRUE(c.rules.allow.empty());
    EXPECT_TRUE(c.rules.deny.empty());
    ASSERT_EQ(c.rules.policies.size(), 1U);
    const Policy& p = c.rules.policies[0];
    EXPECT_EQ(p.action, Action::Drop);
    EXPECT_EQ(p.key, KeyMode::Source);
    EXPECT_EQ(p.ipv4Prefix, 32);
    EXPECT_EQ(p.ipv6Prefix, 64);
    EXPECT_EQ(p.limits, (std::vector<Limit>{limit(LimitKind::Packets, 10, kSecond)}));
}

TEST(Config, EmptyFileIsAllDefaults)
{
    Config c = parseConfig("# nothing yet\n", "empty.toml");
    EXPECT_TRUE(c.interfaces.empty());
    EXPECT_EQ(c.metrics, kDefaultMetricsAddress);
    EXPECT_EQ(c.maxSources, static_cast<uint32_t>(SLUICE_DEFAULT_MAX_SOURCES));
    EXPECT_TRUE(c.rules.policies.empty());
}

TEST(Config, MetricsAddressForms)
{
    for (const char* address : {"localhost:9464", "0.0.0.0:1", "[::1]:65535", "[::]:9464",
                                "10.0.0.1:9100"}) {
        SCOPED_TRACE(address);
        Config c = parseConfig(std::string("[sluice]\nmetrics = \"") + address + "\"\n", "m.toml");
        EXPECT_EQ(c.metrics, address);
    }
}

TEST(Config, MaxSourcesBounds)
{
    EXPECT_EQ(parseConfig("[sluice]\nmax_sources = 1\n", "t.toml").maxSources, 1U);
    EXPECT_EQ(parseConfig("[sluice]\nmax_sources = 2147483647\n", "t.toml").maxSources,
              2147483647U);
}

TEST(Config, ExampleApiTomlLoads)
{
    std::string path = sourceRoot("examples/api.toml") + "/examples/api.toml";
    Config c = loadConfig(path);
    EXPECT_EQ(c.path, path);
    EXPECT_EQ(c.interfaces, (std::vector<std::string>{"eth0"}));
    EXPECT_EQ(c.metrics, "127.0.0.1:9464");
    EXPECT_EQ(c.maxSources, 1000000U);
    ASSERT_EQ(c.rules.policies.size(), 3U);
    EXPECT_EQ(c.rules.policies[0].name, "heavy-task");
    EXPECT_EQ(c.rules.policies[0].ports, (std::vector<PortRange>{{8080, 8080}}));
    EXPECT_EQ(c.rules.policies[0].limits.size(), 3U);
    EXPECT_EQ(c.rules.policies[1].name, "api-default");
    EXPECT_EQ(c.rules.policies[1].ports, (std::vector<PortRange>{{8081, 8099}, {8443, 8443}}));
    EXPECT_EQ(c.rules.policies[1].limits[1], limit(LimitKind::Bytes, 10'000'000, kSecond));
    ASSERT_TRUE(c.rules.policies[1].newSources.has_value());
    EXPECT_EQ(*c.rules.policies[1].newSources, limit(LimitKind::Packets, 1000, kSecond));
    EXPECT_EQ(c.rules.policies[0].action, Action::Respond);
    EXPECT_EQ(c.rules.policies[2].action, Action::Monitor);
    EXPECT_EQ(c.rules.allow.size(), 2U);
    EXPECT_EQ(c.rules.deny.size(), 2U);
    EXPECT_EQ(compileRuleset(c.rules, {}).policies.size(), 3U);
}

// Every file in examples/ loads and compiles to map entries (so none rots);
// the facts each one is about are checked below.
TEST(Config, EveryExampleLoadsAndCompiles)
{
    const std::string dir = sourceRoot("examples/api.toml") + "/examples";
    DIR* d = opendir(dir.c_str());
    ASSERT_NE(d, nullptr) << dir;
    int seen = 0;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name.size() < 5 || name.substr(name.size() - 5) != ".toml")
            continue;
        seen++;
        try {
            Config c = loadConfig(dir + "/" + name);
            CompiledRuleset compiled = compileRuleset(c.rules, {});
            EXPECT_EQ(compiled.policies.size(), c.rules.policies.size()) << name;
            EXPECT_FALSE(c.rules.policies.empty()) << name;
        } catch (const std::exception& ex) {
            ADD_FAILURE() << name << ": " << ex.what();
        }
    }
    closedir(d);
    EXPECT_GE(seen, 3) << "api.toml, login.toml, dns.toml";
}

TEST(Config, ExampleLoginTomlRejectsAndBans)
{
    Config c = loadConfig(sourceRoot("examples/api.toml") + "/examples/login.toml");
    ASSERT_EQ(c.rules.policies.size(), 1U);
    const Policy& p = c.rules.policies[0];
    EXPECT_EQ(p.proto, Proto::Tcp);
    EXPECT_EQ(p.action, Action::Reject);
    ASSERT_EQ(p.limits.size(), 3U);
    EXPECT_EQ(p.limits[0], limit(LimitKind::Connections, 10, kMinute));
    EXPECT_EQ(p.limits[2].kind, LimitKind::Packets);
    ASSERT_TRUE(p.banAfter.has_value());
    EXPECT_EQ(p.banNs, 15ULL * kMinute);
    EXPECT_EQ(c.rules.allow.size(), 1U);
}

TEST(Config, ExampleDnsTomlLimitsUdpPackets)
{
    Config c = loadConfig(sourceRoot("examples/api.toml") + "/examples/dns.toml");
    ASSERT_EQ(c.rules.policies.size(), 2U);
    const Policy& udp = c.rules.policies[0];
    EXPECT_EQ(udp.proto, Proto::Udp);
    EXPECT_EQ(udp.ports, (std::vector<PortRange>{{53, 53}}));
    EXPECT_EQ(udp.action, Action::Drop);
    ASSERT_EQ(udp.limits.size(), 2U);
    EXPECT_EQ(udp.limits[0].kind, LimitKind::Packets);
    EXPECT_EQ(udp.limits[0].burst, 40U);
    EXPECT_EQ(udp.limits[1].kind, LimitKind::Bytes);
    EXPECT_EQ(c.rules.policies[1].proto, Proto::Tcp);
    EXPECT_EQ(c.rules.policies[1].action, Action::Reject);
}

TEST(Config, ExampleFleetTomlLoads)
{
    Config c = loadConfig(sourceRoot("examples/api.toml") + "/examples/fleet.toml");
    ASSERT_TRUE(c.fleet.has_value());
    ASSERT_EQ(c.fleet->redis.size(), 2U);
    EXPECT_EQ(c.fleet->redis[0].host, "10.1.0.5");
    EXPECT_EQ(c.fleet->redis[0].port, 6379);
    EXPECT_EQ(c.fleet->redis[0].password, "secret");
    EXPECT_EQ(c.fleet->redis[1].str(), "10.1.0.6:6379");
    EXPECT_EQ(c.fleet->node, "api-1");
    EXPECT_EQ(c.fleet->syncIntervalNs, 100'000'000U);
    ASSERT_EQ(c.rules.policies.size(), 2U);
    EXPECT_EQ(c.rules.policies[0].scope, Scope::Fleet);
    EXPECT_EQ(c.rules.policies[1].scope, Scope::Host);
}

TEST(Config, FleetDefaultsAndScope)
{
    Config c = parseConfig("[fleet]\nredis = [\"redis://[::1]:7000/2\"]\nnode = \"n.1_a-b\"\n\n"
                           "[[policy]]\nname = \"a\"\nproto = \"udp\"\nports = [53]\n"
                           "packets = \"5/second\"\nscope = \"fleet\"\n",
                           "t.toml");
    ASSERT_TRUE(c.fleet.has_value());
    EXPECT_EQ(c.fleet->syncIntervalNs, kDefaultSyncIntervalNs);
    EXPECT_EQ(c.fleet->redis[0].host, "::1");
    EXPECT_EQ(c.fleet->redis[0].port, 7000);
    EXPECT_EQ(c.fleet->redis[0].db, 2U);
    EXPECT_EQ(c.fleet->redis[0].str(), "[::1]:7000");
    EXPECT_EQ(c.rules.policies[0].scope, Scope::Fleet);
    // Without [fleet] and scope, nothing changes: host scope.
    Config plain = parseConfig("[[policy]]\nname = \"a\"\nproto = \"udp\"\nports = [53]\n"
                               "packets = \"5/second\"\n",
                               "t.toml");
    EXPECT_FALSE(plain.fleet.has_value());
    EXPECT_EQ(plain.rules.policies[0].scope, Scope::Host);
}

TEST(Config, LoadNamesTheFileInErrors)
{
    TempFile f("[sluice]\nmax_sources = 0\n");
    EXPECT_EQ(usageError([&] { loadConfig(f.path()); }).rfind(f.path() + ":2:15: ", 0), 0U);
}

TEST(Config, UnreadableFileIsAUsageError)
{
    std::string missing = "/nonexistent/sluice-config-test.toml";
    std::string msg = usageError([&] { loadConfig(missing); });
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;

    msg = usageError([] { loadConfig("/tmp"); });
    EXPECT_NE(msg.find("/tmp"), std::string::npos) << msg;
    EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
}

// Non-ASCII text in strings, quoted keys and comments is TOML; only outside
// them is it refused (NonAscii* rows below).
TEST(Config, NonAsciiInStringsAndCommentsIsRead)
{
    Config c = parseConfig("\xEF\xBB\xBF# caf\u00e9 \"\n"
                           "[[policy]] # \u00e9 '\n"
                           "name = \"\u00e9\\\"\u00e9\"\n"
                           "proto = \"tcp\"\n"
                           "ports = [80]\n"
                           "packets = \"\"\"\n5 per minute\"\"\" # \u00e9\n"
                           "[[allow]]\n"
                           "cidr = '192.0.2.1'\n"
                           "comment = '''\u00e9\n'''''\n"
                           "[[deny]]\n"
                           "cidr = '203.0.113.9'\n"
                           "comment = \"\"\"x \\\n  y\u00a7 \\\"\u00e9\"\"\"\n",
                           "u.toml");
    ASSERT_EQ(c.rules.policies.size(), 1U);
    EXPECT_EQ(c.rules.policies[0].name, "\u00e9\"\u00e9");
    EXPECT_EQ(c.rules.policies[0].limits, (std::vector<Limit>{limit(LimitKind::Packets, 5, kMinute)}));
    EXPECT_EQ(c.rules.allow.size(), 1U);
    EXPECT_EQ(c.rules.deny.size(), 1U);
}

// Strings in arrays, inline tables and quoted keys are strings wherever
// TOML lets a value or key start: the guard above lets them through to toml++
// and the config reader, which then names the unknown key.
TEST(Config, NonAsciiInNestedStringsReachesTheConfigReader)
{
    std::string msg = usageError([] {
        parseConfig("x = [1, \"\u00e9\", {a = \"\u00e9\", \"\u00e9\".'\u00e9' = ['\u00e9', []]},\n"
                    "  [ # \u00e9\n  \"\"\"\u00e9\"\"\"], 1979-05-27 07:32:00, \"\u00e9\",]\n",
                    "t.toml");
    });
    EXPECT_EQ(msg.rfind("t.toml:1:1: unknown key 'x' at the top level", 0), 0U) << msg;
}

TEST(Config, TooManyPoliciesPointAtTheFileStart)
{
    // compileRuleset's own check: a message that names no policy.
    std::string text;
    for (int i = 0; i < SLUICE_MAX_POLICIES; i++)
        text += "[[policy]]\nname = \"p" + std::to_string(i) + "\"\nproto = \"udp\"\nports = [" +
                std::to_string(1000 + i) + "]\npackets = \"1/second\"\n";
    std::string msg = usageError([&] { parseConfig(text, "many.toml"); });
    EXPECT_EQ(msg.rfind("many.toml:1:1: ", 0), 0U) << msg;
    EXPECT_NE(msg.find("at most " + std::to_string(SLUICE_MAX_POLICIES - 1) + " policies"), std::string::npos) << msg;
}

struct InvalidCase {
    const char* name;
    std::string text;
    std::string prefix;   // "t.toml:LINE:COL: "
    std::string message;  // a substring of what follows
};

std::ostream& operator<<(std::ostream& os, const InvalidCase& c)
{
    return os << c.name;
}

// One policy's first lines; the case adds line 4 onwards.
const std::string kHead = "[[policy]]\nname = \"a\"\nproto = \"tcp\"\n";
const std::string kHeadUdp = "[[policy]]\nname = \"a\"\nproto = \"udp\"\n";
const std::string kPolicyA = kHead + "ports = [\"8000-8099\"]\npackets = \"1/second\"\n";

const std::vector<InvalidCase> kInvalid = {
    // Unknown keys, at every level.
    {"UnknownTopLevelKey", "prots = 1\n", "t.toml:1:1: ",
     "unknown key 'prots' at the top level"},
    {"UnknownTopLevelTable", "[polcy]\nname = \"x\"\n", "t.toml:1:1: ",
     "unknown key 'polcy' at the top level (did you mean 'policy'?)"},
    {"UnknownSluiceKey", "[sluice]\ninterface = [\"eth0\"]\n", "t.toml:2:1: ",
     "unknown key 'interface' in [sluice] (did you mean 'interfaces'?)"},
    {"UnknownSluiceSubtable", "[sluice]\nmetrics = \"127.0.0.1:1\"\n\n[sluice.extra]\na = 1\n",
     "t.toml:4:1: ", "unknown key 'extra' in [sluice]"},
    {"UnknownAllowKey", "[[allow]]\ncidr = \"10.0.0.0/8\"\nnote = \"x\"\n", "t.toml:3:1: ",
     "unknown key 'note' in [[allow]]"},
    {"UnknownDenyKey", "[[deny]]\n  cidrs = \"10.0.0.0/8\"\n", "t.toml:2:3: ",
     "unknown key 'cidrs' in [[deny]] (did you mean 'cidr'?)"},
    {"UnknownPolicyKey", kHead + "prots = [80]\n", "t.toml:4:1: ",
     "unknown key 'prots' in [[policy]] (did you mean 'proto' or 'ports'?)"},

    // [sluice]
    {"InterfacesNotArray", "[sluice]\ninterfaces = \"eth0\"\n", "t.toml:2:14: ",
     "interfaces must be an array"},
    {"InterfaceNotString", "[sluice]\ninterfaces = [1]\n", "t.toml:2:15: ",
     "interfaces must hold strings"},
    {"InterfaceWithSlash", "[sluice]\ninterfaces = [\"eth0\", \"a/b\"]\n", "t.toml:2:23: ",
     "invalid interface name 'a/b'"},
    {"InterfaceTooLong", "[sluice]\ninterfaces = [\"abcdefghijklmnop\"]\n", "t.toml:2:15: ",
     "invalid interface name 'abcdefghijklmnop'"},
    {"InterfaceEmpty", "[sluice]\ninterfaces = [\"\"]\n", "t.toml:2:15: ",
     "invalid interface name ''"},
    {"InterfaceTwice", "[sluice]\ninterfaces = [\"eth0\", \"eth0\"]\n", "t.toml:2:23: ",
     "interface 'eth0' is listed twice"},
    {"MetricsNotString", "[sluice]\nmetrics = 9464\n", "t.toml:2:11: ",
     "metrics must be a string"},
    {"MetricsPortZero", "[sluice]\nmetrics = \"127.0.0.1:0\"\n", "t.toml:2:11: ",
     "the port must be 1..65535, not '0'"},
    {"MetricsPortTooLarge", "[sluice]\nmetrics = \"127.0.0.1:65536\"\n", "t.toml:2:11: ",
     "the port must be 1..65535"},
    {"MetricsNoPort", "[sluice]\nmetrics = \"127.0.0.1\"\n", "t.toml:2:11: ",
     "must be HOST:PORT"},
    {"MetricsHostName", "[sluice]\nmetrics = \"example.com:9464\"\n", "t.toml:2:11: ",
     "the host must be an IP address or localhost, not 'example.com'"},
    {"MetricsBareIpv6", "[sluice]\nmetrics = \"::1:9464\"\n", "t.toml:2:11: ",
     "an IPv6 address needs brackets"},
    {"MaxSourcesZero", "[sluice]\nmax_sources = 0\n", "t.toml:2:15: ",
     "a zero table holds no source"},
    {"MaxSourcesNegative", "[sluice]\nmax_sources = -5\n", "t.toml:2:15: ",
     "max_sources must be 1..2147483647, not -5"},
    {"MaxSourcesTooLarge", "[sluice]\nmax_sources = 2147483648\n", "t.toml:2:15: ",
     "max_sources must be 1..2147483647"},
    {"MaxSourcesFloat", "[sluice]\nmax_sources = 1e6\n", "t.toml:2:15: ",
     "max_sources must be an integer"},
    {"SluiceNotTable", "sluice = 1\n", "t.toml:1:10: ", "sluice must be a table"},

    // [[allow]] and [[deny]]
    {"AllowNotArrayOfTables", "[allow]\ncidr = \"10.0.0.0/8\"\n", "t.toml:1:1: ",
     "allow must be an array of tables: write [[allow]]"},
    {"BadCidrPrefix", "[[deny]]\ncidr = \"10.0.0.0/33\"\n", "t.toml:2:8: ",
     "prefix length /33 in '10.0.0.0/33' is longer than 32"},
    {"BadCidrAddress", "[[allow]]\ncidr = \"10.0.0.300/8\"\n", "t.toml:2:8: ",
     "invalid IP address '10.0.0.300'"},
    {"CidrNotString", "[[allow]]\ncidr = 10\n", "t.toml:2:8: ", "cidr must be a string"},
    {"MissingCidr", "[[deny]]\ncomment = \"x\"\n", "t.toml:1:1: ", "[[deny]] needs a cidr"},

    // [[policy]]: types and values
    {"PolicyNotArrayOfTables", "[policy]\nname = \"a\"\n", "t.toml:1:1: ",
     "policy must be an array of tables: write [[policy]]"},
    {"NameNotString", "[[policy]]\nname = 5\n", "t.toml:2:8: ", "name must be a string"},
    {"NameEmpty", "[[policy]]\nname = \"\"\nproto = \"tcp\"\nports = [80]\npackets = \"1/second\"\n",
     "t.toml:2:8: ", "a policy name must not be empty"},
    {"NameTooLong",
     "[[policy]]\nname = \"" + std::string(48, 'n') +
         "\"\nproto = \"tcp\"\nports = [80]\npackets = \"1/second\"\n",
     "t.toml:2:8: ", "the name is longer than 47 bytes"},
    {"NameWithLineBreak",
     "[[policy]]\nname = \"\"\"a\nb\"\"\"\nproto = \"tcp\"\nports = [80]\npackets = \"1/second\"\n",
     "t.toml:2:8: ", "a policy name must not hold control characters"},
    {"NameNone", "[[policy]]\nname = \"(none)\"\nproto = \"tcp\"\nports = [80]\npackets = \"1/second\"\n",
     "t.toml:2:8: ", "'(none)' is not a policy name: /metrics uses it"},
    {"BadProto", "[[policy]]\nname = \"a\"\nproto = \"icmp\"\n", "t.toml:3:9: ",
     "proto must be \"tcp\" or \"udp\", not 'icmp'"},
    {"PortsNotArray", kHead + "ports = 80\n", "t.toml:4:9: ", "ports must be an array"},
    {"PortsEmpty", kHead + "ports = []\n", "t.toml:4:9: ", "ports must not be empty"},
    {"PortZero", kHead + "ports = [0]\n", "t.toml:4:10: ", "port 0 is out of range 1..65535"},
    {"PortTooLarge", kHead + "ports = [80, 70000]\n", "t.toml:4:14: ",
     "port 70000 is out of range 1..65535"},
    {"PortFloat", kHead + "ports = [80.5]\n", "t.toml:4:10: ",
     "ports must hold port numbers or \"FIRST-LAST\" ranges"},
    {"PortRangeReversed", kHead + "ports = [\"9000-8000\"]\n", "t.toml:4:10: ",
     "port range '9000-8000' is reversed"},
    {"PortRangeFromZero", kHead + "ports = [\"0-80\"]\n", "t.toml:4:10: ",
     "port range '0-80' must be \"FIRST-LAST\" with ports 1..65535"},
    {"PortRangeTooHigh", kHead + "ports = [\"80-70000\"]\n", "t.toml:4:10: ",
     "port range '80-70000' must be \"FIRST-LAST\" with ports 1..65535"},
    {"PortAsString", kHead + "ports = [\"8080\"]\n", "t.toml:4:10: ",
     "(a single port is an integer: 8080)"},
    {"RateNotString", kHead + "ports = [80]\npackets = 20\n", "t.toml:5:11: ",
     "packets (a rate such as \"10/second\") must be a string"},
    {"BadKey", kHead + "ports = [80]\npackets = \"1/second\"\nkey = \"subnet\"\n", "t.toml:6:7: ",
     "key must be \"source\" or \"global\", not 'subnet'"},
    {"Ipv4PrefixTooLong", kHead + "ports = [80]\npackets = \"1/second\"\nipv4_prefix = 33\n",
     "t.toml:6:15: ", "ipv4_prefix must be 0..32, not 33"},
    {"Ipv6PrefixNegative", kHead + "ports = [80]\npackets = \"1/second\"\nipv6_prefix = -1\n",
     "t.toml:6:15: ", "ipv6_prefix must be 0..128, not -1"},
    {"UnknownAction", kHead + "ports = [80]\npackets = \"1/second\"\naction = \"block\"\n",
     "t.toml:6:10: ", "action must be \"drop\", \"reject\", \"respond\", \"redirect\" or \"monitor\", not 'block'"},

    // Rate strings: the column points inside the string, at the bad token.
    {"BadRateUnit", kHead + "ports = [80]\npackets = \"5 per fortnight\"\n", "t.toml:5:18: ",
     "unknown unit 'fortnight'"},
    {"BadRateSecondLimit", kHead + "ports = [80]\nconnections = '10/second; 3 pre day'\n",
     "t.toml:5:29: ", "expected 'per' or '/' after the count: 'pre'"},
    {"BadRateMultiline", kHead + "ports = [80]\npackets = \"\"\"\n  10/second; 5 per eon\"\"\"\n",
     "t.toml:6:20: ", "unknown unit 'eon'"},
    {"BadRateAfterUnicode",
     "policy = [{ name = \"h\xC3\xA9\xC3\xA9\", packets = \"5 per eon\", proto = \"tcp\", ports = [80] }]\n",
     "t.toml:1:44: ", "unknown unit 'eon'"},
    {"ByteSuffixOnPackets", kHead + "ports = [80]\npackets = \"10 MB/second\"\n", "t.toml:5:15: ",
     "byte suffixes are only for bytes limits"},
    {"LimitBeyondTheDataPath", kHead + "ports = [80]\npackets = \"10/second; 2000000000/second\"\n",
     "t.toml:5:23: ", "'2000000000/second'"},
    {"MoreThanFourLimits",
     kHead + "ports = [80]\nconnections = \"1/second; 2/minute; 3/hour\"\npackets = \"1/second; 2/minute\"\n",
     "t.toml:1:1: ",
     "policy 'a' has 5 limits (connections 3, packets 2, bytes 0); at most 4 are allowed"},
    {"NoLimits", kHead + "ports = [80]\naction = \"drop\"\n", "t.toml:1:1: ",
     "policy 'a' has no limits: set connections, packets or bytes"},
    {"ConnectionsOnUdp", kHeadUdp + "ports = [53]\nconnections = \"5/minute\"\n", "t.toml:5:16: ",
     "policy 'a': connections limits need proto \"tcp\""},

    {"ActionRespondOnUdp", kHeadUdp + "ports = [53]\npackets = \"1/second\"\naction = \"respond\"\n",
     "t.toml:6:10: ", "policy 'a': action \"respond\" needs proto \"tcp\""},
    // Actions and bans: what goes together.
    {"ActionRejectOnUdp", kHeadUdp + "ports = [53]\npackets = \"1/second\"\naction = \"reject\"\n",
     "t.toml:6:10: ", "policy 'a': action \"reject\" needs proto \"tcp\""},
    {"ActionRedirectWithoutTarget", kHead + "ports = [80]\npackets = \"1/second\"\naction = \"redirect\"\n",
     "t.toml:6:10: ", "policy 'a': action \"redirect\" needs redirect_to"},
    {"BanWithoutBanAfter", kHead + "ports = [80]\npackets = \"1/second\"\nban = \"10 minutes\"\n", "t.toml:6:7: ",
     "policy 'a': ban needs ban_after"},
    {"BanAfterWithoutBan", kHead + "ports = [80]\npackets = \"1/second\"\n  ban_after = \"20 per minute\"\n",
     "t.toml:6:15: ", "policy 'a': ban_after needs ban"},
    {"BanAfterTwoRates",
     kHead + "ports = [80]\npackets = \"1/second\"\nban = \"1m\"\nban_after = \"1/second; 2/minute\"\n",
     "t.toml:7:13: ", "ban_after takes one rate, not 2"},
    {"BanBadDuration", kHead + "ports = [80]\npackets = \"1/second\"\nban_after = \"1/second\"\nban = \"ever\"\n",
     "t.toml:7:", ""},
    {"BanUnderMonitor",
     kHead + "ports = [80]\npackets = \"1/second\"\naction = \"monitor\"\nban_after = \"1/second\"\nban = \"1m\"\n",
     "t.toml:8:7: ", "a ban stops traffic"},
    {"NewSourcesTwoRates", kHead + "ports = [80]\npackets = \"1/second\"\nnew_sources = \"1/second; 2/minute\"\n",
     "t.toml:6:15: ", "new_sources takes one rate, not 2"},
    {"NewSourcesNotAString", kHead + "ports = [80]\npackets = \"1/second\"\nnew_sources = 1000\n", "t.toml:6:15: ",
     "new_sources (a rate such as \"1000 per second\")"},
    {"NewSourcesBadRate", kHead + "ports = [80]\npackets = \"1/second\"\nnew_sources = \"many\"\n", "t.toml:6:", ""},
    {"NewSourcesWithKeyGlobal",
     kHead + "ports = [80]\npackets = \"1/second\"\nkey = \"global\"\nnew_sources = \"10/second\"\n",
     "t.toml:7:15: ", "policy 'a': new_sources needs key = \"source\""},
    {"RedirectToWithoutRedirect", kHead + "ports = [80]\npackets = \"1/second\"\nredirect_to = \"eth1\"\n",
     "t.toml:6:15: ", "policy 'a': redirect_to is only for action \"redirect\""},
    // Fleet scope and the [fleet] section (docs/fleet.md).
    {"ScopeFleetWithoutFleetSection", kHead + "ports = [80]\npackets = \"1/second\"\nscope = \"fleet\"\n",
     "t.toml:6:9: ", "policy 'a': scope \"fleet\" needs a [fleet] section"},
    {"ScopeUnknown", kHead + "ports = [80]\npackets = \"1/second\"\nscope = \"world\"\n", "t.toml:6:9: ",
     "scope must be \"host\" or \"fleet\", not 'world'"},
    {"FleetWithoutRedis", "[sluice]\ninterfaces = [\"eth0\"]\n\n[fleet]\nnode = \"api-1\"\n", "t.toml:4:1: ",
     "[fleet] needs redis"},
    {"FleetWithoutNode", "[fleet]\nredis = [\"redis://127.0.0.1\"]\n", "t.toml:1:1: ", "[fleet] needs node"},
    {"FleetBadNode", "[fleet]\nredis = [\"redis://127.0.0.1\"]\nnode = \"api 1\"\n", "t.toml:3:8: ",
     "node must be 1..64 letters, digits"},
    {"FleetRedisNotUrl", "[fleet]\nnode = \"a\"\nredis = [\"10.0.0.5:6379\"]\n", "t.toml:3:10: ",
     "must start with redis://"},
    {"FleetRedisBadPort", "[fleet]\nnode = \"a\"\nredis = [\"redis://:pw@10.0.0.5:70000\"]\n",
     "t.toml:3:10: ", "redis URL 'redis://***@10.0.0.5:70000': the port must be 1..65535"},
    {"FleetRedisPasswordWithoutColon", "[fleet]\nnode = \"a\"\nredis = [\"redis://secret@10.0.0.5\"]\n",
     "t.toml:3:10: ", "write the password after a colon"},
    {"FleetRedisTwice",
     "[fleet]\nnode = \"a\"\nredis = [\"redis://10.0.0.5\", \"redis://10.0.0.5:6379\"]\n", "t.toml:3:30: ",
     "redis 10.0.0.5:6379 is listed twice"},
    {"FleetRedisEmpty", "[fleet]\nnode = \"a\"\nredis = []\n", "t.toml:3:9: ", "at least one"},
    {"FleetRedisBareIpv6", "[fleet]\nnode = \"a\"\nredis = [\"redis://::1\"]\n", "t.toml:3:10: ",
     "an IPv6 address needs brackets"},
    {"FleetSyncIntervalTooShort",
     "[fleet]\nnode = \"a\"\nredis = [\"redis://[::1]\"]\nsync_interval = \"1ms\"\n", "t.toml:4:17: ",
     "sync_interval must be 10ms..1 minute, not '1ms'"},
    {"FleetUnknownKey", "[fleet]\nnode = \"a\"\nredis = [\"redis://[::1]\"]\nsync_intervall = \"1s\"\n",
     "t.toml:4:1: ", "unknown key 'sync_intervall' in [fleet] (did you mean 'sync_interval'?)"},

    // Missing keys point at the [[policy]] header.
    {"MissingName", "\n[[policy]]\nproto = \"tcp\"\nports = [80]\npackets = \"1/second\"\n",
     "t.toml:2:1: ", "[[policy]] needs a name"},
    {"MissingProto", "[[policy]]\nname = \"a\"\nports = [80]\npackets = \"1/second\"\n",
     "t.toml:1:1: ", "policy 'a' needs a proto"},
    {"MissingPorts", kHead + "packets = \"1/second\"\n", "t.toml:1:1: ", "policy 'a' needs ports"},

    // Conflicts point at the second policy.
    {"TwoPoliciesOnOnePort",
     kHead + "ports = [80]\npackets = \"1/second\"\n[[policy]]\nname = \"b\"\nproto = \"tcp\"\n"
             "ports = [443, 80]\npackets = \"1/second\"\n",
     "t.toml:9:15: ",
     "policy 'b': tcp port 80 is already covered by policy 'a' (at t.toml:4:10)"},
    {"OverlappingRanges",
     kPolicyA + "\n[[policy]]\nname = \"b\"\nproto = \"tcp\"\nports = [\"8050-8200\"]\n"
                "packets = \"1/second\"\n",
     "t.toml:10:10: ",
     "policy 'b': tcp ports 8050-8099 are already covered by policy 'a' (at t.toml:4:10)"},
    {"RangeCoversPort",
     kPolicyA + "[[policy]]\nname = \"b\"\nproto = \"tcp\"\nports = [7000, 8099]\n"
                "packets = \"1/second\"\n",
     "t.toml:9:16: ", "tcp port 8099 is already covered by policy 'a'"},
    {"OverlapInsideOnePolicy", kHead + "ports = [80, \"70-90\"]\npackets = \"1/second\"\n",
     "t.toml:4:14: ", "policy 'a': tcp port 80 already listed at t.toml:4:10"},
    {"DuplicateName",
     kHead + "ports = [80]\npackets = \"1/second\"\n[[policy]]\nname = \"a\"\nproto = \"udp\"\n"
             "ports = [80]\npackets = \"1/second\"\n",
     "t.toml:7:8: ", "policy 'a' is defined twice (first at t.toml:1:1)"},

    // TOML syntax.
    {"TomlUnterminatedString", "[sluice]\nmetrics = \"127.0.0.1:9464\n", "t.toml:2:",
     "Error while parsing string"},
    {"TomlMissingValue", "[sluice]\nmax_sources = \n", "t.toml:2:", "Error while parsing"},
    {"TomlRedefinedKey", "[sluice]\nmax_sources = 1\nmax_sources = 2\n", "t.toml:3:",
     "cannot redefine existing integer 'max_sources'"},
    // toml++ 3.3 aborted (assert) on table names that start with a character
    // no key starts with; found by tests/fuzz/config_fuzz (toml_checked.h).
    {"TomlHeaderBadFirstCharacter", "[&\n", "t.toml:1:2: ", "expected a table name after '['"},
    {"TomlHeaderBadCharacterAfterBlanks", "[sluice]\n  [ =]\n", "t.toml:2:5: ",
     "expected a table name after '['"},
    {"TomlArrayHeaderBadFirstCharacter", "[sluice]\n[[[1]]]\n", "t.toml:2:3: ",
     "expected a table name after '['"},
    {"TomlArrayHeaderEquals", "[[=\n", "t.toml:1:3: ", "expected a table name after '['"},
    // Non-ASCII outside strings and comments: never TOML, and toml++ 3.3's
    // whitespace table is undefined behaviour on it (config_fuzz found it).
    {"NonAsciiInBareKey", "p\u00a9 = 1\n", "t.toml:1:2: ", "unexpected character '\u00a9'"},
    {"NonAsciiAfterValue", "[sluice]\nmax_sources = 1 \u00d7\n", "t.toml:2:17: ",
     "outside a string or comment"},
    {"NonAsciiInTableName", "[\u0436]\n", "t.toml:1:2: ", "unexpected character '\u0436'"},
    {"NonAsciiAfterStringsAndComments",
     "# caf\u00e9\n[[policy]] # \u00e9\nname = \"\u00e9\\\"\" # \"\n"
     "proto = '''\u00e9'''' \u00e9\n",
     "t.toml:4:18: ", "unexpected character '\u00e9'"},
    // ... and after a backslash in a multi-line string (toml++ issue 190).
    {"NonAsciiAfterLineEndingBackslash", "[[allow]]\ncidr = \"10.0.0.1\"\ncomment = \"\"\"a \\\n  \u00a7\"\"\"\n",
     "t.toml:4:3: ", "right after a backslash"},
    {"NonAsciiEscapedInMultiLineKey", "\"\"\"[D\\\ufefb\"\n", "t.toml:1:7: ",
     "right after a backslash"},
    {"NonAsciiInStringInsideValue", "[sluice]\nmetrics = -\"h\u00c3\"\n", "t.toml:2:14: ",
     "outside a string or comment"},
    {"NonAsciiInStringAfterSecondEquals", "[sluice]\nmax_sources = 0x4_==\"h\u00a9\"\n", "t.toml:2:23: ",
     "outside a string or comment"},
    // A value that is not a string, array or table is read by toml++ up to
    // a terminator, quotes and brackets included: '0["' opens no string.
    // config_fuzz found this one (U+FEFB after a backslash).
    {"NonAsciiInStringAfterBareValue", "[fleet]\nredis =0[\"r\\\xEF\xBB\xBB\"\ncPommentedi\"\"w",
     "t.toml:2:13: ", "outside a string or comment"},
    {"NonAsciiInStringAfterDateAndBlank", "[sluice]\nmax_sources = 1979-05-27 0\"\u00e9\"\n",
     "t.toml:2:28: ", "outside a string or comment"},
    {"NonAsciiInStringAfterKey", "[sluice]\nmax\"\u00e9\" = 1\n", "t.toml:2:5: ",
     "outside a string or comment"},
    {"TomlHeaderFuzzerCrash", std::string("[!\0\0\0metrics = \"x\"\n", 19), "t.toml:1:2: ",
     "expected a table name after '['"},
};

class ConfigInvalid : public testing::TestWithParam<InvalidCase> {};

TEST_P(ConfigInvalid, PointsAtTheProblem)
{
    const InvalidCase& c = GetParam();
    std::string msg = usageError([&] { parseConfig(c.text, "t.toml"); });
    EXPECT_EQ(msg.rfind(c.prefix, 0), 0U) << "message: " << msg << "\nexpected prefix: " << c.prefix;
    EXPECT_NE(msg.find(c.message), std::string::npos)
        << "message: " << msg << "\nexpected to contain: " << c.message;
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigInvalid, testing::ValuesIn(kInvalid),
                         [](const testing::TestParamInfo<InvalidCase>& info) {
                             return std::string(info.param.name);
                         });

}  // namespace
}  // namespace sluice
