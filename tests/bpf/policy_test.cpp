// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Policy semantics on the data path: allow/deny lists, each kind of limit and
// mixes of them, port ranges, bucket keys and prefixes, actions.
#include "harness.h"

namespace sluice::test {
namespace {

Frame syn4(const std::string& src, uint16_t dport = 80, size_t payload = 0)
{
    return Packet::v4(src, kServer4).tcp(40000, dport, tcpflag::Syn).payload(payload).build();
}
Frame tcp4(const std::string& src, uint8_t flags, uint16_t dport = 80, size_t payload = 0)
{
    return Packet::v4(src, kServer4).tcp(40000, dport, flags).payload(payload).build();
}
Frame udp4(const std::string& src, uint16_t dport = 53, size_t payload = 0)
{
    return Packet::v4(src, kServer4).udp(40000, dport).payload(payload).build();
}
Frame syn6(const std::string& src, uint16_t dport = 80)
{
    return Packet::v6(src, kServer6).tcp(40000, dport, tcpflag::Syn).build();
}
Frame icmp4(const std::string& src) { return Packet::v4(src, kServer4).icmp().build(); }

// ---- allow and deny ----------------------------------------------------
std::vector<Row> listRows()
{
    const Rules lists{
        {tcpPolicy("web", {port(80)}, {pkts(1)})},
        // allow: an admin network; a deny inside it (allow wins); an allow
        // inside a deny (the allow is more specific: allowed).
        {"192.0.2.0/24", "10.0.0.0/8", "172.16.5.0/24", "2001:db8:a11::/48",
         "2001:db8:a00::/40", "2001:db8:d0a::/48"},
        {"198.51.100.0/24", "10.66.0.0/16", "172.16.0.0/12", "2001:db8:bad::/48",
         "2001:db8:a0b::/48", "2001:db8:d00::/40"},
    };
    std::vector<Row> rows;
    auto row = [&](std::string name, std::vector<Step> steps) {
        rows.push_back({std::move(name), lists, std::move(steps)});
    };

    // Allowed sources are never limited on a policed port (counted ALLOWED,
    // never charged) and pass untouched elsewhere.
    row("v4_allow_on_policed_port",
        {allowed(syn4("192.0.2.7"), "web"), allowed(syn4("192.0.2.7"), "web"),
         allowed(syn4("192.0.2.7"), "web").noState("web", "192.0.2.7")});
    row("v4_allow_on_unpoliced_port", {passed(syn4("192.0.2.7", 9999))});
    row("v6_allow_on_policed_port",
        {allowed(syn6("2001:db8:a11::5"), "web"), allowed(syn6("2001:db8:a11::5"), "web"),
         allowed(syn6("2001:db8:a11:ff::5"), "web").noState("web", "2001:db8:a11::5")});
    row("v6_allow_on_unpoliced_port", {passed(syn6("2001:db8:a11::5", 9999))});

    // Denied sources are dropped everywhere.
    row("v4_deny_on_policed_port", {denied(syn4("198.51.100.9"), "web")});
    row("v4_deny_on_unpoliced_port", {denied(syn4("198.51.100.9", 9999))});
    row("v4_deny_udp", {denied(udp4("198.51.100.9"))});
    row("v4_deny_icmp", {denied(icmp4("198.51.100.9"))});
    row("v6_deny_on_policed_port", {denied(syn6("2001:db8:bad::1"), "web")});
    row("v6_deny_on_unpoliced_port", {denied(syn6("2001:db8:bad:1::1", 9999))});
    row("v6_deny_icmp6", {denied(Packet::v6("2001:db8:bad::2", kServer6).icmp().build())});
    row("deny_does_not_touch_arp", {passed(Packet::arp().build())});

    // A deny CIDR inside an allow CIDR: allow wins.
    row("v4_deny_inside_allow_policed",
        {allowed(syn4("10.66.1.1"), "web"), allowed(syn4("10.66.1.1"), "web")});
    row("v4_deny_inside_allow_unpoliced", {passed(syn4("10.66.1.1", 9999))});
    row("v4_allow_outside_inner_deny", {allowed(syn4("10.67.1.1"), "web")});
    row("v6_deny_inside_allow_policed",
        {allowed(syn6("2001:db8:a0b::1"), "web"), allowed(syn6("2001:db8:a0b::1"), "web")});
    row("v6_deny_inside_allow_unpoliced", {passed(syn6("2001:db8:a0b::1", 9999))});
    // An allow inside a deny: the allowed part is allowed, the rest denied.
    row("v4_allow_inside_deny",
        {allowed(syn4("172.16.5.1"), "web"), denied(syn4("172.16.6.1"), "web"),
         denied(syn4("172.16.6.1", 9999)), passed(syn4("172.16.5.1", 9999))});
    row("v6_allow_inside_deny",
        {allowed(syn6("2001:db8:d0a::1"), "web"), denied(syn6("2001:db8:d0b::1"), "web"),
         denied(syn6("2001:db8:d0b::1", 9999)), passed(syn6("2001:db8:d0a::1", 9999))});

    // Sources on no list are limited as usual.
    row("v4_unlisted_is_limited", {admitted(syn4("203.0.113.1"), "web"),
                                   limited(syn4("203.0.113.1"), "web")});
    row("v6_unlisted_is_limited", {admitted(syn6("2001:db8:77::1"), "web"),
                                   limited(syn6("2001:db8:77::1"), "web")});
    // IPv4-mapped sources are not matched against the IPv6 lists, nor IPv6
    // sources against the IPv4 lists.
    row("v6_source_not_in_v4_list", {admitted(syn6("::ffff:198.51.100.9"), "web")});

    // Lists with no policies at all: deny still drops, allow is a no-op.
    rows.push_back({"deny_without_policies",
                    {{}, {"192.0.2.0/24"}, {"198.51.100.0/24"}},
                    {denied(syn4("198.51.100.1")), passed(syn4("192.0.2.1")),
                     passed(syn4("203.0.113.1"))}});
    // Allow-only lists: no deny flag, the trie is not consulted off-policy.
    rows.push_back({"allow_only_lists",
                    {{tcpPolicy("web", {port(80)}, {pkts(1)})}, {"192.0.2.0/24"}, {}},
                    {allowed(syn4("192.0.2.1"), "web"), passed(syn4("192.0.2.1", 81)),
                     admitted(syn4("203.0.113.1"), "web"), limited(syn4("203.0.113.1"), "web")}});
    return rows;
}

// ---- each kind of limit, and mixes ---------------------------------------
std::vector<Row> limitRows()
{
    std::vector<Row> rows;
    const std::string a = "10.1.0.1", b = "10.1.0.2";

    // Connections: charged only by a SYN without ACK.
    rows.push_back(
        {"connections_charged_by_syn_only",
         {{tcpPolicy("conn", {port(80)}, {conns(2)})}},
         {admitted(syn4(a), "conn").remaining("conn", a, {1}),
          admitted(tcp4(a, tcpflag::Syn | tcpflag::Ack), "conn").remaining("conn", a, {1}),
          admitted(tcp4(a, tcpflag::Ack), "conn"), admitted(tcp4(a, tcpflag::Rst), "conn"),
          admitted(tcp4(a, tcpflag::Fin | tcpflag::Ack), "conn").remaining("conn", a, {1}),
          admitted(syn4(a), "conn").remaining("conn", a, {0}),
          limited(syn4(a), "conn"),
          admitted(tcp4(a, tcpflag::Ack), "conn"),
          admitted(tcp4(a, tcpflag::Syn | tcpflag::Ack), "conn"),
          admitted(syn4(b), "conn").remaining("conn", b, {1})}});
    // UDP has no SYN: a connections limit there is refused at install.
    rows.push_back({"connections_on_udp_refused",
                    {{udpPolicy("u", {port(53)}, {pkts(1)})}},
                    {admitted(udp4(a), "u"),
                     refusedInstall({{udpPolicy("u", {port(53)}, {conns(1)})}}),
                     limited(udp4(a), "u")}});

    // Packets: every packet, whatever its flags.
    rows.push_back({"packets_tcp",
                    {{tcpPolicy("p", {port(80)}, {pkts(3)})}},
                    {admitted(syn4(a), "p").remaining("p", a, {2}),
                     admitted(tcp4(a, tcpflag::Ack), "p").remaining("p", a, {1}),
                     admitted(tcp4(a, tcpflag::Rst), "p").remaining("p", a, {0}),
                     limited(tcp4(a, tcpflag::Ack), "p").remaining("p", a, {0}),
                     limited(syn4(a), "p"), admitted(syn4(b), "p")}});
    // A larger count is still exact: 64 admitted, the 65th refused.
    {
        std::vector<Step> steps{admitted(syn4(a), "p64")};
        for (int i = 1; i < 64; i++)
            steps.push_back(admitted(tcp4(a, tcpflag::Ack), "p64"));
        steps.push_back(limited(tcp4(a, tcpflag::Ack), "p64"));
        steps.push_back(limited(syn4(a), "p64"));
        steps.push_back(admitted(tcp4(b, tcpflag::Ack), "p64"));
        rows.push_back({"packets_exact_count_64",
                        {{tcpPolicy("p64", {port(80)}, {pkts(64)})}},
                        std::move(steps)});
    }
    rows.push_back({"packets_udp",
                    {{udpPolicy("p", {port(53)}, {pkts(2)})}},
                    {admitted(udp4(a), "p"), admitted(udp4(a, 53, 500), "p"),
                     limited(udp4(a), "p")}});

    // Bytes: charged the frame length (VLAN tags included).
    {
        const Frame plain = tcp4(a, tcpflag::Ack, 80, 100);
        const Frame tagged =
            Packet::v4(a, kServer4).vlan(0x8100, 5).tcp(40000, 80, tcpflag::Ack).payload(100).build();
        const Frame small = tcp4(a, tcpflag::Ack);
        const uint64_t L = plain.size();
        rows.push_back({"bytes_by_frame_length",
                        {{tcpPolicy("b", {port(80)}, {bytes(3 * L)})}},
                        {admitted(plain, "b"), admitted(plain, "b"),
                         // L + 4 bytes do not fit in the L left.
                         limited(tagged, "b"),
                         admitted(plain, "b"), limited(small, "b")}});
        rows.push_back({"bytes_small_frames_fit_where_big_do_not",
                        {{tcpPolicy("b", {port(80)}, {bytes(2 * L + small.size())})}},
                        {admitted(plain, "b"), admitted(plain, "b"), limited(plain, "b"),
                         admitted(small, "b"), limited(small, "b")}});
        rows.push_back({"bytes_frame_bigger_than_bucket",
                        {{tcpPolicy("b", {port(80)}, {bytes(L - 1)})}},
                        {limited(plain, "b"), admitted(small, "b")}});
    }

    // Mixes: a packet refused by one limit charges none of them.
    rows.push_back(
        {"mixed_packets_then_connections",
         {{tcpPolicy("m", {port(80)}, {pkts(5), conns(2)})}},
         {admitted(syn4(a), "m").remaining("m", a, {4, 1}),
          admitted(syn4(a), "m").remaining("m", a, {3, 0}),
          // refused by connections after packets was charged: refunded
          limited(syn4(a), "m").remaining("m", a, {3, 0}),
          admitted(tcp4(a, tcpflag::Ack), "m").remaining("m", a, {2, 0}),
          admitted(tcp4(a, tcpflag::Ack), "m"),
          admitted(tcp4(a, tcpflag::Ack), "m").remaining("m", a, {0, 0}),
          limited(tcp4(a, tcpflag::Ack), "m").remaining("m", a, {0, 0})}});
    rows.push_back(
        {"mixed_connections_then_packets",
         {{tcpPolicy("m", {port(80)}, {conns(5), pkts(2)})}},
         {admitted(tcp4(a, tcpflag::Ack), "m").remaining("m", a, {5, 1}),
          admitted(tcp4(a, tcpflag::Ack), "m").remaining("m", a, {5, 0}),
          // connections charged first, packets refuses: connections refunded
          limited(syn4(a), "m").remaining("m", a, {5, 0})}});
    {
        const Frame f = tcp4(a, tcpflag::Ack, 80, 50);
        rows.push_back({"mixed_packets_and_bytes",
                        {{tcpPolicy("m", {port(80)}, {pkts(10), bytes(3 * f.size())})}},
                        {admitted(f, "m"), admitted(f, "m"),
                         admitted(f, "m").remaining("m", a, {7, kAny}),
                         limited(f, "m").remaining("m", a, {7, kAny})}});
    }
    rows.push_back(
        {"mixed_four_limits_last_refuses",
         {{tcpPolicy("m", {port(80)}, {conns(3), pkts(10), bytes(100000), pkts(2)})}},
         {admitted(syn4(a), "m").remaining("m", a, {2, 9, kAny, 1}),
          admitted(syn4(a), "m").remaining("m", a, {1, 8, kAny, 0}),
          limited(syn4(a), "m").remaining("m", a, {1, 8, kAny, 0}),
          limited(tcp4(a, tcpflag::Ack), "m").remaining("m", a, {1, 8, kAny, 0})}});
    return rows;
}

// ---- ports -----------------------------------------------------------------
std::vector<Row> portRows()
{
    const Rules r{{tcpPolicy("web", {ports(8000, 8099), port(8443)}, {pkts(100)}),
                   udpPolicy("mdns", {ports(5353, 5355)}, {pkts(100)}),
                   tcpPolicy("high", {ports(65000, 65535)}, {pkts(100)}),
                   tcpPolicy("low", {ports(1, 1)}, {pkts(100)})}};
    const std::string s = "10.2.0.1";
    std::vector<Row> rows;
    auto row = [&](std::string name, Step st) { rows.push_back({std::move(name), r, {st}}); };
    row("range_before_first", passed(syn4(s, 7999)));
    row("range_first", admitted(syn4(s, 8000), "web"));
    row("range_middle", admitted(syn4(s, 8050), "web"));
    row("range_last", admitted(syn4(s, 8099), "web"));
    row("range_one_past_end", passed(syn4(s, 8100)));
    row("single_port", admitted(syn4(s, 8443), "web"));
    row("single_port_minus1", passed(syn4(s, 8442)));
    row("single_port_plus1", passed(syn4(s, 8444)));
    row("tcp_range_not_udp", passed(udp4(s, 8000)));
    row("udp_range_first", admitted(udp4(s, 5353), "mdns"));
    row("udp_range_last", admitted(udp4(s, 5355), "mdns"));
    row("udp_range_one_past_end", passed(udp4(s, 5356)));
    row("udp_range_not_tcp", passed(syn4(s, 5353)));
    row("port_65535", admitted(syn4(s, 65535), "high"));
    row("port_64999", passed(syn4(s, 64999)));
    row("port_1", admitted(syn4(s, 1), "low"));
    row("port_0", passed(syn4(s, 0)));
    row("port_2", passed(syn4(s, 2)));
    row("v6_range_last", admitted(syn6("2001:db8:2::1", 8099), "web"));
    row("v6_range_one_past_end", passed(syn6("2001:db8:2::1", 8100)));
    // The ports of one policy share its buckets.
    rows.push_back({"ports_of_a_policy_share_a_bucket",
                    {{tcpPolicy("web", {ports(8000, 8099), port(8443)}, {pkts(2)})}},
                    {admitted(syn4(s, 8000), "web"), admitted(syn4(s, 8443), "web"),
                     limited(syn4(s, 8099), "web").remaining("web", s, {0})}});
    // Policies do not share buckets.
    rows.push_back({"policies_have_separate_buckets",
                    {{tcpPolicy("a", {port(80)}, {pkts(1)}), tcpPolicy("b", {port(81)}, {pkts(1)})}},
                    {admitted(syn4(s, 80), "a"), admitted(syn4(s, 81), "b"),
                     limited(syn4(s, 80), "a"), limited(syn4(s, 81), "b")}});
    rows.push_back({"empty_ruleset_passes", {}, {passed(syn4(s, 80)), passed(udp4(s, 53))}});
    return rows;
}

// ---- bucket keys and prefixes ------------------------------------------------
std::vector<Row> keyRows()
{
    std::vector<Row> rows;
    Policy global = tcpPolicy("g", {port(80)}, {pkts(2)});
    global.key = KeyMode::Global;
    rows.push_back({"key_global_shared_by_all_sources",
                    {{global}},
                    {admitted(syn4("10.3.0.1"), "g"), admitted(syn6("2001:db8:3::1"), "g"),
                     limited(syn4("10.3.0.2"), "g").remaining("g", "10.3.0.99", {0}),
                     limited(syn6("2001:db8:4::1"), "g")}});
    rows.push_back({"key_source_v4_32",
                    {{tcpPolicy("s", {port(80)}, {pkts(2)})}},
                    {admitted(syn4("10.3.0.1"), "s"), admitted(syn4("10.3.0.1"), "s"),
                     limited(syn4("10.3.0.1"), "s"),
                     admitted(syn4("10.3.0.2"), "s").remaining("s", "10.3.0.2", {1})
                         .remaining("s", "10.3.0.1", {0}).noState("s", "10.3.0.3")}});
    Policy p24 = tcpPolicy("p24", {port(80)}, {pkts(2)});
    p24.ipv4Prefix = 24;
    rows.push_back({"key_v4_prefix_24",
                    {{p24}},
                    {admitted(syn4("10.4.1.3"), "p24"), admitted(syn4("10.4.1.200"), "p24"),
                     limited(syn4("10.4.1.77"), "p24").remaining("p24", "10.4.1.99", {0}),
                     admitted(syn4("10.4.2.1"), "p24").remaining("p24", "10.4.2.250", {1}),
                     // IPv6 sources keep their own /64
                     admitted(syn6("2001:db8:4::1"), "p24")}});
    Policy p64 = tcpPolicy("p64", {port(80)}, {pkts(2)});  // ipv6Prefix 64 is the default
    rows.push_back({"key_v6_prefix_64",
                    {{p64}},
                    {admitted(syn6("2001:db8:5:6::1"), "p64"),
                     admitted(syn6("2001:db8:5:6:ffff:eeee:dddd:2"), "p64"),
                     limited(syn6("2001:db8:5:6::3"), "p64").remaining("p64", "2001:db8:5:6::42", {0}),
                     admitted(syn6("2001:db8:5:7::1"), "p64").remaining("p64", "2001:db8:5:7::2", {1})}});
    Policy p128 = tcpPolicy("p128", {port(80)}, {pkts(1)});
    p128.ipv6Prefix = 128;
    rows.push_back({"key_v6_prefix_128",
                    {{p128}},
                    {admitted(syn6("2001:db8:5:6::1"), "p128"), admitted(syn6("2001:db8:5:6::2"), "p128"),
                     limited(syn6("2001:db8:5:6::1"), "p128")}});
    return rows;
}

// ---- actions ---------------------------------------------------------------
std::vector<Row> actionRows()
{
    std::vector<Row> rows;
    const std::string a = "10.6.0.1";
    rows.push_back({"monitor_packets_passes_over_limit",
                    {{tcpPolicy("mon", {port(80)}, {pkts(1)}, Action::Monitor)}},
                    {admitted(syn4(a), "mon"), monitored(syn4(a), "mon"),
                     monitored(tcp4(a, tcpflag::Ack), "mon")}});
    rows.push_back({"monitor_connections",
                    {{tcpPolicy("mon", {port(80)}, {conns(1)}, Action::Monitor)}},
                    {admitted(syn4(a), "mon"), monitored(syn4(a), "mon"),
                     admitted(tcp4(a, tcpflag::Ack), "mon")}});
    rows.push_back({"monitor_udp_v6",
                    {{udpPolicy("mon", {port(53)}, {pkts(1)}, Action::Monitor)}},
                    {admitted(Packet::v6("2001:db8:6::1", kServer6).udp(1, 53).build(), "mon"),
                     monitored(Packet::v6("2001:db8:6::1", kServer6).udp(1, 53).build(), "mon")}});
    rows.push_back({"drop_limits",
                    {{tcpPolicy("d", {port(80)}, {pkts(1)}, Action::Drop)}},
                    {admitted(syn4(a), "d"), limited(syn4(a), "d")}});
    // Actions without what they need (reject or respond on UDP, redirect
    // without a target) are refused at install, and a refused install
    // changes nothing: the active ruleset still judges the next packet.
    // (The actions themselves: actions_test.cpp.)
    const std::pair<Policy, const char*> refusedPolicies[] = {
        {udpPolicy("d", {port(80)}, {pkts(1)}, Action::Respond), "respond_udp"},
        {udpPolicy("d", {port(80)}, {pkts(1)}, Action::Reject), "reject_udp"},
        {tcpPolicy("d", {port(80)}, {pkts(1)}, Action::Redirect), "redirect_without_target"}};
    for (const auto& [pol, name] : refusedPolicies)
        rows.push_back({std::string("action_") + name + "_refused",
                        {{tcpPolicy("d", {port(80)}, {pkts(1)})}},
                        {admitted(syn4(a), "d"),
                         refusedInstall({{pol, tcpPolicy("x", {port(81)}, {pkts(1)})},
                                         {a + "/32"}, {}}),
                         limited(syn4(a), "d"), passed(syn4(a, 81))}});
    return rows;
}

INSTANTIATE_TEST_SUITE_P(Lists, BpfRow, testing::ValuesIn(listRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Limits, BpfRow, testing::ValuesIn(limitRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Ports, BpfRow, testing::ValuesIn(portRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Keys, BpfRow, testing::ValuesIn(keyRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Actions, BpfRow, testing::ValuesIn(actionRows()), rowName);

}  // namespace
}  // namespace sluice::test
