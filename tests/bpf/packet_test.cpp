// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The packet builder itself: lengths, boundaries, checksums. No privileges.
#include <gtest/gtest.h>

#include "packet.h"

namespace sluice::test {
namespace {

uint16_t be16(const Frame& f, size_t at) { return (f.bytes[at] << 8) | f.bytes[at + 1]; }

// Ones' complement sum of [from, to) plus `acc`, folded: 0xffff when valid.
uint16_t csum(const Frame& f, size_t from, size_t to, uint32_t acc = 0)
{
    for (size_t i = from; i < to; i += 2)
        acc += (f.bytes[i] << 8) | (i + 1 < to ? f.bytes[i + 1] : 0);
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(acc);
}

TEST(PacketBuilder, Ipv4TcpLayoutAndChecksums)
{
    Frame f = Packet::v4("10.0.0.1", "10.0.0.2").tcp(1234, 80, tcpflag::Syn).payload(11).build();
    ASSERT_EQ(f.size(), 14u + 20 + 20 + 11);
    EXPECT_EQ(f.end("eth"), 14u);
    EXPECT_EQ(f.end("ipv4"), 34u);
    EXPECT_EQ(f.end("tcp"), 54u);
    EXPECT_EQ(be16(f, 12), 0x0800);
    EXPECT_EQ(f.bytes[14], 0x45);
    EXPECT_EQ(be16(f, 16), 20 + 20 + 11);  // total length
    EXPECT_EQ(f.bytes[23], 6);
    EXPECT_EQ(csum(f, 14, 34), 0xffff);
    // TCP checksum with the pseudo-header.
    uint32_t pseudo = csum(f, 26, 34) + 6 + (20 + 11);
    EXPECT_EQ(csum(f, 34, f.size(), pseudo), 0xffff);
    EXPECT_EQ(f.bytes[34 + 13], tcpflag::Syn);
    EXPECT_EQ(f.bytes[34 + 12] >> 4, 5);
}

TEST(PacketBuilder, Ipv4OptionsFragmentsAndVlans)
{
    Frame f = Packet::v4("10.0.0.1", "10.0.0.2").vlan(0x88a8, 100).vlan(0x8100, 7).ipOptions(12)
                  .fragment(37, true, 0xbeef).dontFragment().udp(5, 53).payload(3).build();
    EXPECT_EQ(be16(f, 12), 0x88a8);
    EXPECT_EQ(be16(f, 14), 100);
    EXPECT_EQ(be16(f, 16), 0x8100);
    EXPECT_EQ(be16(f, 18), 7);
    EXPECT_EQ(be16(f, 20), 0x0800);
    EXPECT_EQ(f.end("eth"), 14u);
    EXPECT_EQ(f.end("vlan1"), 18u);
    EXPECT_EQ(f.end("vlan2"), 22u);
    EXPECT_EQ(f.end("ipv4"), 42u);
    EXPECT_EQ(f.end("ipv4-options"), 54u);
    EXPECT_EQ(f.end("udp"), 62u);
    EXPECT_EQ(f.bytes[22], 0x48);  // IHL 8
    EXPECT_EQ(be16(f, 26), 0xbeef);
    EXPECT_EQ(be16(f, 28), 0x4000 | 0x2000 | 37);
    EXPECT_EQ(csum(f, 22, 54), 0xffff);
    EXPECT_EQ(be16(f, 54 + 4), 8 + 3);  // UDP length
    uint32_t pseudo = csum(f, 34, 42) + 17 + 11;
    EXPECT_EQ(csum(f, 54, f.size(), pseudo), 0xffff);
}

TEST(PacketBuilder, Ipv6ExtensionChain)
{
    Frame f = Packet::v6("2001:db8::1", "2001:db8::2").ext(ext::HopByHop).ext(ext::Routing, 16)
                  .fragment(0, true, 0x01020304).ext(ext::DestOpts, 2048).ext(ext::Ah)
                  .tcp(1, 443, tcpflag::Syn | tcpflag::Ack, 6).build();
    const size_t l3 = 14;
    EXPECT_EQ(be16(f, 12), 0x86dd);
    EXPECT_EQ(f.bytes[l3] >> 4, 6);
    EXPECT_EQ(f.bytes[l3 + 6], ext::HopByHop);
    EXPECT_EQ(be16(f, l3 + 4), 8 + 16 + 8 + 2048 + 24 + 24);  // payload length
    size_t pos = l3 + 40;
    EXPECT_EQ(f.end("ext1-hop"), pos + 8);
    EXPECT_EQ(f.bytes[pos], ext::Routing);
    EXPECT_EQ(f.bytes[pos + 1], 0);
    pos += 8;
    EXPECT_EQ(f.bytes[pos], ext::Fragment);
    EXPECT_EQ(f.bytes[pos + 1], 1);  // (16 / 8) - 1
    pos += 16;
    EXPECT_EQ(f.bytes[pos], ext::DestOpts);
    EXPECT_EQ(be16(f, pos + 2), 1);  // offset 0, M
    EXPECT_EQ(be16(f, pos + 4), 0x0102);
    pos += 8;
    EXPECT_EQ(f.bytes[pos], ext::Ah);
    EXPECT_EQ(f.bytes[pos + 1], 255);
    pos += 2048;
    EXPECT_EQ(f.bytes[pos], 6);
    EXPECT_EQ(f.bytes[pos + 1], 24 / 4 - 2);
    pos += 24;
    EXPECT_EQ(f.end("ext5-ah"), pos);
    EXPECT_EQ(f.end("tcp-base"), pos + 20);
    EXPECT_EQ(f.end("tcp"), pos + 24);
    EXPECT_EQ(f.size(), pos + 24);
    // Options headers are padded with valid PadN options that fill them.
    size_t d = l3 + 40 + 8 + 16 + 8 + 2, n = 0;
    while (n < 2046) {
        ASSERT_EQ(f.bytes[d + n], 1) << "PadN at " << n;
        n += 2 + f.bytes[d + n + 1];
    }
    EXPECT_EQ(n, 2046u);
}

TEST(PacketBuilder, Truncation)
{
    Frame f = Packet::v6("2001:db8::1", "2001:db8::2").vlan(0x8100, 1).ext(ext::HopByHop)
                  .udp(1, 53).payload(5).build();
    Frame t = f.truncated(f.end("ext1-hop") - 1);
    EXPECT_EQ(t.size(), f.end("ext1-hop") - 1);
    ASSERT_EQ(t.headers.size(), 3u);  // eth, vlan1, ipv6
    EXPECT_EQ(t.headers.back().name, "ipv6");
    EXPECT_EQ(std::vector<uint8_t>(f.bytes.begin(), f.bytes.begin() + t.size()), t.bytes);
    EXPECT_EQ(f.truncated(1000).bytes, f.bytes);
}

TEST(PacketBuilder, Arp)
{
    Frame f = Packet::arp().vlan(0x8100, 9).build();
    EXPECT_EQ(be16(f, 16), 0x0806);
    EXPECT_EQ(f.end("arp"), 18u + 28);
    EXPECT_EQ(f.size(), 18u + 28);
}

}  // namespace
}  // namespace sluice::test
