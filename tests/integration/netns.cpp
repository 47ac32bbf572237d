// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

extern char** environ;

namespace slit {

namespace {

std::string sysErr(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

// Resolves a program name the way a root shell would, even when PATH lacks
// the sbin directories.
std::string resolveProgram(const std::string& name) {
    if (name.find('/') != std::string::npos)
        return name;
    std::string path = getenv("PATH") ? getenv("PATH") : "";
    path += ":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin";
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        if (dir.empty())
            continue;
        std::string full = dir + "/" + name;
        if (access(full.c_str(), X_OK) == 0)
            return full;
    }
    return name;
}

// --- interrupted-run cleanup -------------------------------------------
// Fixed slots, so the signal handler touches no allocator: fork + execve +
// waitpid are async-signal-safe.
constexpr size_t kSlots = 64;
constexpr size_t kSlotLen = 128;
struct Slot {
    std::atomic<bool> used{false};
    char text[kSlotLen] = {};
};
Slot g_nsSlots[kSlots];
Slot g_pinSlots[kSlots];
char g_ipPath[kSlotLen] = "/usr/sbin/ip";
char g_rmPath[kSlotLen] = "/bin/rm";
std::once_flag g_initOnce;

void slotAdd(Slot* slots, const std::string& text) {
    if (text.size() >= kSlotLen)
        return;
    for (size_t i = 0; i < kSlots; i++) {
        if (slots[i].used.load())
            continue;
        std::memset(slots[i].text, 0, kSlotLen);
        std::memcpy(slots[i].text, text.data(), text.size());
        bool expected = false;
        if (slots[i].used.compare_exchange_strong(expected, true))
            return;
    }
}

void slotRemove(Slot* slots, const std::string& text) {
    for (size_t i = 0; i < kSlots; i++)
        if (slots[i].used.load() && text == slots[i].text)
            slots[i].used.store(false);
}

void spawnWaitSignalSafe(const char* prog, char* const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execve(prog, argv, environ);
        _exit(127);
    }
    if (pid > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
}

void onSignal(int sig) {
    // Namespaces first: deleting one destroys its veth and with it any XDP
    // program attached there; then the pins that would outlive them.
    for (size_t i = 0; i < kSlots; i++) {
        if (!g_nsSlots[i].used.load())
            continue;
        char netns[] = "netns", del[] = "del";
        char* argv[] = {g_ipPath, netns, del, g_nsSlots[i].text, nullptr};
        spawnWaitSignalSafe(g_ipPath, argv);
    }
    for (size_t i = 0; i < kSlots; i++) {
        if (!g_pinSlots[i].used.load())
            continue;
        char rf[] = "-rf";
        char* argv[] = {g_rmPath, rf, g_pinSlots[i].text, nullptr};
        spawnWaitSignalSafe(g_rmPath, argv);
    }
    rmdir("/sys/fs/bpf/sluice");  // only succeeds when no other run has pins there
    signal(sig, SIG_DFL);
    raise(sig);
}

void initOnce() {
    std::call_once(g_initOnce, [] {
        std::string ip = resolveProgram("ip"), rm = resolveProgram("rm");
        if (ip.size() < kSlotLen && ip[0] == '/')
            std::snprintf(g_ipPath, kSlotLen, "%s", ip.c_str());
        if (rm.size() < kSlotLen && rm[0] == '/')
            std::snprintf(g_rmPath, kSlotLen, "%s", rm.c_str());
        struct sigaction sa = {};
        sa.sa_handler = onSignal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        sigaction(SIGHUP, &sa, nullptr);
        reapStale();
    });
}

// "slit<pid>..." -> pid, or 0.
pid_t ownerPid(const std::string& name) {
    if (name.rfind("slit", 0) != 0)
        return 0;
    size_t i = 4;
    pid_t pid = 0;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && i < 14)
        pid = pid * 10 + (name[i++] - '0');
    if (i == 4 || i >= name.size() || std::isdigit(static_cast<unsigned char>(name[i])))
        return 0;
    return pid;
}

bool processGone(pid_t pid) { return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH; }

std::vector<std::string> listDir(const std::string& path) {
    std::vector<std::string> names;
    DIR* d = opendir(path.c_str());
    if (!d)
        return names;
    while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..")
            names.push_back(n);
    }
    closedir(d);
    return names;
}

void setNonBlocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// A sockaddr for addr:port, either family.
socklen_t makeAddr(const std::string& addr, uint16_t port, sockaddr_storage* ss) {
    std::memset(ss, 0, sizeof(*ss));
    if (isV6(addr)) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) != 1)
            fail("bad IPv6 address " + addr);
        return sizeof(*s6);
    }
    auto* s4 = reinterpret_cast<sockaddr_in*>(ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    if (inet_pton(AF_INET, addr.c_str(), &s4->sin_addr) != 1)
        fail("bad IPv4 address " + addr);
    return sizeof(*s4);
}

std::string addrText(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof buf);
    else
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
    return buf;
}

// A socket of addr's family in ns, bound to addr:port.
int boundSocket(const Netns& ns, const std::string& addr, uint16_t port, int type) {
    int family = isV6(addr) ? AF_INET6 : AF_INET;
    int fd = ns.socket(family, type | SOCK_CLOEXEC);
    int one = 1;
    // TCP listeners may rebind over TIME_WAIT; a UDP port is never shared, so
    // a datagram can only reach the one receiver a test meant.
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_storage ss;
    socklen_t len = makeAddr(addr, port, &ss);
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
        std::string msg = sysErr("bind " + addr + ":" + std::to_string(port) + " in " + ns.name());
        close(fd);
        fail(msg);
    }
    return fd;
}

// Waits until nothing was counted for `quiet` since max(last, now at call),
// at most `limit`.
void waitQuiet(const std::atomic<int64_t>& lastNs, Millis quiet, Millis limit) {
    int64_t start = monoNs();
    int64_t quietNs = std::chrono::duration_cast<std::chrono::nanoseconds>(quiet).count();
    int64_t limitNs = std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
    for (;;) {
        int64_t now = monoNs();
        int64_t last = std::max(lastNs.load(), start);
        if (now - last >= quietNs || now - start >= limitNs)
            return;
        std::this_thread::sleep_for(Millis(10));
    }
}

}  // namespace

int64_t monoNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool isV6(const std::string& addr) { return addr.find(':') != std::string::npos; }

// ---------------------------------------------------------------- commands

CmdResult runCmd(const std::vector<std::string>& argv) {
    if (argv.empty())
        fail("runCmd: empty command");
    std::string prog = resolveProgram(argv[0]);
    std::vector<char*> cargv;
    for (const auto& a : argv)
        cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);

    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC) < 0)
        fail(sysErr("pipe"));
    if (pipe2(errp, O_CLOEXEC) < 0) {
        close(outp[0]);
        close(outp[1]);
        fail(sysErr("pipe"));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    pid_t pid;
    int rc = posix_spawn(&pid, prog.c_str(), &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(outp[1]);
    close(errp[1]);
    CmdResult res;
    if (rc != 0) {
        close(outp[0]);
        close(errp[0]);
        res.err = "cannot run " + prog + ": " + std::strerror(rc);
        return res;
    }
    pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    std::string* sinks[2] = {&res.out, &res.err};
    int openCount = 2;
    while (openCount > 0) {
        if (poll(fds, 2, 30000) <= 0)
            break;  // a command that hangs for 30 s is a failure anyway
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, size_t(n));
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                openCount--;
            }
        }
    }
    for (auto& p : fds)
        if (p.fd >= 0)
            close(p.fd);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    res.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return res;
}

std::string mustRun(const std::vector<std::string>& argv) {
    CmdResult r = runCmd(argv);
    if (r.status != 0) {
        std::string cmd;
        for (const auto& a : argv)
            cmd += (cmd.empty() ? "" : " ") + a;
        fail("`" + cmd + "` failed (status " + std::to_string(r.status) + "): " + r.err);
    }
    return r.out;
}

// ---------------------------------------------------------------- names

std::string uniqueName(char kind) {
    static std::atomic<int> counter{0};
    std::string name = "slit" + std::to_string(getpid()) + kind + std::to_string(++counter);
    if (name.size() > 15)  // IFNAMSIZ - 1
        fail("name too long for an interface: " + name);
    return name;
}

void registerPinDir(const std::string& path) {
    initOnce();
    if (path.rfind("/sys/fs/bpf/", 0) == 0)
        slotAdd(g_pinSlots, path);
}

void unregisterPinDir(const std::string& path) { slotRemove(g_pinSlots, path); }

void reapStale() {
    for (const auto& name : listDir("/run/netns")) {
        pid_t pid = ownerPid(name);
        if (pid && pid != getpid() && processGone(pid)) {
            std::fprintf(stderr, "[slit] deleting namespace %s left by dead run %d\n",
                         name.c_str(), int(pid));
            runCmd({"ip", "netns", "del", name});
        }
    }
    for (const auto& name : listDir("/sys/fs/bpf/sluice")) {
        pid_t pid = ownerPid(name);
        if (pid && pid != getpid() && processGone(pid)) {
            std::fprintf(stderr, "[slit] removing pins /sys/fs/bpf/sluice/%s left by dead run %d\n",
                         name.c_str(), int(pid));
            runCmd({"rm", "-rf", "/sys/fs/bpf/sluice/" + name});
            rmdir("/sys/fs/bpf/sluice");  // only when empty
        }
    }
}

// ---------------------------------------------------------------- namespaces

EnterNetns::EnterNetns(const std::string& nsPath) {
    saved_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_ < 0)
        fail(sysErr("open /proc/thread-self/ns/net"));
    int fd = open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        std::string msg = sysErr("open " + nsPath);
        close(saved_);
        fail(msg);
    }
    if (setns(fd, CLONE_NEWNET) < 0) {
        std::string msg = sysErr("setns " + nsPath);
        close(fd);
        close(saved_);
        fail(msg);
    }
    close(fd);
}

EnterNetns::~EnterNetns() {
    if (saved_ >= 0) {
        if (setns(saved_, CLONE_NEWNET) < 0)
            std::fprintf(stderr, "[slit] cannot return to the original netns: %s\n",
                         std::strerror(errno));
        close(saved_);
    }
}

Netns::Netns() : Netns(uniqueName('n')) {}

Netns::Netns(std::string name) : name_(std::move(name)) {
    initOnce();
    slotAdd(g_nsSlots, name_);
    try {
        mustRun({"ip", "netns", "add", name_});
        ip({"link", "set", "lo", "up"});
    } catch (...) {
        runCmd({"ip", "netns", "del", name_});
        slotRemove(g_nsSlots, name_);
        throw;
    }
}

namespace {

// A `sluice run` in a namespace holds /run/sluice/IFACE.netINODE.lock and
// removes it on a clean exit; one a test killed leaves it behind. A test's
// daemons have exited by the time its namespace is deleted, so those files
// are stale.
void removeDaemonLocks(ino_t nsInode) {
    const std::string suffix = ".net" + std::to_string(nsInode) + ".lock";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/sluice", ec)) {
        const std::string name = e.path().filename().string();
        if (name.size() > suffix.size() && name.ends_with(suffix))
            std::filesystem::remove(e.path(), ec);
    }
}

}  // namespace

Netns::~Netns() {
    struct stat st{};
    const bool known = ::stat(path().c_str(), &st) == 0;
    CmdResult r = runCmd({"ip", "netns", "del", name_});
    if (r.status != 0)
        std::fprintf(stderr, "[slit] ip netns del %s: %s\n", name_.c_str(), r.err.c_str());
    else if (known)
        removeDaemonLocks(st.st_ino);
    slotRemove(g_nsSlots, name_);
}

std::string Netns::ip(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"ip", "-n", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    return mustRun(argv);
}

int Netns::socket(int domain, int type, int protocol) const {
    EnterNetns in(path());
    int fd = ::socket(domain, type, protocol);
    if (fd < 0)
        fail(sysErr("socket in " + name_));
    return fd;
}

int Netns::runInChild(const std::function<int(int out)>& f, std::string* output,
                      Millis timeout) const {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        fail(sysErr("pipe"));
    int nsfd = open(path().c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        close(p[0]);
        close(p[1]);
        fail(sysErr("open " + path()));
    }
    fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        close(nsfd);
        fail(sysErr("fork"));
    }
    if (pid == 0) {
        close(p[0]);
        int rc = 126;
        if (setns(nsfd, CLONE_NEWNET) == 0) {
            try {
                rc = f(p[1]);
            } catch (const std::exception& e) {
                std::string msg = std::string("child failed: ") + e.what();
                ssize_t ignored = write(p[1], msg.data(), msg.size());
                (void)ignored;
                rc = 125;
            } catch (...) {
                rc = 125;
            }
        }
        _exit(rc);
    }
    close(nsfd);
    close(p[1]);
    std::string out;
    int64_t deadline = monoNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    bool timedOut = false;
    for (;;) {
        int64_t left = (deadline - monoNs()) / 1'000'000;
        if (left <= 0) {
            timedOut = true;
            break;
        }
        pollfd pfd = {p[0], POLLIN, 0};
        if (poll(&pfd, 1, int(left)) <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n <= 0)
            break;
        out.append(buf, size_t(n));
    }
    close(p[0]);
    if (timedOut)
        kill(pid, SIGKILL);  // our own child, by pid
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (output)
        *output = out;
    if (timedOut)
        fail("child in " + name_ + " timed out; output: " + out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// ---------------------------------------------------------------- topology

Testbed::Testbed() : receiver_(std::make_unique<Netns>()) {}

Testbed::~Testbed() {
    // Client namespaces first; deleting either end's namespace removes the
    // veth pair.
    links_.clear();
    receiver_.reset();
}

Testbed::Link& Testbed::addClient(int n4, int n6) {
    auto l = std::make_unique<Link>();
    l->index = int(links_.size()) + 1;
    if (l->index > 250 || n4 > 200 || n6 > 200)
        fail("Testbed: too many links or addresses");
    l->client = std::make_unique<Netns>();
    l->clientIf = uniqueName('c');
    l->receiverIf = uniqueName('r');
    const int k = l->index;
    char macR[18], macC[18];
    std::snprintf(macR, sizeof macR, "02:5c:00:00:%02x:01", k);
    std::snprintf(macC, sizeof macC, "02:5c:00:00:%02x:02", k);

    Netns& c = *l->client;
    Netns& r = *receiver_;
    // Created inside the client namespace, the peer end straight into the
    // receiver's: neither end ever exists in the host namespace.
    c.ip({"link", "add", l->clientIf, "address", macC, "type", "veth", "peer", "name",
          l->receiverIf, "address", macR, "netns", r.name()});

    char buf[64];
    std::snprintf(buf, sizeof buf, "198.18.%d.1", k);
    l->receiver4 = buf;
    std::snprintf(buf, sizeof buf, "fd00:5c::%x:1", k);
    l->receiver6 = buf;
    r.ip({"addr", "add", l->receiver4 + "/24", "dev", l->receiverIf});
    r.ip({"-6", "addr", "add", l->receiver6 + "/112", "dev", l->receiverIf, "nodad"});
    for (int i = 0; i < n4; i++) {
        std::snprintf(buf, sizeof buf, "198.18.%d.%d", k, 10 + i);
        l->client4.push_back(buf);
        c.ip({"addr", "add", std::string(buf) + "/24", "dev", l->clientIf});
    }
    for (int i = 0; i < n6; i++) {
        std::snprintf(buf, sizeof buf, "fd00:5c::%x:%x", k, 10 + i);
        l->client6.push_back(buf);
        c.ip({"-6", "addr", "add", std::string(buf) + "/112", "dev", l->clientIf, "nodad"});
    }
    c.ip({"link", "set", l->clientIf, "up"});
    r.ip({"link", "set", l->receiverIf, "up"});
    // Permanent neighbour entries: no ARP or neighbour discovery runs while a
    // test counts packets, so the counts depend on nothing but the test.
    for (const auto& a : l->client4)
        r.ip({"neigh", "replace", a, "lladdr", macC, "dev", l->receiverIf, "nud", "permanent"});
    for (const auto& a : l->client6)
        r.ip({"-6", "neigh", "replace", a, "lladdr", macC, "dev", l->receiverIf, "nud",
              "permanent"});
    c.ip({"neigh", "replace", l->receiver4, "lladdr", macR, "dev", l->clientIf, "nud",
          "permanent"});
    c.ip({"-6", "neigh", "replace", l->receiver6, "lladdr", macR, "dev", l->clientIf, "nud",
          "permanent"});
    links_.push_back(std::move(l));
    return *links_.back();
}

// ---------------------------------------------------------------- UDP

UdpCounter::UdpCounter(const Netns& ns, const std::string& addr, uint16_t port) {
    fd_ = boundSocket(ns, addr, port, SOCK_DGRAM);
    int big = 4 << 20;
    // Room for every datagram a test sends even if the thread is slow (root
    // may exceed rmem_max with SO_RCVBUFFORCE).
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setNonBlocking(fd_);
    thread_ = std::thread([this] { loop(); });
}

UdpCounter::~UdpCounter() {
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
    if (fd_ >= 0)
        close(fd_);
}

void UdpCounter::loop() {
    while (!stop_) {
        pollfd p = {fd_, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        for (;;) {
            char buf[65536];
            sockaddr_storage from;
            socklen_t len = sizeof from;
            ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (n < 0)
                break;
            {
                std::lock_guard<std::mutex> lk(mu_);
                bySource_[addrText(from)]++;
            }
            total_++;
            lastNs_ = monoNs();
        }
    }
}

std::map<std::string, int> UdpCounter::collect(Millis quiet, Millis limit) {
    waitQuiet(lastNs_, quiet, limit);
    std::lock_guard<std::mutex> lk(mu_);
    return std::exchange(bySource_, {});
}

std::map<std::string, int> UdpCounter::finish(Millis quiet, Millis limit) {
    auto counts = collect(quiet, limit);
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [src, n] : bySource_)  // anything after the quiet period
        counts[src] += n;
    bySource_.clear();
    return counts;
}

int udpSend(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
            int count, size_t size, Millis limit) {
    int fd = boundSocket(ns, src, 0, SOCK_DGRAM);
    timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_storage to;
    socklen_t tolen = makeAddr(dst, port, &to);
    std::vector<char> payload(size, 'x');
    int64_t deadline = monoNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
    int sent = 0;
    while (sent < count && monoNs() < deadline) {
        std::snprintf(payload.data(), payload.size(), "slit %d", sent);
        ssize_t n = sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to),
                           tolen);
        if (n >= 0)
            sent++;
        else if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
            std::this_thread::sleep_for(Millis(1));
        else
            break;
    }
    close(fd);
    return sent;
}

// ---------------------------------------------------------------- TCP

TcpCounter::TcpCounter(const Netns& ns, const std::string& addr, uint16_t port) {
    fd_ = boundSocket(ns, addr, port, SOCK_STREAM);
    if (listen(fd_, 1024) < 0) {
        std::string msg = sysErr("listen");
        close(fd_);
        fail(msg);
    }
    setNonBlocking(fd_);
    thread_ = std::thread([this] { loop(); });
}

TcpCounter::~TcpCounter() {
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
    if (fd_ >= 0)
        close(fd_);
}

void TcpCounter::loop() {
    while (!stop_) {
        pollfd p = {fd_, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        for (;;) {
            sockaddr_storage from;
            socklen_t len = sizeof from;
            int c = accept4(fd_, reinterpret_cast<sockaddr*>(&from), &len, SOCK_CLOEXEC);
            if (c < 0)
                break;
            close(c);
            {
                std::lock_guard<std::mutex> lk(mu_);
                bySource_[addrText(from)]++;
            }
            total_++;
            lastNs_ = monoNs();
        }
    }
}

std::map<std::string, int> TcpCounter::collect(Millis quiet, Millis limit) {
    waitQuiet(lastNs_, quiet, limit);
    std::lock_guard<std::mutex> lk(mu_);
    return std::exchange(bySource_, {});
}

std::map<std::string, int> TcpCounter::finish(Millis quiet, Millis limit) {
    auto counts = collect(quiet, limit);
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [src, n] : bySource_)  // anything after the quiet period
        counts[src] += n;
    bySource_.clear();
    return counts;
}

int tcpConnects(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
                int count, Millis timeout, int parallel) {
    struct Attempt {
        int fd;
        int64_t deadline;
    };
    sockaddr_storage to;
    socklen_t tolen = makeAddr(dst, port, &to);
    const int64_t timeoutNs = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    if (parallel < 1)
        parallel = 1;
    std::vector<Attempt> inflight;
    int started = 0, connected = 0;
    auto finishAttempt = [&](size_t i, bool ok) {
        if (ok)
            connected++;
        close(inflight[i].fd);
        inflight.erase(inflight.begin() + long(i));
    };
    while (started < count || !inflight.empty()) {
        while (started < count && int(inflight.size()) < parallel) {
            int fd = boundSocket(ns, src, 0, SOCK_STREAM);
            setNonBlocking(fd);
            started++;
            int rc = connect(fd, reinterpret_cast<sockaddr*>(&to), tolen);
            if (rc == 0) {
                connected++;
                close(fd);
            } else if (errno == EINPROGRESS) {
                inflight.push_back({fd, monoNs() + timeoutNs});
            } else {
                close(fd);
            }
        }
        if (inflight.empty())
            continue;
        std::vector<pollfd> pfds;
        int64_t next = inflight.front().deadline;
        for (const auto& a : inflight) {
            pfds.push_back({a.fd, POLLOUT, 0});
            next = std::min(next, a.deadline);
        }
        int wait = int(std::max<int64_t>(0, (next - monoNs()) / 1'000'000) + 1);
        poll(pfds.data(), pfds.size(), wait);
        int64_t now = monoNs();
        for (size_t i = inflight.size(); i-- > 0;) {
            if (pfds[i].revents & (POLLOUT | POLLERR | POLLHUP)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(inflight[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
                finishAttempt(i, err == 0);
            } else if (now >= inflight[i].deadline) {
                finishAttempt(i, false);  // SYN dropped: closing sends nothing
            }
        }
    }
    return connected;
}

TcpSink::TcpSink(const Netns& ns, const std::string& addr, uint16_t port) {
    fd_ = boundSocket(ns, addr, port, SOCK_STREAM);
    if (listen(fd_, 16) < 0) {
        std::string msg = sysErr("listen");
        close(fd_);
        fail(msg);
    }
    setNonBlocking(fd_);
    thread_ = std::thread([this] { loop(); });
}

TcpSink::~TcpSink() {
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
    if (fd_ >= 0)
        close(fd_);
}

void TcpSink::loop() {
    std::vector<pollfd> conns;
    std::vector<char> buf(1 << 16);
    while (!stop_) {
        std::vector<pollfd> pfds = {{fd_, POLLIN, 0}};
        pfds.insert(pfds.end(), conns.begin(), conns.end());
        if (poll(pfds.data(), pfds.size(), 20) <= 0)
            continue;
        if (pfds[0].revents & POLLIN) {
            int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c >= 0)
                conns.push_back({c, POLLIN, 0});
        }
        for (size_t i = pfds.size(); i-- > 1;) {
            if (!pfds[i].revents)
                continue;
            ssize_t n = read(pfds[i].fd, buf.data(), buf.size());
            if (n > 0) {
                bytes_ += uint64_t(n);
                lastNs_ = monoNs();
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(pfds[i].fd);
                conns.erase(conns.begin() + long(i - 1));
            }
        }
    }
    for (auto& c : conns)
        close(c.fd);
}

uint64_t TcpSink::finish(Millis quiet, Millis limit) {
    waitQuiet(lastNs_, quiet, limit);
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
    return bytes_.load();
}

int64_t tcpSendBytes(const Netns& ns, const std::string& src, const std::string& dst,
                     uint16_t port, uint64_t bytes, Millis limit) {
    int fd = boundSocket(ns, src, 0, SOCK_STREAM);
    timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_storage to;
    socklen_t tolen = makeAddr(dst, port, &to);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), tolen) < 0) {
        close(fd);
        return -1;
    }
    std::vector<char> chunk(256 << 10, 'x');
    int64_t deadline = monoNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
    uint64_t sent = 0;
    while (sent < bytes && monoNs() < deadline) {
        size_t n = size_t(std::min<uint64_t>(chunk.size(), bytes - sent));
        ssize_t w = send(fd, chunk.data(), n, MSG_NOSIGNAL);
        if (w > 0)
            sent += uint64_t(w);
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            break;
    }
    close(fd);
    return int64_t(sent);
}

// ---------------------------------------------------------------- XDP state

bool xdpAttached(const Netns& ns, const std::string& iface, std::string* how) {
    return ns.run([&] {
        unsigned idx = if_nametoindex(iface.c_str());
        if (!idx)
            fail(sysErr("if_nametoindex " + iface + " in " + ns.name()));
        bpf_xdp_query_opts opts = {};
        opts.sz = sizeof opts;
        int err = bpf_xdp_query(int(idx), 0, &opts);
        if (err)
            fail("bpf_xdp_query " + iface + ": " + std::strerror(-err));
        if (how) {
            static const char* modes[] = {"none", "native", "generic", "offload", "multi"};
            *how = std::string("mode=") + (opts.attach_mode < 5 ? modes[opts.attach_mode] : "?") +
                   " prog=" + std::to_string(opts.prog_id) +
                   " drv=" + std::to_string(opts.drv_prog_id) +
                   " skb=" + std::to_string(opts.skb_prog_id);
        }
        return opts.attach_mode != XDP_ATTACHED_NONE;
    });
}

bool ipShowsXdp(const Netns& ns, const std::string& iface) {
    std::string out = ns.ip({"-j", "-d", "link", "show", "dev", iface});
    return out.find("\"xdp\"") != std::string::npos;
}

}  // namespace slit
