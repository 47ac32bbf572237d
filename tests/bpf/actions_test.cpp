// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Actions on the excess: reject (a SYN answered in place with a RST+ACK, by
// XDP_TX; the frame handed back is checked field by field and checksummed),
// redirect (XDP_REDIRECT through the devmap), and bans (ban_after / ban).
#include <unistd.h>

#include "harness.h"

namespace sluice::test {
namespace {

const std::string kSrc4 = "10.7.0.1";
const std::string kSrc6 = "2001:db8:7::1";

Frame syn4(const std::string& src, uint16_t dport = 80, size_t payload = 0)
{
    return Packet::v4(src, kServer4).tcp(40000, dport, tcpflag::Syn).payload(payload).build();
}
Frame syn6(const std::string& src, uint16_t dport = 80, size_t payload = 0)
{
    return Packet::v6(src, kServer6).tcp(40001, dport, tcpflag::Syn).payload(payload).build();
}
Frame ack4(const std::string& src) { return Packet::v4(src, kServer4).tcp(40000, 80).build(); }
Frame ack6(const std::string& src) { return Packet::v6(src, kServer6).tcp(40001, 80).build(); }

Policy redirectTo(Policy p, std::string iface)
{
    p.action = Action::Redirect;
    p.redirectTo = std::move(iface);
    return p;
}

// ---- reject ----------------------------------------------------------------
std::vector<Row> rejectRows()
{
    std::vector<Row> rows;
    auto rej = [](std::vector<Limit> limits) {
        return tcpPolicy("rej", {port(80)}, std::move(limits), Action::Reject);
    };
    rows.push_back({"reject_v4_syn_gets_rst",
                    {{rej({conns(1)})}},
                    {admitted(syn4(kSrc4), "rej"), rejected(syn4(kSrc4), "rej"),
                     // Not a new connection: nothing to charge, passes.
                     admitted(ack4(kSrc4), "rej")}});
    rows.push_back({"reject_v6_syn_gets_rst",
                    {{rej({conns(1)})}},
                    {admitted(syn6(kSrc6), "rej"), rejected(syn6(kSrc6), "rej")}});
    rows.push_back({"reject_syn_payload_counts_in_ack",
                    {{rej({conns(1)})}},
                    {admitted(syn4(kSrc4), "rej"), rejected(syn4(kSrc4, 80, 37), "rej"),
                     admitted(syn6(kSrc6, 80, 0), "rej"), rejected(syn6(kSrc6, 80, 100), "rej")}});
    rows.push_back({"reject_non_syn_over_limit_is_dropped",
                    {{rej({pkts(1)})}},
                    {admitted(ack4(kSrc4), "rej"), limited(ack4(kSrc4), "rej"),
                     rejected(syn4(kSrc4), "rej"), admitted(ack6(kSrc6), "rej"),
                     limited(ack6(kSrc6), "rej")}});
    rows.push_back({"reject_ip_options_are_cut",
                    {{rej({conns(1)})}},
                    {admitted(syn4(kSrc4), "rej"),
                     rejected(Packet::v4(kSrc4, kServer4).ipOptions(12).tcp(40000, 80, tcpflag::Syn)
                                  .payload(5).build(),
                              "rej")}});
    rows.push_back({"reject_syn_with_tcp_options",
                    {{rej({conns(1)})}},
                    {admitted(syn4(kSrc4), "rej"),
                     rejected(Packet::v4(kSrc4, kServer4).tcp(40000, 80, tcpflag::Syn, 10).build(),
                              "rej")}});
    rows.push_back({"reject_vlan_tags_kept",
                    {{rej({conns(1)})}},
                    {admitted(syn4(kSrc4), "rej"),
                     rejected(Packet::v4(kSrc4, kServer4).vlan(0x8100, 10).tcp(40000, 80, tcpflag::Syn)
                                  .build(),
                              "rej"),
                     admitted(syn6(kSrc6), "rej"),
                     rejected(Packet::v6(kSrc6, kServer6).vlan(0x88a8, 20).vlan(0x8100, 30)
                                  .tcp(40001, 80, tcpflag::Syn).payload(3).build(),
                              "rej")}});
    // A SYN behind IPv6 extension headers is not rebuilt: dropped instead.
    rows.push_back({"reject_v6_ext_headers_dropped",
                    {{rej({conns(1)})}},
                    {admitted(syn6(kSrc6), "rej"),
                     limited(Packet::v6(kSrc6, kServer6).ext(ext::DestOpts).tcp(40001, 80, tcpflag::Syn)
                                 .build(),
                             "rej")}});
    // A SYN+FIN takes one more unit of sequence space.
    rows.push_back({"reject_syn_fin",
                    {{rej({conns(1)})}},
                    {admitted(syn4(kSrc4), "rej"),
                     rejected(Packet::v4(kSrc4, kServer4).tcp(40000, 80, tcpflag::Syn | tcpflag::Fin)
                                  .build(),
                              "rej")}});
    return rows;
}

// ---- respond ---------------------------------------------------------------
std::vector<Row> respondRows()
{
    std::vector<Row> rows;
    auto resp = [](std::vector<Limit> limits) {
        return tcpPolicy("resp", {port(80)}, std::move(limits), Action::Respond);
    };
    auto withResponder = [](Row r) {
        r.responder = true;
        return r;
    };
    // No responder socket in the map: respond answers as reject does.
    rows.push_back({"respond_without_responder_falls_back_to_rst",
                    {{resp({conns(1)})}},
                    {admitted(syn4(kSrc4), "resp"),
                     respondFallback(syn4(kSrc4), "resp").handed(kSrc4, 40000, kServer4, 80, false),
                     admitted(syn6(kSrc6), "resp"), respondFallback(syn6(kSrc6), "resp")}});
    // With one: the SYN passes untouched and its connection is recorded.
    rows.push_back(withResponder({"respond_v4_syn_handed_over",
                                  {{resp({conns(1)})}},
                                  {admitted(syn4(kSrc4), "resp").handed(kSrc4, 40000, kServer4, 80, false),
                                   responded(syn4(kSrc4), "resp").handed(kSrc4, 40000, kServer4, 80),
                                   // A SYN retransmission is handed over again.
                                   responded(syn4(kSrc4), "resp")}}));
    rows.push_back(withResponder({"respond_v6_syn_handed_over",
                                  {{resp({conns(1)})}},
                                  {admitted(syn6(kSrc6), "resp"),
                                   responded(syn6(kSrc6), "resp").handed(kSrc6, 40001, kServer6, 80),
                                   // Another 4-tuple of the same source is not.
                                   admitted(ack6(kSrc6), "resp")
                                       .handed(kSrc6, 40002, kServer6, 80, false)}}));
    // Under a packets limit the handed-over connection's later packets
    // pass (they carry the request the responder answers); a connection
    // that was not handed over is still limited.
    rows.push_back(withResponder(
        {"respond_later_packets_of_handed_connection_pass",
         {{resp({pkts(1)})}},
         {admitted(ack4(kSrc4), "resp"), responded(syn4(kSrc4), "resp"),
          responded(ack4(kSrc4), "resp"),
          limited(Packet::v4(kSrc4, kServer4).tcp(40009, 80).build(), "resp"),
          admitted(ack6(kSrc6), "resp"), limited(ack6(kSrc6), "resp")}}));
    // An admitted SYN on a 4-tuple with an old record clears it: that
    // connection belongs to the application.
    rows.push_back(withResponder({"respond_admitted_syn_clears_old_record",
                                  {{resp({conns(1)})}},
                                  {admitted(syn4(kSrc4), "resp"), responded(syn4(kSrc4), "resp"),
                                   admitted(syn4(kSrc4), "resp")
                                       .resetFirst(kSrc4)
                                       .handed(kSrc4, 40000, kServer4, 80, false)}}));
    return rows;
}

// ---- ban -------------------------------------------------------------------
std::vector<Row> banRows()
{
    std::vector<Row> rows;
    const uint64_t hour = 3600ULL * 1'000'000'000ULL;
    Policy d = withBan(tcpPolicy("d", {port(80)}, {pkts(1)}), 2, hour);
    rows.push_back({"ban_after_limited_units",
                    {{d}},
                    {admitted(syn4(kSrc4), "d").ban("d", kSrc4, false),
                     limited(syn4(kSrc4), "d"), limited(syn4(kSrc4), "d").ban("d", kSrc4, false),
                     banned(syn4(kSrc4), "d").ban("d", kSrc4),
                     banned(ack4(kSrc4), "d"),
                     // Another source is not touched by the ban.
                     admitted(syn4("10.7.0.2"), "d").ban("d", "10.7.0.2", false),
                     // reset lifts the ban and the buckets.
                     admitted(syn4(kSrc4), "d").resetFirst(kSrc4).ban("d", kSrc4, false)}});
    rows.push_back({"ban_v6_prefix",
                    {{withBan(tcpPolicy("d", {port(80)}, {pkts(1)}), 1, hour)}},
                    {admitted(syn6("2001:db8:7:1::1"), "d"), limited(syn6("2001:db8:7:1::2"), "d"),
                     banned(syn6("2001:db8:7:1::3"), "d").ban("d", "2001:db8:7:1::99"),
                     banned(syn6("2001:db8:7:1::4"), "d"),
                     admitted(syn6("2001:db8:7:2::1"), "d")}});
    // With reject, the SYNs over the limit are rejected until the ban, then
    // dropped without an answer.
    rows.push_back({"ban_with_reject",
                    {{withBan(tcpPolicy("r", {port(80)}, {conns(1)}, Action::Reject), 1, hour)}},
                    {admitted(syn4(kSrc4), "r"), rejected(syn4(kSrc4), "r"),
                     banned(syn4(kSrc4), "r"), banned(ack4(kSrc4), "r")}});
    // A short ban ends by itself (1 ns: over by the time inspect looks);
    // the source's ban_after bucket is still empty, so its next limited
    // unit bans it again.
    rows.push_back({"ban_expires",
                    {{withBan(tcpPolicy("d", {port(80)}, {pkts(1)}), 1, 1)}},
                    {admitted(syn4(kSrc4), "d"), limited(syn4(kSrc4), "d"),
                     banned(syn4(kSrc4), "d").ban("d", kSrc4, false),
                     banned(syn4(kSrc4), "d").ban("d", kSrc4, false)}});
    // Bans are refused where they cannot work.
    Policy mon = withBan(tcpPolicy("m", {port(80)}, {pkts(1)}, Action::Monitor), 1, hour);
    Policy global = withBan(tcpPolicy("g", {port(80)}, {pkts(1)}), 1, hour);
    global.key = KeyMode::Global;
    Policy half = tcpPolicy("h", {port(80)}, {pkts(1)});
    half.banNs = hour;
    rows.push_back({"ban_refused_under_monitor_global_or_half",
                    {{tcpPolicy("d", {port(80)}, {pkts(5)})}},
                    {refusedInstall({{mon}}), refusedInstall({{global}}), refusedInstall({{half}}),
                     admitted(syn4(kSrc4), "d")}});
    return rows;
}

// ---- redirect --------------------------------------------------------------
std::vector<Row> redirectRows()
{
    std::vector<Row> rows;
    Policy r = redirectTo(tcpPolicy("r", {port(80)}, {pkts(1)}), "lo");
    Policy u = redirectTo(udpPolicy("u", {port(53)}, {pkts(1)}), "lo");
    rows.push_back({"redirect_excess",
                    {{r, u}},
                    {admitted(syn4(kSrc4), "r"), redirected(syn4(kSrc4), "r"),
                     admitted(ack6(kSrc6), "r"), redirected(ack6(kSrc6), "r"),
                     admitted(Packet::v4(kSrc4, kServer4).udp(1, 53).build(), "u"),
                     redirected(Packet::v4(kSrc4, kServer4).udp(1, 53).build(), "u")}});
    // The target follows the generation: back to drop, and to redirect again.
    Policy d = tcpPolicy("r", {port(80)}, {pkts(1)});
    rows.push_back({"redirect_follows_generation",
                    {{r}},
                    {admitted(syn4(kSrc4), "r"), redirected(syn4(kSrc4), "r"),
                     limited(syn4(kSrc4), "r").after({{d}}),
                     redirected(syn4(kSrc4), "r").after({{r}})}});
    // An unknown interface is refused at install.
    rows.push_back({"redirect_unknown_interface_refused",
                    {{r}},
                    {refusedInstall({{redirectTo(tcpPolicy("r", {port(80)}, {pkts(1)}), "nosuchif0")}}),
                     admitted(syn4(kSrc4), "r"), redirected(syn4(kSrc4), "r")}});
    return rows;
}

}  // namespace

// The ban table as the metrics see it: banned sources against its size.
TEST(BanTable, CountsBannedSourcesAgainstCapacity)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached();
    EXPECT_EQ(dp.banCapacity(), uint32_t(SLUICE_MAX_BANS));
    dp.install(Ruleset{{withBan(tcpPolicy("d", {port(80)}, {pkts(1)}), 1, kDayNs)}, {}, {}});
    EXPECT_EQ(dp.bannedSources(), 0U);
    uint32_t action = 0;
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(testRun(dp.progFd(), syn4(kSrc4), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP));
    EXPECT_EQ(dp.bannedSources(), 1U);
    const ResetCount reset = dp.resetSource(Address::parse(kSrc4));
    EXPECT_EQ(reset.states, 1U) << "its bucket state";
    EXPECT_EQ(reset.bans, 1U) << "its ban";
    EXPECT_EQ(dp.bannedSources(), 0U);
}

namespace {

INSTANTIATE_TEST_SUITE_P(Reject, BpfRow, testing::ValuesIn(rejectRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Respond, BpfRow, testing::ValuesIn(respondRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Ban, BpfRow, testing::ValuesIn(banRows()), rowName);
INSTANTIATE_TEST_SUITE_P(Redirect, BpfRow, testing::ValuesIn(redirectRows()), rowName);

}  // namespace
}  // namespace sluice::test
