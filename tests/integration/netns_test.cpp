// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The integration fixture tested alone, without sluice: namespaces come and
// go, and the traffic tools count exactly what was sent when nothing limits.
// These are the baselines that make "exactly the burst" in sluice_test.cpp
// mean something.
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "netns.h"

using namespace slit;

namespace {

bool nsExists(const std::string& name) {
    struct stat st;
    return stat(("/run/netns/" + name).c_str(), &st) == 0;
}

}  // namespace

TEST(Fixture, UniqueNamesFitInterfaceNames) {
    std::string a = uniqueName('r'), b = uniqueName('r');
    EXPECT_NE(a, b);
    EXPECT_LE(a.size(), size_t(IFNAMSIZ - 1));
    EXPECT_EQ(a.rfind("slit" + std::to_string(getpid()), 0), 0u);
}

TEST(Fixture, NamespacesAreRemovedWithTheTestbed) {
    std::string receiver, client, rif;
    {
        Testbed bed;
        auto& l = bed.addClient(1, 1);
        receiver = bed.receiver().name();
        client = l.client->name();
        rif = l.receiverIf;
        EXPECT_TRUE(nsExists(receiver));
        EXPECT_TRUE(nsExists(client));
        // The receiver's veth end lives in the receiver namespace only.
        EXPECT_EQ(if_nametoindex(rif.c_str()), 0u) << rif << " leaked into the host namespace";
        unsigned idx = bed.receiver().run([&] { return if_nametoindex(rif.c_str()); });
        EXPECT_NE(idx, 0u);
    }
    EXPECT_FALSE(nsExists(receiver));
    EXPECT_FALSE(nsExists(client));
}

TEST(Fixture, NamespacesAreRemovedWhenATestThrows) {
    std::string receiver;
    try {
        Testbed bed;
        receiver = bed.receiver().name();
        bed.addClient(1, 0);
        throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
    }
    EXPECT_FALSE(nsExists(receiver));
}

TEST(Fixture, RunInChildSeesTheNamespace) {
    Testbed bed;
    auto& l = bed.addClient(1, 0);
    std::string out;
    int rc = bed.receiver().runInChild(
        [&](int fd) {
            std::string s = std::to_string(if_nametoindex(l.receiverIf.c_str()));
            return write(fd, s.data(), s.size()) == ssize_t(s.size()) ? 7 : 1;
        },
        &out);
    EXPECT_EQ(rc, 7);
    EXPECT_NE(out, "0");
    EXPECT_FALSE(out.empty());
}

TEST(Fixture, NoXdpOnAFreshVeth) {
    Testbed bed;
    auto& l = bed.addClient(1, 0);
    std::string how;
    EXPECT_FALSE(xdpAttached(bed.receiver(), l.receiverIf, &how)) << how;
    EXPECT_FALSE(ipShowsXdp(bed.receiver(), l.receiverIf));
}

class Baseline : public ::testing::TestWithParam<bool> {};

TEST_P(Baseline, UdpEveryDatagramArrives) {
    const bool v6 = GetParam();
    Testbed bed;
    auto& l = bed.addClient(2, 2);
    const auto& srcs = v6 ? l.client6 : l.client4;
    const std::string dst = v6 ? l.receiver6 : l.receiver4;
    UdpCounter server(bed.receiver(), dst, 5353);
    EXPECT_EQ(udpSend(*l.client, srcs[0], dst, 5353, 50), 50);
    EXPECT_EQ(udpSend(*l.client, srcs[1], dst, 5353, 30), 30);
    auto got = server.finish();
    EXPECT_EQ(got[srcs[0]], 50);
    EXPECT_EQ(got[srcs[1]], 30);
    EXPECT_EQ(got.size(), 2u);
}

TEST_P(Baseline, TcpEveryConnectSucceeds) {
    const bool v6 = GetParam();
    Testbed bed;
    auto& l = bed.addClient(1, 1);
    const std::string src = v6 ? l.client6[0] : l.client4[0];
    const std::string dst = v6 ? l.receiver6 : l.receiver4;
    TcpCounter server(bed.receiver(), dst, 8080);
    EXPECT_EQ(tcpConnects(*l.client, src, dst, 8080, 12, Millis(500), 1), 12);
    EXPECT_EQ(tcpConnects(*l.client, src, dst, 8080, 12, Millis(500), 12), 12);
    auto got = server.finish();
    EXPECT_EQ(got[src], 24);
}

TEST_P(Baseline, TcpRefusedPortFailsFast) {
    const bool v6 = GetParam();
    Testbed bed;
    auto& l = bed.addClient(1, 1);
    const std::string src = v6 ? l.client6[0] : l.client4[0];
    const std::string dst = v6 ? l.receiver6 : l.receiver4;
    int64_t t0 = monoNs();
    EXPECT_EQ(tcpConnects(*l.client, src, dst, 8081, 3, Millis(500), 1), 0);
    EXPECT_LT(monoNs() - t0, 400'000'000) << "an RST should end each attempt at once";
}

TEST(Fixture, TwoClientLinksAreSeparateSubnets) {
    Testbed bed;
    auto& a = bed.addClient(1, 1);
    auto& b = bed.addClient(1, 1);
    EXPECT_NE(a.receiver4, b.receiver4);
    UdpCounter s4(bed.receiver(), "0.0.0.0", 5353);
    EXPECT_EQ(udpSend(*a.client, a.client4[0], a.receiver4, 5353, 5), 5);
    EXPECT_EQ(udpSend(*b.client, b.client4[0], b.receiver4, 5353, 7), 7);
    auto got = s4.finish();
    EXPECT_EQ(got[a.client4[0]], 5);
    EXPECT_EQ(got[b.client4[0]], 7);
}

INSTANTIATE_TEST_SUITE_P(Family, Baseline, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IPv6" : "IPv4"; });

TEST_P(Baseline, TcpBulkTransferArrivesWhole) {
    const bool v6 = GetParam();
    Testbed bed;
    auto& l = bed.addClient(1, 1);
    const std::string src = v6 ? l.client6[0] : l.client4[0];
    const std::string dst = v6 ? l.receiver6 : l.receiver4;
    constexpr uint64_t kBytes = 8 << 20;
    TcpSink sink(bed.receiver(), dst, 8080);
    EXPECT_EQ(tcpSendBytes(*l.client, src, dst, 8080, kBytes), int64_t(kBytes));
    EXPECT_EQ(sink.finish(), kBytes);
}

TEST(Fixture, AUdpPortHasOneReceiver) {
    Testbed bed;
    auto& l = bed.addClient(1, 0);
    UdpCounter first(bed.receiver(), l.receiver4, 5353);
    EXPECT_THROW(UdpCounter(bed.receiver(), l.receiver4, 5353), std::runtime_error);
    // collect() starts a new count and keeps receiving.
    EXPECT_EQ(udpSend(*l.client, l.client4[0], l.receiver4, 5353, 4), 4);
    EXPECT_EQ(first.collect()[l.client4[0]], 4);
    EXPECT_EQ(udpSend(*l.client, l.client4[0], l.receiver4, 5353, 3), 3);
    EXPECT_EQ(first.finish()[l.client4[0]], 3);
}
