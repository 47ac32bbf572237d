// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The errors an operator meets first: each says what failed and what to do.
// Cases that change process-wide state (credentials, mounts) run in a forked
// child that reports back through its exit status and a pipe.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "datapath.h"
#include "error.h"

namespace sluice {
namespace {

constexpr uint32_t kBpffsMagic = 0xcafe4a11;

// Runs fn in a child process; returns what it wrote to the pipe, or
// "child failed" if it crashed.
std::string inChild(const std::function<std::string()>& fn)
{
    int fds[2];
    if (pipe(fds))
        return "pipe failed";
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        std::string out;
        try {
            out = fn();
        } catch (const std::exception& e) {
            out = std::string("unexpected exception: ") + e.what();
        }
        (void)!write(fds[1], out.data(), out.size());
        _exit(0);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0)
        out.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status))
        return "child failed";
    return out;
}

std::string errorOf(const std::function<void()>& fn)
{
    try {
        fn();
    } catch (const Error& e) {
        return std::string(e.kind() == ErrorKind::Usage ? "usage: " : "runtime: ") + e.what();
    }
    return "no error";
}

TEST(Errors, UnknownInterfaceIsAUsageError)
{
    std::string name = "nosuch" + std::to_string(getpid() % 100000);
    std::string err = errorOf([&] { Datapath::attach({.iface = name}); });
    EXPECT_NE(err.find("usage: unknown interface '" + name + "'"), std::string::npos) << err;
    err = errorOf([&] { Datapath::open(name); });
    EXPECT_NE(err.find("usage: sluice is not attached to " + name), std::string::npos) << err;
    err = errorOf([&] { Datapath::detach(name); });
    EXPECT_NE(err.find("usage:"), std::string::npos) << err;
}

TEST(Errors, MissingPrivilegesSayRunAsRoot)
{
    std::string err = inChild([] {
        // Drop to an unprivileged user: every capability goes with root.
        if (setgid(65534) || setuid(65534))
            return std::string("cannot drop privileges");
        return errorOf([] { Datapath::loadUnattached(); });
    });
    EXPECT_NE(err.find("runtime:"), std::string::npos) << err;
    EXPECT_NE(err.find("run as root"), std::string::npos) << err;
}

TEST(Errors, KernelRefusalCarriesTheLibbpfLog)
{
    // A source table too large to allocate (the most max_sources that
    // leaves room for the LRU's slack): the kernel refuses the map, and
    // the error carries libbpf's last log lines.
    std::string err = errorOf([] { Datapath::loadUnattached(0xffffffffU - Datapath::lruSlack()); });
    EXPECT_NE(err.find("runtime: the kernel refused the sluice program"), std::string::npos) << err;
    EXPECT_NE(err.find("last lines of the libbpf/verifier log:"), std::string::npos) << err;
    EXPECT_NE(err.find("sluice_sources"), std::string::npos) << "names the map: " << err;
}

TEST(Errors, FailedAttachLeavesNoPins)
{
    std::string name = "sldum" + std::to_string(getpid() % 100000);
    std::string out = inChild([&] {
        // A private network namespace: the bridge (no native XDP) dies with the child.
        if (unshare(CLONE_NEWNET))
            return std::string("cannot make a network namespace");
        if (system(("ip link add " + name + " type bridge").c_str()))
            return std::string("cannot create a bridge interface");
        std::string err = errorOf([&] { Datapath::attach({.iface = name, .mode = XdpMode::Native}); });
        struct stat st;
        bool leftover = stat((std::string(SLUICE_PIN_ROOT) + "/" + name).c_str(), &st) == 0;
        return err + (leftover ? " [pins left behind]" : "");
    });
    EXPECT_EQ(out, "runtime: cannot attach to " + name + ": the driver has no native XDP; use --mode generic");
}

TEST(Errors, ZeroSizedTableIsAUsageError)
{
    std::string err = errorOf([] { Datapath::loadUnattached(0); });
    EXPECT_NE(err.find("usage: max_sources must be at least 1"), std::string::npos) << err;
}

TEST(Errors, BpffsIsMountedWhenMissing)
{
    std::string out = inChild([] {
        // A private mount namespace: unmounting bpffs here touches no one else.
        if (unshare(CLONE_NEWNS) || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr))
            return std::string("cannot make a private mount namespace");
        while (umount2("/sys/fs/bpf", MNT_DETACH) == 0) {
        }
        struct statfs fs;
        if (statfs("/sys/fs/bpf", &fs) == 0 && static_cast<uint32_t>(fs.f_type) == kBpffsMagic)
            return std::string("bpffs still mounted");
        ensureBpffs();
        if (statfs("/sys/fs/bpf", &fs) || static_cast<uint32_t>(fs.f_type) != kBpffsMagic)
            return std::string("bpffs not mounted by ensureBpffs");
        return std::string("mounted");
    });
    EXPECT_EQ(out, "mounted");
}

}  // namespace
}  // namespace sluice
