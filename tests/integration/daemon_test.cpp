// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// `sluice run`, the real binary, inside the receiver namespace of a testbed:
// it attaches, reloads on SIGHUP and on a rewrite of its config file, keeps
// the running config when a new one is bad, and on SIGTERM detaches or (with
// --keep-on-exit) leaves protection in place for the next daemon to adopt.
//
// The daemon is started with `nsenter --net=/run/netns/NAME`, not `ip netns
// exec`: that would remount /sys and give it a private bpffs, where its pins
// would be invisible to this test. Limits are "N per day", so what passes is
// counted, not timed. Every wait polls the daemon's log or its exit with a
// bound of a few seconds.
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <net/if.h>

#include "datapath.h"
#include "netns.h"
#include "paths.h"
#include "process.h"
#include "unique_fd.h"
#include "xdp_stub.h"

using namespace slit;
using sluice::Address;
using sluice::Datapath;

namespace {

constexpr uint16_t kPort = 7000;
constexpr Millis kWait(5000);

bool pathExists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

// In place (truncate, write, close): one IN_CLOSE_WRITE on the name.
void rewriteFile(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// As editors and config tools save: a new file renamed over the old one.
void replaceFile(const std::string& path, const std::string& text) {
    std::string tmp = path + ".new";
    rewriteFile(tmp, text);
    ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0) << "rename to " << path;
}

size_t occurrences(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        n++;
    return n;
}

struct PolicySpec {
    std::string name;
    uint16_t port;
    std::string packets;
};

std::string configText(const std::vector<std::string>& ifaces,
                       const std::vector<PolicySpec>& policies) {
    std::string list;
    for (const auto& i : ifaces)
        list += (list.empty() ? "\"" : ", \"") + i + "\"";
    std::string out = "[sluice]\ninterfaces = [" + list + "]\nmax_sources = 4096\n";
    for (const auto& p : policies)
        out += "\n[[policy]]\nname = \"" + p.name + "\"\nproto = \"udp\"\nports = [" +
               std::to_string(p.port) + "]\npackets = \"" + p.packets + "\"\naction = \"drop\"\n";
    return out;
}

uint64_t verdictPackets(const Datapath& dp, const std::string& policy, uint32_t verdict) {
    for (const auto& sc : dp.counters())
        if (sc.policy == policy)
            return sc.verdicts.at(verdict).packets;
    ADD_FAILURE() << "no counters for policy " << policy;
    return 0;
}

uint64_t remainingOf(const Datapath& dp, const std::string& policy, const std::string& addr) {
    auto st = dp.source(policy, Address::parse(addr));
    if (!st || st->limits.empty()) {
        ADD_FAILURE() << "no bucket for " << addr << " under " << policy;
        return ~0ULL;
    }
    return st->limits[0].remaining;
}

using DaemonProcess = ChildProcess;

class DaemonTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (access(sluiceBinary().c_str(), X_OK) != 0)
            GTEST_SKIP() << sluiceBinary() << " is not built (make " << sluiceBinary() << ")";
        char tmpl[] = "/tmp/sluice-daemon-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        config_ = dir_ + "/sluice.toml";
        log_ = dir_ + "/daemon.log";
        link_ = &addLink();
        iface_ = link_->receiverIf;
        a_ = link_->client4[0];
        b_ = link_->client4[1];
    }

    void TearDown() override {
        if (HasFailure() && !log_.empty())
            std::fprintf(stderr, "[slit] daemon log:\n%s", readFile(log_).c_str());
    }

    ~DaemonTest() override {
        daemon_.reset();
        for (const auto& iface : ifaces_) {
            const std::string pins = pinDirOf(iface);
            try {
                if (xdpAttached(bed_.receiver(), iface) || pathExists(pins))
                    bed_.receiver().run([&] { Datapath::detach(iface); });
            } catch (const std::exception& e) {
                std::fprintf(stderr, "[slit] cleanup: detach %s: %s\n", iface.c_str(), e.what());
            }
            if (pathExists(pins)) {
                runCmd({"rm", "-rf", pins});
                rmdir(SLUICE_PIN_ROOT);  // only succeeds when no interface is left
            }
            unregisterPinDir(pins);
        }
        if (!dir_.empty())
            runCmd({"rm", "-rf", dir_});
        // bed_ (a member) deletes the namespaces after this.
    }

    Testbed::Link& addLink() {
        Testbed::Link& l = bed_.addClient(3, 0);
        ifaces_.push_back(l.receiverIf);
        registerPinDir(pinDirOf(l.receiverIf));
        return l;
    }

    Netns& receiver() { return bed_.receiver(); }

    std::string log() const { return readFile(log_); }
    size_t mark() const { return log().size(); }

    // True once `needle` is in the log after `from`, within the bound.
    bool waitLog(const std::string& needle, size_t from, Millis limit = kWait) const {
        const int64_t end = monoNs() + int64_t(limit.count()) * 1'000'000;
        do {
            std::string text = log();
            if (text.size() > from && text.find(needle, from) != std::string::npos)
                return true;
            std::this_thread::sleep_for(Millis(20));
        } while (monoNs() < end);
        return false;
    }

    DaemonProcess& launch(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args = {"run", "--config", config_};
        args.insert(args.end(), extra.begin(), extra.end());
        args.insert(args.begin(), sluiceBinary());
        daemon_.emplace(&receiver(), args, log_);
        return *daemon_;
    }

    // Launches and waits until it serves (signals and file changes are
    // handled from then on).
    ::testing::AssertionResult start(const std::vector<std::string>& extra = {}) {
        size_t from = mark();
        launch(extra);
        if (waitLog("sluice: running with " + config_, from))
            return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "the daemon did not start within 5 s; log:\n"
                                             << log();
    }

    ::testing::AssertionResult stop(int sig = SIGTERM) {
        daemon_->signal(sig);
        auto status = daemon_->wait();
        if (!status)
            return ::testing::AssertionFailure() << "still running 5 s after signal " << sig;
        if (*status != 0)
            return ::testing::AssertionFailure() << "exit status " << *status;
        return ::testing::AssertionSuccess();
    }

    // Takes sluice's program off behind the daemon's back (`xdp off`) and
    // waits for the daemon's check to attach it again.
    ::testing::AssertionResult takeOffAndAwaitReattach() {
        const size_t from = mark();
        receiver().ip({"link", "set", "dev", iface_, "xdp", "off"});
        if (xdpAttached(receiver(), iface_))
            return ::testing::AssertionFailure() << "still attached after xdp off";
        if (!waitLog("no longer attached to " + iface_ + ": attaching it again", from, Millis(15000)) ||
            !waitLog("attached " + iface_ + " (", from, Millis(5000)))
            return ::testing::AssertionFailure() << "not attached again within 20 s; log:\n" << log();
        return ::testing::AssertionSuccess();
    }

    ::testing::AssertionResult reloadAfter(size_t from) {
        if (waitLog("sluice: reloaded " + config_, from))
            return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "no reload within 5 s; log:\n" << log();
    }

    Datapath view(const std::string& iface) {
        return receiver().run([&] { return Datapath::open(iface); });
    }
    Datapath view() { return view(iface_); }

    // `count` datagrams from src to the receiver's port on a link; how many arrived.
    int send(const std::string& src, uint16_t port, int count, Testbed::Link* link = nullptr) {
        Testbed::Link& l = link ? *link : *link_;
        UdpCounter server(receiver(), l.receiver4, port);
        EXPECT_EQ(udpSend(*l.client, src, l.receiver4, port, count), count);
        return server.finish()[src];
    }

    Testbed bed_;
    Testbed::Link* link_ = nullptr;
    std::vector<std::string> ifaces_;
    std::string iface_, a_, b_;
    std::string dir_, config_, log_;
    std::optional<DaemonProcess> daemon_;
};

}  // namespace

TEST_F(DaemonTest, StartsAndAttachesTheConfiguredInterface) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_TRUE(waitLog("sluice: attached " + iface_ + " (", 0));
    EXPECT_TRUE(waitLog("running with " + config_ + ": 1 policy on " + iface_, 0));

    std::string how;
    EXPECT_TRUE(xdpAttached(receiver(), iface_, &how)) << how;
    EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config"));
    Datapath dp = view();
    EXPECT_EQ(dp.attachInfo().note.find("not attached"), std::string::npos) << dp.attachInfo().note;
    auto installed = dp.installedPolicies();
    ASSERT_EQ(installed.size(), 1u);
    EXPECT_EQ(installed[0].name, "udp-ten");

    EXPECT_EQ(send(a_, kPort, 30), 10) << "exactly the burst of a source over its limit";
    EXPECT_EQ(send(b_, kPort, 5), 5) << "another source has its own bucket";
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_ADMITTED), 15u);
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_LIMITED), 20u);
}

// The config is reached through a symlink into another directory, which the
// daemon's watch does not cover: the rewrite is seen only through SIGHUP.
TEST_F(DaemonTest, SighupAppliesTheChangedConfigAndKeepsUnchangedBuckets) {
    ASSERT_EQ(mkdir((dir_ + "/real").c_str(), 0700), 0);
    const std::string real = dir_ + "/real/sluice.toml";
    ASSERT_EQ(symlink(real.c_str(), config_.c_str()), 0);
    rewriteFile(real, configText({iface_}, {{"udp-ten", kPort, "10 per day"},
                                            {"udp-other", kPort + 1, "5 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);

    size_t from = mark();
    rewriteFile(real, configText({iface_}, {{"udp-ten", kPort, "10 per day"},
                                            {"udp-other", kPort + 1, "3 per day"},
                                            {"udp-new", kPort + 2, "2 per day"}}));
    std::this_thread::sleep_for(Millis(500));
    ASSERT_EQ(log().find("reloaded", from), std::string::npos)
        << "reloaded without a signal: this test would not show SIGHUP working";
    daemon_->signal(SIGHUP);
    ASSERT_TRUE(reloadAfter(from));
    EXPECT_TRUE(waitLog("reloaded " + config_ + ": 3 policies on " + iface_, from));

    Datapath dp = view();
    EXPECT_EQ(dp.installedPolicies().size(), 3u);
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A used 10 of 10 under an unchanged policy: still limited";
    EXPECT_EQ(remainingOf(dp, "udp-ten", a_), 0u);
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_ADMITTED), 10u) << "counters kept";
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_LIMITED), 10u);
    EXPECT_EQ(send(b_, kPort + 1, 10), 3) << "the changed limit";
    EXPECT_EQ(send(a_, kPort + 2, 10), 2) << "the added policy";
}

// A save followed at once by SIGHUP (an editor, then `systemctl reload`):
// one reload each. The daemon used to reload for the signal and, when it
// woke to the file's event at the same time, again a settle later for the
// event: two reloads of one file in most rounds.
TEST_F(DaemonTest, ASaveThenSighupReloadsOnce) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    constexpr int kRounds = 5;
    const size_t from = mark();
    for (int i = 0; i < kRounds; i++) {
        const size_t round = mark();
        // As a script saves and signals: the shell's write and its `kill`.
        const std::string text = configText({iface_}, {{"udp-ten", kPort, std::to_string(4 + i) + " per day"}});
        const CmdResult r = runCmd({"sh", "-c", "printf '%s' \"$1\" > \"$2\" && kill -HUP \"$3\"", "sh", text,
                                    config_, std::to_string(daemon_->pid())});
        ASSERT_EQ(r.status, 0) << r.err;
        ASSERT_TRUE(reloadAfter(round));
        // Past the settle (200 ms) a second reload would wait for.
        std::this_thread::sleep_for(Millis(600));
    }
    EXPECT_EQ(occurrences(log().substr(from), "sluice: reloaded"), size_t(kRounds)) << log();
    EXPECT_EQ(send(a_, kPort, 10), 8) << "the last save's limit";
}

TEST_F(DaemonTest, RewritingTheFileReloadsWithoutASignal) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());

    size_t from = mark();
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "4 per day"}}));
    ASSERT_TRUE(reloadAfter(from)) << "an in-place rewrite";
    EXPECT_EQ(send(a_, kPort, 10), 4);

    from = mark();
    replaceFile(config_, configText({iface_}, {{"udp-ten", kPort, "2 per day"}}));
    ASSERT_TRUE(reloadAfter(from)) << "a new file renamed over the old one";
    EXPECT_EQ(send(b_, kPort, 10), 2);
    auto installed = view().installedPolicies();
    ASSERT_EQ(installed.size(), 1u);
    ASSERT_EQ(installed[0].limits.size(), 1u);
    EXPECT_EQ(installed[0].limits[0].count, 2u);
    EXPECT_EQ(occurrences(log(), "sluice: reloaded"), 2u) << "one reload per save";
}

// The file is deleted and written anew by a writer slower than the settle
// time: its creation alone must not trigger a reload of what it has written
// so far (here a valid config without the second policy, whose buckets
// would go). The reload comes when the writer closes the file.
TEST_F(DaemonTest, ARecreatedFileIsReadOnceItsWriterIsDone) {
    const std::string good = configText({iface_}, {{"udp-ten", kPort, "10 per day"},
                                                   {"udp-five", kPort + 1, "5 per day"}});
    rewriteFile(config_, good);
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort + 1, 8), 5);

    size_t from = mark();
    ASSERT_EQ(unlink(config_.c_str()), 0);
    {
        const size_t cut = good.find("name = \"udp-five\"");
        ASSERT_NE(cut, std::string::npos);
        std::FILE* f = std::fopen(config_.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs(good.substr(0, cut - std::string("[[policy]]\n").size()).c_str(), f);
        std::fflush(f);
        std::this_thread::sleep_for(Millis(700));  // > the daemon's 200 ms settle
        std::fputs(good.substr(cut - std::string("[[policy]]\n").size()).c_str(), f);
        ASSERT_EQ(std::fclose(f), 0);
    }
    ASSERT_TRUE(reloadAfter(from));
    std::this_thread::sleep_for(Millis(400));
    EXPECT_EQ(occurrences(log().substr(from), "sluice: reloaded"), 1u) << log();
    EXPECT_EQ(log().find("1 policy on", from), std::string::npos) << "read half-written: " << log();
    EXPECT_EQ(view().installedPolicies().size(), 2u);
    EXPECT_EQ(send(a_, kPort + 1, 3), 0) << "A stays limited under udp-five";
}

TEST_F(DaemonTest, ABadConfigOnReloadChangesNothing) {
    const std::string good = configText({iface_}, {{"udp-ten", kPort, "10 per day"}});
    rewriteFile(config_, good);
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);

    // Line 9 is `packets = "10 per fortnight"`.
    size_t from = mark();
    replaceFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per fortnight"}}));
    ASSERT_TRUE(waitLog("sluice: reload failed, keeping the running config: " + config_ + ":9:",
                        from))
        << log();

    Datapath dp = view();
    auto installed = dp.installedPolicies();
    ASSERT_EQ(installed.size(), 1u);
    EXPECT_EQ(installed[0].limits.at(0).count, 10u);
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_ADMITTED), 10u);
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_LIMITED), 5u);
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A stays limited";
    EXPECT_EQ(send(b_, kPort, 15), 10) << "the old limit holds";

    from = mark();
    daemon_->signal(SIGHUP);
    EXPECT_TRUE(waitLog("sluice: reload failed, keeping the running config: " + config_ + ":9:",
                        from))
        << "a SIGHUP rereads the still bad file";
    EXPECT_EQ(log().find("sluice: reloaded", 0), std::string::npos);

    from = mark();
    replaceFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"},
                                               {"udp-three", kPort + 1, "3 per day"}}));
    ASSERT_TRUE(reloadAfter(from)) << "the daemon survived the bad configs";
    EXPECT_EQ(send(a_, kPort + 1, 10), 3);
    EXPECT_EQ(send(a_, kPort, 5), 0);
}

// A save caught half-way leaves the file empty for a moment (truncated, not
// written yet). With --interface an empty file parses as "no rules": it
// must be refused, or every policy and bucket goes and the source that was
// limited gets a fresh burst when the save completes.
TEST_F(DaemonTest, AnEmptiedFileOnReloadChangesNothing) {
    const std::string good = configText({iface_}, {{"udp-ten", kPort, "10 per day"}});
    rewriteFile(config_, good);
    ASSERT_TRUE(start({"--interface", iface_}));
    EXPECT_EQ(send(a_, kPort, 15), 10);

    size_t from = mark();
    rewriteFile(config_, "");
    ASSERT_TRUE(waitLog("sluice: reload failed, keeping the running config: " + config_ +
                            ": the file is empty",
                        from))
        << log();
    EXPECT_EQ(log().find("sluice: reloaded", from), std::string::npos);
    ASSERT_EQ(view().installedPolicies().size(), 1u);
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A stays limited";

    from = mark();
    rewriteFile(config_, good);
    ASSERT_TRUE(reloadAfter(from));
    EXPECT_EQ(send(a_, kPort, 5), 0) << "no fresh burst once the save completes";
    EXPECT_EQ(remainingOf(view(), "udp-ten", a_), 0u);
}

TEST_F(DaemonTest, SigtermDetachesAndRemovesThePins) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);
    ASSERT_TRUE(stop(SIGTERM));
    EXPECT_NE(log().find("sluice: detached " + iface_), std::string::npos) << log();
    std::string how;
    EXPECT_FALSE(xdpAttached(receiver(), iface_, &how)) << how;
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
    EXPECT_EQ(send(a_, kPort, 15), 15) << "unlimited again";
}

TEST_F(DaemonTest, KeepOnExitLeavesProtectionAndTheNextDaemonAdoptsIt) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start({"--keep-on-exit"}));
    EXPECT_EQ(send(a_, kPort, 15), 10);
    ASSERT_TRUE(stop(SIGTERM));
    EXPECT_NE(log().find("--keep-on-exit"), std::string::npos) << log();
    EXPECT_EQ(log().find("sluice: detached"), std::string::npos) << log();

    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config"));
    EXPECT_EQ(send(a_, kPort, 5), 0) << "still limiting with no daemon running";

    size_t from = mark();
    ASSERT_TRUE(start());
    EXPECT_TRUE(waitLog("sluice: adopted " + iface_ + " (", from)) << log();
    EXPECT_EQ(log().find("sluice: attached", from), std::string::npos);
    Datapath dp = view();
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A's bucket survived the restart";
    EXPECT_EQ(remainingOf(dp, "udp-ten", a_), 0u);
    EXPECT_EQ(send(b_, kPort, 15), 10);
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_ADMITTED), 20u) << "counters kept";
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_LIMITED), 20u);

    ASSERT_TRUE(stop(SIGTERM));
    EXPECT_FALSE(xdpAttached(receiver(), iface_)) << "the adopter detaches what it adopted";
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
}

// Crash safety (issue 7, point 4): kill -9 gives the daemon no chance to
// clean up, so protection must not depend on it. The program stays attached
// through its pinned state, the over-limit source stays limited with no
// daemon running, and the next daemon adopts the same buckets and counters.
TEST_F(DaemonTest, SigkillLeavesProtectionAndTheNextDaemonAdoptsIt) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);
    daemon_->signal(SIGKILL);
    ASSERT_TRUE(daemon_->wait().has_value()) << "still running 5 s after SIGKILL";

    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config"));
    EXPECT_EQ(send(a_, kPort, 5), 0) << "still limiting after the daemon was killed";
    {
        Datapath dp = view();
        EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_LIMITED), 10u) << "counters keep moving";
    }

    size_t from = mark();
    ASSERT_TRUE(start());
    EXPECT_TRUE(waitLog("sluice: adopted " + iface_ + " (", from)) << log();
    EXPECT_EQ(log().find("sluice: attached", from), std::string::npos);
    Datapath dp = view();
    EXPECT_EQ(send(a_, kPort, 5), 0) << "no fresh burst for A after the restart";
    EXPECT_EQ(remainingOf(dp, "udp-ten", a_), 0u);
    EXPECT_EQ(verdictPackets(dp, "udp-ten", SLUICE_VERDICT_LIMITED), 15u);

    ASSERT_TRUE(stop(SIGTERM));
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_FALSE(pathExists(pinDirOf(iface_))) << "no pins leak after the clean exit";
}

TEST_F(DaemonTest, ABadConfigAtStartExits2AndAttachesNothing) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per fortnight"}}));
    DaemonProcess& d = launch();
    auto status = d.wait();
    ASSERT_TRUE(status.has_value()) << "still running after 5 s";
    EXPECT_EQ(*status, 2);
    EXPECT_NE(log().find(config_ + ":9:"), std::string::npos) << log();
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
}

// One interface of two does not exist: the other, attached first, is
// detached again before the daemon exits.
TEST_F(DaemonTest, AnUnknownInterfaceAtStartExits2AndAttachesNothing) {
    const std::string missing = uniqueName('x');
    rewriteFile(config_, configText({iface_, missing}, {{"udp-ten", kPort, "10 per day"}}));
    DaemonProcess& d = launch();
    auto status = d.wait();
    ASSERT_TRUE(status.has_value()) << "still running after 5 s";
    EXPECT_EQ(*status, 2);
    EXPECT_NE(log().find(missing), std::string::npos) << log();
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
    EXPECT_FALSE(pathExists(pinDirOf(missing)));
}

// Pins left without a program (taken off while no daemon ran) are state
// the daemon did not make: a start that attaches over them and then fails
// (an interface that does not exist) takes its program off again but keeps
// them, and A's spent bucket with them.
TEST_F(DaemonTest, AFailedStartKeepsThePinsItAttachedOver) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start({"--keep-on-exit"}));
    EXPECT_EQ(send(a_, kPort, 15), 10);
    ASSERT_TRUE(stop(SIGTERM));
    receiver().ip({"link", "set", "dev", iface_, "xdp", "off"});
    ASSERT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config"));

    const std::string missing = uniqueName('x');
    rewriteFile(config_, configText({iface_, missing}, {{"udp-ten", kPort, "10 per day"}}));
    size_t from = mark();
    DaemonProcess& d = launch();
    auto status = d.wait();
    ASSERT_TRUE(status.has_value()) << "still running after 5 s";
    EXPECT_EQ(*status, 2);
    EXPECT_NE(log().find("detached " + iface_ + " (start failed): the pins it was attached over are kept", from),
              std::string::npos)
        << log();
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config")) << "the failed start removed the pins";

    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A's spent bucket was kept";
    ASSERT_TRUE(stop());
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
}

// The config refuses an interface listed twice; --interface did not, and
// the daemon then detached it twice on SIGTERM (exit 1, "cannot detach").
TEST_F(DaemonTest, AnInterfaceOptionGivenTwiceExits2AndAttachesNothing) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    DaemonProcess& d = launch({"--interface", iface_, "--interface", iface_});
    auto status = d.wait();
    ASSERT_TRUE(status.has_value()) << "still running after 5 s; log:\n" << log();
    EXPECT_EQ(*status, 2);
    EXPECT_NE(log().find("--interface " + iface_ + " is given twice"), std::string::npos) << log();
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
}

// A second `sluice run` for an interface the first manages: refused (exit 1,
// naming the first's pid), and the first keeps it and stops cleanly.
TEST_F(DaemonTest, ASecondDaemonForTheSameInterfaceIsRefused) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    const std::string secondLog = log_ + ".second";
    DaemonProcess second(&receiver(), {sluiceBinary(), "run", "--config", config_}, secondLog);
    auto status = second.wait();
    ASSERT_TRUE(status.has_value()) << "the second daemon still runs after 5 s";
    EXPECT_EQ(*status, 1) << readFile(secondLog);
    EXPECT_NE(readFile(secondLog).find("a `sluice run` (pid "), std::string::npos) << readFile(secondLog);
    EXPECT_NE(readFile(secondLog).find("manages " + iface_), std::string::npos) << readFile(secondLog);
    ::unlink(secondLog.c_str());
    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_EQ(send(a_, kPort, 15), 10) << "the first daemon's policy no longer holds";
    ASSERT_TRUE(stop());
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_EQ(runCmd({"sh", "-c", "ls /run/sluice | grep -c '^" + iface_ + "\\.'"}).out, "0\n")
        << "a clean stop left its lock file";

    // Its lock went with it: the next daemon takes the interface.
    ASSERT_TRUE(start());
    ASSERT_TRUE(stop());
}

// `sluice detach` of an interface a daemon manages: refused (exit 1, naming
// the daemon), which keeps enforcing. Before, it detached, and the daemon
// went on reporting the interface as its own, unprotected, until it stopped.
// With the daemon gone (--keep-on-exit), detach works again.
TEST_F(DaemonTest, DetachOfAManagedInterfaceIsRefused) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start({"--keep-on-exit"}));
    const std::vector<std::string> detach = {"nsenter", "--net=" + receiver().path(), sluiceBinary(), "detach",
                                             iface_};
    CmdResult r = runCmd(detach);
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("a `sluice run` (pid " + std::to_string(daemon_->pid()) + ") manages " + iface_),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_TRUE(pathExists(pinDirOf(iface_) + "/sluice_config"));
    EXPECT_EQ(send(a_, kPort, 15), 10) << "the daemon's policy no longer holds";

    ASSERT_TRUE(stop());
    EXPECT_TRUE(xdpAttached(receiver(), iface_)) << "--keep-on-exit";
    r = runCmd(detach);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
    EXPECT_EQ(runCmd({"sh", "-c", "ls /run/sluice | grep -c '^" + iface_ + "\\.'"}).out, "0\n")
        << "detach left its lock file";
}

// The program taken off behind the daemon's back: the next reload attaches
// it again from its pins, so A's spent bucket is still spent. Before, the
// daemon reloaded into maps no program read, and the interface stayed open.
TEST_F(DaemonTest, AReloadReattachesAProgramTakenOffBehindItsBack) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);
    receiver().ip({"link", "set", "dev", iface_, "xdp", "off"});
    ASSERT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_EQ(send(a_, kPort, 5), 5) << "nothing limits A with the program off";

    size_t from = mark();
    daemon_->signal(SIGHUP);
    ASSERT_TRUE(reloadAfter(from));
    EXPECT_NE(log().find("no longer attached to " + iface_ + ": attaching it again", from), std::string::npos)
        << log();
    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A's spent bucket was kept";
    EXPECT_EQ(send(b_, kPort, 15), 10);
    ASSERT_TRUE(stop());
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
}

// Nor does it wait for a reload: the daemon looks every 10 s.
TEST_F(DaemonTest, ReattachesAProgramTakenOffWithinItsCheck) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);
    const size_t from = mark();
    ASSERT_TRUE(takeOffAndAwaitReattach());
    EXPECT_EQ(log().find("reloaded", from), std::string::npos) << "a reload did it, not the check";
    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A's spent bucket was kept";
    EXPECT_EQ(send(b_, kPort, 15), 10) << "the rules in force were installed again";
    const std::string m = runCmd({"nsenter", "--net=" + receiver().path(), "curl", "-sS", "--max-time", "5",
                                  "http://127.0.0.1:9464/metrics"})
                              .out;
    EXPECT_NE(m.find("\nsluice_reattaches_total 1\n"), std::string::npos) << m;
    ASSERT_TRUE(stop());
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
}

// A reload that changes max_sources leaves the attached table as it is; a
// program taken off after it is attached again over the same pins, so at
// their size, not the config's (an attach asking for another size could not
// reuse them, and the interface would stay open).
TEST_F(DaemonTest, ReattachesAtThePinnedTablesSizeAfterAReloadChangedIt) {
    const std::string text = configText({iface_}, {{"udp-ten", kPort, "10 per day"}});
    rewriteFile(config_, text);
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);
    size_t from = mark();
    std::string bigger = text;
    const std::string was = "max_sources = 4096";
    ASSERT_NE(bigger.find(was), std::string::npos);
    bigger.replace(bigger.find(was), was.size(), "max_sources = 8192");
    rewriteFile(config_, bigger);
    ASSERT_TRUE(reloadAfter(from));
    ASSERT_TRUE(waitLog("max_sources is now 8192", from)) << log();

    from = mark();
    ASSERT_TRUE(takeOffAndAwaitReattach());
    EXPECT_EQ(log().find("cannot attach sluice to " + iface_, from), std::string::npos) << log();
    EXPECT_NE(log().find("its pinned table of 4096 sources is kept: max_sources 8192 applies once it is detached",
                         from),
              std::string::npos)
        << log();
    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_EQ(view().sourceCapacity(), 4096u) << "the pinned table, as it was";
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A's spent bucket was kept";
    ASSERT_TRUE(stop());
}

// Another XDP program on the interface: the check's re-attach fails and
// leaves the interface unmanaged, its pins kept. Once that program is gone,
// a reload that attaches it again and then fails (on an interface it was
// adding) must not take it down as if the reload had added it: that would
// drop its pins, A's spent bucket with them.
TEST_F(DaemonTest, AFailedReloadKeepsAnInterfaceAFailedCheckLeftUnmanaged) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 15), 10);
    size_t from = mark();
    const sluice::UniqueFd other(loadXdpVerdict(XDP_PASS, "not_sluice"));
    receiver().ip({"link", "set", "dev", iface_, "xdp", "off"});
    const int rc = receiver().run([&] {
        return bpf_xdp_attach(int(if_nametoindex(iface_.c_str())), other.get(), XDP_FLAGS_DRV_MODE, nullptr);
    });
    ASSERT_EQ(rc, 0) << "cannot attach another XDP program to " << iface_;
    ASSERT_TRUE(waitLog("cannot attach sluice to " + iface_ + " again", from, Millis(15000))) << log();
    ASSERT_TRUE(pathExists(pinDirOf(iface_))) << "the failed re-attach kept the pins";

    receiver().ip({"link", "set", "dev", iface_, "xdp", "off"});
    from = mark();
    rewriteFile(config_, configText({iface_, "eth-nowhere"}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(waitLog("reload failed, keeping the running config", from)) << log();
    EXPECT_EQ(log().find("detached " + iface_, from), std::string::npos) << log();
    EXPECT_TRUE(xdpAttached(receiver(), iface_));
    EXPECT_TRUE(pathExists(pinDirOf(iface_)));
    EXPECT_EQ(send(a_, kPort, 5), 0) << "A's spent bucket was kept";
    EXPECT_EQ(send(b_, kPort, 15), 10) << "the rules in force";
    ASSERT_TRUE(stop());
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
}

// The data path never clears the filter bit of a source that leaves the
// table, so a table that churns fills its filter and spoofed sources pay the
// table's lookup again. The daemon looks every 10 s and rebuilds a filter
// that is due (KnownFilterState::wantsRebuild), keeping the bits of the
// sources still there.
TEST_F(DaemonTest, RebuildsASourceFilterFilledBySourcesThatLeft) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 3), 3) << "A's second packet promotes it into the table";
    Datapath dp = view();
    auto f = dp.knownFilter();
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->on);
    ASSERT_EQ(f->set, 1u) << "A's bit";

    // What sources promoted and evicted since would leave: half the words
    // of the table's filter full of stale bits.
    const int fd = dp.mapFd("sluice_seen");
    ASSERT_GE(fd, 0);
    const uint32_t words = uint32_t(f->bits / 64);
    const uint64_t full = ~0ULL;
    for (uint32_t i = 0; i < words; i += 2)
        ASSERT_EQ(bpf_map_update_elem(fd, &i, &full, BPF_ANY), 0);
    f = dp.knownFilter();
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->wantsRebuild()) << f->set << " of " << f->bits;

    const size_t from = mark();
    ASSERT_TRUE(waitLog("source filters of " + iface_ + " rebuilt from their tables: 50.0% and 0.0%", from,
                        Millis(15000)))
        << log();
    f = dp.knownFilter();
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->on);
    EXPECT_EQ(f->set, 1u) << "only A's bit is left";
    EXPECT_EQ(f->probationSet, 1u) << "A is not on probation any more, but the probation memory holds it";
    EXPECT_EQ(send(a_, kPort, 10), 7) << "A is still found in the table, its bucket as it was";
    EXPECT_EQ(send(b_, kPort, 12), 10);
    ASSERT_TRUE(stop());
}

// A rebuild that turned the filter on while another had just cleared it
// would leave the table's sources without their bits: rebuilds of one
// pinned filter (the daemon's, `sluice reset --all`'s) wait for the pin
// directory's lock, which installs hold too.
TEST_F(DaemonTest, RebuildsOfOneSourceFilterTakeTurns) {
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());
    EXPECT_EQ(send(a_, kPort, 2), 2);
    Datapath dp = view();
    const int dir = open(pinDirOf(iface_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir, 0);
    ASSERT_EQ(flock(dir, LOCK_EX), 0);
    auto rebuild = std::async(std::launch::async, [&] { dp.refreshKnownFilter(); });
    const bool waited = rebuild.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout;
    flock(dir, LOCK_UN);
    close(dir);
    EXPECT_TRUE(waited) << "the rebuild did not wait for the lock";
    ASSERT_EQ(rebuild.wait_for(kWait), std::future_status::ready);
    rebuild.get();
    auto f = dp.knownFilter();
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->on);
    EXPECT_EQ(f->set, 1u) << "A's bit";
    EXPECT_EQ(send(a_, kPort, 10), 8) << "A is still found in the table";
    ASSERT_TRUE(stop());
}

TEST_F(DaemonTest, AReloadAttachesAddedAndDetachesRemovedInterfaces) {
    Testbed::Link& second = addLink();
    const std::string other = second.receiverIf, c = second.client4[0];
    rewriteFile(config_, configText({iface_}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start());

    size_t from = mark();
    replaceFile(config_, configText({other}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(reloadAfter(from));
    EXPECT_NE(log().find("sluice: attached " + other, from), std::string::npos) << log();
    EXPECT_NE(log().find("sluice: detached " + iface_, from), std::string::npos) << log();
    EXPECT_FALSE(xdpAttached(receiver(), iface_));
    EXPECT_FALSE(pathExists(pinDirOf(iface_)));
    EXPECT_TRUE(xdpAttached(receiver(), other));
    EXPECT_EQ(send(c, kPort, 15, &second), 10);
    EXPECT_EQ(send(a_, kPort, 15), 15);

    ASSERT_TRUE(stop(SIGINT));
    EXPECT_FALSE(xdpAttached(receiver(), other));
    EXPECT_FALSE(pathExists(pinDirOf(other)));
}

// --interface replaces the config's interfaces at start and at every
// reload: the config names one that does not exist here.
TEST_F(DaemonTest, InterfaceOptionReplacesTheConfiguredInterfacesAcrossReloads) {
    rewriteFile(config_, configText({"eth-nowhere"}, {{"udp-ten", kPort, "10 per day"}}));
    ASSERT_TRUE(start({"--interface", iface_}));
    EXPECT_TRUE(waitLog("running with " + config_ + ": 1 policy on " + iface_, 0));
    EXPECT_EQ(send(a_, kPort, 15), 10);

    size_t from = mark();
    rewriteFile(config_, configText({"eth-nowhere"}, {{"udp-ten", kPort, "4 per day"}}));
    ASSERT_TRUE(reloadAfter(from));
    EXPECT_TRUE(waitLog("reloaded " + config_ + ": 1 policy on " + iface_, from));
    EXPECT_EQ(send(b_, kPort, 10), 4) << "the reloaded limit, still on " << iface_;
    EXPECT_TRUE(stop());
    EXPECT_FALSE(pathExists(pinDirOf(iface_))) << "SIGTERM detached it";
}
