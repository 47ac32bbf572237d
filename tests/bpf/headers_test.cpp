// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Header shapes the parser must see through (VLAN tags, IPv4 options, IPv6
// extension chains) and frames cut at every header boundary.
#include "harness.h"

namespace sluice::test {
namespace {

constexpr const char* kSrc4 = "10.0.0.1";
constexpr const char* kSrc6 = "2001:db8:1::1";

// A generous policy on TCP 80 and UDP 53: a parsed packet is ADMITTED.
Rules webDns()
{
    return {{tcpPolicy("web", {port(80)}, {pkts(1000)}),
             udpPolicy("dns", {port(53)}, {pkts(1000)})}};
}

Packet tcp4() { return std::move(Packet::v4(kSrc4, kServer4).tcp(40000, 80, tcpflag::Syn)); }
Packet udp4() { return std::move(Packet::v4(kSrc4, kServer4).udp(40000, 53)); }
Packet v6() { return Packet::v6(kSrc6, kServer6); }

Row one(std::string name, Step step)
{
    return {std::move(name), webDns(), {std::move(step)}, /*shared=*/true};
}

// Extension chains: `n` headers drawn from every kind, fragment header
// atomic (offset 0, no M flag: not a fragment).
Packet chain(size_t n)
{
    static const uint8_t kinds[] = {ext::HopByHop, ext::DestOpts, ext::Routing, ext::Fragment,
                                    ext::Ah,       ext::DestOpts, ext::Ah,      ext::Routing,
                                    ext::DestOpts, ext::Ah,       ext::DestOpts};
    Packet p = v6();
    for (size_t i = 0; i < n; i++) {
        if (kinds[i] == ext::Fragment)
            p.fragment(0, false, 0x5151);
        else
            p.ext(kinds[i], i == 1 ? 16 : 0);
    }
    return p;
}

std::vector<Row> shapeRows()
{
    std::vector<Row> rows;
    auto add = [&](std::string name, Step s) { rows.push_back(one(std::move(name), std::move(s))); };

    add("v4_tcp_syn", admitted(tcp4().build(), "web"));
    add("v4_tcp_syn_payload", admitted(tcp4().payload(1000).build(), "web"));
    add("v4_tcp_df", admitted(tcp4().dontFragment().build(), "web"));
    add("v4_tcp_ack", admitted(Packet::v4(kSrc4, kServer4).tcp(40000, 80).build(), "web"));
    add("v4_udp", admitted(udp4().payload(40).build(), "dns"));

    // VLAN: 0, 1, 2 tags of either TPID; a third tag is refused.
    add("v4_vlan_8021q", admitted(tcp4().vlan(0x8100, 10).build(), "web"));
    add("v4_vlan_8021ad", admitted(tcp4().vlan(0x88a8, 10).build(), "web"));
    add("v4_qinq_88a8_8100", admitted(tcp4().vlan(0x88a8, 100).vlan(0x8100, 10).build(), "web"));
    add("v4_qinq_8100_8100", admitted(tcp4().vlan(0x8100, 100).vlan(0x8100, 10).build(), "web"));
    add("v4_qinq_udp", admitted(udp4().vlan(0x88a8, 1).vlan(0x8100, 2).build(), "dns"));
    add("v6_vlan_8021q_tcp",
        admitted(v6().vlan(0x8100, 7).tcp(40000, 80, tcpflag::Syn).build(), "web"));
    add("v6_qinq_udp", admitted(v6().vlan(0x88a8, 7).vlan(0x8100, 8).udp(1, 53).build(), "dns"));
    add("v4_three_tags_malformed",
        malformed(tcp4().vlan(0x88a8, 1).vlan(0x8100, 2).vlan(0x8100, 3).build()));
    add("v4_three_8021q_tags_malformed",
        malformed(tcp4().vlan(0x8100, 1).vlan(0x8100, 2).vlan(0x8100, 3).build()));
    add("v6_three_tags_malformed",
        malformed(v6().vlan(0x88a8, 1).vlan(0x88a8, 2).vlan(0x8100, 3).udp(1, 53).build()));
    add("arp_three_tags_malformed",
        malformed(Packet::arp().vlan(0x8100, 1).vlan(0x8100, 2).vlan(0x8100, 3).build()));

    // IPv4 options (IHL > 5), up to the maximum IHL 15.
    add("v4_options_4", admitted(tcp4().ipOptions(4).build(), "web"));
    add("v4_options_40_ihl15", admitted(tcp4().ipOptions(40).build(), "web"));
    add("v4_options_40_udp", admitted(udp4().ipOptions(40).build(), "dns"));
    add("v4_options_vlan", admitted(tcp4().vlan(0x8100, 3).ipOptions(12).build(), "web"));
    {
        Frame f = tcp4().build();
        f.bytes[f.end("eth")] = 0x44;  // IHL 4
        add("v4_ihl4_malformed", malformed(f));
        f.bytes[f.end("eth")] = 0x40;  // IHL 0
        add("v4_ihl0_malformed", malformed(f));
        f.bytes[f.end("eth")] = 0x65;  // version 6 under EtherType IPv4
        add("v4_version_mismatch_malformed", malformed(f));
        Frame g = tcp4().ipOptions(8).payload(4).build();
        g.bytes[g.end("eth")] = 0x4f;  // IHL 15: options run past the frame
        add("v4_ihl_past_frame_malformed", malformed(g));
        // IHL 15 (60 bytes, all in the frame) over a total length of 40:
        // the "ports" would come from bytes past the packet's end.
        Frame h = udp4().ipOptions(40).payload(4).build();
        const size_t ip = h.end("eth");
        h.bytes[ip + 2] = 0;
        h.bytes[ip + 3] = 40;
        add("v4_ihl_over_total_length_malformed", malformed(h));
        // Total length 0 (BIG TCP's GRO packets) leaves the IHL to the frame.
        h.bytes[ip + 3] = 0;
        add("v4_total_length_zero_parsed", admitted(h, "dns"));
    }
    {
        Frame f = v6().tcp(40000, 80, tcpflag::Syn).build();
        f.bytes[f.end("eth")] = 0x45;  // version 4 under EtherType IPv6
        add("v6_version_mismatch_malformed", malformed(f));
    }

    // TCP data offset.
    add("v4_tcp_doff4_malformed",
        malformed(Packet::v4(kSrc4, kServer4).tcp(1, 80, tcpflag::Syn, 4).build()));
    add("v4_tcp_doff0_malformed",
        malformed(Packet::v4(kSrc4, kServer4).tcp(1, 80, tcpflag::Syn, 0).build()));
    add("v4_tcp_doff8_options",
        admitted(Packet::v4(kSrc4, kServer4).tcp(1, 80, tcpflag::Syn, 8).build(), "web"));
    add("v4_tcp_doff15_options",
        admitted(Packet::v4(kSrc4, kServer4).tcp(1, 80, tcpflag::Syn, 15).build(), "web"));
    add("v6_tcp_doff4_malformed", malformed(v6().tcp(1, 80, tcpflag::Syn, 4).build()));

    // IPv6 and each extension header alone.
    add("v6_tcp", admitted(v6().tcp(40000, 80, tcpflag::Syn).build(), "web"));
    add("v6_udp", admitted(v6().udp(40000, 53).payload(20).build(), "dns"));
    struct {
        const char* name;
        uint8_t type;
        size_t len;
    } exts[] = {{"hop", ext::HopByHop, 8},  {"hop256", ext::HopByHop, 256},
                {"routing", ext::Routing, 8}, {"routing24", ext::Routing, 24},
                {"dstopts", ext::DestOpts, 8}, {"dstopts2048", ext::DestOpts, 2048},
                {"ah", ext::Ah, 24},          {"ah12", ext::Ah, 12},
                {"ah1024", ext::Ah, 1024}};
    for (const auto& e : exts) {
        add(std::string("v6_") + e.name + "_tcp",
            admitted(v6().ext(e.type, e.len).tcp(40000, 80, tcpflag::Syn).build(), "web"));
        add(std::string("v6_") + e.name + "_udp",
            admitted(v6().ext(e.type, e.len).udp(40000, 53).build(), "dns"));
    }
    // An atomic fragment (offset 0, M clear) is a whole datagram.
    add("v6_fragment_atomic_tcp",
        admitted(v6().fragment(0, false, 9).tcp(40000, 80, tcpflag::Syn).build(), "web"));
    add("v6_fragment_atomic_udp", admitted(v6().fragment(0, false, 9).udp(1, 53).build(), "dns"));

    // Chains: 6 and 8 deep (SLUICE_MAX_EXT_HDRS) reach TCP/UDP; 9 and 10 are refused.
    add("v6_chain6_tcp", admitted(chain(6).tcp(40000, 80, tcpflag::Syn).build(), "web"));
    add("v6_chain6_udp", admitted(chain(6).udp(40000, 53).build(), "dns"));
    add("v6_chain8_tcp", admitted(chain(8).tcp(40000, 80, tcpflag::Syn).build(), "web"));
    add("v6_chain8_udp", admitted(chain(8).udp(40000, 53).build(), "dns"));
    // The same depths without AH (whose length unit differs from the others').
    auto plain = [](size_t n) {
        static const uint8_t kinds[] = {ext::HopByHop, ext::DestOpts, ext::Routing, ext::DestOpts,
                                        ext::Routing,  ext::DestOpts, ext::Routing, ext::DestOpts,
                                        ext::Routing};
        Packet p = v6();
        for (size_t i = 0; i < n; i++)
            p.ext(kinds[i], 8 * (1 + i % 3));
        return p;
    };
    add("v6_chain6_no_ah_tcp", admitted(plain(6).tcp(40000, 80, tcpflag::Syn).build(), "web"));
    add("v6_chain8_no_ah_udp", admitted(plain(8).udp(40000, 53).build(), "dns"));
    add("v6_chain9_no_ah_malformed", malformed(plain(9).tcp(40000, 80, tcpflag::Syn).build()));
    add("v6_chain8_vlan2_tcp",
        admitted(chain(8).vlan(0x88a8, 1).vlan(0x8100, 2).tcp(1, 80, tcpflag::Syn).build(),
                 "web"));
    add("v6_chain9_tcp_malformed", malformed(chain(9).tcp(40000, 80, tcpflag::Syn).build()));
    add("v6_chain9_udp_malformed", malformed(chain(9).udp(40000, 53).build()));
    add("v6_chain10_tcp_malformed", malformed(chain(10).tcp(40000, 80, tcpflag::Syn).build()));
    add("v6_chain10_icmp6_malformed", malformed(chain(10).icmp().build()));
    add("v6_chain8_icmp6_passes", passed(chain(8).icmp().build()));

    // Not TCP/UDP, or not IP at all: no policy can match, passed in slot 0.
    add("v4_icmp_passes", passed(Packet::v4(kSrc4, kServer4).icmp().build()));
    add("v6_icmp6_passes", passed(v6().icmp().build()));
    add("v6_no_next_header_passes", passed(v6().payload(16).build()));
    add("v4_proto253_passes", passed(Packet::v4(kSrc4, kServer4).payload(16).build()));
    add("arp_passes", passed(Packet::arp().build()));
    add("arp_vlan_passes", passed(Packet::arp().vlan(0x8100, 5).build()));
    add("arp_qinq_passes", passed(Packet::arp().vlan(0x88a8, 5).vlan(0x8100, 6).build()));
    add("lldp_passes", passed(Packet::ether(0x88cc, 46).build()));
    add("ether_header_only_arp_passes", passed(Packet::ether(0x0806, 0).build()));
    return rows;
}

// Cuts each frame at every header boundary and one byte short of it.
std::vector<Row> truncationRows()
{
    struct Base {
        const char* name;
        Frame frame;
        std::string policy;  // what the whole frame is counted under ("" = not IP)
    };
    const Base bases[] = {
        {"v4_tcp", tcp4().payload(10).build(), "web"},
        {"v4_opts_udp", udp4().ipOptions(8).payload(4).build(), "dns"},
        {"v4_vlan_tcp", tcp4().vlan(0x8100, 9).build(), "web"},
        {"v4_qinq_tcp", Packet::v4(kSrc4, kServer4).vlan(0x88a8, 1).vlan(0x8100, 2)
                            .tcp(1, 80, tcpflag::Syn).build(), "web"},
        {"v6_tcp", v6().tcp(40000, 80, tcpflag::Syn).payload(3).build(), "web"},
        {"v6_exts_udp", v6().ext(ext::HopByHop).ext(ext::Routing, 16).ext(ext::DestOpts)
                            .fragment(0, false, 77).ext(ext::Ah).udp(1, 53).build(), "dns"},
        {"v6_vlan_hop_tcp",
         v6().vlan(0x8100, 4).ext(ext::HopByHop, 16).tcp(1, 80, tcpflag::Syn).build(), "web"},
        {"arp", Packet::arp().build(), ""},
        {"arp_vlan", Packet::arp().vlan(0x8100, 4).build(), ""},
        {"arp_qinq", Packet::arp().vlan(0x88a8, 4).vlan(0x8100, 5).build(), ""},
    };
    std::vector<Row> rows;
    for (const auto& base : bases) {
        const Frame& f = base.frame;
        const bool ip = !base.policy.empty();
        // Where the EtherType that names the payload ends (after all tags).
        size_t l2end = 0, l4end = 0;
        for (const auto& h : f.headers) {
            if (h.name == "eth" || h.name.starts_with("vlan"))
                l2end = h.end;
            if (h.name == "tcp" || h.name == "udp")
                l4end = h.end;
        }
        auto expect = [&](const Frame& cut) {
            if (cut.size() < 14)
                return refused(cut);
            if (!ip)
                return cut.size() >= l2end ? passed(cut) : malformed(cut);
            return cut.size() >= l4end ? admitted(cut, base.policy) : malformed(cut);
        };
        std::vector<std::pair<std::string, size_t>> cuts;
        for (const auto& h : f.headers) {
            cuts.emplace_back(h.name, h.end);
            cuts.emplace_back(h.name + "_minus1", h.end - 1);
        }
        cuts.emplace_back("whole", f.size());
        cuts.emplace_back("zero", 0);
        for (const auto& [what, at] : cuts)
            rows.push_back({std::string(base.name) + "_cut_" + what + "_at" + std::to_string(at),
                            webDns(),
                            {expect(f.truncated(at))},
                            /*shared=*/true});
    }
    return rows;
}

INSTANTIATE_TEST_SUITE_P(Shapes, BpfRow, testing::ValuesIn(shapeRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Truncated, BpfRow, testing::ValuesIn(truncationRows()), rowName);

}  // namespace
}  // namespace sluice::test
