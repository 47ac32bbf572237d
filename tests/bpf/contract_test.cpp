// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Rows that pin down corners of the documented contract (bpf/lib/parse.h,
// bpf/sluice.bpf.c, RFC 8200) where the data path is easy to get wrong.
#include "harness.h"

namespace sluice::test {
namespace {

const char* kSrc6 = "2001:db8:9::1";

std::vector<Row> contractRows()
{
    std::vector<Row> rows;

    // RFC 8200 4.5: the fragment header's Next Header names the first header
    // of the fragmentable part, and every fragment carries the same value.
    // With a destination-options header after the fragment header, the
    // first fragment is Frag(nh=60) DstOpts(nh=6) TCP, and every later
    // fragment is Frag(nh=60) followed by data. Later fragments must follow
    // the first fragment's verdict.
    const Rules one{{tcpPolicy("web", {port(80)}, {pkts(1)})}};
    const Rules two{{tcpPolicy("web", {port(80)}, {pkts(2)})}};
    auto first = [](uint32_t id) {
        return Packet::v6(kSrc6, kServer6).fragment(0, true, id).ext(ext::DestOpts)
            .tcp(40000, 80, tcpflag::Syn).payload(24).build();
    };
    auto later = [](uint32_t id) {
        return Packet::v6(kSrc6, kServer6).fragment(5, false, id).raw(ext::DestOpts, 24).build();
    };
    rows.push_back({"v6_fragment_dstopts_later_follows_limited_first",
                    one,
                    {admitted(Packet::v6(kSrc6, kServer6).tcp(1, 80, tcpflag::Syn).build(), "web"),
                     limited(first(140), "web"), limited(later(140), "web")}});
    rows.push_back({"v6_fragment_dstopts_later_follows_admitted_first",
                    two,
                    {admitted(first(141), "web").remaining("web", kSrc6, {1}),
                     admitted(later(141), "web").remaining("web", kSrc6, {0})}});

    // An orphan later fragment whose fragment header names destination
    // options (the upper protocol is not visible) is still a fragment of
    // some datagram: with TCP policies installed it must not pass unjudged.
    rows.push_back({"v6_orphan_fragment_dstopts_with_tcp_policy",
                    one,
                    {orphanFragment(later(142))}});

    // AH's length is (hdrlen + 2) * 4 (RFC 4302); every other extension
    // header's is (hdrlen + 1) * 8. A legal chain with AH in it must still
    // reach the TCP header: otherwise a SYN flood with this chain passes
    // unlimited (or a benign packet is dropped as MALFORMED).
    {
        auto chain = [] {
            return Packet::v6(kSrc6, kServer6).ext(ext::HopByHop).ext(ext::DestOpts, 16)
                .ext(ext::Routing).fragment(0, false, 1).ext(ext::Ah).ext(ext::DestOpts)
                .tcp(40000, 80, tcpflag::Syn).build();
        };
        rows.push_back({"v6_ah_chain_syn_flood_is_limited", one,
                        {admitted(chain(), "web"), limited(chain(), "web"),
                         limited(chain(), "web")}});
        rows.push_back({"v6_ah_alone_is_parsed", one,
                        {admitted(Packet::v6(kSrc6, kServer6).ext(ext::Ah)
                                      .tcp(40000, 80, tcpflag::Syn).build(), "web")}});
    }

    // parse.h: "an IP packet whose headers are cut short ... PARSE_MALFORMED".
    // A TCP header whose options (data offset > 5) run past the frame.
    {
        Frame f = Packet::v4("10.9.0.1", kServer4).tcp(1, 80, tcpflag::Syn, 8).build();
        const Rules r{{tcpPolicy("web", {port(80)}, {pkts(100)})}};
        rows.push_back({"v4_tcp_options_cut_at_fixed_header", r,
                        {malformed(f.truncated(f.end("tcp-base")))}});
        rows.push_back({"v4_tcp_options_cut_one_short", r,
                        {malformed(f.truncated(f.end("tcp") - 1))}});
    }
    return rows;
}

INSTANTIATE_TEST_SUITE_P(Contract, BpfRow, testing::ValuesIn(contractRows()), rowName);

}  // namespace
}  // namespace sluice::test
