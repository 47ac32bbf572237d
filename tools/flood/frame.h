// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sluice-flood's template frame: Ethernet + IPv4 (no options) or IPv6 (no
// extension headers) + UDP or a TCP SYN, padded to the requested size, with
// valid checksums. Pure code: no kernel, no privileges.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace flood {

// A usage error (exit 2); anything else the tool throws is a runtime error.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using Mac = std::array<uint8_t, 6>;

Mac parseMac(const std::string& text);  // "02:5c:00:00:01:01"; throws UsageError
std::string macText(const Mac& mac);

// An address of either family, network byte order. IPv4 uses bytes [0..4).
struct Ip {
    bool v6 = false;
    std::array<uint8_t, 16> bytes{};

    static Ip parse(const std::string& text);  // throws UsageError
    std::string str() const;
    int bits() const { return v6 ? 128 : 32; }
};

struct Prefix {
    Ip base;  // host bits cleared
    int len = 0;

    static Prefix parse(const std::string& text);  // "198.18.0.0/15"; throws UsageError
    std::string str() const;
};

enum class L4 { Udp, TcpSyn };

struct FrameSpec {
    Mac dstMac{}, srcMac{};
    Ip src, dst;
    L4 l4 = L4::Udp;
    uint16_t sport = 40000, dport = 9000;
    uint32_t size = 64;  // Ethernet frame length without FCS
};

struct Frame {
    std::vector<uint8_t> bytes;
    uint32_t l3Off = 14, l4Off = 0, l4CsumOff = 0;
    // Folded one's complement sum of what does not change per frame: the
    // pseudo-header without the source address, plus the L4 header and
    // payload with a zero checksum field (as 16-bit words in memory order).
    uint32_t l4FixedSum = 0;
};

// The smallest frame for a family and protocol.
uint32_t minFrameSize(bool v6, L4 l4);

// Throws UsageError when the size is out of range or the families differ.
Frame buildFrame(const FrameSpec& spec);

// One's complement helpers over memory-order 16-bit words (byte-order neutral).
uint32_t sumBytes(const uint8_t* p, size_t len, uint32_t sum = 0);
uint16_t foldComplement(uint32_t sum);

// Checks a frame's IPv4 header checksum and its UDP/TCP checksum (for the
// tests and --verify): true when both are valid.
bool checksumsValid(const std::vector<uint8_t>& frame, std::string* why = nullptr);

}  // namespace flood
