// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "packet.h"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

namespace sluice::test {

namespace {

void put16(std::vector<uint8_t>& b, uint16_t v)
{
    b.push_back(v >> 8);
    b.push_back(v & 0xff);
}

void put32(std::vector<uint8_t>& b, uint32_t v)
{
    put16(b, v >> 16);
    put16(b, v & 0xffff);
}

void set16(std::vector<uint8_t>& b, size_t at, uint16_t v)
{
    b[at] = v >> 8;
    b[at + 1] = v & 0xff;
}

// Ones' complement sum, folded, not yet inverted.
uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += (p[i] << 8) | p[i + 1];
    if (n & 1)
        acc += p[n - 1] << 8;
    return acc;
}

uint16_t fold(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(~acc);
}

void parseAddr(int family, const std::string& text, uint8_t out[16])
{
    if (inet_pton(family, text.c_str(), out) != 1)
        throw std::invalid_argument("packet: bad address " + text);
}

std::string extName(uint8_t type)
{
    switch (type) {
    case ext::HopByHop: return "hop";
    case ext::Routing: return "rt";
    case ext::Fragment: return "frag";
    case ext::DestOpts: return "dst";
    case ext::Ah: return "ah";
    default: return "x" + std::to_string(type);
    }
}

// Fills an options header body (hop-by-hop, destination) with padding.
void padOptions(std::vector<uint8_t>& b, size_t rem)
{
    while (rem > 0) {
        if (rem == 1) {
            b.push_back(0);  // Pad1
            rem = 0;
            continue;
        }
        size_t n = std::min<size_t>(rem - 2, 255);
        if (rem - 2 - n == 1)  // never leave a lone byte after a PadN
            n--;
        b.push_back(1);  // PadN
        b.push_back(static_cast<uint8_t>(n));
        b.insert(b.end(), n, 0);
        rem -= n + 2;
    }
}

}  // namespace

size_t Frame::end(const std::string& name) const
{
    for (const auto& h : headers)
        if (h.name == name)
            return h.end;
    throw std::invalid_argument("frame has no header " + name);
}

Frame Frame::truncated(size_t n) const
{
    Frame f = *this;
    if (n < f.bytes.size())
        f.bytes.resize(n);
    std::erase_if(f.headers, [n](const Boundary& h) { return h.end > n; });
    f.label = label + " cut@" + std::to_string(n);
    return f;
}

Packet Packet::v4(const std::string& src, const std::string& dst)
{
    Packet p;
    p.l3_ = L3::V4;
    parseAddr(AF_INET, src, p.src_);
    parseAddr(AF_INET, dst, p.dst_);
    return p;
}

Packet Packet::v6(const std::string& src, const std::string& dst)
{
    Packet p;
    p.l3_ = L3::V6;
    parseAddr(AF_INET6, src, p.src_);
    parseAddr(AF_INET6, dst, p.dst_);
    return p;
}

Packet Packet::arp()
{
    Packet p;
    p.l3_ = L3::Arp;
    return p;
}

Packet Packet::ether(uint16_t ethertype, size_t len)
{
    Packet p;
    p.l3_ = L3::Other;
    p.ethertype_ = ethertype;
    p.otherLen_ = len;
    return p;
}

Packet& Packet::vlan(uint16_t tpid, uint16_t vid)
{
    vlans_.emplace_back(tpid, vid);
    return *this;
}

Packet& Packet::ipOptions(size_t bytes)
{
    if (bytes % 4 || bytes > 40)
        throw std::invalid_argument("packet: IPv4 options must be 4k <= 40 bytes");
    ipOptions_ = bytes;
    return *this;
}

Packet& Packet::fragment(uint16_t offset8, bool more, uint32_t id)
{
    if (l3_ == L3::V6) {
        ExtHeader h;
        h.type = ext::Fragment;
        h.fragOffset = offset8;
        h.more = more;
        h.id = id;
        exts_.push_back(h);
    } else {
        fragOffset_ = offset8;
        more_ = more;
        ipId_ = static_cast<uint16_t>(id);
    }
    return *this;
}

Packet& Packet::dontFragment()
{
    df_ = true;
    return *this;
}

Packet& Packet::ipId(uint16_t id)
{
    ipId_ = id;
    return *this;
}

Packet& Packet::ext(uint8_t type, size_t len)
{
    ExtHeader h;
    h.type = type;
    h.len = type == ext::Fragment ? 8 : (len ? len : (type == ext::Ah ? 24 : 8));
    if (type == ext::Ah ? (h.len % 4 || h.len < 12 || h.len > 1028)
                       : (h.len % 8 || h.len > 2048))
        throw std::invalid_argument("packet: bad extension header length");
    exts_.push_back(h);
    return *this;
}

Packet& Packet::tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint8_t doff)
{
    l4_ = L4::Tcp;
    sport_ = sport;
    dport_ = dport;
    tcpFlags_ = flags;
    doff_ = doff;
    return *this;
}

Packet& Packet::udp(uint16_t sport, uint16_t dport)
{
    l4_ = L4::Udp;
    sport_ = sport;
    dport_ = dport;
    return *this;
}

Packet& Packet::icmp()
{
    l4_ = L4::Icmp;
    return *this;
}

Packet& Packet::raw(uint8_t proto, size_t len)
{
    l4_ = L4::Raw;
    rawProto_ = proto;
    payload_ = len;
    return *this;
}

Packet& Packet::payload(size_t len)
{
    payload_ = len;
    return *this;
}

Frame Packet::build() const
{
    Frame f;
    auto& b = f.bytes;
    std::string label, vlanLabel;

    // Ethernet and VLAN tags.
    static const uint8_t macs[12] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
    b.assign(macs, macs + 12);
    uint16_t ethertype = l3_ == L3::V4    ? 0x0800
                         : l3_ == L3::V6  ? 0x86dd
                         : l3_ == L3::Arp ? 0x0806
                                          : ethertype_;
    for (size_t i = 0; i < vlans_.size(); i++) {
        put16(b, vlans_[i].first);
        f.headers.push_back({i == 0 ? "eth" : "vlan" + std::to_string(i), b.size()});
        put16(b, vlans_[i].second & 0x0fff);
        char tag[24];
        snprintf(tag, sizeof(tag), "%04x.%u/", vlans_[i].first, vlans_[i].second);
        vlanLabel += tag;
    }
    put16(b, ethertype);
    f.headers.push_back({vlans_.empty() ? "eth" : "vlan" + std::to_string(vlans_.size()),
                         b.size()});

    if (l3_ == L3::Arp) {
        put16(b, 1);  // Ethernet
        put16(b, 0x0800);
        b.push_back(6);
        b.push_back(4);
        put16(b, 1);  // request
        b.insert(b.end(), macs + 6, macs + 12);
        put32(b, 0x0a000001);
        b.insert(b.end(), 6, 0);
        put32(b, 0x0a000002);
        f.headers.push_back({"arp", b.size()});
        f.label = vlanLabel + "arp";
        return f;
    }
    if (l3_ == L3::Other) {
        b.insert(b.end(), otherLen_, 0);
        char t[16];
        snprintf(t, sizeof(t), "eth%04x", ethertype);
        f.label = vlanLabel + t;
        return f;
    }

    const bool v6 = l3_ == L3::V6;
    uint8_t proto = v6 ? 59 : 253;
    std::vector<uint8_t> l4;  // upper-layer header and payload
    std::vector<Boundary> l4Headers;  // offsets relative to l4 start
    switch (l4_) {
    case L4::Tcp: {
        proto = 6;
        put16(l4, sport_);
        put16(l4, dport_);
        put32(l4, 1000);                                // seq
        put32(l4, tcpFlags_ & tcpflag::Ack ? 2000 : 0);  // ack
        l4.push_back(static_cast<uint8_t>(doff_ << 4));
        l4.push_back(tcpFlags_);
        put16(l4, 65535);  // window
        put16(l4, 0);      // checksum
        put16(l4, 0);      // urgent
        if (doff_ > 5) {
            l4Headers.push_back({"tcp-base", 20});
            l4.insert(l4.end(), (doff_ - 5) * 4, 1);  // NOPs
        }
        l4Headers.push_back({"tcp", l4.size()});
        std::string fl;
        if (tcpFlags_ & tcpflag::Syn) fl += "S";
        if (tcpFlags_ & tcpflag::Ack) fl += "A";
        if (tcpFlags_ & tcpflag::Rst) fl += "R";
        if (tcpFlags_ & tcpflag::Fin) fl += "F";
        label += "tcp" + std::to_string(dport_) + "[" + fl + "]";
        break;
    }
    case L4::Udp:
        proto = 17;
        put16(l4, sport_);
        put16(l4, dport_);
        put16(l4, 0);  // length, below
        put16(l4, 0);
        l4Headers.push_back({"udp", 8});
        label += "udp" + std::to_string(dport_);
        break;
    case L4::Icmp:
        proto = v6 ? 58 : 1;
        l4.push_back(v6 ? 128 : 8);  // echo request
        l4.push_back(0);
        put16(l4, 0);
        put32(l4, 0x00010001);
        l4Headers.push_back({"icmp", 8});
        label += v6 ? "icmp6" : "icmp";
        break;
    case L4::Raw:
        proto = rawProto_;
        label += "raw" + std::to_string(rawProto_);
        break;
    case L4::None:
        break;
    }
    for (size_t i = 0; i < payload_; i++)
        l4.push_back(static_cast<uint8_t>(i * 7 + 1));
    if (payload_ && l4_ != L4::Raw)
        label += "+" + std::to_string(payload_);
    if (l4_ == L4::Udp)
        set16(l4, 4, static_cast<uint16_t>(l4.size()));

    // L4 checksum over the pseudo-header (the bytes present: a fragment's
    // checksum would cover the whole datagram, which a fixture never has).
    if (l4_ == L4::Tcp || l4_ == L4::Udp || (l4_ == L4::Icmp && v6)) {
        uint32_t acc = 0;
        size_t alen = v6 ? 16 : 4;
        acc = sum16(src_, alen, acc);
        acc = sum16(dst_, alen, acc);
        acc += proto;
        acc += static_cast<uint32_t>(l4.size() & 0xffff) + (static_cast<uint32_t>(l4.size()) >> 16);
        acc = sum16(l4.data(), l4.size(), acc);
        uint16_t c = fold(acc);
        if (l4_ == L4::Udp && c == 0)
            c = 0xffff;
        set16(l4, l4_ == L4::Tcp ? 16 : l4_ == L4::Udp ? 6 : 2, c);
    } else if (l4_ == L4::Icmp) {
        set16(l4, 2, fold(sum16(l4.data(), l4.size())));
    }

    const size_t l3 = b.size();
    if (!v6) {
        size_t hlen = 20 + ipOptions_;
        b.push_back(static_cast<uint8_t>(0x40 | (hlen / 4)));
        b.push_back(0);
        put16(b, static_cast<uint16_t>(hlen + l4.size()));
        put16(b, ipId_);
        put16(b, static_cast<uint16_t>((df_ ? 0x4000 : 0) | (more_ ? 0x2000 : 0) |
                                       (fragOffset_ & 0x1fff)));
        b.push_back(64);
        b.push_back(proto);
        put16(b, 0);
        b.insert(b.end(), src_, src_ + 4);
        b.insert(b.end(), dst_, dst_ + 4);
        f.headers.push_back({"ipv4", b.size()});
        if (ipOptions_) {
            b.insert(b.end(), ipOptions_ - 1, 1);  // NOP
            b.push_back(0);                        // EOL
            f.headers.push_back({"ipv4-options", b.size()});
        }
        set16(b, l3 + 10, fold(sum16(&b[l3], hlen)));
        std::string lab = "v4/";
        if (ipOptions_) lab += "opt" + std::to_string(ipOptions_) + "/";
        if (more_ || fragOffset_)
            lab += "frag(off" + std::to_string(fragOffset_) + (more_ ? ",MF" : "") +
                   ",id" + std::to_string(ipId_) + ")/";
        if (df_) lab += "DF/";
        label = lab + label;
    } else {
        size_t extLen = 0;
        for (const auto& h : exts_)
            extLen += h.len;
        put32(b, 0x60000000);
        put16(b, static_cast<uint16_t>(extLen + l4.size()));
        b.push_back(exts_.empty() ? proto : exts_[0].type);
        b.push_back(64);
        b.insert(b.end(), src_, src_ + 16);
        b.insert(b.end(), dst_, dst_ + 16);
        f.headers.push_back({"ipv6", b.size()});
        std::string lab = "v6/";
        for (size_t i = 0; i < exts_.size(); i++) {
            const auto& h = exts_[i];
            uint8_t next = i + 1 < exts_.size() ? exts_[i + 1].type : proto;
            b.push_back(next);
            switch (h.type) {
            case ext::Fragment:
                b.push_back(0);
                put16(b, static_cast<uint16_t>((h.fragOffset << 3) | (h.more ? 1 : 0)));
                put32(b, h.id);
                lab += "frag(off" + std::to_string(h.fragOffset) + (h.more ? ",M" : "") +
                       ",id" + std::to_string(h.id) + ")/";
                break;
            case ext::Ah:
                b.push_back(static_cast<uint8_t>(h.len / 4 - 2));
                put16(b, 0);
                put32(b, 0x100);  // SPI
                put32(b, 1);      // sequence
                b.insert(b.end(), h.len - 12, 0);
                lab += "ah/";
                break;
            case ext::Routing:
                b.push_back(static_cast<uint8_t>(h.len / 8 - 1));
                b.push_back(253);  // routing type: experimental (RFC 4727)
                b.push_back(0);    // segments left
                b.insert(b.end(), h.len - 4, 0);
                lab += "rt/";
                break;
            default:  // hop-by-hop, destination options
                b.push_back(static_cast<uint8_t>(h.len / 8 - 1));
                padOptions(b, h.len - 2);
                lab += extName(h.type) + (h.len != 8 ? std::to_string(h.len) : "") + "/";
                break;
            }
            f.headers.push_back(
                {"ext" + std::to_string(i + 1) + "-" + extName(h.type), b.size()});
        }
        label = lab + label;
    }
    const size_t l4start = b.size();
    for (const auto& h : l4Headers)
        f.headers.push_back({h.name, l4start + h.end});
    b.insert(b.end(), l4.begin(), l4.end());
    f.label = vlanLabel + label;
    return f;
}

}  // namespace sluice::test
