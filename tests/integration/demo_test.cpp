// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// `make demo` (tools/demo.sh) in a short run: it must end with the
// legitimate users at >= 99% success and the attacker held to its limit
// (checked here from the numbers of its SUMMARY line and the app's own
// count, not from the script's verdict alone), and it must remove its
// namespaces and pins, also when it is stopped half-way.
#include <unistd.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "api_server.h"
#include "paths.h"
#include "process.h"

using namespace slit;

namespace {

class DemoTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access(sluiceBinary().c_str(), X_OK) != 0)
            GTEST_SKIP() << sluiceBinary() << " is not built";
        std::string missing;
        if (!apiStackInstalled(&missing))
            GTEST_SKIP() << "not installed: " << missing << " (tools/install-deps.sh installs them)";
        char tmpl[] = "/tmp/sluice-demo-test-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }

    void TearDown() override {
        if (demo_ && !demo_->wait(Millis(0))) {
            demo_->signal(SIGTERM);  // its trap cleans up
            demo_->wait(Millis(15000));
        }
        if (HasFailure())
            std::fprintf(stderr, "[slit] demo output:\n%s", output().c_str());
        if (demo_) {
            // Whatever it left behind (it should have left nothing).
            std::string tag = "sluice-demo-" + std::to_string(demo_->pid());
            runCmd({"ip", "netns", "del", tag + "-srv"});
            runCmd({"ip", "netns", "del", tag + "-cli"});
            runCmd({"rm", "-rf", pinDirOf(ifaceOf(demo_->pid()))});
        }
        if (!dir_.empty())
            runCmd({"rm", "-rf", dir_});
    }

    static std::string ifaceOf(pid_t pid) { return "sd" + std::to_string(pid) + "s"; }

    void start(int seconds) {
        demo_ = std::make_unique<ChildProcess>(
            nullptr,
            std::vector<std::string>{"/usr/bin/env", "DEMO_SECONDS=" + std::to_string(seconds),
                                     sourceDir() + "/tools/demo.sh"},
            dir_ + "/out");
    }

    std::string output() const { return dir_.empty() ? "" : readFile(dir_ + "/out"); }

    // Nothing of the run is left: namespaces, the veth, the pins.
    void expectCleanedUp() {
        std::string tag = "sluice-demo-" + std::to_string(demo_->pid());
        std::string netns = runCmd({"ip", "netns", "list"}).out;
        EXPECT_EQ(netns.find(tag), std::string::npos) << netns;
        EXPECT_NE(::access(pinDirOf(ifaceOf(demo_->pid())).c_str(), F_OK), 0) << "pins left";
    }

    std::string dir_;
    std::unique_ptr<ChildProcess> demo_;
};

std::map<std::string, std::string> summaryOf(const std::string& out) {
    std::map<std::string, std::string> kv;
    size_t at = out.rfind("\nSUMMARY ");
    if (at == std::string::npos)
        return kv;
    std::istringstream line(out.substr(at + 9, out.find('\n', at + 1) - at - 9));
    std::string item;
    while (line >> item) {
        size_t eq = item.find('=');
        if (eq != std::string::npos)
            kv[item.substr(0, eq)] = item.substr(eq + 1);
    }
    return kv;
}

TEST_F(DemoTest, ShortRunKeepsLegitimateUsersAndHoldsTheAttacker) {
    start(6);
    auto status = demo_->wait(Millis(90000));
    ASSERT_TRUE(status.has_value()) << "the demo did not end within 90 s";
    EXPECT_EQ(*status, 0);
    auto s = summaryOf(output());
    ASSERT_FALSE(s.empty()) << "no SUMMARY line";
    auto n = [&](const char* key) { return std::stod(s.at(key)); };
    EXPECT_GE(n("legit_sent"), 6) << "each legitimate user sent";
    EXPECT_GE(n("legit_ok") / n("legit_sent"), 0.99);
    EXPECT_GT(n("attack_sent"), n("attack_allowed")) << "the attacker went over its limit";
    EXPECT_LE(n("attack_reached"), n("attack_allowed"));
    EXPECT_GT(n("attack_429"), n("attack_sent") / 2) << "sluice answered the excess with 429";
    // The app's own count: only what the limits let through ran heavy-task.
    EXPECT_LE(n("app_served"), n("legit_sent") + n("attack_allowed"));
    EXPECT_EQ(s.at("held"), "yes");
    expectCleanedUp();
}

TEST_F(DemoTest, StoppedHalfWayItCleansUp) {
    start(60);
    const int64_t end = monoNs() + 60'000'000'000LL;
    while (output().find("== 60s:") == std::string::npos && monoNs() < end && !demo_->wait(Millis(0)))
        std::this_thread::sleep_for(Millis(100));
    ASSERT_NE(output().find("== 60s:"), std::string::npos) << "the traffic did not start";
    std::this_thread::sleep_for(Millis(2000));
    demo_->signal(SIGINT);
    auto status = demo_->wait(Millis(20000));
    ASSERT_TRUE(status.has_value()) << "still running 20 s after SIGINT";
    EXPECT_EQ(*status, 130);
    expectCleanedUp();
}

}  // namespace
