// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Table-driven BPF_PROG_TEST_RUN fixtures. A Row is a ruleset and a list of
// steps; each step optionally installs a new ruleset (a generation flip),
// sends one frame, and checks the XDP action, the one counter the packet
// moved (policy, verdict, +1 packet, +frame bytes) and, optionally, the
// remaining units of a source's limits. Every row runs on a freshly loaded
// program (Datapath::loadUnattached), so rows share no state.
//
// Limits are "N per day": between two test runs time moves by microseconds,
// which is nothing against a 28 800 s emission interval, so verdicts are
// deterministic.
#pragma once

#include <linux/bpf.h>
#include <sched.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "datapath.h"
#include "packet.h"
#include "policy.h"

namespace sluice::test {

inline constexpr uint64_t kDayNs = 86400ULL * 1'000'000'000ULL;
// A step whose frame the kernel refuses to run (shorter than ETH_HLEN).
inline constexpr int kRefused = -EINVAL;
// In a remaining-count check: do not check this limit.
inline constexpr uint64_t kAny = UINT64_MAX;

inline Limit conns(uint64_t n) { return {LimitKind::Connections, n, kDayNs, 0}; }
inline Limit pkts(uint64_t n) { return {LimitKind::Packets, n, kDayNs, 0}; }
inline Limit bytes(uint64_t n) { return {LimitKind::Bytes, n, kDayNs, 0}; }

// A budget of `perDay` never-seen sources a day (config new_sources).
inline Policy withNewSources(Policy p, uint64_t perDay)
{
    p.newSources = Limit{LimitKind::Packets, perDay, kDayNs, 0};
    return p;
}

// A ban after `limitedPerDay` limited units a day, for banNs.
inline Policy withBan(Policy p, uint64_t limitedPerDay, uint64_t banNs)
{
    p.banAfter = Limit{LimitKind::Packets, limitedPerDay, kDayNs, 0};
    p.banNs = banNs;
    return p;
}

inline PortRange port(uint16_t p) { return {p, p}; }
inline PortRange ports(uint16_t first, uint16_t last) { return {first, last}; }

inline Policy tcpPolicy(std::string name, std::vector<PortRange> ports,
                        std::vector<Limit> limits, Action action = Action::Drop)
{
    Policy p;
    p.name = std::move(name);
    p.proto = Proto::Tcp;
    p.ports = std::move(ports);
    p.limits = std::move(limits);
    p.action = action;
    return p;
}

inline Policy udpPolicy(std::string name, std::vector<PortRange> ports,
                        std::vector<Limit> limits, Action action = Action::Drop)
{
    Policy p;
    p.name = std::move(name);
    p.proto = Proto::Udp;
    p.ports = std::move(ports);
    p.limits = std::move(limits);
    p.action = action;
    return p;
}

// A ruleset with its CIDRs as text: rows are built at static-init time
// without calling into libsluice; the runner parses them.
struct Rules {
    Rules(std::vector<Policy> p = {}, std::vector<std::string> a = {},
          std::vector<std::string> d = {})
        : policies(std::move(p)), allow(std::move(a)), deny(std::move(d)) {}

    std::vector<Policy> policies;
    std::vector<std::string> allow;
    std::vector<std::string> deny;

    Ruleset make() const;
};

// After a step: the remaining units of each limit of `policy` for the source
// `addr` (kAny: not checked), or, with nullopt, that it has no state.
struct Remaining {
    std::string policy;
    std::string addr;
    std::optional<std::vector<uint64_t>> units;
};

struct Step {
    std::optional<Rules> install;  // installed before the frame is sent
    bool installFails = false;     // ... and Datapath::install must refuse it (Usage)
    std::optional<Frame> frame;
    int action = XDP_PASS;         // XDP_PASS, XDP_DROP, or kRefused
    std::string policy;            // the counter it moves: "" = slot 0 (no policy)
    uint32_t verdict = SLUICE_VERDICT_PASS;
    std::vector<Remaining> checks;
    std::string note;              // printed on failure
    // The frame the program hands back must be the RST+ACK that refuses
    // the step's SYN (action reject, XDP_TX); otherwise it must be unchanged.
    bool expectRst = false;
    // Before the frame: Datapath::resetSource(resetAddr) (lifts bans too).
    std::string resetAddr;
    // After the frame: (policy, source, banned?) as Datapath::source shows it.
    struct BanCheck {
        std::string policy, addr;
        bool banned;
    };
    std::vector<BanCheck> banChecks;

    // After the frame: whether Datapath::respondedConnection finds the
    // connection (src, sport -> dst, dport) handed to the responder.
    struct FlowCheck {
        std::string src;
        uint16_t sport;
        std::string dst;
        uint16_t dport;
        bool handed;
    };
    std::vector<FlowCheck> flowChecks;
    // After the frame: live entries of the over-limit cache (map sluice_over)
    // on this CPU (rows run pinned to one): written under the current
    // epoch, not yet run out.
    std::optional<size_t> overEntries;
    Step& over(size_t n)
    {
        overEntries = n;
        return *this;
    }
    std::optional<size_t> fastEntries;  // live sluice_over_fast entries on this CPU
    Step& fast(size_t n)
    {
        fastEntries = n;
        return *this;
    }
    Step& handed(std::string src, uint16_t sport, std::string dst, uint16_t dport, bool yes = true)
    {
        flowChecks.push_back({std::move(src), sport, std::move(dst), dport, yes});
        return *this;
    }
    Step& ban(std::string pol, std::string addr, bool isBanned = true)
    {
        banChecks.push_back({std::move(pol), std::move(addr), isBanned});
        return *this;
    }
    Step& resetFirst(std::string addr)
    {
        resetAddr = std::move(addr);
        return *this;
    }

    Step& remaining(std::string pol, std::string addr, std::vector<uint64_t> units)
    {
        checks.push_back({std::move(pol), std::move(addr), std::move(units)});
        return *this;
    }
    Step& noState(std::string pol, std::string addr)
    {
        checks.push_back({std::move(pol), std::move(addr), std::nullopt});
        return *this;
    }
    Step& after(Rules rules)
    {
        install = std::move(rules);
        return *this;
    }
};

Step expectStep(const Frame& f, int action, std::string policy, uint32_t verdict);
inline Step admitted(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_PASS, std::move(pol), SLUICE_VERDICT_ADMITTED);
}
inline Step limited(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_DROP, std::move(pol), SLUICE_VERDICT_LIMITED);
}
inline Step monitored(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_PASS, std::move(pol), SLUICE_VERDICT_MONITORED);
}
// Action reject on an over-limit SYN: answered in place with a RST+ACK.
inline Step rejected(const Frame& f, std::string pol)
{
    Step s = expectStep(f, XDP_TX, std::move(pol), SLUICE_VERDICT_REJECTED);
    s.expectRst = true;
    return s;
}
inline Step redirected(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_REDIRECT, std::move(pol), SLUICE_VERDICT_REDIRECTED);
}
// Action respond on an over-limit SYN, responder running: passed untouched
// for the sk_lookup program to steer. Also later packets of that connection.
inline Step responded(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_PASS, std::move(pol), SLUICE_VERDICT_RESPONDED);
}
// ... and with no responder: refused with a RST+ACK as reject does.
inline Step respondFallback(const Frame& f, std::string pol)
{
    Step s = expectStep(f, XDP_TX, std::move(pol), SLUICE_VERDICT_RESPOND_FALLBACK);
    s.expectRst = true;
    return s;
}
inline Step banned(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_DROP, std::move(pol), SLUICE_VERDICT_BANNED);
}
// A never-seen source over its policy's new_sources budget: dropped.
inline Step newSource(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_DROP, std::move(pol), SLUICE_VERDICT_NEW_SOURCE);
}
inline Step allowed(const Frame& f, std::string pol)
{
    return expectStep(f, XDP_PASS, std::move(pol), SLUICE_VERDICT_ALLOWED);
}
inline Step denied(const Frame& f, std::string pol = "")
{
    return expectStep(f, XDP_DROP, std::move(pol), SLUICE_VERDICT_DENIED);
}
// Matched no policy: passed, counted PASS in slot 0 (or under the policy
// whose first fragment it follows).
inline Step passed(const Frame& f, std::string pol = "")
{
    return expectStep(f, XDP_PASS, std::move(pol), SLUICE_VERDICT_PASS);
}
inline Step malformed(const Frame& f)
{
    return expectStep(f, XDP_DROP, "", SLUICE_VERDICT_MALFORMED);
}
inline Step orphanFragment(const Frame& f)
{
    return expectStep(f, XDP_DROP, "", SLUICE_VERDICT_FRAGMENT);
}
inline Step refused(const Frame& f)
{
    return expectStep(f, kRefused, "", SLUICE_VERDICT_PASS);
}
// Installs `rules` (a generation flip) and sends nothing.
inline Step install(Rules rules)
{
    Step s;
    s.install = std::move(rules);
    return s;
}

// Installs `rules`, which Datapath::install must refuse with a usage error
// (leaving the active ruleset as it was).
inline Step refusedInstall(Rules rules)
{
    Step s = install(std::move(rules));
    s.installFails = true;
    return s;
}

struct Row {
    std::string name;  // [A-Za-z0-9_]: it becomes the test's name
    Rules rules;
    std::vector<Step> steps;
    // Stateless rows (parsing, one packet under generous limits) may share
    // one loaded program: the runner installs the row's rules and resets
    // every source first. Rows with fragments, flips or tight limits load
    // their own.
    bool shared = false;
    // A listening socket stands in for `sluice run`'s responder in the
    // sluice_responder map for the whole row.
    bool responder = false;
};

void PrintTo(const Row& row, std::ostream* os);
std::string rowName(const testing::TestParamInfo<Row>& info);

class BpfRow : public testing::TestWithParam<Row> {};

// Keeps the calling thread on the CPU it is on while alive: the data path
// keeps per-CPU state (counters, the over-limit cache), and a thread that
// migrated between two test runs would see another CPU's.
class PinnedHere {
public:
    PinnedHere();
    ~PinnedHere();
    bool ok() const { return ok_; }

private:
    cpu_set_t saved_;
    bool ok_ = false;
};

// Runs one frame through the program: the kernel's return (0 or -errno), the
// XDP action in *action and the frame as the program left it in *out.
int testRun(int progFd, const Frame& frame, uint32_t* action,
            std::vector<uint8_t>* out = nullptr);

std::string verdictText(uint32_t verdict);

// Entries of the over-limit cache on the calling CPU that the data path
// would still use: written under sluice_config's current cache_epoch, and
// until_ns not yet reached.
std::vector<sluice_over_entry> liveOverEntryList(const Datapath& dp);
size_t liveOverEntries(const Datapath& dp);
// The same for sluice_over_fast: entries of the active generation and epoch.
size_t liveFastEntries(const Datapath& dp);

// The probation memory's slot (bpf/lib/admit.h) of IPv4 source `addrHost`
// (host byte order) under a policy's state tag. Tags are random per install,
// so a test that must not overwrite a source's slot computes it.
sluice_source_key sourceKeyV4(uint32_t stateTag, uint32_t addrHost);
uint32_t admitSlotV4(uint32_t stateTag, uint32_t addrHost);
// The same source's slot in the over-limit cache (bpf/lib/overcache.h): two
// sources whose slots collide share one entry, the later evicting the other.
uint32_t overSlotV4(uint32_t stateTag, uint32_t addrHost);

// Checks (gtest assertions) that `out` is the RST+ACK refusing the TCP SYN
// `in`: MACs, addresses and ports swapped, VLAN tags kept, seq 0, ack = ISN
// + 1 + payload, flags RST|ACK, valid IPv4 and TCP checksums, trimmed.
void expectRstFor(const std::vector<uint8_t>& in, const std::vector<uint8_t>& out);
std::string actionText(int action);

// Common addresses.
inline constexpr const char* kServer4 = "10.255.0.1";
inline constexpr const char* kServer6 = "2001:db8:ffff::1";

}  // namespace sluice::test
