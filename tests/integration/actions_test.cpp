// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Actions on the excess with real sockets, sluice in native XDP mode on the
// receiver's veth:
//  - reject: a client's connect() over the limit fails at once with
//    ECONNREFUSED (the RST+ACK built by XDP_TX), instead of timing out;
//  - redirect: excess datagrams leave through a second veth of the receiver
//    namespace and arrive in a capture namespace.
// veth delivers XDP_TX / XDP_REDIRECT frames (ndo_xdp_xmit) only to a peer
// whose receive path runs NAPI: the peer gets GRO turned on (ethtool), or,
// where that fails, an XDP program of its own (sluice with no policy).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "datapath.h"
#include "netns.h"
#include "attachments.h"
#include "paths.h"
#include "policy.h"

using namespace slit;
using sluice::Action;
using sluice::AttachOptions;
using sluice::Datapath;
using sluice::Limit;
using sluice::LimitKind;
using sluice::Policy;
using sluice::PortRange;
using sluice::Proto;
using sluice::Ruleset;
using sluice::XdpMode;

namespace {

constexpr uint64_t kDayNs = 86400ULL * 1'000'000'000ULL;
constexpr uint16_t kTcpPort = 8081;
constexpr uint16_t kUdpPort = 7001;

socklen_t sockAddr(const std::string& addr, uint16_t port, sockaddr_storage* out)
{
    std::memset(out, 0, sizeof(*out));
    if (isV6(addr)) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(out);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr);
        return sizeof(*s6);
    }
    auto* s4 = reinterpret_cast<sockaddr_in*>(out);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    inet_pton(AF_INET, addr.c_str(), &s4->sin_addr);
    return sizeof(*s4);
}

struct ConnectResult {
    int err = -1;        // 0: connected; else the errno (ETIMEDOUT: no answer in time)
    int64_t elapsedNs = 0;
};

// One TCP connect from src to [dst]:port inside ns, waiting at most `timeout`.
ConnectResult connectOnce(const Netns& ns, const std::string& src, const std::string& dst,
                          uint16_t port, Millis timeout)
{
    ConnectResult r;
    int fd = ns.socket(isV6(dst) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    sockaddr_storage from, to;
    socklen_t fromLen = sockAddr(src, 0, &from), toLen = sockAddr(dst, port, &to);
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), fromLen)) {
        r.err = errno;
        close(fd);
        return r;
    }
    int64_t start = monoNs();
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&to), toLen);
    if (rc == 0) {
        r.err = 0;
    } else if (errno != EINPROGRESS) {
        r.err = errno;
    } else {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, int(timeout.count())) <= 0) {
            r.err = ETIMEDOUT;
        } else {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            r.err = err;
        }
    }
    r.elapsedNs = monoNs() - start;
    close(fd);
    return r;
}

uint64_t verdictPackets(const Datapath& dp, const std::string& policy, uint32_t verdict)
{
    for (const auto& sc : dp.counters())
        if (sc.policy == policy)
            return sc.verdicts.at(verdict).packets;
    ADD_FAILURE() << "no counters for policy " << policy;
    return 0;
}

// The client computes its checksums instead of leaving them to "hardware"
// (veth offload): a frame that XDP redirects loses the skb's checksum state,
// and the capture namespace would drop it as corrupt. A real NIC's frames
// carry full checksums.
void softwareChecksums(Netns& ns, const std::string& iface)
{
    mustRun({"ip", "netns", "exec", ns.name(), "ethtool", "-K", iface, "tx", "off"});
}

class ActionTraffic : public ::testing::TestWithParam<bool> {
protected:
    bool v6() const { return GetParam(); }
};

}  // namespace

TEST_P(ActionTraffic, RejectRefusesConnectionsAtOnce)
{
    Testbed bed;
    Testbed::Link& link = bed.addClient(2, 2);
    Attachments att;
    enableXdpReceive(*link.client, link.clientIf, att);
    Datapath dp = att.attach(bed.receiver(), link.receiverIf);
    ASSERT_EQ(dp.attachInfo().mode, XdpMode::Native);

    Policy p;
    p.name = "rej";
    p.proto = Proto::Tcp;
    p.ports = {PortRange{kTcpPort, kTcpPort}};
    p.limits = {Limit{LimitKind::Connections, 2, kDayNs, 0}};
    p.action = Action::Reject;
    p.ipv6Prefix = 128;
    dp.install(Ruleset{{p}, {}, {}});

    const std::string src = v6() ? link.client6[0] : link.client4[0];
    const std::string other = v6() ? link.client6[1] : link.client4[1];
    const std::string dst = v6() ? link.receiver6 : link.receiver4;
    TcpCounter server(bed.receiver(), dst, kTcpPort);

    for (int i = 0; i < 2; i++)
        EXPECT_EQ(connectOnce(*link.client, src, dst, kTcpPort, Millis(2000)).err, 0)
            << "connection " << i + 1 << " is within the limit";
    for (int i = 0; i < 3; i++) {
        ConnectResult r = connectOnce(*link.client, src, dst, kTcpPort, Millis(3000));
        EXPECT_EQ(r.err, ECONNREFUSED) << "over the limit: " << strerror(r.err);
        // At once: a dropped SYN would be retried after 1 s.
        EXPECT_LT(r.elapsedNs, 500'000'000) << "refused after " << r.elapsedNs / 1000 << " us";
    }
    EXPECT_EQ(connectOnce(*link.client, other, dst, kTcpPort, Millis(2000)).err, 0)
        << "another source has its own bucket";

    auto got = server.finish();
    EXPECT_EQ(got[src], 2) << "the server saw only the admitted connections";
    EXPECT_EQ(got[other], 1);
    EXPECT_EQ(verdictPackets(dp, "rej", SLUICE_VERDICT_REJECTED), 3U);
    EXPECT_EQ(verdictPackets(dp, "rej", SLUICE_VERDICT_LIMITED), 0U);
}

TEST_P(ActionTraffic, RedirectSendsExcessToCaptureNamespace)
{
    Testbed bed;
    Testbed::Link& link = bed.addClient(1, 1);
    Netns capture;
    Attachments att;
    softwareChecksums(*link.client, link.clientIf);

    // receiver --[rcvOut]==[capIf]-- capture. capIf takes the receiver's
    // MAC and addresses, so the redirected frames (addressed to the
    // receiver) are delivered to its sockets.
    const std::string rcvOut = uniqueName('o'), capIf = uniqueName('k');
    std::string mac;
    {
        std::string out = bed.receiver().ip({"-o", "link", "show", link.receiverIf});
        auto at = out.find("link/ether ");
        ASSERT_NE(at, std::string::npos) << out;
        mac = out.substr(at + 11, 17);
    }
    bed.receiver().ip({"link", "add", rcvOut, "type", "veth", "peer", "name", capIf, "address", mac,
                       "netns", capture.name()});
    capture.ip({"addr", "add", link.receiver4 + "/24", "dev", capIf});
    capture.ip({"-6", "addr", "add", link.receiver6 + "/112", "dev", capIf, "nodad"});
    capture.ip({"link", "set", capIf, "up"});
    bed.receiver().ip({"link", "set", rcvOut, "up"});
    enableXdpReceive(capture, capIf, att);

    Datapath dp = att.attach(bed.receiver(), link.receiverIf);
    ASSERT_EQ(dp.attachInfo().mode, XdpMode::Native);
    Policy p;
    p.name = "redir";
    p.proto = Proto::Udp;
    p.ports = {PortRange{kUdpPort, kUdpPort}};
    p.limits = {Limit{LimitKind::Packets, 5, kDayNs, 0}};
    p.action = Action::Redirect;
    p.redirectTo = rcvOut;
    // redirect_to resolves in the namespace that installs.
    bed.receiver().run([&] { dp.install(Ruleset{{p}, {}, {}}); });
    auto installed = dp.installed();
    ASSERT_EQ(installed.policies.size(), 1U);
    EXPECT_EQ(installed.policies[0].action, Action::Redirect);
    EXPECT_NE(installed.policies[0].redirectIfindex, 0U);

    const std::string src = v6() ? link.client6[0] : link.client4[0];
    const std::string dst = v6() ? link.receiver6 : link.receiver4;
    UdpCounter server(bed.receiver(), dst, kUdpPort);
    UdpCounter captured(capture, dst, kUdpPort);
    ASSERT_EQ(udpSend(*link.client, src, dst, kUdpPort, 20), 20);

    auto atServer = server.finish();
    auto atCapture = captured.finish();
    EXPECT_EQ(atServer[src], 5) << "the receiver gets the burst";
    EXPECT_EQ(atCapture[src], 15) << "the excess arrives in the capture namespace";
    EXPECT_EQ(verdictPackets(dp, "redir", SLUICE_VERDICT_REDIRECTED), 15U);
    EXPECT_EQ(verdictPackets(dp, "redir", SLUICE_VERDICT_LIMITED), 0U);
}

INSTANTIATE_TEST_SUITE_P(Families, ActionTraffic, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                             return std::string(i.param ? "IPv6" : "IPv4");
                         });

// A source that keeps exceeding is banned: every datagram dropped for the
// ban's duration while another source is untouched; `sluice inspect` shows
// when the ban ends and `sluice reset` lifts it. Real traffic, real CLI.
TEST_P(ActionTraffic, BanDropsARepeatOffenderUntilReset)
{
    Testbed bed;
    Testbed::Link& link = bed.addClient(2, 2);
    Attachments att;
    Datapath dp = att.attach(bed.receiver(), link.receiverIf);
    const uint16_t port = 7300;
    const uint64_t hourNs = 3600ULL * 1'000'000'000ULL;
    Policy p;
    p.name = "banned";
    p.proto = Proto::Udp;
    p.ports = {PortRange{port, port}};
    p.limits = {Limit{LimitKind::Packets, 5, hourNs, 0}};
    p.ipv6Prefix = 128;
    // The 4th limited datagram in an hour bans the source for an hour.
    p.banAfter = Limit{LimitKind::Packets, 3, hourNs, 0};
    p.banNs = hourNs;
    dp.install(Ruleset{{p}, {}, {}});

    const std::string src = v6() ? link.client6[0] : link.client4[0];
    const std::string other = v6() ? link.client6[1] : link.client4[1];
    const std::string dst = v6() ? link.receiver6 : link.receiver4;
    UdpCounter server(bed.receiver(), dst, port);

    ASSERT_EQ(udpSend(*link.client, src, dst, port, 20), 20);
    ASSERT_EQ(udpSend(*link.client, other, dst, port, 3), 3);
    auto got = server.collect();
    EXPECT_EQ(got[src], 5) << "the bucket's 5, then nothing";
    EXPECT_EQ(got[other], 3);
    EXPECT_EQ(verdictPackets(dp, "banned", SLUICE_VERDICT_LIMITED), 3U) << "3 limited";
    EXPECT_EQ(verdictPackets(dp, "banned", SLUICE_VERDICT_BANNED), 12U) << "the 4th over and all after it";

    const std::string ns = "--net=" + bed.receiver().path();
    CmdResult ins = runCmd({"nsenter", ns, sluiceBinary(), "inspect", link.receiverIf, src, "--json"});
    ASSERT_EQ(ins.status, 0) << ins.err;
    EXPECT_NE(ins.out.find("\"banned\": true"), std::string::npos) << ins.out;
    CmdResult text = runCmd({"nsenter", ns, sluiceBinary(), "inspect", link.receiverIf, src});
    EXPECT_NE(text.out.find("banned"), std::string::npos) << text.out;

    CmdResult reset = runCmd({"nsenter", ns, sluiceBinary(), "reset", link.receiverIf, src});
    ASSERT_EQ(reset.status, 0) << reset.err;
    EXPECT_NE(reset.out.find("forgot 1 bucket state, lifted 1 ban\n"), std::string::npos) << reset.out;
    ASSERT_EQ(udpSend(*link.client, src, dst, port, 8), 8);
    got = server.finish();
    EXPECT_EQ(got[src], 5) << "reset lifted the ban and refilled the bucket";
    ins = runCmd({"nsenter", ns, sluiceBinary(), "inspect", link.receiverIf, src, "--json"});
    EXPECT_NE(ins.out.find("\"banned\": false"), std::string::npos) << ins.out;
}
