// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The policy model and compiler (userspace/policy.h): address and CIDR
// parsing, one limit's kernel form, and a whole ruleset's map entries.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "error.h"
#include "policy.h"

namespace sluice {
namespace {

using u128 = unsigned __int128;

constexpr uint64_t kSecond = kNsPerSecond;
constexpr uint64_t kMinute = 60 * kSecond;
constexpr uint64_t kDay = 86400 * kSecond;
constexpr uint64_t kYear = 360 * kDay;

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

Limit limit(uint64_t count, uint64_t periodNs, uint64_t burst = 0,
            LimitKind kind = LimitKind::Packets)
{
    Limit l;
    l.kind = kind;
    l.count = count;
    l.periodNs = periodNs;
    l.burst = burst;
    return l;
}

Policy policy(const std::string& name, Proto proto, std::vector<PortRange> ports,
              std::vector<Limit> limits = {limit(100, kSecond)})
{
    Policy p;
    p.name = name;
    p.proto = proto;
    p.ports = std::move(ports);
    p.limits = std::move(limits);
    return p;
}

PortRange port(uint16_t p)
{
    return {p, p};
}

InstalledPolicy installed(const Policy& p, uint32_t slot, uint32_t tag)
{
    InstalledPolicy i;
    i.name = p.name;
    i.slot = slot;
    i.stateTag = tag;
    i.limits = p.limits;
    i.ipv4Prefix = p.ipv4Prefix;
    i.ipv6Prefix = p.ipv6Prefix;
    i.key = p.key;
    return i;
}

const sluice_policy& find(const CompiledRuleset& c, const std::string& name)
{
    for (const sluice_policy& p : c.policies)
        if (name == p.name)
            return p;
    throw std::runtime_error("no compiled policy " + name);
}

std::array<uint8_t, 16> bytesOf(std::initializer_list<uint8_t> b)
{
    std::array<uint8_t, 16> out{};
    std::copy(b.begin(), b.end(), out.begin());
    return out;
}

std::array<uint32_t, 4> netWords(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    return {htonl(a), htonl(b), htonl(c), htonl(d)};
}

std::array<uint32_t, 4> words(const uint32_t (&w)[4])
{
    return {w[0], w[1], w[2], w[3]};
}

// --- Address ---------------------------------------------------------------

TEST(Address, Ipv4IsStoredMapped)
{
    const Address a = Address::parse("192.0.2.1");
    EXPECT_TRUE(a.isV4);
    EXPECT_EQ(a.bytes, bytesOf({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}));
    EXPECT_EQ(a.str(), "192.0.2.1");
    EXPECT_EQ(Address::parse("::ffff:192.0.2.1").bytes, a.bytes);
}

TEST(Address, Ipv6)
{
    const Address a = Address::parse("2001:db8::1");
    EXPECT_FALSE(a.isV4);
    EXPECT_EQ(a.bytes, bytesOf({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    EXPECT_EQ(a.str(), "2001:db8::1");
    EXPECT_EQ(Address::parse("2001:0DB8:0000:0000::0001").str(), "2001:db8::1");
}

TEST(Address, CanonicalTextRoundTrips)
{
    for (const char* text : {"0.0.0.0", "255.255.255.255", "10.1.2.3", "::", "::1",
                             "fe80::1:2", "2001:db8:0:1::ff", "2001:db8:bad::"}) {
        EXPECT_EQ(Address::parse(text).str(), text);
    }
    EXPECT_EQ(Address::parse("10.0.0.1"), Address::parse("10.0.0.1"));
    EXPECT_FALSE(Address::parse("10.0.0.1") == Address::parse("10.0.0.2"));
    EXPECT_FALSE(Address::parse("::") == Address::parse("0.0.0.0"));
}

TEST(Address, RejectsGarbage)
{
    for (const char* text :
         {"", "1.2.3", "256.1.2.3", "1.2.3.4.5", "1.2.3.4/24", "example.com", "2001:db8:::1",
          "2001:db8::g", "12345::", " 10.0.0.1", "10.0.0.1 ", "-1.2.3.4", "1.2.3.4:80"}) {
        SCOPED_TRACE(std::string("'") + text + "'");
        const std::string msg = usageError([&] { Address::parse(text); });
        if (*text) {
            EXPECT_NE(msg.find(text), std::string::npos) << "message does not quote it: " << msg;
        }
    }
}

// --- Cidr ------------------------------------------------------------------

TEST(Cidr, ParseClearsHostBits)
{
    struct Case {
        const char* text;
        const char* addr;
        uint8_t prefix;
    };
    const Case cases[] = {
        {"192.0.2.77/24", "192.0.2.0", 24},     {"10.255.255.255/9", "10.128.0.0", 9},
        {"10.1.2.3/0", "0.0.0.0", 0},           {"10.1.2.3/32", "10.1.2.3", 32},
        {"10.1.2.3/31", "10.1.2.2", 31},        {"2001:db8:bad:1::5/48", "2001:db8:bad::", 48},
        {"2001:dbff::1/20", "2001:d000::", 20}, {"::1/0", "::", 0},
        {"2001:db8::1/128", "2001:db8::1", 128}, {"fe80::ffff/127", "fe80::fffe", 127},
        {"fe80::1/10", "fe80::", 10},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        const Cidr cidr = Cidr::parse(c.text);
        EXPECT_EQ(cidr.addr, Address::parse(c.addr));
        EXPECT_EQ(cidr.prefix, c.prefix);
        EXPECT_EQ(cidr.str(), std::string(c.addr) + "/" + std::to_string(c.prefix));
    }
}

TEST(Cidr, BareAddressIsAHost)
{
    const Cidr v4 = Cidr::parse("192.0.2.1");
    EXPECT_EQ(v4.prefix, 32);
    EXPECT_EQ(v4.addr, Address::parse("192.0.2.1"));
    const Cidr v6 = Cidr::parse("2001:db8::1");
    EXPECT_EQ(v6.prefix, 128);
    EXPECT_EQ(v6.addr, Address::parse("2001:db8::1"));
}

// In IPv6 notation a prefix counts all 128 bits, also for a mapped address:
// ::ffff:10.0.0.0/104 is 10.0.0.0/8.
TEST(Cidr, MappedNotationPrefixCountsAll128Bits)
{
    EXPECT_EQ(Cidr::parse("::ffff:10.0.0.0/104"), Cidr::parse("10.0.0.0/8"));
    EXPECT_EQ(Cidr::parse("::ffff:10.1.2.3/128"), Cidr::parse("10.1.2.3/32"));
}

TEST(Cidr, RejectsBadPrefixes)
{
    for (const char* text : {"1.2.3.4/33", "::/129", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/ab",
                             "/24", "1.2.3.4/24/1", "1.2.3.4/1000", "1.2.3/24", "", "::/+8",
                             "1.2.3.4/ 8", "1.2.3.4/8 "}) {
        SCOPED_TRACE(std::string("'") + text + "'");
        usageError([&] { Cidr::parse(text); });
    }
}

TEST(Cidr, Contains)
{
    struct Case {
        const char* outer;
        const char* inner;
        bool contains;
    };
    const Case cases[] = {
        {"192.0.2.0/24", "192.0.2.128/25", true},  {"192.0.2.128/25", "192.0.2.0/24", false},
        {"192.0.2.0/24", "192.0.2.0/24", true},    {"192.0.2.0/24", "192.0.3.0/24", false},
        {"192.0.2.0/24", "192.0.2.255", true},     {"192.0.2.0/24", "192.0.3.0", false},
        {"10.0.0.0/8", "10.200.0.0/16", true},     {"10.0.0.0/9", "10.200.0.0/16", false},
        {"0.0.0.0/0", "203.0.113.9", true},        {"0.0.0.0/0", "2001:db8::/32", false},
        {"::/0", "2001:db8::1", true},             {"::/0", "192.0.2.0/24", false},
        {"2001:db8::/32", "2001:db8:bad::/48", true}, {"2001:db8:bad::/48", "2001:db8::/32", false},
        {"2001:db8::/32", "2001:db9::/48", false},  {"2001:db8::1", "2001:db8::1", true},
        {"10.0.0.0/16", "10.0.0.0/8", false},       {"2001:db8::/48", "2001:db8::/32", false},
    };
    for (const Case& c : cases)
        EXPECT_EQ(Cidr::parse(c.outer).contains(Cidr::parse(c.inner)), c.contains)
            << c.outer << " contains " << c.inner;
}

// --- compileLimit -----------------------------------------------------------

// The interval as (interval_ns, interval_frac) says it, in 2^-32 ns.
u128 intervalQ32(const sluice_limit& l)
{
    return (static_cast<u128>(l.interval_ns) << 32) | l.interval_frac;
}

TEST(CompileLimit, ExactIntervals)
{
    struct Case {
        Limit in;
        uint64_t intervalNs;
        uint32_t frac;
        uint64_t capacityNs;
    };
    const Case cases[] = {
        {limit(5, kMinute), 12 * kSecond, 0, 60 * kSecond},
        {limit(2000, kSecond, 4000), 500'000, 0, 2 * kSecond},
        {limit(10'000'000, kSecond, 0, LimitKind::Bytes), 100, 0, kSecond},
        {limit(100, kDay, 0, LimitKind::Connections), 864 * kSecond, 0, kDay},
        {limit(1, kYear), kYear, 0, kYear},
        {limit(1'000'000'000, kSecond), 1, 0, kSecond},
        {limit(4, kSecond, 0, LimitKind::Bytes), 250'000'000, 0, kSecond},
        {limit(2'000'000'000, kSecond, 0, LimitKind::Bytes), 0, 1U << 31, kSecond},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(describeLimit(c.in));
        const sluice_limit l = compileLimit(c.in);
        EXPECT_EQ(l.kind, static_cast<uint8_t>(c.in.kind));
        EXPECT_EQ(l.interval_ns, c.intervalNs);
        EXPECT_EQ(l.interval_frac, c.frac);
        EXPECT_EQ(l.capacity_ns, c.capacityNs);
        EXPECT_EQ(l.count, c.in.count);
        EXPECT_EQ(l.period_ns, c.in.periodNs);
        EXPECT_EQ(l.burst, c.in.effectiveBurst());
    }
}

// period/count that does not divide: a bytes limit keeps the fraction (its
// charges are thousands of units); every kind stays within a nanosecond of
// the exact interval; the capacity is burst intervals as represented.
TEST(CompileLimit, FractionalIntervals)
{
    const Limit cases[] = {
        limit(3'000'000'000ULL, kSecond, 3'000'000, LimitKind::Bytes),
        limit(123'456'789, kSecond, 0, LimitKind::Bytes),
        limit(3, kSecond, 0, LimitKind::Bytes),
        limit(7, kSecond),
        limit(3, kMinute, 10, LimitKind::Connections),
        limit(1'000'000, kYear),
        limit(999'999'937, kSecond, 5000),
    };
    for (const Limit& in : cases) {
        SCOPED_TRACE(describeLimit(in));
        const sluice_limit l = compileLimit(in);
        const u128 exactQ32 = (static_cast<u128>(in.periodNs) << 32) / in.count;
        const u128 got = intervalQ32(l);
        const u128 diff = got > exactQ32 ? got - exactQ32 : exactQ32 - got;
        EXPECT_LE(static_cast<uint64_t>(diff), uint64_t(1) << 32);
        if (in.kind == LimitKind::Bytes) {
            EXPECT_TRUE(got == exactQ32) << "interval " << l.interval_ns << " + "
                                         << l.interval_frac << "/2^32 ns";
        }
        // What `burst` units cost, fraction rounded up as gcra_cost_ns() does.
        EXPECT_EQ(l.capacity_ns,
                  static_cast<uint64_t>((got * in.effectiveBurst() + 0xffffffffULL) >> 32));
    }
    const sluice_limit gbps3 =
        compileLimit(limit(3'000'000'000ULL, kSecond, 3'000'000, LimitKind::Bytes));
    EXPECT_EQ(gbps3.interval_ns, 0u);
    EXPECT_EQ(gbps3.interval_frac, 1431655765u);  // floor(2^32 / 3)
}

TEST(CompileLimit, RejectsZeroCountAndPeriod)
{
    usageError([] { compileLimit(limit(0, kSecond)); });
    usageError([] { compileLimit(limit(0, kSecond, 0, LimitKind::Bytes)); });
    usageError([] { compileLimit(limit(5, 0)); });
}

// Packet and connection intervals are whole nanoseconds: a rate that
// rounding would change by more than 1% is refused, not silently altered.
TEST(CompileLimit, RejectsRatesTheNanosecondClockCannotHold)
{
    EXPECT_EQ(compileLimit(limit(1'000'000'000, kSecond)).interval_ns, 1u);
    EXPECT_EQ(compileLimit(limit(40'000'000, kSecond)).interval_ns, 25u);   // exact
    EXPECT_EQ(compileLimit(limit(3'000'000, kSecond)).interval_ns, 333u);   // 0.1% off
    usageError([] { compileLimit(limit(60'000'000, kSecond)); });           // 16.7 ns: 2% off
    usageError([] { compileLimit(limit(1'500'000'000, kSecond)); });        // 0.67 ns
    usageError([] { compileLimit(limit(2'000'000'001, kSecond)); });
}

TEST(CompileLimit, CapacityWithinMaxSpan)
{
    // Exactly 2^62 ns of bucket is allowed; a nanosecond more is not.
    const sluice_limit edge = compileLimit(limit(1 << 20, SLUICE_MAX_SPAN_NS));
    EXPECT_EQ(edge.capacity_ns, SLUICE_MAX_SPAN_NS);
    EXPECT_EQ(compileLimit(limit(1, SLUICE_MAX_SPAN_NS)).capacity_ns, SLUICE_MAX_SPAN_NS);
    usageError([] { compileLimit(limit(1 << 20, SLUICE_MAX_SPAN_NS, (1 << 20) + 1)); });
    usageError([] { compileLimit(limit(1, SLUICE_MAX_SPAN_NS + 1)); });

    EXPECT_EQ(compileLimit(limit(1, kYear, 1)).capacity_ns, kYear);
    EXPECT_EQ(compileLimit(limit(1'000'000, kYear)).capacity_ns, kYear);
    usageError([] { compileLimit(limit(1, kYear, 1'000'000)); });
    usageError([] { compileLimit(limit(1, kYear, 1'000'000, LimitKind::Connections)); });
    usageError([] { compileLimit(limit(1, kDay, 1'000'000'000, LimitKind::Bytes)); });
}

// A bytes limit is charged up to 65535 units at once: that cost must fit too.
TEST(CompileLimit, LargestFrameCostWithinMaxSpan)
{
    const uint64_t edge = SLUICE_MAX_SPAN_NS / SLUICE_MAX_FRAME_BYTES;  // ns per byte
    EXPECT_EQ(compileLimit(limit(1, edge, 1, LimitKind::Bytes)).interval_ns, edge);
    usageError([&] { compileLimit(limit(1, edge + 1, 1, LimitKind::Bytes)); });
    usageError([] { compileLimit(limit(1, 1ULL << 50, 1, LimitKind::Bytes)); });
    // The same limit counting packets charges one unit at a time: it fits.
    EXPECT_EQ(compileLimit(limit(1, 1ULL << 50, 1)).capacity_ns, 1ULL << 50);
}

// --- compileRuleset ---------------------------------------------------------

Ruleset threePolicies()
{
    Ruleset r;
    Policy heavy = policy("heavy-task", Proto::Tcp, {port(8080)},
                          {limit(5, kMinute, 0, LimitKind::Connections),
                           limit(100, kDay, 0, LimitKind::Connections), limit(50, kSecond, 100)});
    heavy.action = Action::Monitor;
    Policy api = policy("api-default", Proto::Tcp, {{8100, 8199}, port(8443)},
                        {limit(2000, kSecond, 4000),
                         limit(10'000'000, kSecond, 0, LimitKind::Bytes)});
    api.ipv4Prefix = 24;
    api.ipv6Prefix = 56;
    Policy dns = policy("dns", Proto::Udp, {port(53)}, {limit(20, kSecond)});
    dns.key = KeyMode::Global;
    r.policies = {heavy, api, dns};
    return r;
}

TEST(CompileRuleset, CompilesEveryField)
{
    const Ruleset r = threePolicies();
    const CompiledRuleset c = compileRuleset(r, {});
    ASSERT_EQ(c.policies.size(), 3u);
    for (const Policy& in : r.policies) {
        SCOPED_TRACE(in.name);
        const sluice_policy& p = find(c, in.name);
        EXPECT_EQ(p.name[in.name.size()], '\0');
        EXPECT_EQ(p.action, static_cast<uint8_t>(in.action));
        EXPECT_EQ(p.key_mode, static_cast<uint8_t>(in.key));
        EXPECT_EQ(p.ipv4_prefix, in.ipv4Prefix);
        EXPECT_EQ(p.ipv6_prefix, in.ipv6Prefix);
        EXPECT_EQ(p.proto, static_cast<uint8_t>(in.proto));
        EXPECT_EQ(p.nlimits, in.limits.size());
        for (size_t i = 0; i < in.limits.size(); i++) {
            const sluice_limit want = compileLimit(in.limits[i]);
            EXPECT_EQ(std::memcmp(&p.limits[i], &want, sizeof(want)), 0) << "limit " << i;
        }
        for (size_t i = in.limits.size(); i < SLUICE_MAX_LIMITS; i++)
            EXPECT_EQ(p.limits[i].kind, 0) << "unused limit " << i;
    }
    EXPECT_EQ(find(c, "heavy-task").proto, 6);
    EXPECT_EQ(find(c, "dns").proto, 17);
    EXPECT_EQ(c.flags & (SLUICE_GEN_TCP_POLICY | SLUICE_GEN_UDP_POLICY),
              SLUICE_GEN_TCP_POLICY | SLUICE_GEN_UDP_POLICY);
    EXPECT_EQ(c.flags & (SLUICE_GEN_LISTS_V4 | SLUICE_GEN_LISTS_V6 | SLUICE_GEN_DENY_V4 |
                         SLUICE_GEN_DENY_V6),
              0u);
}

TEST(CompileRuleset, SlotsAreDistinctAndNeverZero)
{
    const CompiledRuleset c = compileRuleset(threePolicies(), {});
    std::set<uint32_t> slots, tags;
    for (const sluice_policy& p : c.policies) {
        EXPECT_NE(p.slot, SLUICE_SLOT_NONE) << p.name;
        EXPECT_LT(p.slot, SLUICE_MAX_POLICIES) << p.name;
        slots.insert(p.slot);
        tags.insert(p.state_tag);
    }
    EXPECT_EQ(slots.size(), c.policies.size());
    EXPECT_EQ(tags.size(), c.policies.size());
}

TEST(CompileRuleset, EveryPortOfEveryRangeIsKeyed)
{
    Ruleset r = threePolicies();
    r.policies.push_back(policy("top", Proto::Tcp, {{65530, 65535}}));
    r.policies.push_back(policy("low", Proto::Udp, {{0, 2}, port(54)}));
    const CompiledRuleset c = compileRuleset(r, {});

    std::map<uint32_t, uint32_t> want;
    auto add = [&](const std::string& name, uint32_t protoIdx, uint32_t first, uint32_t last) {
        for (uint32_t port = first; port <= last; port++)
            want[sluice_port_key(0, protoIdx, port)] = find(c, name).slot;
    };
    add("heavy-task", SLUICE_PROTO_TCP_IDX, 8080, 8080);
    add("api-default", SLUICE_PROTO_TCP_IDX, 8100, 8199);
    add("api-default", SLUICE_PROTO_TCP_IDX, 8443, 8443);
    add("dns", SLUICE_PROTO_UDP_IDX, 53, 53);
    add("top", SLUICE_PROTO_TCP_IDX, 65530, 65535);
    add("low", SLUICE_PROTO_UDP_IDX, 0, 2);
    add("low", SLUICE_PROTO_UDP_IDX, 54, 54);

    std::map<uint32_t, uint32_t> got;
    for (const auto& [key, slot] : c.ports)
        EXPECT_TRUE(got.emplace(key, slot).second) << "port key " << key << " twice";
    EXPECT_EQ(got, want);
}

TEST(CompileRuleset, WholePortRange)
{
    Ruleset r;
    r.policies = {policy("all-tcp", Proto::Tcp, {{0, 65535}}), policy("dns", Proto::Udp, {port(53)})};
    const CompiledRuleset c = compileRuleset(r, {});
    ASSERT_EQ(c.ports.size(), 65536u + 1);
    std::set<uint32_t> keys;
    for (const auto& [key, slot] : c.ports) {
        keys.insert(key);
        EXPECT_EQ(slot, key == sluice_port_key(0, SLUICE_PROTO_UDP_IDX, 53)
                            ? find(c, "dns").slot
                            : find(c, "all-tcp").slot);
    }
    EXPECT_EQ(keys.size(), 65537u);
    EXPECT_EQ(*keys.rbegin(), sluice_port_key(0, SLUICE_PROTO_UDP_IDX, 53));
}

TEST(CompileRuleset, SamePortOnBothProtocols)
{
    Ruleset r;
    r.policies = {policy("dns-tcp", Proto::Tcp, {port(53)}), policy("dns-udp", Proto::Udp, {port(53)})};
    const CompiledRuleset c = compileRuleset(r, {});
    EXPECT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.flags & (SLUICE_GEN_TCP_POLICY | SLUICE_GEN_UDP_POLICY),
              SLUICE_GEN_TCP_POLICY | SLUICE_GEN_UDP_POLICY);
}

TEST(CompileRuleset, ProtocolFlagsFollowThePolicies)
{
    Ruleset tcpOnly;
    tcpOnly.policies = {policy("web", Proto::Tcp, {port(80)})};
    EXPECT_EQ(compileRuleset(tcpOnly, {}).flags & (SLUICE_GEN_TCP_POLICY | SLUICE_GEN_UDP_POLICY),
              SLUICE_GEN_TCP_POLICY);
    Ruleset udpOnly;
    udpOnly.policies = {policy("dns", Proto::Udp, {port(53)})};
    EXPECT_EQ(compileRuleset(udpOnly, {}).flags & (SLUICE_GEN_TCP_POLICY | SLUICE_GEN_UDP_POLICY),
              SLUICE_GEN_UDP_POLICY);
    const CompiledRuleset empty = compileRuleset(Ruleset{}, {});
    EXPECT_EQ(empty.flags, 0u);
    EXPECT_TRUE(empty.policies.empty());
    EXPECT_TRUE(empty.ports.empty());
}

TEST(CompileRuleset, RejectsInvalidRulesets)
{
    struct Case {
        const char* what;
        std::vector<Policy> policies;
        const char* named;  // the policy the message must name
    };
    const std::string longName(SLUICE_POLICY_NAME_LEN, 'n');
    const std::vector<Limit> five = {limit(1, kSecond), limit(2, kSecond), limit(3, kSecond),
                                     limit(4, kSecond), limit(5, kSecond)};
    const Case cases[] = {
        {"one port twice", {policy("a", Proto::Tcp, {port(80)}), policy("b", Proto::Tcp, {port(80)})}, "b"},
        {"overlapping ranges",
         {policy("a", Proto::Tcp, {{8000, 8100}}), policy("b", Proto::Tcp, {{8100, 8200}})}, "b"},
        {"port inside a range",
         {policy("api", Proto::Tcp, {{8000, 8099}}), policy("heavy", Proto::Tcp, {port(8080)})}, "heavy"},
        {"five limits", {policy("many", Proto::Tcp, {port(80)}, five)}, "many"},
        {"empty name", {policy("", Proto::Tcp, {port(80)})}, ""},
        {"48-character name", {policy(longName, Proto::Tcp, {port(80)})}, longName.c_str()},
        {"duplicate names",
         {policy("twin", Proto::Tcp, {port(80)}), policy("twin", Proto::Tcp, {port(81)})}, "twin"},
        {"no ports", {policy("portless", Proto::Tcp, {})}, "portless"},
        {"reversed range", {policy("backwards", Proto::Tcp, {{9000, 8000}})}, "backwards"},
        {"a limit that does not compile",
         {policy("zero", Proto::Tcp, {port(80)}, {limit(0, kSecond)})}, "zero"},
        {"connections over UDP",
         {policy("udpconn", Proto::Udp, {port(53)}, {limit(5, kSecond, 0, LimitKind::Connections)})},
         "udpconn"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Ruleset r;
        r.policies = c.policies;
        const std::string msg = usageError([&] { compileRuleset(r, {}); });
        EXPECT_NE(msg.find(c.named), std::string::npos) << "message does not name it: " << msg;
    }

    // Control characters would break tables, log lines and metric labels.
    for (const char* name : {"line\nbreak", "tab\there", "bell\a", "del\x7f"}) {
        Ruleset r;
        r.policies = {policy(name, Proto::Tcp, {port(80)})};
        EXPECT_NE(usageError([&] { compileRuleset(r, {}); }).find("must not hold control characters"),
                  std::string::npos)
            << name;
    }

    // /metrics labels the traffic that matched no policy "(none)".
    {
        Ruleset r;
        r.policies = {policy("(none)", Proto::Tcp, {port(80)})};
        EXPECT_NE(usageError([&] { compileRuleset(r, {}); }).find("'(none)' is not a policy name"),
                  std::string::npos);
    }

    // Names reach JSON and metric labels: UTF-8 only. A stray byte, a cut
    // character, an overlong '/', a surrogate, past U+10FFFF.
    for (const char* name : {"ab\xff", "caf\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
        Ruleset r;
        r.policies = {policy(name, Proto::Tcp, {port(80)})};
        EXPECT_NE(usageError([&] { compileRuleset(r, {}); }).find("must be UTF-8 text"), std::string::npos)
            << testing::PrintToString(name);
    }

    Ruleset v4;
    v4.policies = {policy("wide4", Proto::Tcp, {port(80)})};
    v4.policies[0].ipv4Prefix = 33;
    EXPECT_NE(usageError([&] { compileRuleset(v4, {}); }).find("wide4"), std::string::npos);
    Ruleset v6;
    v6.policies = {policy("wide6", Proto::Tcp, {port(80)})};
    v6.policies[0].ipv6Prefix = 129;
    EXPECT_NE(usageError([&] { compileRuleset(v6, {}); }).find("wide6"), std::string::npos);
}

TEST(CompileRuleset, AcceptsTheBoundaries)
{
    const std::string name47(SLUICE_POLICY_NAME_LEN - 1, 'x');
    Policy p = policy(name47, Proto::Tcp, {port(80)},
                      {limit(1, kSecond), limit(2, kSecond), limit(3, kSecond),
                       limit(4, kSecond, 0, LimitKind::Bytes)});
    p.ipv4Prefix = 0;
    p.ipv6Prefix = 128;
    // UTF-8 of 2, 3 and 4 bytes a character is a name.
    const std::string utf8Name = "q-caf\u00e9-\u65e5\u672c-\U0001F600";
    Policy q = policy(utf8Name, Proto::Tcp, {port(81)});
    q.ipv4Prefix = 32;
    q.ipv6Prefix = 0;
    Ruleset r;
    r.policies = {p, q};
    const CompiledRuleset c = compileRuleset(r, {});
    EXPECT_EQ(std::string(find(c, utf8Name).name), utf8Name);
    const sluice_policy& kp = find(c, name47);
    EXPECT_EQ(std::string(kp.name), name47);
    EXPECT_EQ(kp.name[SLUICE_POLICY_NAME_LEN - 1], '\0');
    EXPECT_EQ(kp.nlimits, 4);
}

TEST(CompileRuleset, PolicyCountLimitedBySlots)
{
    Ruleset r;
    for (uint32_t i = 0; i < SLUICE_MAX_POLICIES - 1; i++)
        r.policies.push_back(policy("p" + std::to_string(i), Proto::Udp, {port(uint16_t(1000 + i))}));
    const CompiledRuleset c = compileRuleset(r, {});
    std::set<uint32_t> slots;
    for (const sluice_policy& p : c.policies)
        slots.insert(p.slot);
    ASSERT_EQ(slots.size(), SLUICE_MAX_POLICIES - 1u);
    EXPECT_EQ(*slots.begin(), 1u);
    EXPECT_EQ(*slots.rbegin(), SLUICE_MAX_POLICIES - 1u);

    r.policies.push_back(policy("one-too-many", Proto::Udp, {port(5000)}));
    usageError([&] { compileRuleset(r, {}); });
}

TEST(CompileRuleset, KeepsSlotAndStateOfAnUnchangedPolicy)
{
    Ruleset r = threePolicies();
    const std::vector<InstalledPolicy> previous = {
        installed(r.policies[0], 7, 0x1234),
        installed(r.policies[1], 9, 0x5678),
    };
    r.policies[0].action = Action::Drop;  // not part of the bucket state
    r.policies[0].ports = {port(8081)};
    const CompiledRuleset c = compileRuleset(r, previous);
    EXPECT_EQ(find(c, "heavy-task").slot, 7u);
    EXPECT_EQ(find(c, "heavy-task").state_tag, 0x1234u);
    EXPECT_EQ(find(c, "api-default").slot, 9u);
    EXPECT_EQ(find(c, "api-default").state_tag, 0x5678u);
    const sluice_policy& dns = find(c, "dns");
    EXPECT_NE(dns.slot, 0u);
    EXPECT_NE(dns.slot, 7u);
    EXPECT_NE(dns.slot, 9u);
    EXPECT_NE(dns.state_tag, 0x1234u);
    EXPECT_NE(dns.state_tag, 0x5678u);
}

TEST(CompileRuleset, NewLimitsKeepTheSlotButNotTheState)
{
    struct Case {
        const char* what;
        std::function<void(Policy&)> change;
    };
    const Case cases[] = {
        {"a different count", [](Policy& p) { p.limits[0].count = 6; }},
        {"a different burst", [](Policy& p) { p.limits[0].burst = 50; }},
        {"a different kind", [](Policy& p) { p.limits[0].kind = LimitKind::Packets; }},
        {"a limit added", [](Policy& p) { p.limits.push_back(limit(1, kSecond)); }},
        {"a limit removed", [](Policy& p) { p.limits.pop_back(); }},
        {"the same limits reordered", [](Policy& p) { std::swap(p.limits[0], p.limits[1]); }},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Ruleset r = threePolicies();
        const std::vector<InstalledPolicy> previous = {
            installed(r.policies[0], 7, 0x1234),
            installed(r.policies[1], 9, 0x5678),
            installed(r.policies[2], 3, 0x9abc),
        };
        c.change(r.policies[0]);
        const CompiledRuleset compiled = compileRuleset(r, previous);
        const sluice_policy& heavy = find(compiled, "heavy-task");
        EXPECT_EQ(heavy.slot, 7u);
        EXPECT_NE(heavy.state_tag, 0x1234u);
        EXPECT_NE(heavy.state_tag, 0x5678u);
        EXPECT_NE(heavy.state_tag, 0x9abcu);
        EXPECT_EQ(find(compiled, "api-default").state_tag, 0x5678u);
        EXPECT_EQ(find(compiled, "dns").state_tag, 0x9abcu);
    }
}

// A new name must not inherit the counters of a policy that just went away
// while unused slots remain.
TEST(CompileRuleset, NewNameDoesNotTakeARemovedPolicysSlot)
{
    Ruleset r;
    r.policies = {policy("newcomer", Proto::Tcp, {port(80)})};
    const std::vector<InstalledPolicy> previous = {
        installed(policy("gone", Proto::Tcp, {port(80)}), 1, 0x42),
    };
    const CompiledRuleset c = compileRuleset(r, previous);
    const sluice_policy& p = find(c, "newcomer");
    EXPECT_NE(p.slot, 0u);
    EXPECT_NE(p.slot, 1u);
    EXPECT_NE(p.state_tag, 0x42u);
}

TEST(CompileRuleset, SourceMasks)
{
    struct Case {
        uint8_t v4, v6;
        std::array<uint32_t, 4> mask4, mask6;
    };
    const uint32_t ones = 0xffffffff;
    const Case cases[] = {
        {24, 64, netWords(ones, ones, ones, 0xffffff00), netWords(ones, ones, 0, 0)},
        {32, 128, netWords(ones, ones, ones, ones), netWords(ones, ones, ones, ones)},
        {0, 0, netWords(ones, ones, ones, 0), netWords(0, 0, 0, 0)},
        {17, 56, netWords(ones, ones, ones, 0xffff8000), netWords(ones, 0xffffff00, 0, 0)},
        {1, 1, netWords(ones, ones, ones, 0x80000000), netWords(0x80000000, 0, 0, 0)},
        {31, 97, netWords(ones, ones, ones, 0xfffffffe), netWords(ones, ones, ones, 0x80000000)},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE("ipv4 /" + std::to_string(c.v4) + " ipv6 /" + std::to_string(c.v6));
        Ruleset r;
        r.policies = {policy("p", Proto::Tcp, {port(80)})};
        r.policies[0].ipv4Prefix = c.v4;
        r.policies[0].ipv6Prefix = c.v6;
        const CompiledRuleset compiled = compileRuleset(r, {});
        ASSERT_EQ(compiled.policies.size(), 1u);
        const sluice_policy& p = compiled.policies[0];
        EXPECT_EQ(words(p.mask4), c.mask4);
        EXPECT_EQ(words(p.mask6), c.mask6);
    }
}

TEST(CompileRuleset, GlobalKeyHasNoMask)
{
    Ruleset r;
    r.policies = {policy("g", Proto::Tcp, {port(80)})};
    r.policies[0].key = KeyMode::Global;
    r.policies[0].ipv4Prefix = 24;
    const CompiledRuleset c = compileRuleset(r, {});
    ASSERT_EQ(c.policies.size(), 1u);
    const sluice_policy& p = c.policies[0];
    EXPECT_EQ(p.key_mode, SLUICE_KEY_GLOBAL);
    EXPECT_EQ(words(p.mask4), netWords(0, 0, 0, 0));
    EXPECT_EQ(words(p.mask6), netWords(0, 0, 0, 0));
}

struct ListEntry {
    std::string cidr;
    uint32_t kind;
    bool operator<(const ListEntry& o) const { return std::tie(cidr, kind) < std::tie(o.cidr, o.kind); }
    bool operator==(const ListEntry&) const = default;
};

void PrintTo(const ListEntry& e, std::ostream* os)
{
    *os << (e.kind == SLUICE_LIST_ALLOW ? "allow " : e.kind == SLUICE_LIST_DENY ? "deny " : "kind? ")
        << e.cidr;
}

// The trie entries as "addr/len" text, checking their key layout on the way.
std::vector<ListEntry> listEntries(const CompiledRuleset& c)
{
    std::vector<ListEntry> out;
    for (const LpmEntry4& e : c.lists4) {
        EXPECT_EQ(e.key.gen, 0u);
        EXPECT_GE(e.key.prefixlen, 32u);
        EXPECT_LE(e.key.prefixlen, 64u);
        char buf[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &e.key.addr, buf, sizeof(buf));
        out.push_back({std::string(buf) + "/" + std::to_string(e.key.prefixlen - 32), e.kind});
    }
    for (const LpmEntry6& e : c.lists6) {
        EXPECT_EQ(e.key.gen, 0u);
        EXPECT_GE(e.key.prefixlen, 32u);
        EXPECT_LE(e.key.prefixlen, 160u);
        char buf[INET6_ADDRSTRLEN] = {};
        inet_ntop(AF_INET6, e.key.addr, buf, sizeof(buf));
        out.push_back({std::string(buf) + "/" + std::to_string(e.key.prefixlen - 32), e.kind});
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(CompileRuleset, AllowAndDenyLists)
{
    constexpr uint32_t A = SLUICE_LIST_ALLOW, D = SLUICE_LIST_DENY;
    constexpr uint32_t L4 = SLUICE_GEN_LISTS_V4, L6 = SLUICE_GEN_LISTS_V6;
    constexpr uint32_t D4 = SLUICE_GEN_DENY_V4, D6 = SLUICE_GEN_DENY_V6;
    struct Case {
        const char* what;
        std::vector<const char*> allow, deny;
        std::vector<ListEntry> entries;
        uint32_t flags;
    };
    const Case cases[] = {
        {"nothing", {}, {}, {}, 0},
        {"one of each v4", {"192.0.2.0/24"}, {"198.51.100.7"},
         {{"192.0.2.0/24", A}, {"198.51.100.7/32", D}}, L4 | D4},
        {"deny inside allow is dropped", {"10.0.0.0/8"}, {"10.1.0.0/16", "10.9.9.9"},
         {{"10.0.0.0/8", A}}, L4},
        {"the same CIDR allowed and denied", {"10.0.0.0/8"}, {"10.0.0.0/8"}, {{"10.0.0.0/8", A}}, L4},
        {"allow inside deny stays (longest match allows)", {"10.1.0.0/16"}, {"10.0.0.0/8"},
         {{"10.0.0.0/8", D}, {"10.1.0.0/16", A}}, L4 | D4},
        {"v6 deny", {}, {"2001:db8:bad::/48"}, {{"2001:db8:bad::/48", D}}, L6 | D6},
        {"v6 allow only", {"2001:db8::/32"}, {}, {{"2001:db8::/32", A}}, L6},
        {"v6 deny inside v6 allow", {"2001:db8::/32"}, {"2001:db8:bad::/48"},
         {{"2001:db8::/32", A}}, L6},
        {"families do not cover each other", {"0.0.0.0/0"}, {"2001:db8:bad::/48"},
         {{"0.0.0.0/0", A}, {"2001:db8:bad::/48", D}}, L4 | L6 | D6},
        {"v4 allow, v6 allow, v4 deny", {"192.0.2.0/24", "::1"}, {"203.0.113.0/24"},
         {{"192.0.2.0/24", A}, {"203.0.113.0/24", D}, {"::1/128", A}}, L4 | L6 | D4},
        {"host bits already cleared by parsing", {}, {"203.0.113.77/24"},
         {{"203.0.113.0/24", D}}, L4 | D4},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Ruleset r;
        for (const char* a : c.allow)
            r.allow.push_back(Cidr::parse(a));
        for (const char* d : c.deny)
            r.deny.push_back(Cidr::parse(d));
        const CompiledRuleset compiled = compileRuleset(r, {});
        std::vector<ListEntry> want = c.entries;
        std::sort(want.begin(), want.end());
        EXPECT_EQ(listEntries(compiled), want);
        EXPECT_EQ(compiled.flags, c.flags);
    }
}


// --- names ------------------------------------------------------------------

TEST(Names, ActionsRoundTrip)
{
    const std::pair<Action, const char*> actions[] = {
        {Action::Drop, "drop"},       {Action::Monitor, "monitor"},   {Action::Reject, "reject"},
        {Action::Respond, "respond"}, {Action::Redirect, "redirect"},
    };
    for (const auto& [action, name] : actions) {
        EXPECT_EQ(actionName(action), name);
        EXPECT_EQ(actionFromName(name), action);
    }
    EXPECT_FALSE(actionFromName("block").has_value());
    EXPECT_FALSE(actionFromName("").has_value());
}

TEST(Names, KindsAndProtocols)
{
    EXPECT_EQ(kindName(LimitKind::Connections), "connections");
    EXPECT_EQ(kindName(LimitKind::Packets), "packets");
    EXPECT_EQ(kindName(LimitKind::Bytes), "bytes");
    EXPECT_EQ(protoName(Proto::Tcp), "tcp");
    EXPECT_EQ(protoName(Proto::Udp), "udp");
}

TEST(Names, DescribeLimit)
{
    EXPECT_NE(describeLimit(limit(5, kMinute)).find("5 per 1 minute"), std::string::npos);
    const std::string withBurst = describeLimit(limit(50, kSecond, 100));
    EXPECT_NE(withBurst.find("50 per 1 second"), std::string::npos) << withBurst;
    EXPECT_NE(withBurst.find("burst 100"), std::string::npos) << withBurst;
    EXPECT_NE(describeLimit(limit(100, kDay)), describeLimit(limit(100, 2 * kDay)));
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(CompileRuleset, ActionsAndBanCompile)
{
    Ruleset r;
    Policy rej = policy("rej", Proto::Tcp, {port(80)});
    rej.action = Action::Reject;
    rej.banAfter = limit(20, kMinute);
    rej.banNs = 10 * kMinute;
    Policy red = policy("red", Proto::Udp, {port(53)});
    red.action = Action::Redirect;
    red.redirectTo = "scrub0";
    red.redirectIfindex = 7;
    r.policies = {rej, red};
    const CompiledRuleset c = compileRuleset(r, {});
    ASSERT_EQ(c.policies.size(), 2U);
    const sluice_policy& a = c.policies[0];
    EXPECT_EQ(a.action, SLUICE_ACTION_REJECT);
    EXPECT_EQ(a.ban_ns, 10 * kMinute);
    EXPECT_EQ(a.ban_after.interval_ns, 3 * kSecond) << "20 per minute: one limited unit every 3 s";
    EXPECT_EQ(a.ban_after.capacity_ns, kMinute) << "burst 20";
    EXPECT_EQ(a.ban_after.count, 20U);
    EXPECT_EQ(a.redirect_ifindex, 0U);
    const sluice_policy& b = c.policies[1];
    EXPECT_EQ(b.action, SLUICE_ACTION_REDIRECT);
    EXPECT_EQ(b.redirect_ifindex, 7U);
    EXPECT_EQ(b.ban_ns, 0U);
    EXPECT_EQ(b.ban_after.interval_ns, 0U);
}

TEST(CompileRuleset, RefusesActionsAndBansThatCannotWork)
{
    auto base = [] { return policy("p", Proto::Tcp, {port(80)}); };
    std::vector<std::pair<const char*, Policy>> cases;
    Policy p = policy("p", Proto::Udp, {port(53)});
    p.action = Action::Respond;
    cases.push_back({"respond needs proto tcp", p});
    p = policy("p", Proto::Udp, {port(53)});
    p.action = Action::Reject;
    cases.push_back({"needs proto tcp", p});
    p = base();
    p.action = Action::Redirect;
    cases.push_back({"needs redirect_to", p});
    p = base();
    p.redirectTo = "eth1";
    cases.push_back({"only for action redirect", p});
    p = base();
    p.banNs = kMinute;
    cases.push_back({"set both or neither", p});
    p = base();
    p.banAfter = limit(1, kSecond);
    cases.push_back({"set both or neither", p});
    p = base();
    p.banAfter = limit(1, kSecond);
    p.banNs = kMinute;
    p.action = Action::Monitor;
    cases.push_back({"monitor", p});
    p.action = Action::Drop;
    p.key = KeyMode::Global;
    cases.push_back({"key", p});
    p.key = KeyMode::Source;
    p.banAfter = limit(0, kSecond);
    cases.push_back({"ban_after", p});
    p.banAfter = limit(1, kSecond);
    p.banNs = SLUICE_MAX_SPAN_NS + 1;
    cases.push_back({"ban is longer", p});
    p = base();
    p.newSources = limit(10, kSecond);
    p.key = KeyMode::Global;
    cases.push_back({"new_sources needs key", p});
    p.key = KeyMode::Source;
    p.newSources->kind = LimitKind::Bytes;
    cases.push_back({"new_sources counts sources", p});
    p.newSources = limit(0, kSecond);
    cases.push_back({"new_sources:", p});
    for (const auto& [want, pol] : cases) {
        SCOPED_TRACE(want);
        Ruleset r;
        r.policies = {pol};
        const std::string msg = usageError([&] { compileRuleset(r, {}); });
        EXPECT_NE(msg.find(want), std::string::npos) << msg;
        EXPECT_NE(msg.find("policy 'p'"), std::string::npos) << msg;
    }
}

}  // namespace
}  // namespace sluice
