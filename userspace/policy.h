// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The policy model userspace works with, and its compilation into the map
// entries of bpf/sluice_abi.h. No kernel access here: pure and unit-tested.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "sluice_abi.h"
}

namespace sluice {

enum class LimitKind : uint8_t {
    Connections = SLUICE_LIMIT_CONNECTIONS,
    Packets = SLUICE_LIMIT_PACKETS,
    Bytes = SLUICE_LIMIT_BYTES,
};

// "count per period", with a bucket of `burst` units (0: burst = count).
struct Limit {
    LimitKind kind = LimitKind::Packets;
    uint64_t count = 0;
    uint64_t periodNs = 0;
    uint64_t burst = 0;

    uint64_t effectiveBurst() const { return burst ? burst : count; }
    // The same limit: an unset burst equals a burst of `count`.
    bool operator==(const Limit& o) const
    {
        return kind == o.kind && count == o.count && periodNs == o.periodNs &&
               effectiveBurst() == o.effectiveBurst();
    }
};

enum class Action : uint8_t {
    Drop = SLUICE_ACTION_DROP,
    Monitor = SLUICE_ACTION_MONITOR,
    Reject = SLUICE_ACTION_REJECT,
    Respond = SLUICE_ACTION_RESPOND,
    Redirect = SLUICE_ACTION_REDIRECT,
};

enum class KeyMode : uint8_t { Source = SLUICE_KEY_SOURCE, Global = SLUICE_KEY_GLOBAL };

enum class Proto : uint8_t { Tcp = 6, Udp = 17 };

// Host: this host's buckets only. Fleet: also the fleet-wide total, shared
// through Redis by `sluice run` (docs/fleet.md).
enum class Scope : uint8_t { Host = SLUICE_SCOPE_HOST, Fleet = SLUICE_SCOPE_FLEET };

struct PortRange {
    uint16_t first = 0;
    uint16_t last = 0;
    bool operator==(const PortRange&) const = default;
};

struct Policy {
    std::string name;
    Proto proto = Proto::Tcp;
    std::vector<PortRange> ports;
    std::vector<Limit> limits;  // at most SLUICE_MAX_LIMITS
    Action action = Action::Drop;
    KeyMode key = KeyMode::Source;
    uint8_t ipv4Prefix = 32;
    uint8_t ipv6Prefix = 64;
    // Action redirect: the target interface by name (config redirect_to);
    // Datapath::install resolves it into redirectIfindex.
    std::string redirectTo;
    uint32_t redirectIfindex = 0;
    // Ban (both or neither): limited units charged to banAfter (one per
    // over-limit packet); one it refuses bans the source for banNs.
    std::optional<Limit> banAfter;
    uint64_t banNs = 0;
    // How fast never-seen sources may start buckets (config new_sources);
    // a new source it refuses is dropped without state. None = no budget.
    std::optional<Limit> newSources;
    Scope scope = Scope::Host;
    // The same policy: redirectIfindex is left out, it is derived from
    // redirectTo (a config's policy and the installed one compare equal).
    bool operator==(const Policy& o) const
    {
        return name == o.name && proto == o.proto && ports == o.ports && limits == o.limits &&
               action == o.action && key == o.key && ipv4Prefix == o.ipv4Prefix &&
               ipv6Prefix == o.ipv6Prefix && redirectTo == o.redirectTo && banAfter == o.banAfter &&
               banNs == o.banNs && newSources == o.newSources && scope == o.scope;
    }
};

// An IPv4 or IPv6 address. IPv4 is kept IPv4-mapped (::ffff:a.b.c.d), as the
// data path keys it.
struct Address {
    std::array<uint8_t, 16> bytes{};
    bool isV4 = false;

    static Address parse(const std::string& text);  // throws Usage
    std::string str() const;
    bool operator==(const Address&) const = default;
};

struct Cidr {
    Address addr;   // host bits cleared
    uint8_t prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6

    static Cidr parse(const std::string& text);  // "a.b.c.d/n", "x::/n", bare address = host
    std::string str() const;
    bool contains(const Cidr& other) const;
    bool operator==(const Cidr&) const = default;
};

struct Ruleset {
    std::vector<Policy> policies;
    std::vector<Cidr> allow;
    std::vector<Cidr> deny;
};

// Names, slots and tags of what is installed now, so a new ruleset keeps the
// counters (slot) of a policy that keeps its name and the bucket state
// (state tag) of one whose limits did not change.
struct InstalledPolicy {
    std::string name;
    uint32_t slot = 0;
    uint32_t stateTag = 0;
    std::vector<Limit> limits;
    uint8_t ipv4Prefix = 0;
    uint8_t ipv6Prefix = 0;
    KeyMode key = KeyMode::Source;
    Scope scope = Scope::Host;
};

struct LpmEntry4 {
    sluice_lpm4_key key;
    uint32_t kind;
};
struct LpmEntry6 {
    sluice_lpm6_key key;
    uint32_t kind;
};

// Everything one generation holds, ready to write into the maps.
struct CompiledRuleset {
    std::vector<sluice_policy> policies;             // each at its .slot
    std::vector<std::pair<uint32_t, uint32_t>> ports;  // (port key without gen, slot)
    std::vector<LpmEntry4> lists4;                    // gen field left 0
    std::vector<LpmEntry6> lists6;
    uint32_t flags = 0;                               // SLUICE_GEN_*
};

// Checks a ruleset (names, ports, limits within the kernel's arithmetic, one
// policy per protocol and port) and compiles it. Throws Usage with a message
// naming the policy and the problem.
CompiledRuleset compileRuleset(const Ruleset& rules,
                               const std::vector<InstalledPolicy>& previous);

// What is wrong with a policy name (empty, too long for the map, or holding
// control characters, which would break tables, log lines and labels), or
// nothing. compileRuleset and the config reader both ask.
std::optional<std::string> policyNameProblem(const std::string& name);

// One limit's kernel form; throws Usage when it does not fit the arithmetic.
sluice_limit compileLimit(const Limit& limit);

// Time unit helpers shared with the rate grammar.
inline constexpr uint64_t kNsPerSecond = 1'000'000'000ULL;

// "80", "8000-8099", or a comma-separated list of them ("80,8000-8099").
// Throws Usage for port 0, ports above 65535, reversed ranges and garbage.
std::vector<PortRange> parsePortList(const std::string& text);
std::string describePorts(const std::vector<PortRange>& ports);

std::string kindName(LimitKind kind);
std::string actionName(Action action);
std::optional<Action> actionFromName(const std::string& name);
std::string protoName(Proto proto);
std::string scopeName(Scope scope);
// "5 per 1 minute burst 5" style, for display.
std::string describeLimit(const Limit& limit);

}  // namespace sluice
