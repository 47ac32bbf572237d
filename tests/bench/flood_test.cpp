// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sluice-flood's checks (root): every rewrite mode leaves valid checksums
// (BPF_PROG_TEST_RUN without live frames, output fed back in as recycled
// live-frames pages are), and real transmissions across a veth pair arrive
// exactly once each with valid checksums (a UDP socket only receives
// datagrams whose checksum verifies; for TCP SYNs the receiver's TCP MIB
// counts segments and checksum errors). `make test-flood` runs it.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "../integration/netns.h"
#include "../integration/xdp_stub.h"
#include "../../tools/flood/flood.h"

using namespace flood;

namespace {

Options baseOptions(bool v6, L4 l4)
{
    Options o;
    o.dev = "lo";
    o.count = 1;
    o.durationSec = 1;
    o.frame.dstMac = parseMac("02:5c:00:00:01:01");
    o.frame.srcMac = parseMac("02:5c:00:00:01:02");
    o.frame.dst = Ip::parse(v6 ? "fd00:5c::1:1" : "198.18.1.1");
    o.frame.src = Ip::parse(v6 ? "fd00:5c::1:a" : "198.18.1.10");
    o.frame.l4 = l4;
    o.frame.size = v6 ? 90 : 71;  // odd: the padding byte counts too
    return o;
}

std::array<uint8_t, 16> sourceOf(const std::vector<uint8_t>& f)
{
    std::array<uint8_t, 16> a{};
    if (f[12] == 0x86 && f[13] == 0xdd)
        std::memcpy(a.data(), f.data() + 14 + 8, 16);
    else
        std::memcpy(a.data(), f.data() + 14 + 12, 4);
    return a;
}

struct Mode {
    bool v6;
    L4 l4;
    SourceMode src;
    CsumMode csum;
};

std::string modeName(const Mode& m)
{
    return std::string(m.v6 ? "v6" : "v4") + (m.l4 == L4::Udp ? "_udp" : "_tcp") +
           (m.src == SourceMode::Pool ? "_pool" : m.src == SourceMode::Random ? "_random" : "_fixed") +
           (m.csum == CsumMode::Full ? "_full" : "_incremental");
}

class Rewrite : public ::testing::TestWithParam<Mode> {};

}  // namespace

TEST(FloodFrame, TemplateChecksumsAreValid)
{
    for (bool v6 : {false, true})
        for (L4 l4 : {L4::Udp, L4::TcpSyn})
            for (uint32_t size : {minFrameSize(v6, l4), 64u, 65u, 1500u}) {
                if (size < minFrameSize(v6, l4))
                    continue;
                Options o = baseOptions(v6, l4);
                o.frame.size = size;
                Frame f = buildFrame(o.frame);
                std::string why;
                EXPECT_TRUE(checksumsValid(f.bytes, &why)) << size << ": " << why;
                EXPECT_EQ(f.bytes.size(), size);
            }
}

TEST(FloodFrame, RejectsBadSizesAndMixedFamilies)
{
    Options o = baseOptions(false, L4::Udp);
    o.frame.size = 41;
    EXPECT_THROW(buildFrame(o.frame), UsageError);
    o.frame.size = 64;
    o.frame.src = Ip::parse("fd00:5c::2");
    EXPECT_THROW(buildFrame(o.frame), UsageError);
}

TEST(FloodFrame, ChecksumCheckerCatchesCorruption)
{
    Frame f = buildFrame(baseOptions(false, L4::Udp).frame);
    f.bytes[f.bytes.size() - 1] ^= 0x10;
    EXPECT_FALSE(checksumsValid(f.bytes));
}

TEST(FloodOptions, RefusesUnboundedRuns)
{
    Options o = baseOptions(false, L4::Udp);
    o.count = 0;
    EXPECT_THROW(Flood{o}, UsageError);
    o.count = 10;
    o.durationSec = 0;
    EXPECT_THROW(Flood{o}, UsageError);
}

TEST(FloodOptions, PoolMustStayInItsPrefix)
{
    Options o = baseOptions(false, L4::Udp);
    o.sources = SourceMode::Pool;
    o.prefix = Prefix::parse("198.18.1.0/24");
    o.poolSize = 300;  // 198.18.1.10 + 299 leaves the /24
    EXPECT_THROW(Flood{o}, UsageError);
}

TEST_P(Rewrite, EveryFrameHasValidChecksumsAndAnExpectedSource)
{
    const Mode m = GetParam();
    Options o = baseOptions(m.v6, m.l4);
    o.sources = m.src;
    o.csum = m.csum;
    o.poolSize = 7;
    o.prefix = Prefix::parse(m.v6 ? "fd00:5c::/64" : "198.18.0.0/15");
    Flood f(o);

    std::vector<uint8_t> frame = f.frame().bytes;
    std::set<std::array<uint8_t, 16>> seen;
    for (int i = 0; i < 200; i++) {
        // The output goes back in: live-frames pages are recycled without
        // being re-copied, so each rewrite starts from the previous one.
        frame = f.rewriteOnce(frame);
        std::string why;
        ASSERT_TRUE(checksumsValid(frame, &why)) << "frame " << i << ": " << why;
        auto src = sourceOf(frame);
        if (m.src == SourceMode::Pool) {
            Ip want = o.frame.src;
            size_t last = m.v6 ? 15 : 3;
            want.bytes[last] = uint8_t(want.bytes[last] + i % 7);
            ASSERT_EQ(0, std::memcmp(src.data(), want.bytes.data(), m.v6 ? 16 : 4)) << i;
        } else {
            // Random: inside the prefix.
            if (m.v6)
                ASSERT_EQ(0, std::memcmp(src.data(), o.prefix.base.bytes.data(), 8));
            else
                ASSERT_EQ(src[0], 198) << i;
        }
        seen.insert(src);
    }
    if (m.src == SourceMode::Pool)
        EXPECT_EQ(seen.size(), 7u);
    else
        EXPECT_GT(seen.size(), 190u);
}

INSTANTIATE_TEST_SUITE_P(
    AllModes, Rewrite,
    ::testing::Values(Mode{false, L4::Udp, SourceMode::Pool, CsumMode::Incremental},
                      Mode{false, L4::Udp, SourceMode::Random, CsumMode::Incremental},
                      Mode{false, L4::Udp, SourceMode::Pool, CsumMode::Full},
                      Mode{false, L4::TcpSyn, SourceMode::Random, CsumMode::Incremental},
                      Mode{false, L4::TcpSyn, SourceMode::Pool, CsumMode::Full},
                      Mode{true, L4::Udp, SourceMode::Pool, CsumMode::Incremental},
                      Mode{true, L4::Udp, SourceMode::Random, CsumMode::Incremental},
                      Mode{true, L4::Udp, SourceMode::Random, CsumMode::Full},
                      Mode{true, L4::TcpSyn, SourceMode::Random, CsumMode::Incremental},
                      Mode{true, L4::TcpSyn, SourceMode::Pool, CsumMode::Full}),
    [](const ::testing::TestParamInfo<Mode>& info) { return modeName(info.param); });

// ---------------------------------------------------------------- live

namespace {

struct LiveBed {
    slit::Testbed bed;
    slit::Testbed::Link* link = nullptr;
    int passFd = -1;
    std::string receiverMac;

    LiveBed()
    {
        link = &bed.addClient(3, 3);
        // On the receiving veth an XDP program turns on veth's NAPI path,
        // without which XDP_TX'd frames from the peer are refused.
        passFd = slit::loadXdpVerdict(XDP_PASS, "flood_pass");
        bed.receiver().run([&] {
            int ifindex = int(if_nametoindex(link->receiverIf.c_str()));
            if (bpf_xdp_attach(ifindex, passFd, XDP_FLAGS_DRV_MODE, nullptr))
                throw std::runtime_error("cannot attach XDP_PASS to " + link->receiverIf);
        });
        std::snprintf(macBuf, sizeof macBuf, "02:5c:00:00:%02x:01", link->index);
        receiverMac = macBuf;
    }
    ~LiveBed()
    {
        if (passFd >= 0)
            close(passFd);
    }
    char macBuf[18];
};

// A counter of the receiver's SNMP MIB (/proc/net/snmp), e.g. ("Tcp", "InSegs").
long long snmp(const slit::Netns& ns, const std::string& group, const std::string& field)
{
    return ns.run([&] {
        std::ifstream in("/proc/thread-self/net/snmp");
        std::string header, values;
        while (std::getline(in, header) && std::getline(in, values)) {
            if (header.rfind(group + ":", 0) != 0)
                continue;
            std::istringstream h(header), v(values);
            std::string name, value;
            while (h >> name && v >> value)
                if (name == field)
                    return std::stoll(value);
        }
        throw std::runtime_error("no " + group + " " + field + " in /proc/net/snmp");
    });
}

std::string floodBinary()
{
    const char* env = getenv("SLUICE_FLOOD");
    return env ? env : "build/sluice-flood";
}

}  // namespace

TEST(FloodLive, ThousandUdpFramesArriveWithValidChecksums)
{
    for (bool v6 : {false, true}) {
        SCOPED_TRACE(v6 ? "IPv6, full checksums" : "IPv4, incremental checksums");
        LiveBed lb;
        auto& l = *lb.link;
        const std::string dst = v6 ? l.receiver6 : l.receiver4;
        slit::UdpCounter counter(lb.bed.receiver(), dst, 9000);

        Options o;
        o.dev = l.clientIf;
        o.count = 1000;
        o.durationSec = 5;
        o.frame.dstMac = parseMac(lb.receiverMac);
        o.frame.srcMac = parseMac(lb.receiverMac);  // any: the receiver does not check it
        o.frame.dst = Ip::parse(dst);
        o.frame.src = Ip::parse(v6 ? l.client6[0] : l.client4[0]);
        o.frame.dport = 9000;
        o.frame.size = 100;
        o.sources = SourceMode::Pool;
        o.poolSize = 3;  // the client's three addresses
        o.csum = v6 ? CsumMode::Full : CsumMode::Incremental;
        o.prefix = Prefix::parse(v6 ? "fd00:5c::/64" : "198.18.0.0/15");
        Result r = l.client->run([&] {
            Flood f(o);
            return f.run();
        });
        EXPECT_EQ(r.frames, 1000u);
        EXPECT_EQ(r.xmit, 1000);
        EXPECT_EQ(r.xmitErrors, 0);

        auto bySource = counter.finish();
        int total = 0;
        for (auto& [src, n] : bySource)
            total += n;
        EXPECT_EQ(total, 1000) << (v6 ? "IPv6" : "IPv4");
        EXPECT_EQ(bySource.size(), 3u);
        for (auto& [src, n] : bySource)
            EXPECT_NEAR(n, 333, 1) << src;
    }
}

TEST(FloodLive, TcpSynsFromRandomSourcesCountedByTheReceiversMib)
{
    LiveBed lb;
    auto& l = *lb.link;
    // No listener: each SYN is checksum-verified, counted, and answered
    // with a RST (into the client namespace). The sources stay clear of the
    // link's own /24, whose receiver and broadcast addresses the IP layer
    // drops as martian sources before TCP counts them.
    long long segs0 = snmp(lb.bed.receiver(), "Tcp", "InSegs");
    long long errs0 = snmp(lb.bed.receiver(), "Tcp", "InCsumErrors");
    slit::CmdResult res = slit::runCmd(
        {floodBinary(), "--netns", l.client->name(), "--dev", l.clientIf, "--dst-mac",
         lb.receiverMac, "--dst", l.receiver4, "--src-prefix", "198.18.128.0/17",
         "--sources", "random", "--proto", "tcp-syn", "--dport", "8080", "--count", "1000", "--duration", "5s",
         "--rate", "20000", "--json"});
    ASSERT_EQ(res.status, 0) << res.err;
    EXPECT_NE(res.out.find("\"frames\": 1000"), std::string::npos) << res.out;
    // Give the receiver's NAPI a moment to drain its ring.
    for (int i = 0; i < 50 && snmp(lb.bed.receiver(), "Tcp", "InSegs") - segs0 < 1000; i++)
        std::this_thread::sleep_for(slit::Millis(20));
    EXPECT_EQ(snmp(lb.bed.receiver(), "Tcp", "InSegs") - segs0, 1000);
    EXPECT_EQ(snmp(lb.bed.receiver(), "Tcp", "InCsumErrors") - errs0, 0);
}

TEST(FloodLive, CliStopsAtTheDurationBound)
{
    LiveBed lb;
    auto& l = *lb.link;
    slit::CmdResult res = slit::runCmd(
        {floodBinary(), "--netns", l.client->name(), "--dev", l.clientIf, "--dst-mac",
         lb.receiverMac, "--dst", l.receiver6, "--src", l.client6[0], "--count", "100000000",
         "--duration", "300ms", "--rate", "10000", "--json"});
    ASSERT_EQ(res.status, 0) << res.err;
    EXPECT_NE(res.out.find("\"ended_by\": \"duration\""), std::string::npos) << res.out;
    // 300 ms at 10k/s: about 3000 frames, never the count.
    long long frames = -1;
    auto pos = res.out.find("\"frames\": ");
    ASSERT_NE(pos, std::string::npos);
    frames = std::stoll(res.out.substr(pos + 10));
    EXPECT_GT(frames, 2000);
    EXPECT_LT(frames, 4000);
}

TEST(FloodLive, CliRefusesWithoutBothBounds)
{
    slit::CmdResult res = slit::runCmd({floodBinary(), "--dev", "lo", "--dst-mac",
                                        "02:00:00:00:00:01", "--dst", "198.18.0.1", "--src",
                                        "198.18.0.2", "--count", "10"});
    EXPECT_EQ(res.status, 2);
    EXPECT_NE(res.err.find("--duration"), std::string::npos) << res.err;
}
