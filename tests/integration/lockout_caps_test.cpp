// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The real binary refuses, before touching the kernel: a config that could
// lock out the operator's SSH session or an admin CIDR (exit 2, naming the
// rule and the address; --force goes on), and a verb run without the
// capabilities it needs (exit 1, naming the missing ones). The interface
// named does not exist, so a check that let the command through could only
// end in "unknown interface", never touch a real one.
// `sluice run` makes the same check at start (exit 2, nothing attached) and
// on every reload (refused, counted, the running config stays in force),
// shown by real traffic from a testbed client that plays the SSH client.
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include "datapath.h"
#include "netns.h"
#include "paths.h"
#include "sluice_run.h"

using namespace slit;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

struct LockoutCli : ::testing::Test {
    void SetUp() override {
        iface_ = uniqueName('n');  // never created
        config_ = "/tmp/sluice-lockout-" + std::to_string(getpid()) + ".toml";
        std::ofstream(config_) << "[sluice]\nadmin = [\"198.51.100.0/24\"]\n"
                                  "[[deny]]\ncidr = \"203.0.113.0/24\"\n";
    }
    void TearDown() override { std::remove(config_.c_str()); }
    CmdResult run(const std::string& ssh, const std::vector<std::string>& args) {
        std::vector<std::string> argv = {"env", "-u", "SSH_CLIENT", "SSH_CONNECTION=" + ssh, sluiceBinary()};
        argv.insert(argv.end(), args.begin(), args.end());
        return runCmd(argv);
    }
    std::string iface_, config_;
};

constexpr uint16_t kPort = 7000;
constexpr uint16_t kSshPort = 22;
constexpr uint16_t kMetricsPort = 9464;

// `sluice run` in the receiver namespace of a testbed, with client A as the
// source of the SSH session it was started from.
struct LockoutDaemon : ::testing::Test {
    void SetUp() override {
        link_ = &bed_.addClient(2, 0);
        iface_ = link_->receiverIf;
        a_ = link_->client4[0];
        b_ = link_->client4[1];
        run_ = std::make_unique<SluiceRun>(bed_.receiver(), std::vector<std::string>{iface_});
        run_->setEnv({"SSH_CONNECTION=" + a_ + " 50000 " + link_->receiver4 + " " + std::to_string(kSshPort)});
    }
    void TearDown() override {
        if (HasFailure())
            std::fprintf(stderr, "[slit] sluice run log:\n%s", run_->log().c_str());
    }
    // A UDP policy on kPort; `deny` adds a [[deny]] of that CIDR.
    std::string config(const std::string& packets, const std::string& deny = "") const {
        std::string out = "[sluice]\ninterfaces = [\"" + iface_ + "\"]\nmax_sources = 4096\nmetrics = \"127.0.0.1:" +
                          std::to_string(kMetricsPort) + "\"\n\n[[policy]]\nname = \"udp-api\"\nproto = \"udp\"\n"
                          "ports = [" + std::to_string(kPort) + "]\npackets = \"" + packets + "\"\naction = \"drop\"\n";
        if (!deny.empty())
            out += "\n[[deny]]\ncidr = \"" + deny + "\"\n";
        return out;
    }
    int send(const std::string& src, int count) {
        UdpCounter server(bed_.receiver(), link_->receiver4, kPort);
        EXPECT_EQ(udpSend(*link_->client, src, link_->receiver4, kPort, count), count);
        return server.finish()[src];
    }
    Testbed bed_;
    Testbed::Link* link_ = nullptr;
    std::string iface_, a_, b_;
    std::unique_ptr<SluiceRun> run_;
};

}  // namespace

TEST_F(LockoutCli, AttachAndApplyRefuseADenyOverTheSshClient) {
    for (auto verb : {std::vector<std::string>{"attach", iface_, "--config", config_},
                      std::vector<std::string>{"apply", iface_, "--config", config_}}) {
        CmdResult r = run("203.0.113.9 50000 192.0.2.1 22", verb);
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_TRUE(has(r.err, "203.0.113.0/24") && has(r.err, "203.0.113.9")) << r.err;
        EXPECT_TRUE(has(r.err, "--force")) << r.err;
        verb.push_back("--force");
        r = run("203.0.113.9 50000 192.0.2.1 22", verb);
        EXPECT_FALSE(has(r.err, "lock out")) << "--force skips the check: " << r.err;
        EXPECT_TRUE(has(r.err, iface_)) << "and goes on to the (missing) interface: " << r.err;
    }
    CmdResult r = run("192.0.2.50 50000 192.0.2.1 22", {"attach", iface_, "--config", config_});
    EXPECT_FALSE(has(r.err, "lock out")) << "another client is not covered: " << r.err;
}

TEST_F(LockoutCli, MissingCapabilitiesAreNamed) {
    CmdResult r = runCmd({"capsh", "--drop=cap_net_admin", "--", "-c", sluiceBinary() + " attach " + iface_});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN")) << r.err;
    EXPECT_TRUE(has(r.err, "lacks CAP_NET_ADMIN:")) << r.err;
    r = runCmd({"capsh", "--drop=cap_net_admin,cap_sys_admin", "--", "-c", sluiceBinary() + " detach " + iface_});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "lacks CAP_NET_ADMIN and CAP_SYS_ADMIN")) << r.err;
    r = runCmd({"capsh", "--drop=cap_bpf", "--", "-c", sluiceBinary() + " attach " + iface_});
    EXPECT_EQ(r.status, 2) << "CAP_SYS_ADMIN stands in for CAP_BPF: " << r.err;
    EXPECT_TRUE(has(r.err, "unknown interface")) << r.err;
}

// Least privilege: the pin directory and every pin in it are root's alone.
TEST(PinPermissions, PinsAreReadableByRootOnly) {
    Testbed bed;
    Testbed::Link& link = bed.addClient(1, 0);
    const std::string iface = link.receiverIf;
    const std::string dir = std::string(SLUICE_PIN_ROOT) + "/" + iface;
    registerPinDir(dir);
    bed.receiver().run([&] { sluice::Datapath::attach({iface, sluice::XdpMode::Native, 1024}); });
    std::vector<std::string> paths = {SLUICE_PIN_ROOT, dir};
    for (const char* name : {"prog", "sluice_config", "sluice_sources", "sluice_stats", "sluice_bans"})
        paths.push_back(dir + "/" + name);
    for (const auto& p : paths) {
        struct stat st;
        if (stat(p.c_str(), &st) != 0) {  // not ASSERT: the detach below must run
            ADD_FAILURE() << "missing " << p;
            continue;
        }
        EXPECT_EQ(st.st_uid, 0u) << p;
        EXPECT_EQ(st.st_mode & 077, 0u) << p << " mode " << std::oct << (st.st_mode & 0777);
    }
    bed.receiver().run([&] { sluice::Datapath::detach(iface); });
    unregisterPinDir(dir);
}

// At start: a deny over the SSH client is refused (exit 2, naming the rule
// and the address, nothing attached); with --force it is installed and A's
// traffic is dropped while B's passes.
TEST_F(LockoutDaemon, StartRefusesAConfigThatLocksOutTheSshClientUnlessForced) {
    run_->writeConfig(config("100 per day", a_ + "/32"));
    run_->launch();
    auto status = run_->wait();
    ASSERT_TRUE(status.has_value()) << "still running 5 s after a refused start";
    EXPECT_EQ(*status, 2);
    const std::string log = run_->log();
    EXPECT_TRUE(has(log, "refusing a ruleset that could lock out the operator")) << log;
    EXPECT_TRUE(has(log, "[[deny]] " + a_ + "/32 drops " + a_ + "/32")) << log;
    EXPECT_TRUE(has(log, "SSH_CONNECTION")) << log;
    EXPECT_TRUE(has(log, "--force")) << log;
    EXPECT_FALSE(xdpAttached(bed_.receiver(), iface_)) << "a refused start attaches nothing";
    EXPECT_NE(::access(pinDirOf(iface_).c_str(), F_OK), 0) << "and pins nothing";
    EXPECT_EQ(send(a_, 5), 5);

    ASSERT_TRUE(run_->start({"--force"}));
    EXPECT_EQ(send(a_, 5), 0) << "--force installed the deny";
    EXPECT_EQ(send(b_, 5), 5);
    EXPECT_EQ(run_->stop(), 0);
}

// On a reload (here a rewrite of the file, seen by inotify): a config that
// would deny the SSH client is refused and counted, and the running one
// stays in force, buckets and all; the next safe config is applied.
TEST_F(LockoutDaemon, AReloadThatLocksOutTheSshClientIsRefusedAndTheRunningConfigStays) {
    run_->writeConfig(config("5 per day"));
    ASSERT_TRUE(run_->start());
    EXPECT_EQ(send(b_, 10), 5);

    size_t from = run_->log().size();
    run_->writeConfig(config("8 per day", a_ + "/32"));
    ASSERT_TRUE(run_->waitLog("sluice: reload failed, keeping the running config: refusing a ruleset that "
                              "could lock out the operator",
                              from))
        << run_->log();
    EXPECT_TRUE(has(run_->log().substr(from), "[[deny]] " + a_ + "/32 drops")) << run_->log();
    EXPECT_EQ(send(a_, 3), 3) << "the deny is not in force";
    EXPECT_EQ(send(b_, 5), 0) << "the running policy (5 per day, B's spent) is, not the refused 8 per day";
    std::string m = run_->scrape(kMetricsPort);
    EXPECT_TRUE(has(m, "sluice_config_reloads_total{result=\"failure\"} 1\n")) << m;
    EXPECT_TRUE(has(m, "sluice_config_reloads_total{result=\"success\"} 0\n")) << m;

    from = run_->log().size();
    run_->writeConfig(config("8 per day"));
    ASSERT_TRUE(run_->waitLog("sluice: reloaded " + run_->configPath(), from)) << run_->log();
    EXPECT_EQ(send(b_, 10), 8) << "the safe config applies: 8 per day (a changed policy starts afresh)";
    m = run_->scrape(kMetricsPort);
    EXPECT_TRUE(has(m, "sluice_config_reloads_total{result=\"success\"} 1\n")) << m;
    EXPECT_EQ(run_->stop(), 0);
}
