// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The real binary refuses, before touching the kernel: a config that could
// lock out the operator's SSH session or an admin CIDR (exit 2, naming the
// rule and the address; --force goes on), and a verb run without the
// capabilities it needs (exit 1, naming the missing ones). The interface
// named does not exist, so a check that let the command through could only
// end in "unknown interface", never touch a real one.
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include "datapath.h"
#include "netns.h"

using namespace slit;

namespace {

std::string sluiceBin() {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    std::string exe(buf, n > 0 ? size_t(n) : 0);
    std::string tests = exe.substr(0, exe.rfind('/'));
    return tests.substr(0, tests.rfind('/')) + "/sluice";
}

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
        std::vector<std::string> argv = {"env", "-u", "SSH_CLIENT", "SSH_CONNECTION=" + ssh, sluiceBin()};
        argv.insert(argv.end(), args.begin(), args.end());
        return runCmd(argv);
    }
    std::string iface_, config_;
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
    CmdResult r = runCmd({"capsh", "--drop=cap_net_admin", "--", "-c", sluiceBin() + " attach " + iface_});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN")) << r.err;
    EXPECT_TRUE(has(r.err, "lacks CAP_NET_ADMIN:")) << r.err;
    r = runCmd({"capsh", "--drop=cap_net_admin,cap_sys_admin", "--", "-c", sluiceBin() + " detach " + iface_});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, "lacks CAP_NET_ADMIN and CAP_SYS_ADMIN")) << r.err;
    r = runCmd({"capsh", "--drop=cap_bpf", "--", "-c", sluiceBin() + " attach " + iface_});
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
