// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A compact builder of Ethernet frames for BPF_PROG_TEST_RUN fixtures:
// VLAN tags, IPv4 (options, fragment fields) and IPv6 (extension-header
// chains), TCP and UDP with valid checksums, and a payload. A built Frame
// remembers where each header ends, so a test can cut it at every boundary.
//
//   Frame f = Packet::v4("10.0.0.1", "10.0.0.2").vlan(0x8100, 10)
//                 .tcp(40000, 80, tcpflag::Syn).payload(32).build();
//   Frame cut = f.truncated(f.end("tcp") - 1);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice::test {

namespace tcpflag {
inline constexpr uint8_t Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08,
                         Ack = 0x10;
}

// IPv6 extension header types (IPPROTO_*), for Packet::ext().
namespace ext {
inline constexpr uint8_t HopByHop = 0, Routing = 43, Fragment = 44,
                         DestOpts = 60, Ah = 51;
}

struct Boundary {
    std::string name;  // "eth", "vlan1", "ipv4", "ipv4-options", "ext3-dstopts", "tcp", ...
    size_t end = 0;    // offset just past this header
};

struct Frame {
    std::vector<uint8_t> bytes;
    std::vector<Boundary> headers;  // in frame order; payload not included
    std::string label;              // a short description, for test names

    size_t size() const { return bytes.size(); }
    // The end offset of the header named `name`; throws if absent.
    size_t end(const std::string& name) const;
    // The frame cut to its first n bytes (headers past n are dropped from
    // `headers`; the length fields are left as they were).
    Frame truncated(size_t n) const;
};

// One IPv6 extension header of the chain, in order.
struct ExtHeader {
    uint8_t type = ext::HopByHop;
    size_t len = 8;  // bytes: a multiple of 8, at most 2048 (AH: of 4, 12..1028)
    // Fragment header fields (type == ext::Fragment); len is always 8.
    uint16_t fragOffset = 0;  // in 8-byte units
    bool more = false;
    uint32_t id = 0;
};

class Packet {
public:
    static Packet v4(const std::string& src, const std::string& dst);
    static Packet v6(const std::string& src, const std::string& dst);
    // An ARP request (EtherType 0x0806): not IP.
    static Packet arp();
    // Any other EtherType, with `len` bytes after the Ethernet header.
    static Packet ether(uint16_t ethertype, size_t len);

    // A VLAN tag, outermost first: tpid 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    Packet& vlan(uint16_t tpid, uint16_t vid);

    // IPv4: `bytes` of options (a multiple of 4, at most 40): NOPs ending in EOL.
    Packet& ipOptions(size_t bytes);
    // IPv4: the identification, fragment offset (8-byte units) and MF.
    // IPv6: appends a fragment extension header at this point of the chain.
    Packet& fragment(uint16_t offset8, bool more, uint32_t id);
    Packet& dontFragment();   // IPv4 DF
    Packet& ipId(uint16_t id);
    // IPv6: appends an extension header of `len` bytes to the chain
    // (0: the smallest, 8 bytes; AH: 24, with a 96-bit ICV).
    Packet& ext(uint8_t type, size_t len = 0);

    // The upper layer. Without one the packet carries `proto` = 59 (no next
    // header) for IPv6 and 253 (experimental) for IPv4.
    Packet& tcp(uint16_t sport, uint16_t dport, uint8_t flags = tcpflag::Ack,
                uint8_t doff = 5);
    Packet& udp(uint16_t sport, uint16_t dport);
    Packet& icmp();  // ICMP echo request (ICMPv6 for IPv6)
    // Raw bytes for protocol `proto` after the IP headers: the rest of a
    // fragmented datagram (a later fragment carries no L4 header).
    Packet& raw(uint8_t proto, size_t len);
    Packet& payload(size_t len);

    Frame build() const;

private:
    enum class L3 { V4, V6, Arp, Other };
    enum class L4 { None, Tcp, Udp, Icmp, Raw };

    L3 l3_ = L3::V4;
    uint16_t ethertype_ = 0;
    size_t otherLen_ = 0;
    std::vector<std::pair<uint16_t, uint16_t>> vlans_;
    uint8_t src_[16]{}, dst_[16]{};
    size_t ipOptions_ = 0;
    uint16_t ipId_ = 0x1234;
    uint16_t fragOffset_ = 0;
    bool more_ = false, df_ = false;
    std::vector<ExtHeader> exts_;
    L4 l4_ = L4::None;
    uint8_t rawProto_ = 0;
    uint16_t sport_ = 0, dport_ = 0;
    uint8_t tcpFlags_ = 0, doff_ = 5;
    size_t payload_ = 0;
};

}  // namespace sluice::test
