// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The generation flip: a newly installed ruleset judges the very next packet,
// and a policy that keeps its name and limits keeps its per-source state.
#include <unistd.h>

#include "error.h"
#include "harness.h"

namespace sluice::test {
namespace {

const std::string kA = "10.8.0.1";

Frame syn(uint16_t dport = 80, const std::string& src = kA)
{
    return Packet::v4(src, kServer4).tcp(40000, dport, tcpflag::Syn).build();
}

std::vector<Row> generationRows()
{
    std::vector<Row> rows;
    const Policy web2 = tcpPolicy("web", {port(80)}, {pkts(2)});

    Policy webMoreLimit = tcpPolicy("web", {port(80)}, {pkts(3)});
    Policy webMorePorts = tcpPolicy("web", {port(80), port(81)}, {pkts(2)});
    Policy webMoved = tcpPolicy("web", {port(90)}, {pkts(2)});
    Policy webMonitor = tcpPolicy("web", {port(80)}, {pkts(2)}, Action::Monitor);

    rows.push_back({"same_name_and_limits_keeps_state",
                    {{web2}},
                    {admitted(syn(), "web"), admitted(syn(), "web"),
                     install({{webMorePorts, tcpPolicy("api", {port(8000)}, {pkts(1)})}}),
                     limited(syn(), "web").remaining("web", kA, {0}),
                     limited(syn(81), "web"),
                     admitted(syn(8000), "api")}});
    rows.push_back({"changed_limits_start_fresh",
                    {{web2}},
                    {admitted(syn(), "web"), admitted(syn(), "web"), limited(syn(), "web"),
                     install({{webMoreLimit}}),
                     admitted(syn(), "web").remaining("web", kA, {2})}});
    rows.push_back({"action_change_keeps_state",
                    {{web2}},
                    {admitted(syn(), "web"), admitted(syn(), "web"), limited(syn(), "web"),
                     install({{webMonitor}}), monitored(syn(), "web")}});
    rows.push_back({"port_move_keeps_state",
                    {{web2}},
                    {admitted(syn(), "web"), admitted(syn(), "web"), install({{webMoved}}),
                     passed(syn(80)), limited(syn(90), "web")}});
    rows.push_back({"removed_policy_passes_next_packet",
                    {{web2}},
                    {admitted(syn(), "web"), install({}), passed(syn()), passed(syn()),
                     passed(syn())}});
    rows.push_back({"added_policy_limits_next_packet",
                    {{}},
                    {passed(syn()), install({{tcpPolicy("web", {port(80)}, {pkts(1)})}}),
                     admitted(syn(), "web"), limited(syn(), "web")}});
    rows.push_back({"other_policy_added_keeps_state",
                    {{web2}},
                    {admitted(syn(), "web"),
                     install({{udpPolicy("dns", {port(53)}, {pkts(5)}), web2}}),
                     admitted(syn(), "web"), limited(syn(), "web")}});
    rows.push_back({"allow_added_then_removed",
                    {{web2}},
                    {admitted(syn(), "web"), admitted(syn(), "web"), limited(syn(), "web"),
                     install({{web2}, {kA + "/32"}, {}}), allowed(syn(), "web"),
                     install({{web2}}), limited(syn(), "web")}});
    rows.push_back({"deny_added_then_removed",
                    {{web2}},
                    {admitted(syn(), "web"), install({{web2}, {}, {"10.8.0.0/16"}}),
                     denied(syn(), "web"), denied(syn(9999)), install({{web2}}),
                     admitted(syn(), "web").remaining("web", kA, {0})}});
    rows.push_back({"reinstall_same_ruleset_is_a_noop",
                    {{web2}},
                    {admitted(syn(), "web"), install({{web2}}), install({{web2}}),
                     admitted(syn(), "web"), limited(syn(), "web")}});
    return rows;
}

INSTANTIATE_TEST_SUITE_P(Generations, BpfRow, testing::ValuesIn(generationRows()), rowName);

// Datapath::undoInstall, for a daemon's reload that failed on another
// interface: the replaced rules come back with their state tags, so a source
// that had spent its bucket is still limited and the deny list is back.
// Installing the old rules again, as the daemon did before, gave "web" yet
// another tag and the source a full bucket.
TEST(Generations, UndoInstallBringsBackTheReplacedRulesAndTheirBuckets)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached();
    const std::string denied = "10.9.0.1";
    dp.install(Rules{{tcpPolicy("web", {port(80)}, {pkts(2)}), udpPolicy("dns", {port(53)}, {pkts(5)})},
                     {},
                     {"10.9.0.0/16"}}
                   .make());
    const std::vector<InstalledPolicy> before = dp.installedPolicies();
    uint32_t action = 0;
    for (uint32_t want : {XDP_PASS, XDP_PASS, XDP_DROP}) {
        ASSERT_EQ(testRun(dp.progFd(), syn(), &action), 0);
        ASSERT_EQ(action, want);
    }

    dp.install(Rules{{tcpPolicy("web", {port(80)}, {pkts(3)})}}.make());
    ASSERT_EQ(testRun(dp.progFd(), syn(), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS)) << "changed limits: a fresh bucket";
    ASSERT_EQ(testRun(dp.progFd(), syn(80, denied), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_PASS)) << "no deny list";

    dp.undoInstall();
    const std::vector<InstalledPolicy> after = dp.installedPolicies();
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < before.size(); i++) {
        EXPECT_EQ(after[i].name, before[i].name);
        EXPECT_EQ(after[i].slot, before[i].slot) << before[i].name;
        EXPECT_EQ(after[i].stateTag, before[i].stateTag) << before[i].name;
    }
    ASSERT_EQ(testRun(dp.progFd(), syn(), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP)) << "the spent bucket is back";
    ASSERT_EQ(testRun(dp.progFd(), syn(80, denied), &action), 0);
    EXPECT_EQ(action, uint32_t(XDP_DROP)) << "the deny list is back";
    EXPECT_THROW(dp.undoInstall(), Error) << "one install, one undo";
}

// Anything installed or reset after the install: undoInstall refuses and
// changes nothing (the generation it would flip to is no longer the
// replaced one, or a reset source would get its old bucket back).
TEST(Generations, UndoInstallRefusesAfterAResetOrNothingToUndo)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root (CAP_BPF)";
    Datapath dp = Datapath::loadUnattached();
    EXPECT_THROW(dp.undoInstall(), Error) << "no install yet";
    dp.install(Rules{{tcpPolicy("web", {port(80)}, {pkts(2)})}}.make());
    dp.install(Rules{{tcpPolicy("api", {port(81)}, {pkts(2)})}}.make());
    dp.resetSource(Address::parse(kA));
    EXPECT_THROW(dp.undoInstall(), Error);
    const std::vector<InstalledPolicy> now = dp.installedPolicies();
    ASSERT_EQ(now.size(), 1U);
    EXPECT_EQ(now[0].name, "api");
}

}  // namespace
}  // namespace sluice::test
