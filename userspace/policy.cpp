// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "error.h"

namespace sluice {
namespace {

using u128 = unsigned __int128;

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Bits of the stored 128-bit address a prefix covers (IPv4 lives in the last 32).
unsigned storedPrefix(const Address& a, unsigned prefix)
{
    return a.isV4 ? 96 + prefix : prefix;
}

void clearHostBits(std::array<uint8_t, 16>& bytes, unsigned keepBits)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned bitStart = i * 8;
        if (bitStart >= keepBits)
            bytes[i] = 0;
        else if (bitStart + 8 > keepBits)
            bytes[i] &= static_cast<uint8_t>(0xff << (8 - (keepBits - bitStart)));
    }
}

// Mask over the 128-bit stored address as four network-order words.
void prefixMask(uint32_t out[4], unsigned keepBits)
{
    for (unsigned w = 0; w < 4; w++) {
        unsigned start = w * 32;
        uint32_t m = 0;
        if (keepBits >= start + 32)
            m = 0xffffffffU;
        else if (keepBits > start)
            m = 0xffffffffU << (32 - (keepBits - start));
        out[w] = htonl(m);
    }
}

uint64_t parseNumber(const std::string& text, const std::string& what)
{
    if (text.empty() || text.size() > 3 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throwUsage("invalid " + what + " '" + text + "'");
    return std::stoul(text);
}

uint32_t newStateTag(const std::set<uint32_t>& taken)
{
    // Random so that a tag of a policy removed earlier (whose entries may
    // still sit in the LRU) is not handed out again.
    static std::mt19937 rng{std::random_device{}()};
    for (;;) {
        uint32_t tag = rng();
        if (tag && !taken.count(tag))
            return tag;
    }
}

}  // namespace

Address Address::parse(const std::string& text)
{
    Address a;
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
        std::copy(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), a.bytes.begin());
        std::memcpy(&a.bytes[12], &v4, 4);
        a.isV4 = true;
        return a;
    }
    if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
        std::memcpy(a.bytes.data(), &v6, 16);
        a.isV4 = std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), a.bytes.begin());
        return a;
    }
    throwUsage("invalid IP address '" + text + "'");
}

std::string Address::str() const
{
    char buf[INET6_ADDRSTRLEN] = {};
    if (isV4)
        inet_ntop(AF_INET, &bytes[12], buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
    return buf;
}

Cidr Cidr::parse(const std::string& text)
{
    Cidr c;
    auto slash = text.find('/');
    std::string addrText = text.substr(0, slash);
    c.addr = Address::parse(addrText);
    // In IPv6 notation (::ffff:a.b.c.d/n) the prefix counts all 128 bits.
    bool v6Notation = addrText.find(':') != std::string::npos;
    unsigned max = c.addr.isV4 && !v6Notation ? 32 : 128;
    unsigned prefix = max;
    if (slash != std::string::npos) {
        prefix = parseNumber(text.substr(slash + 1), "prefix length in '" + text + "'");
        if (prefix > max)
            throwUsage("prefix length /" + std::to_string(prefix) + " in '" + text +
                       "' is longer than " + std::to_string(max));
    }
    if (c.addr.isV4 && v6Notation) {
        if (prefix >= 96)
            prefix -= 96;  // an IPv4-mapped range: the same as a.b.c.d/(n-96)
        else
            c.addr.isV4 = false;  // wider than the mapped range: an IPv6 CIDR
    }
    c.prefix = static_cast<uint8_t>(prefix);
    clearHostBits(c.addr.bytes, storedPrefix(c.addr, prefix));
    return c;
}

std::string Cidr::str() const
{
    return addr.str() + "/" + std::to_string(prefix);
}

bool Cidr::contains(const Cidr& other) const
{
    if (addr.isV4 != other.addr.isV4 || other.prefix < prefix)
        return false;
    auto masked = other.addr.bytes;
    clearHostBits(masked, storedPrefix(addr, prefix));
    return masked == addr.bytes;
}

sluice_limit compileLimit(const Limit& limit)
{
    std::string what = describeLimit(limit);
    if (limit.count == 0)
        throwUsage("limit '" + what + "': the count must be at least 1");
    if (limit.periodNs == 0)
        throwUsage("limit '" + what + "': the period must be longer than 0");

    sluice_limit out{};
    out.kind = static_cast<uint8_t>(limit.kind);
    out.count = limit.count;
    out.period_ns = limit.periodNs;
    out.burst = limit.effectiveBurst();

    u128 periodQ32 = static_cast<u128>(limit.periodNs) << 32;
    u128 intervalQ32 = periodQ32 / limit.count;
    if (limit.kind == LimitKind::Bytes) {
        // Bytes are charged in bulk, so keep the sub-nanosecond fraction.
        out.interval_ns = static_cast<uint64_t>(intervalQ32 >> 32);
        out.interval_frac = static_cast<uint32_t>(intervalQ32);
        if (intervalQ32 == 0)
            throwUsage("limit '" + what + "' is faster than 4 GB per nanosecond");
    } else {
        // One unit per charge: the interval is rounded to the nanosecond.
        u128 rounded = (intervalQ32 + (u128{1} << 31)) >> 32;
        if (rounded == 0)
            throwUsage("limit '" + what +
                       "' is faster than one unit per nanosecond, the data path's clock resolution");
        // Rounding to the nanosecond must not change the rate noticeably.
        u128 errQ32 = (rounded << 32) > intervalQ32 ? (rounded << 32) - intervalQ32
                                                    : intervalQ32 - (rounded << 32);
        if (errQ32 * 100 > intervalQ32)
            throwUsage("limit '" + what + "' needs an interval of " +
                       std::to_string(static_cast<double>(intervalQ32) / 4294967296.0) +
                       " ns per unit; the data path counts whole nanoseconds, which would change "
                       "the rate by more than 1%");
        if (rounded > SLUICE_MAX_SPAN_NS)
            throwUsage("limit '" + what + "': the period per unit is too long");
        out.interval_ns = static_cast<uint64_t>(rounded);
    }

    // The same rounding as gcra_cost_ns() (fraction rounded up), so that a
    // charge of `burst` units in one go always fits the bucket.
    auto cost = [&](uint64_t units) {
        return static_cast<u128>(units) * out.interval_ns +
               ((static_cast<u128>(units) * out.interval_frac + 0xffffffffULL) >> 32);
    };
    uint64_t maxUnits = limit.kind == LimitKind::Bytes ? SLUICE_MAX_FRAME_BYTES : 1;
    u128 maxCost = cost(maxUnits);
    u128 capacity = cost(out.burst);
    if (maxCost > SLUICE_MAX_SPAN_NS || capacity > SLUICE_MAX_SPAN_NS)
        throwUsage("limit '" + what + "': burst x period is beyond the data path's 2^62 ns range; "
                   "use a shorter period or a smaller burst");
    out.capacity_ns = static_cast<uint64_t>(capacity);
    return out;
}

namespace {

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool validUtf8(std::string_view s)
{
    for (size_t i = 0; i < s.size();) {
        const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
        const unsigned char c = b(i);
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
        if (c < 0x80)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else
            return false;
        if (i + len > s.size())
            return false;
        for (size_t k = 1; k < len; k++)
            if (b(i + k) < (k == 1 ? lo : 0x80) || b(i + k) > (k == 1 ? hi : 0xbf))
                return false;
        i += len;
    }
    return true;
}

}  // namespace

std::optional<std::string> policyNameProblem(const std::string& name)
{
    if (name.empty())
        return "a policy name must not be empty";
    // Names reach JSON output and metric labels, which are UTF-8; checked
    // before the name is quoted in a message.
    if (!validUtf8(name))
        return "a policy name must be UTF-8 text";
    if (name.size() >= SLUICE_POLICY_NAME_LEN)
        return "policy '" + name + "': the name is longer than " +
               std::to_string(SLUICE_POLICY_NAME_LEN - 1) + " bytes";
    if (std::any_of(name.begin(), name.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
        return "a policy name must not hold control characters (a line break, a tab...)";
    // /metrics labels the traffic that matched no policy policy="(none)": a
    // policy of that name would duplicate those series.
    if (name == "(none)")
        return "'(none)' is not a policy name: /metrics uses it for traffic that matched no policy";
    return std::nullopt;
}

CompiledRuleset compileRuleset(const Ruleset& rules, const std::vector<InstalledPolicy>& previous)
{
    CompiledRuleset out;
    std::map<std::string, const InstalledPolicy*> prevByName;
    std::set<uint32_t> prevSlots, tags;
    for (const auto& p : previous) {
        prevByName[p.name] = &p;
        prevSlots.insert(p.slot);
        tags.insert(p.stateTag);
    }

    std::set<std::string> names;
    std::set<uint32_t> usedSlots;
    std::map<uint32_t, std::string> portOwner;  // port key -> policy name
    uint32_t flags = 0;

    // First pass: validate and keep the slots of policies that keep their name.
    for (const auto& p : rules.policies) {
        std::string where = "policy '" + p.name + "'";
        if (auto problem = policyNameProblem(p.name))
            throwUsage(*problem);
        if (!names.insert(p.name).second)
            throwUsage(where + " is defined twice");
        if (p.proto != Proto::Tcp && p.proto != Proto::Udp)
            throwUsage(where + ": proto must be tcp or udp");
        if (p.ports.empty())
            throwUsage(where + " covers no ports");
        if (p.limits.empty())
            throwUsage(where + " has no limits");
        if (p.limits.size() > SLUICE_MAX_LIMITS)
            throwUsage(where + " has " + std::to_string(p.limits.size()) + " limits; at most " +
                       std::to_string(SLUICE_MAX_LIMITS) + " are allowed");
        if (p.ipv4Prefix > 32)
            throwUsage(where + ": ipv4_prefix must be 0..32");
        if (p.ipv6Prefix > 128)
            throwUsage(where + ": ipv6_prefix must be 0..128");
        if (p.action == Action::Reject && p.proto != Proto::Tcp)
            throwUsage(where + ": action reject needs proto tcp (it answers TCP SYNs with a RST); "
                               "use drop for udp");
        if (p.action == Action::Respond && p.proto != Proto::Tcp)
            throwUsage(where + ": action respond needs proto tcp (it answers HTTP connections with "
                               "429); use drop for udp");
        if (p.action == Action::Redirect && p.redirectTo.empty() && !p.redirectIfindex)
            throwUsage(where + ": action redirect needs redirect_to (the interface to send the excess to)");
        if (p.action != Action::Redirect && (!p.redirectTo.empty() || p.redirectIfindex))
            throwUsage(where + ": redirect_to is only for action redirect");
        if (p.banAfter.has_value() != (p.banNs != 0))
            throwUsage(where + ": ban_after and ban go together: set both or neither");
        if (p.banNs > SLUICE_MAX_SPAN_NS)
            throwUsage(where + ": ban is longer than the data path's 2^62 ns range");
        if (p.banNs && p.action == Action::Monitor)
            throwUsage(where + ": a ban stops traffic, which action monitor never does");
        if (p.banNs && p.key == KeyMode::Global)
            throwUsage(where + ": a ban needs key = \"source\" (with key global it would ban everyone)");
        if (p.newSources && p.key == KeyMode::Global)
            throwUsage(where + ": new_sources needs key = \"source\" (with key global there is one source)");
        if (p.newSources && p.newSources->kind != LimitKind::Packets)
            throwUsage(where + ": new_sources counts sources: a rate such as \"1000 per second\"");
        for (const auto& l : p.limits)
            if (l.kind == LimitKind::Connections && p.proto != Proto::Tcp)
                throwUsage(where + ": connections limits need proto tcp (UDP has no SYN)");
        uint32_t protoIdx = p.proto == Proto::Tcp ? SLUICE_PROTO_TCP_IDX : SLUICE_PROTO_UDP_IDX;
        for (const auto& r : p.ports) {
            if (r.first > r.last)
                throwUsage(where + ": port range " + std::to_string(r.first) + "-" +
                           std::to_string(r.last) + " is reversed");
            for (uint32_t port = r.first; port <= r.last; port++) {
                uint32_t key = sluice_port_key(0, protoIdx, port);
                auto [it, fresh] = portOwner.emplace(key, p.name);
                if (!fresh)
                    throwUsage(where + ": " + protoName(p.proto) + " port " + std::to_string(port) +
                               " is already covered by policy '" + it->second + "'");
            }
        }
        flags |= p.proto == Proto::Tcp ? SLUICE_GEN_TCP_POLICY : SLUICE_GEN_UDP_POLICY;
        if (auto it = prevByName.find(p.name); it != prevByName.end())
            usedSlots.insert(it->second->slot);
    }
    if (rules.policies.size() > SLUICE_MAX_POLICIES - 1)
        throwUsage("at most " + std::to_string(SLUICE_MAX_POLICIES - 1) + " policies are allowed");

    // New names take slots the previous generation did not use, so their
    // counters start from zero; only when those run out are old ones reused.
    // Slots are only taken during one compile, so each pass resumes where it
    // stopped: linear in the slots, not quadratic (10k policies).
    uint32_t cursor[2] = {1, 1};
    auto freeSlot = [&]() -> uint32_t {
        for (int pass = 0; pass < 2; pass++)
            for (uint32_t& s = cursor[pass]; s < SLUICE_MAX_POLICIES; s++)
                if (!usedSlots.count(s) && (pass == 1 || !prevSlots.count(s)))
                    return s;
        throwUsage("no free policy slot");
    };

    std::map<std::string, uint32_t> slotOf;
    for (const auto& p : rules.policies) {
        sluice_policy kp{};
        std::copy(p.name.begin(), p.name.end(), kp.name);
        const InstalledPolicy* prev = nullptr;
        if (auto it = prevByName.find(p.name); it != prevByName.end())
            prev = it->second;
        kp.slot = prev ? prev->slot : freeSlot();
        usedSlots.insert(kp.slot);
        slotOf[p.name] = kp.slot;
        bool sameState = prev && prev->limits == p.limits && prev->key == p.key &&
                         prev->ipv4Prefix == p.ipv4Prefix && prev->ipv6Prefix == p.ipv6Prefix;
        kp.state_tag = sameState ? prev->stateTag : newStateTag(tags);
        tags.insert(kp.state_tag);
        kp.action = static_cast<uint8_t>(p.action);
        kp.key_mode = static_cast<uint8_t>(p.key);
        kp.ipv4_prefix = p.ipv4Prefix;
        kp.ipv6_prefix = p.ipv6Prefix;
        kp.proto = static_cast<uint8_t>(p.proto);
        kp.scope = static_cast<uint8_t>(p.scope);
        kp.nlimits = static_cast<uint8_t>(p.limits.size());
        for (size_t i = 0; i < p.limits.size(); i++) {
            try {
                kp.limits[i] = compileLimit(p.limits[i]);
            } catch (const Error& e) {
                throwUsage("policy '" + p.name + "': " + e.what());
            }
        }
        kp.redirect_ifindex = p.action == Action::Redirect ? p.redirectIfindex : 0;
        if (p.banAfter) {
            try {
                kp.ban_after = compileLimit(*p.banAfter);
            } catch (const Error& e) {
                throwUsage("policy '" + p.name + "': ban_after: " + e.what());
            }
            kp.ban_ns = p.banNs;
        }
        if (p.newSources) {
            try {
                kp.new_sources = compileLimit(*p.newSources);
            } catch (const Error& e) {
                throwUsage("policy '" + p.name + "': new_sources: " + e.what());
            }
        }
        if (p.key == KeyMode::Source) {
            prefixMask(kp.mask4, 96 + p.ipv4Prefix);
            prefixMask(kp.mask6, p.ipv6Prefix);
        }
        out.policies.push_back(kp);
    }
    for (const auto& [key, name] : portOwner)
        out.ports.emplace_back(key, slotOf[name]);

    // Allow wins: a deny entry inside an allow entry is dropped, because the
    // trie returns the longest match and would otherwise deny.
    auto addEntry = [&](const Cidr& c, uint32_t kind) {
        if (c.addr.isV4) {
            LpmEntry4 e{};
            e.key.prefixlen = 32 + c.prefix;
            std::memcpy(&e.key.addr, &c.addr.bytes[12], 4);
            e.kind = kind;
            out.lists4.push_back(e);
            flags |= SLUICE_GEN_LISTS_V4 | (kind == SLUICE_LIST_DENY ? SLUICE_GEN_DENY_V4 : 0);
        } else {
            LpmEntry6 e{};
            e.key.prefixlen = 32 + c.prefix;
            std::memcpy(e.key.addr, c.addr.bytes.data(), 16);
            e.kind = kind;
            out.lists6.push_back(e);
            flags |= SLUICE_GEN_LISTS_V6 | (kind == SLUICE_LIST_DENY ? SLUICE_GEN_DENY_V6 : 0);
        }
    };
    // Whether an allow entry contains a deny entry is asked once per prefix
    // length the allow list uses, not once per allow entry: 100k entries
    // each way stay linear.
    using CidrKey = std::tuple<bool, uint8_t, std::array<uint8_t, 16>>;
    std::set<CidrKey> allowSet, seen;
    std::set<uint8_t> allowLengths[2];  // [isV4]
    for (const auto& a : rules.allow) {
        allowLengths[a.addr.isV4].insert(a.prefix);
        allowSet.insert({a.addr.isV4, a.prefix, a.addr.bytes});
        if (seen.insert({a.addr.isV4, a.prefix, a.addr.bytes}).second)
            addEntry(a, SLUICE_LIST_ALLOW);
    }
    for (const auto& d : rules.deny) {
        bool allowed = false;
        for (uint8_t len : allowLengths[d.addr.isV4]) {
            if (len > d.prefix)
                break;
            auto bytes = d.addr.bytes;
            clearHostBits(bytes, storedPrefix(d.addr, len));
            if (allowSet.count({d.addr.isV4, len, bytes})) {
                allowed = true;
                break;
            }
        }
        if (!allowed && seen.insert({d.addr.isV4, d.prefix, d.addr.bytes}).second)
            addEntry(d, SLUICE_LIST_DENY);
    }
    if (out.lists4.size() + out.lists6.size() > SLUICE_MAX_CIDRS / SLUICE_GENERATIONS)
        throwUsage("at most " + std::to_string(SLUICE_MAX_CIDRS / SLUICE_GENERATIONS) +
                   " allow and deny entries are allowed");
    out.flags = flags;
    return out;
}

std::vector<PortRange> parsePortList(const std::string& text)
{
    auto port = [&](const std::string& item) -> uint16_t {
        bool digits = !item.empty() && item.size() <= 5 &&
                      std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; });
        unsigned long v = digits ? std::stoul(item) : 0;
        if (!digits || v < 1 || v > 65535)
            throwUsage("invalid port '" + item + "' in '" + text + "': ports are 1-65535");
        return static_cast<uint16_t>(v);
    };
    std::vector<PortRange> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        size_t dash = item.find('-');
        PortRange r;
        r.first = port(item.substr(0, dash));
        r.last = dash == std::string::npos ? r.first : port(item.substr(dash + 1));
        if (r.first > r.last)
            throwUsage("port range '" + item + "' is reversed");
        out.push_back(r);
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return out;
}

std::string describePorts(const std::vector<PortRange>& ports)
{
    std::string s;
    for (const auto& r : ports) {
        if (!s.empty())
            s += ",";
        s += std::to_string(r.first);
        if (r.last != r.first)
            s += "-" + std::to_string(r.last);
    }
    return s;
}

std::string kindName(LimitKind kind)
{
    switch (kind) {
    case LimitKind::Connections: return "connections";
    case LimitKind::Packets: return "packets";
    case LimitKind::Bytes: return "bytes";
    }
    return "unknown";
}

std::string actionName(Action action)
{
    switch (action) {
    case Action::Drop: return "drop";
    case Action::Monitor: return "monitor";
    case Action::Reject: return "reject";
    case Action::Respond: return "respond";
    case Action::Redirect: return "redirect";
    }
    return "unknown";
}

std::optional<Action> actionFromName(const std::string& name)
{
    for (auto a : {Action::Drop, Action::Monitor, Action::Reject, Action::Respond, Action::Redirect})
        if (actionName(a) == name)
            return a;
    return std::nullopt;
}

std::string protoName(Proto proto)
{
    return proto == Proto::Tcp ? "tcp" : "udp";
}

std::string scopeName(Scope scope)
{
    return scope == Scope::Fleet ? "fleet" : "host";
}

std::string describeLimit(const Limit& limit)
{
    struct Unit {
        uint64_t ns;
        const char* name;
    };
    static const Unit units[] = {
        {360ULL * 86400 * kNsPerSecond, "year"}, {30ULL * 86400 * kNsPerSecond, "month"},
        {7ULL * 86400 * kNsPerSecond, "week"},   {86400ULL * kNsPerSecond, "day"},
        {3600ULL * kNsPerSecond, "hour"},        {60ULL * kNsPerSecond, "minute"},
        {kNsPerSecond, "second"},
    };
    std::string period = std::to_string(limit.periodNs) + " ns";
    for (const auto& u : units) {
        if (limit.periodNs && limit.periodNs % u.ns == 0) {
            period = std::to_string(limit.periodNs / u.ns) + " " + u.name;
            break;
        }
    }
    std::string s = std::to_string(limit.count) + " per " + period;
    if (limit.burst && limit.burst != limit.count)
        s += " burst " + std::to_string(limit.burst);
    return s;
}

}  // namespace sluice
