// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "harness.h"
#include "lib/admit.h"
#include "lib/overcache.h"

#include "error.h"
#include "unique_fd.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>

namespace sluice::test {

Ruleset Rules::make() const
{
    Ruleset r;
    r.policies = policies;
    for (const auto& c : allow)
        r.allow.push_back(Cidr::parse(c));
    for (const auto& c : deny)
        r.deny.push_back(Cidr::parse(c));
    return r;
}

Step expectStep(const Frame& f, int action, std::string policy, uint32_t verdict)
{
    Step s;
    s.frame = f;
    s.action = action;
    s.policy = std::move(policy);
    s.verdict = verdict;
    return s;
}

void PrintTo(const Row& row, std::ostream* os)
{
    *os << row.name;
}

std::string rowName(const testing::TestParamInfo<Row>& info)
{
    std::string n = info.param.name;
    for (auto& c : n)
        if (!isalnum(static_cast<unsigned char>(c)))
            c = '_';
    return n;
}

std::string verdictText(uint32_t verdict)
{
    return verdictName(verdict);
}

std::string actionText(int action)
{
    switch (action) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    case kRefused: return "-EINVAL (test run refused)";
    default: return "action " + std::to_string(action);
    }
}

int testRun(int progFd, const Frame& frame, uint32_t* action, std::vector<uint8_t>* out)
{
    std::vector<uint8_t> buf(frame.bytes.size() + 512);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.bytes.data();
    opts.data_size_in = static_cast<uint32_t>(frame.bytes.size());
    opts.data_out = buf.data();
    opts.data_size_out = static_cast<uint32_t>(buf.size());
    opts.repeat = 1;
    int err = bpf_prog_test_run_opts(progFd, &opts);
    *action = opts.retval;
    if (out) {
        buf.resize(err ? 0 : opts.data_size_out);
        *out = std::move(buf);
    }
    return err;
}

namespace {

uint16_t get16(const std::vector<uint8_t>& b, size_t off) { return uint16_t(b[off] << 8 | b[off + 1]); }
uint32_t get32(const std::vector<uint8_t>& b, size_t off)
{
    return uint32_t(get16(b, off)) << 16 | get16(b, off + 2);
}

// One's-complement sum of b[off, off+len) as big-endian 16-bit words.
uint32_t sum16(const std::vector<uint8_t>& b, size_t off, size_t len, uint32_t sum = 0)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get16(b, off + i);
    if (len & 1)
        sum += uint32_t(b[off + len - 1]) << 8;
    return sum;
}

uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(sum);
}

}  // namespace

void expectRstFor(const std::vector<uint8_t>& in, const std::vector<uint8_t>& out)
{
    size_t l3 = 14;
    uint16_t proto = get16(in, 12);
    while (proto == 0x8100 || proto == 0x88a8) {
        proto = get16(in, l3 + 2);
        l3 += 4;
    }
    ASSERT_TRUE(proto == 0x0800 || proto == 0x86dd) << "test frame is not IP";
    bool v6 = proto == 0x86dd;
    size_t inL4 = v6 ? l3 + 40 : l3 + (in[l3] & 0xf) * 4;
    size_t inPayload = (v6 ? get16(in, l3 + 4) + l3 + 40 : get16(in, l3 + 2) + l3) -
                       (inL4 + (in[inL4 + 12] >> 4) * 4);
    if (in[inL4 + 13] & 0x01)
        inPayload++;  // a FIN takes one unit of sequence space too
    size_t ipLen = v6 ? 40 : 20, l4 = l3 + ipLen;
    ASSERT_EQ(out.size(), l4 + 20) << "RST frame: L2 + IP header without options + 20-byte TCP";

    EXPECT_TRUE(std::equal(out.begin(), out.begin() + 6, in.begin() + 6)) << "dst MAC = SYN's src";
    EXPECT_TRUE(std::equal(out.begin() + 6, out.begin() + 12, in.begin())) << "src MAC = SYN's dst";
    EXPECT_TRUE(std::equal(out.begin() + 12, out.begin() + l3, in.begin() + 12))
        << "EtherType and VLAN tags kept";

    uint32_t pseudo = 0;
    if (v6) {
        EXPECT_EQ(out[l3] >> 4, 6);
        EXPECT_EQ(get16(out, l3 + 4), 20) << "payload length";
        EXPECT_EQ(out[l3 + 6], 6) << "next header TCP";
        EXPECT_GT(out[l3 + 7], 0) << "hop limit";
        EXPECT_TRUE(std::equal(out.begin() + l3 + 8, out.begin() + l3 + 24, in.begin() + l3 + 24))
            << "src address = SYN's dst";
        EXPECT_TRUE(std::equal(out.begin() + l3 + 24, out.begin() + l3 + 40, in.begin() + l3 + 8))
            << "dst address = SYN's src";
        pseudo = sum16(out, l3 + 8, 32);
    } else {
        EXPECT_EQ(out[l3], 0x45) << "IPv4, no options";
        EXPECT_EQ(get16(out, l3 + 2), 40) << "total length";
        EXPECT_EQ(get16(out, l3 + 6) & 0x3fff, 0) << "not a fragment";
        EXPECT_GT(out[l3 + 8], 0) << "TTL";
        EXPECT_EQ(out[l3 + 9], 6) << "protocol TCP";
        EXPECT_EQ(fold(sum16(out, l3, 20)), 0xffff) << "IPv4 header checksum";
        EXPECT_EQ(get32(out, l3 + 12), get32(in, l3 + 16)) << "src address = SYN's dst";
        EXPECT_EQ(get32(out, l3 + 16), get32(in, l3 + 12)) << "dst address = SYN's src";
        pseudo = sum16(out, l3 + 12, 8);
    }
    EXPECT_EQ(get16(out, l4), get16(in, inL4 + 2)) << "src port = SYN's dst port";
    EXPECT_EQ(get16(out, l4 + 2), get16(in, inL4)) << "dst port = SYN's src port";
    EXPECT_EQ(get32(out, l4 + 4), 0U) << "seq 0";
    EXPECT_EQ(get32(out, l4 + 8), get32(in, inL4 + 4) + 1 + uint32_t(inPayload))
        << "ack = ISN + 1 + SYN payload (" << inPayload << " B, +1 for a FIN)";
    EXPECT_EQ(out[l4 + 12] >> 4, 5) << "data offset";
    EXPECT_EQ(out[l4 + 13], 0x14) << "flags RST|ACK exactly";
    pseudo += 6 + 20;
    EXPECT_EQ(fold(sum16(out, l4, 20, pseudo)), 0xffff) << "TCP checksum";
}

namespace {

using CounterKey = std::pair<std::string, uint32_t>;  // (policy, verdict)
using Counters = std::map<CounterKey, sluice_counter>;

}  // namespace

namespace {

// This CPU's entries of a per-CPU cache map that pass `live`.
template <class Entry, class Live>
std::vector<Entry> thisCpuEntries(const Datapath& dp, const char* map, Live live)
{
    uint32_t zero = 0;
    sluice_config cfg{};
    if (int err = bpf_map_lookup_elem(dp.mapFd("sluice_config"), &zero, &cfg))
        throwSys("cannot read sluice_config", err);
    int ncpus = libbpf_num_possible_cpus(), cpu = sched_getcpu();
    if (ncpus <= 0 || cpu < 0 || cpu >= ncpus)
        throwSys("cannot tell this CPU among the possible ones", -EINVAL);
    std::vector<Entry> percpu(static_cast<size_t>(ncpus));
    const uint64_t now = Datapath::nowNs();
    std::vector<Entry> out;
    for (uint32_t slot = 0; slot < SLUICE_OVER_SLOTS; slot++) {
        if (int err = bpf_map_lookup_elem(dp.mapFd(map), &slot, percpu.data()))
            throwSys(std::string("cannot read ") + map, err);
        const Entry& e = percpu[static_cast<size_t>(cpu)];
        if (live(e, cfg, now))
            out.push_back(e);
    }
    return out;
}

}  // namespace

std::vector<sluice_over_entry> liveOverEntryList(const Datapath& dp)
{
    return thisCpuEntries<sluice_over_entry>(
        dp, "sluice_over", [](const sluice_over_entry& e, const sluice_config& cfg, uint64_t now) {
            return e.epoch == cfg.cache_epoch && e.until_ns > now;
        });
}

size_t liveOverEntries(const Datapath& dp) { return liveOverEntryList(dp).size(); }

size_t liveFastEntries(const Datapath& dp)
{
    return thisCpuEntries<sluice_fast_entry>(
               dp, "sluice_over_fast",
               [](const sluice_fast_entry& e, const sluice_config& cfg, uint64_t now) {
                   return e.epoch == cfg.cache_epoch && e.gen == (cfg.active_gen & 1) && e.until_ns > now;
               })
        .size();
}

sluice_source_key sourceKeyV4(uint32_t stateTag, uint32_t addrHost)
{
    sluice_source_key k{};
    k.state_tag = stateTag;
    k.addr[2] = htonl(0xffff);  // IPv4-mapped, as the program keys it
    k.addr[3] = htonl(addrHost);
    return k;
}

uint32_t admitSlotV4(uint32_t stateTag, uint32_t addrHost)
{
    const sluice_source_key k = sourceKeyV4(stateTag, addrHost);
    return admit_slot(&k);
}

uint32_t overSlotV4(uint32_t stateTag, uint32_t addrHost)
{
    const sluice_source_key k = sourceKeyV4(stateTag, addrHost);
    return over_slot(&k);
}

namespace {

Counters snapshot(const Datapath& dp)
{
    Counters out;
    for (const auto& slot : dp.counters())
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++) {
            auto& c = out[{slot.policy, v}];
            c.packets += slot.verdicts[v].packets;
            c.bytes += slot.verdicts[v].bytes;
        }
    return out;
}

std::string describe(const Counters& delta)
{
    std::ostringstream os;
    for (const auto& [k, c] : delta)
        os << " [" << (k.first.empty() ? "(no policy)" : k.first) << " " << verdictText(k.second)
           << " +" << c.packets << " pkt +" << c.bytes << " B]";
    return delta.empty() ? " (nothing counted)" : os.str();
}

Counters diff(const Counters& before, const Counters& after)
{
    Counters d;
    for (const auto& [k, c] : after) {
        sluice_counter b{};
        if (auto it = before.find(k); it != before.end())
            b = it->second;
        if (c.packets != b.packets || c.bytes != b.bytes)
            d[k] = {c.packets - b.packets, c.bytes - b.bytes};
    }
    return d;
}

void checkRemaining(const Datapath& dp, const Remaining& r)
{
    SCOPED_TRACE("source " + r.addr + " under " + r.policy);
    std::optional<SourceState> st;
    try {
        st = dp.source(r.policy, Address::parse(r.addr));
    } catch (const std::exception& e) {
        ADD_FAILURE() << "Datapath::source threw: " << e.what();
        return;
    }
    if (!r.units) {
        EXPECT_FALSE(st.has_value()) << "expected no bucket state";
        return;
    }
    ASSERT_TRUE(st.has_value()) << "expected bucket state, found none";
    ASSERT_EQ(st->limits.size(), r.units->size()) << "limits in the source state";
    for (size_t i = 0; i < r.units->size(); i++) {
        if ((*r.units)[i] == kAny)
            continue;
        EXPECT_EQ(st->limits[i].remaining, (*r.units)[i])
            << "remaining units of limit " << i << " (" << describeLimit(st->limits[i].limit)
            << ")";
    }
}

// The program shared by Row::shared rows, loaded on first use.
Datapath* sharedDatapath()
{
    static std::optional<Datapath> dp;
    if (!dp)
        dp.emplace(Datapath::loadUnattached());
    return &*dp;
}

}  // namespace

PinnedHere::PinnedHere()
{
    ok_ = pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) == 0;
    int cpu = sched_getcpu();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu < 0 ? 0 : cpu, &one);
    ok_ = ok_ && pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
}

PinnedHere::~PinnedHere() { pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_); }

TEST_P(BpfRow, Run)
{
    const Row& row = GetParam();
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN fixtures need root (CAP_BPF)";
    PinnedHere pinned;
    ASSERT_TRUE(pinned.ok()) << "cannot pin the test to one CPU";

    std::optional<Datapath> own;
    Datapath* dp = nullptr;
    try {
        if (row.shared) {
            dp = sharedDatapath();
        } else {
            own.emplace(Datapath::loadUnattached());
            dp = &*own;
        }
        dp->install(row.rules.make());
        if (row.shared)
            dp->resetAll();
    } catch (const std::exception& e) {
        FAIL() << "load/install failed: " << e.what();
    }
    ASSERT_GE(dp->progFd(), 0);
    UniqueFd responder4, responder6;
    if (row.responder) {
        responder4 = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        responder6 = UniqueFd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in sa4{};
        sa4.sin_family = AF_INET;
        sa4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sockaddr_in6 sa6{};
        sa6.sin6_family = AF_INET6;
        sa6.sin6_addr = in6addr_loopback;
        int on = 1;
        ::setsockopt(responder4.get(), IPPROTO_IP, IP_FREEBIND, &on, sizeof(on));
        ::setsockopt(responder6.get(), IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof(on));
        ASSERT_EQ(::bind(responder4.get(), reinterpret_cast<sockaddr*>(&sa4), sizeof(sa4)), 0) << strerror(errno);
        ASSERT_EQ(::bind(responder6.get(), reinterpret_cast<sockaddr*>(&sa6), sizeof(sa6)), 0) << strerror(errno);
        ASSERT_EQ(::listen(responder4.get(), 1), 0) << strerror(errno);
        ASSERT_EQ(::listen(responder6.get(), 1), 0) << strerror(errno);
        ASSERT_NO_THROW(dp->setResponder(responder4.get(), responder6.get()));
        ASSERT_TRUE(dp->responderRunning());
    } else {
        ASSERT_FALSE(dp->responderRunning());
    }

    for (size_t i = 0; i < row.steps.size(); i++) {
        const Step& s = row.steps[i];
        std::string where = "step " + std::to_string(i + 1);
        if (s.frame)
            where += ": " + s.frame->label + " (" + std::to_string(s.frame->size()) + " B)";
        if (!s.note.empty())
            where += " -- " + s.note;
        SCOPED_TRACE(where);

        if (s.install && s.installFails) {
            try {
                dp->install(s.install->make());
                ADD_FAILURE() << "install succeeded; expected a usage error";
            } catch (const Error& e) {
                EXPECT_EQ(e.kind(), ErrorKind::Usage) << e.what();
            } catch (const std::exception& e) {
                ADD_FAILURE() << "install threw a non-sluice error: " << e.what();
            }
        } else if (s.install) {
            try {
                dp->install(s.install->make());
            } catch (const std::exception& e) {
                FAIL() << "install failed: " << e.what();
            }
        }
        if (!s.resetAddr.empty()) {
            const ResetCount n = dp->resetSource(Address::parse(s.resetAddr));
            EXPECT_GT(n.states + n.bans, 0U) << "reset " << s.resetAddr;
        }
        if (s.frame) {
            Counters before = snapshot(*dp);
            uint32_t action = 0;
            std::vector<uint8_t> out;
            int err = testRun(dp->progFd(), *s.frame, &action, &out);
            Counters delta = diff(before, snapshot(*dp));
            if (s.action == kRefused) {
                EXPECT_EQ(err, -EINVAL) << "a frame shorter than ETH_HLEN";
                EXPECT_TRUE(delta.empty()) << "counted:" << describe(delta);
            } else {
                ASSERT_EQ(err, 0) << "bpf_prog_test_run_opts: " << strerror(-err);
                EXPECT_EQ(actionText(static_cast<int>(action)), actionText(s.action));
                if (s.expectRst)
                    expectRstFor(s.frame->bytes, out);
                else
                    EXPECT_TRUE(out == s.frame->bytes) << "the program changed the frame";
                Counters want;
                want[{s.policy, s.verdict}] = {1, s.frame->size()};
                EXPECT_EQ(describe(delta), describe(want));
            }
        }
        for (const auto& r : s.checks)
            checkRemaining(*dp, r);
        for (const auto& f : s.flowChecks) {
            Flow flow{Address::parse(f.src), f.sport, Address::parse(f.dst), f.dport};
            EXPECT_EQ(dp->respondedConnection(flow).has_value(), f.handed)
                << f.src << ":" << f.sport << " -> " << f.dst << ":" << f.dport;
        }
        if (s.overEntries) {
            EXPECT_EQ(liveOverEntries(*dp), *s.overEntries) << "live over-limit cache entries on this CPU";
        }
        if (s.fastEntries) {
            EXPECT_EQ(liveFastEntries(*dp), *s.fastEntries) << "live fast entries on this CPU";
        }
        for (const auto& b : s.banChecks) {
            SCOPED_TRACE("ban of " + b.addr + " under " + b.policy);
            auto st = dp->source(b.policy, Address::parse(b.addr));
            bool isBanned = st && st->bannedUntilNs > 0;
            EXPECT_EQ(isBanned, b.banned);
            if (isBanned) {
                EXPECT_GT(st->bannedUntilNs, Datapath::nowNs());
                EXPECT_GT(st->banRemainingNs, 0U);
            }
        }
    }
}

}  // namespace sluice::test
