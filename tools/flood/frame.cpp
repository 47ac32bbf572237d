// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "frame.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace flood {
namespace {

constexpr uint32_t kEth = 14, kIp4 = 20, kIp6 = 40, kUdp = 8, kTcp = 20;
constexpr uint32_t kMaxFrame = 3000;  // a live-frames page holds ~3.5 KB of data

void put16(uint8_t* p, uint16_t v)
{
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}

void put32(uint8_t* p, uint32_t v)
{
    put16(p, uint16_t(v >> 16));
    put16(p + 2, uint16_t(v));
}

uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

}  // namespace

Mac parseMac(const std::string& text)
{
    Mac m{};
    unsigned v[6];
    char tail;
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
                    &v[5], &tail) != 6)
        throw UsageError("not a MAC address: '" + text + "' (expected aa:bb:cc:dd:ee:ff)");
    for (int i = 0; i < 6; i++) {
        if (v[i] > 0xff)
            throw UsageError("not a MAC address: '" + text + "'");
        m[i] = uint8_t(v[i]);
    }
    return m;
}

std::string macText(const Mac& m)
{
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                  m[5]);
    return buf;
}

Ip Ip::parse(const std::string& text)
{
    Ip ip;
    if (text.find(':') != std::string::npos) {
        ip.v6 = true;
        if (inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) == 1)
            return ip;
    } else if (inet_pton(AF_INET, text.c_str(), ip.bytes.data()) == 1) {
        return ip;
    }
    throw UsageError("not an IP address: '" + text + "'");
}

std::string Ip::str() const
{
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
    return buf;
}

Prefix Prefix::parse(const std::string& text)
{
    size_t slash = text.find('/');
    if (slash == std::string::npos)
        throw UsageError("not a CIDR prefix: '" + text + "' (expected ADDRESS/LENGTH)");
    Prefix p;
    p.base = Ip::parse(text.substr(0, slash));
    std::string len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError("bad prefix length in '" + text + "'");
    p.len = std::stoi(len);
    if (p.len > p.base.bits())
        throw UsageError("prefix length " + len + " is too long for '" + text + "'");
    for (int bit = p.len; bit < p.base.bits(); bit++)
        p.base.bytes[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
    return p;
}

std::string Prefix::str() const { return base.str() + "/" + std::to_string(len); }

uint32_t sumBytes(const uint8_t* p, size_t len, uint32_t sum)
{
    // Memory-order 16-bit words, as the BPF side and the kernel add them.
    uint64_t s = sum;
    size_t i = 0;
    for (; i + 1 < len; i += 2) {
        uint16_t w;
        std::memcpy(&w, p + i, 2);
        s += w;
    }
    if (i < len) {
        uint8_t last[2] = {p[i], 0};
        uint16_t w;
        std::memcpy(&w, last, 2);
        s += w;
    }
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return uint32_t(s);
}

uint16_t foldComplement(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

uint32_t minFrameSize(bool v6, L4 l4)
{
    return kEth + (v6 ? kIp6 : kIp4) + (l4 == L4::Udp ? kUdp : kTcp);
}

Frame buildFrame(const FrameSpec& s)
{
    if (s.src.v6 != s.dst.v6)
        throw UsageError("source " + s.src.str() + " and destination " + s.dst.str() +
                         " are of different families");
    const bool v6 = s.dst.v6;
    const uint32_t min = minFrameSize(v6, s.l4);
    if (s.size < min || s.size > kMaxFrame)
        throw UsageError("--size " + std::to_string(s.size) + " is out of range: " +
                         std::string(v6 ? "IPv6" : "IPv4") +
                         (s.l4 == L4::Udp ? " UDP" : " TCP") + " frames take " +
                         std::to_string(min) + ".." + std::to_string(kMaxFrame) + " bytes");
    Frame f;
    f.bytes.assign(s.size, 0);
    uint8_t* b = f.bytes.data();
    std::memcpy(b, s.dstMac.data(), 6);
    std::memcpy(b + 6, s.srcMac.data(), 6);
    put16(b + 12, v6 ? 0x86dd : 0x0800);

    const uint8_t proto = s.l4 == L4::Udp ? IPPROTO_UDP : IPPROTO_TCP;
    const uint32_t l3len = s.size - kEth;
    const uint32_t iphl = v6 ? kIp6 : kIp4;
    const uint32_t l4len = l3len - iphl;
    uint8_t* ip = b + kEth;
    f.l3Off = kEth;
    f.l4Off = kEth + iphl;
    if (v6) {
        put32(ip, 0x60000000);
        put16(ip + 4, uint16_t(l4len));
        ip[6] = proto;
        ip[7] = 64;
        std::memcpy(ip + 8, s.src.bytes.data(), 16);
        std::memcpy(ip + 24, s.dst.bytes.data(), 16);
    } else {
        ip[0] = 0x45;
        put16(ip + 2, uint16_t(l3len));
        put16(ip + 4, 0x5c00);  // identification
        put16(ip + 6, 0x4000);  // DF
        ip[8] = 64;
        ip[9] = proto;
        std::memcpy(ip + 12, s.src.bytes.data(), 4);
        std::memcpy(ip + 16, s.dst.bytes.data(), 4);
        uint16_t c = foldComplement(sumBytes(ip, kIp4));
        std::memcpy(ip + 10, &c, 2);
    }

    uint8_t* l4 = b + f.l4Off;
    put16(l4, s.sport);
    put16(l4 + 2, s.dport);
    if (s.l4 == L4::Udp) {
        put16(l4 + 4, uint16_t(l4len));
        f.l4CsumOff = f.l4Off + 6;
    } else {
        put32(l4 + 4, 0x5c000001);  // sequence number
        l4[12] = 5 << 4;            // data offset: 20 bytes, no options
        l4[13] = 0x02;              // SYN
        put16(l4 + 14, 64240);      // window
        f.l4CsumOff = f.l4Off + 16;
    }
    // Payload: a recognisable pattern rather than zeros.
    for (uint32_t i = f.l4Off + (s.l4 == L4::Udp ? kUdp : kTcp); i < s.size; i++)
        b[i] = uint8_t('a' + i % 26);

    // Pseudo-header without the source address, then the L4 segment.
    uint8_t pseudo[40] = {};
    size_t plen;
    if (v6) {
        std::memcpy(pseudo, s.dst.bytes.data(), 16);
        put32(pseudo + 16, l4len);
        pseudo[23] = proto;
        plen = 24;
    } else {
        std::memcpy(pseudo, s.dst.bytes.data(), 4);
        pseudo[5] = proto;
        put16(pseudo + 6, uint16_t(l4len));
        plen = 8;
    }
    f.l4FixedSum = sumBytes(l4, l4len, sumBytes(pseudo, plen));
    uint32_t full = sumBytes(s.src.bytes.data(), v6 ? 16 : 4, f.l4FixedSum);
    uint16_t c = foldComplement(full);
    if (s.l4 == L4::Udp && c == 0)
        c = 0xffff;
    std::memcpy(b + f.l4CsumOff, &c, 2);
    return f;
}

bool checksumsValid(const std::vector<uint8_t>& frame, std::string* why)
{
    auto no = [&](const std::string& w) {
        if (why)
            *why = w;
        return false;
    };
    if (frame.size() < kEth + kIp4)
        return no("frame too short");
    const uint8_t* b = frame.data();
    const uint16_t ethertype = get16(b + 12);
    const uint8_t* ip = b + kEth;
    uint8_t pseudo[40] = {};
    size_t plen;
    uint8_t proto;
    uint32_t l4len, l4off;
    if (ethertype == 0x0800) {
        if (foldComplement(sumBytes(ip, kIp4)) != 0)
            return no("bad IPv4 header checksum");
        proto = ip[9];
        l4len = get16(ip + 2) - kIp4;
        l4off = kEth + kIp4;
        std::memcpy(pseudo, ip + 12, 8);
        pseudo[9] = proto;
        put16(pseudo + 10, uint16_t(l4len));
        plen = 12;
    } else if (ethertype == 0x86dd) {
        if (frame.size() < kEth + kIp6)
            return no("frame too short");
        proto = ip[6];
        l4len = get16(ip + 4);
        l4off = kEth + kIp6;
        std::memcpy(pseudo, ip + 8, 32);
        put32(pseudo + 32, l4len);
        pseudo[39] = proto;
        plen = 40;
    } else {
        return no("not IPv4 or IPv6");
    }
    if (l4off + l4len > frame.size())
        return no("L4 length beyond the frame");
    if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
        return no("not UDP or TCP");
    if (proto == IPPROTO_UDP && ethertype == 0x0800 && get16(b + l4off + 6) == 0)
        return no("UDP checksum absent");
    if (foldComplement(sumBytes(b + l4off, l4len, sumBytes(pseudo, plen))) != 0)
        return no(proto == IPPROTO_UDP ? "bad UDP checksum" : "bad TCP checksum");
    return true;
}

}  // namespace flood
