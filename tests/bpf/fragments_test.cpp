// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Fragments: a first fragment records its verdict, later fragments of the
// same datagram follow it; a later fragment with no known first is dropped
// when its protocol has any policy; tiny and overlapping fragments are
// MALFORMED. Every row runs for IPv4 and for IPv6.
#include "harness.h"

namespace sluice::test {
namespace {

struct Family {
    const char* name;
    bool v6;
    const char* src;
    const char* other;  // another source
};
const Family kFamilies[] = {{"v4", false, "10.7.0.1", "10.7.0.2"},
                            {"v6", true, "2001:db8:7::1", "2001:db8:7::2"}};

Packet ip(const Family& f, const char* src = nullptr)
{
    const char* s = src ? src : f.src;
    return f.v6 ? Packet::v6(s, kServer6) : Packet::v4(s, kServer4);
}

// The first fragment of datagram `id`: full L4 header, more to come.
Frame firstTcp(const Family& f, uint32_t id, uint16_t dport = 80, uint8_t flags = tcpflag::Syn,
               const char* src = nullptr)
{
    return ip(f, src).fragment(0, true, id).tcp(40000, dport, flags).payload(32).build();
}
Frame firstUdp(const Family& f, uint32_t id, uint16_t dport = 53)
{
    return ip(f).fragment(0, true, id).udp(40000, dport).payload(32).build();
}
// A later fragment: no L4 header, `proto` in the IP header / fragment header.
Frame later(const Family& f, uint32_t id, uint16_t offset8 = 8, bool more = true,
            uint8_t proto = 6, const char* src = nullptr, size_t len = 40)
{
    return ip(f, src).fragment(offset8, more, id).raw(proto, len).build();
}
Frame syn(const Family& f, uint16_t dport = 80)
{
    return ip(f).tcp(40000, dport, tcpflag::Syn).build();
}

std::vector<Row> fragmentRows()
{
    std::vector<Row> rows;
    const Rules both{{tcpPolicy("web", {port(80)}, {pkts(3)}),
                      udpPolicy("dns", {port(53)}, {pkts(3)})}};
    const Rules tcpOnly{{tcpPolicy("web", {port(80)}, {pkts(3)})}};
    const Rules udpOnly{{udpPolicy("dns", {port(53)}, {pkts(3)})}};

    for (const Family& F : kFamilies) {
        const std::string n = F.name;
        const std::string s = F.src;
        auto row = [&](std::string name, Rules r, std::vector<Step> steps) {
            rows.push_back({n + "_" + name, std::move(r), std::move(steps)});
        };

        // Follow an admitted first fragment: passed, and charged to packets limits.
        row("first_admitted_later_follows_and_is_charged", tcpOnly,
            {admitted(firstTcp(F, 101), "web").remaining("web", s, {2}),
             admitted(later(F, 101, 8), "web").remaining("web", s, {1}),
             admitted(later(F, 101, 13, false), "web").remaining("web", s, {0}),
             limited(later(F, 101, 18, false), "web")});
        row("udp_first_admitted_later_follows", udpOnly,
            {admitted(firstUdp(F, 102), "dns"), admitted(later(F, 102, 5, false, 17), "dns")
                                                    .remaining("dns", s, {1})});
        {
            const Frame first = firstTcp(F, 103), rest = later(F, 103, 9, false, 6, nullptr, 200);
            row("later_charged_by_frame_bytes",
                {{tcpPolicy("web", {port(80)}, {bytes(first.size() + rest.size())})}},
                {admitted(first, "web"), admitted(rest, "web"), limited(rest, "web")});
        }
        // Follow a limited first fragment: dropped.
        row("first_limited_later_dropped", {{tcpPolicy("web", {port(80)}, {pkts(1)})}},
            {admitted(syn(F), "web"), limited(firstTcp(F, 104), "web"),
             limited(later(F, 104, 8), "web"), limited(later(F, 104, 16, false), "web")});
        row("connections_first_syn_limited_later_dropped",
            {{tcpPolicy("conn", {port(80)}, {conns(1)})}},
            {admitted(syn(F), "conn"), limited(firstTcp(F, 105), "conn"),
             limited(later(F, 105, 8, false), "conn")});
        row("connections_later_not_charged",
            {{tcpPolicy("conn", {port(80)}, {conns(1)})}},
            {admitted(firstTcp(F, 106), "conn").remaining("conn", s, {0}),
             admitted(later(F, 106, 8), "conn").remaining("conn", s, {0}),
             admitted(later(F, 106, 16, false), "conn"), limited(syn(F), "conn")});

        // No first fragment seen.
        row("orphan_tcp_with_tcp_policy", both, {orphanFragment(later(F, 107))});
        row("orphan_udp_with_udp_policy", both, {orphanFragment(later(F, 107, 8, true, 17))});
        row("orphan_tcp_without_tcp_policy", udpOnly, {passed(later(F, 108))});
        row("orphan_udp_without_udp_policy", tcpOnly, {passed(later(F, 108, 8, true, 17))});
        row("orphan_icmp_passes", both,
            {passed(later(F, 109, 8, false, F.v6 ? 58 : 1))});
        row("orphan_tcp_empty_ruleset", {}, {passed(later(F, 110))});
        row("orphan_last_fragment", tcpOnly, {orphanFragment(later(F, 111, 40, false))});
        // The datagram is (source, destination, id, protocol).
        row("other_id_is_orphan", both,
            {admitted(firstTcp(F, 112), "web"), orphanFragment(later(F, 113))});
        row("other_source_is_orphan", both,
            {admitted(firstTcp(F, 114), "web"), orphanFragment(later(F, 114, 8, true, 6, F.other))});
        row("other_protocol_is_orphan", both,
            {admitted(firstTcp(F, 115), "web"), orphanFragment(later(F, 115, 8, true, 17))});

        // A first fragment to a port with no policy: its later fragments pass
        // too, even though TCP has policies.
        row("first_unpoliced_later_passes", tcpOnly,
            {passed(firstTcp(F, 116, 9999)), passed(later(F, 116)),
             passed(later(F, 116, 16, false))});
        // Lists: later fragments follow a denied or an allowed first.
        {
            Rules lists = tcpOnly;
            lists.allow = {F.v6 ? "2001:db8:7::1/128" : "10.7.0.1/32"};
            lists.deny = {F.v6 ? "2001:db8:7::2/128" : "10.7.0.2/32"};
            row("first_allowed_later_allowed", lists,
                {allowed(firstTcp(F, 117), "web"), allowed(later(F, 117), "web")});
            row("first_denied_later_denied", lists,
                {denied(firstTcp(F, 118, 80, tcpflag::Syn, F.other), "web"),
                 denied(later(F, 118, 8, true, 6, F.other), "web")});
            row("orphan_from_denied_source_unpoliced_proto", lists,
                {denied(later(F, 119, 8, true, 17, F.other))});
        }
        row("first_monitored_later_monitored",
            {{tcpPolicy("mon", {port(80)}, {pkts(1)}, Action::Monitor)}},
            {admitted(syn(F), "mon"), monitored(firstTcp(F, 120), "mon"),
             monitored(later(F, 120), "mon")});

        // Tiny first fragments: the L4 header is not all there.
        row("tiny_first_tcp_8_bytes", both,
            {malformed(ip(F).fragment(0, true, 121).raw(6, 8).build()),
             orphanFragment(later(F, 121, 2))});
        row("tiny_first_tcp_19_bytes", both,
            {malformed(ip(F).fragment(0, true, 122).raw(6, 19).build())});
        row("tiny_first_udp_7_bytes", both,
            {malformed(ip(F).fragment(0, true, 123).raw(17, 7).build())});
        row("first_tcp_bare_header", both,
            {admitted(ip(F).fragment(0, true, 124).tcp(1, 80, tcpflag::Syn).build(), "web")});
        row("first_udp_bare_header", both,
            {admitted(ip(F).fragment(0, true, 125).udp(1, 53).build(), "dns")});
        // RFC 1858: an IPv4 TCP fragment at offset 1 (8 bytes) can rewrite
        // the flags. IPv6 has no such rule in the parser: it follows.
        if (!F.v6) {
            row("tcp_offset1_malformed", both,
                {admitted(firstTcp(F, 126), "web"), malformed(later(F, 126, 1)),
                 admitted(later(F, 126, 2), "web")});
            row("tcp_offset1_orphan_malformed", both, {malformed(later(F, 127, 1))});
            row("udp_offset1_follows", both,
                {admitted(firstUdp(F, 128), "dns"), admitted(later(F, 128, 1, true, 17), "dns")});
        } else {
            row("tcp_offset1_follows", both,
                {admitted(firstTcp(F, 126), "web"), admitted(later(F, 126, 1), "web")});
        }
    }

    // Shapes around the fragment: VLAN tags, IPv4 options, IPv6 headers
    // before the fragment header.
    rows.push_back(
        {"v4_vlan_options_fragments_follow",
         {{tcpPolicy("web", {port(80)}, {pkts(1)})}},
         {admitted(Packet::v4("10.7.1.1", kServer4).vlan(0x8100, 3).ipOptions(8)
                       .fragment(0, true, 130).tcp(1, 80, tcpflag::Syn).payload(16).build(), "web"),
          limited(Packet::v4("10.7.1.1", kServer4).vlan(0x88a8, 3).vlan(0x8100, 4)
                      .fragment(5, false, 130).raw(6, 20).build(), "web")}});
    rows.push_back(
        {"v6_hop_routing_before_fragment_follow",
         {{tcpPolicy("web", {port(80)}, {pkts(1)})}},
         {admitted(Packet::v6("2001:db8:7:1::1", kServer6).ext(ext::HopByHop).ext(ext::Routing, 24)
                       .fragment(0, true, 131).tcp(1, 80, tcpflag::Syn).payload(16).build(), "web"),
          limited(Packet::v6("2001:db8:7:1::1", kServer6).ext(ext::HopByHop).ext(ext::Routing, 24)
                      .fragment(5, false, 131).raw(6, 20).build(), "web")}});
    rows.push_back(
        {"v6_fragment_then_ah_first_follows",
         {{tcpPolicy("web", {port(80)}, {pkts(2)})}},
         {admitted(Packet::v6("2001:db8:7:1::2", kServer6).fragment(0, true, 132).ext(ext::Ah)
                       .tcp(1, 80, tcpflag::Syn).build(), "web")}});
    rows.push_back(
        {"v6_fragment_id_is_32_bits",
         {{tcpPolicy("web", {port(80)}, {pkts(3)})}},
         {admitted(Packet::v6("2001:db8:7:1::3", kServer6).fragment(0, true, 0x10000 + 133)
                       .tcp(1, 80, tcpflag::Syn).build(), "web"),
          orphanFragment(Packet::v6("2001:db8:7:1::3", kServer6).fragment(4, false, 133)
                             .raw(6, 16).build()),
          admitted(Packet::v6("2001:db8:7:1::3", kServer6).fragment(4, false, 0x10000 + 133)
                       .raw(6, 16).build(), "web")}});
    return rows;
}

INSTANTIATE_TEST_SUITE_P(Fragments, BpfRow, testing::ValuesIn(fragmentRows()), rowName);

}  // namespace
}  // namespace sluice::test
