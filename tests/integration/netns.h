// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Network namespaces, veth pairs and real traffic for the integration tier.
//
// Rules this file enforces (DESIGN.md §4):
//  - Traffic only flows between namespaces created here, over veth pairs that
//    are created inside them (`ip -n NS link add ... peer ... netns NS2`): no
//    interface of the host's own namespace is ever touched.
//  - Addresses: IPv4 198.18.0.0/15 (RFC 2544), IPv6 inside fd00:5c::/64.
//  - Names are unique per run ("slit" + pid + kind letter + counter, at most
//    15 characters) and removed when the owning object is destroyed, on
//    SIGINT/SIGTERM, and (for runs that died) at the start of the next run.
//  - Every send loop is bounded in count and in time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace slit {

using Millis = std::chrono::milliseconds;

// ---------------------------------------------------------------- commands

struct CmdResult {
    int status = -1;  // exit code, or -1 if it did not exit normally
    std::string out;
    std::string err;
};

// Runs argv[0] (looked up in PATH, then /usr/sbin and /sbin) without a shell,
// capturing stdout and stderr.
CmdResult runCmd(const std::vector<std::string>& argv);
// Same, throws std::runtime_error with the command and its stderr on failure.
std::string mustRun(const std::vector<std::string>& argv);

// ---------------------------------------------------------------- names

// "slit<pid><kind><n>", n counting up per process; throws if longer than 15.
std::string uniqueName(char kind);

// Registers a path (a bpffs pin directory) to remove with `rm -rf` if the run
// is interrupted by SIGINT/SIGTERM. Only paths under /sys/fs/bpf/ accepted.
void registerPinDir(const std::string& path);
void unregisterPinDir(const std::string& path);

// Deletes namespaces and /sys/fs/bpf/sluice pin directories left behind by
// earlier runs whose process no longer exists (names "slit<pid>..."). Safe to
// call repeatedly; done once automatically by the first Netns.
void reapStale();

// ---------------------------------------------------------------- namespaces

// Moves the calling thread into a network namespace and back on destruction.
// Only the network namespace changes: the mount namespace (and so bpffs under
// /sys/fs/bpf) stays the test's. (This is why the attaching code must not run
// under `ip netns exec`, which also remounts /sys.)
class EnterNetns {
public:
    explicit EnterNetns(const std::string& nsPath);
    ~EnterNetns();
    EnterNetns(const EnterNetns&) = delete;
    EnterNetns& operator=(const EnterNetns&) = delete;

private:
    int saved_ = -1;
};

// One named network namespace (/run/netns/NAME), deleted on destruction.
class Netns {
public:
    Netns();  // a unique name
    explicit Netns(std::string name);
    ~Netns();
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;

    const std::string& name() const { return name_; }
    std::string path() const { return "/run/netns/" + name_; }

    // `ip -n NAME args...`; throws on failure. Returns stdout.
    std::string ip(const std::vector<std::string>& args) const;

    // Runs f on a fresh thread that has entered this namespace, and returns
    // its result (or rethrows its exception). Use it for anything that
    // resolves interface names: Datapath::attach/detach, if_nametoindex,
    // bpf_xdp_query.
    template <class F>
    auto run(F&& f) const -> std::invoke_result_t<F> {
        using R = std::invoke_result_t<F>;
        std::exception_ptr error;
        std::optional<std::conditional_t<std::is_void_v<R>, int, R>> result;
        std::thread t([&] {
            try {
                EnterNetns in(path());
                if constexpr (std::is_void_v<R>) {
                    f();
                    result.emplace(0);
                } else {
                    result.emplace(f());
                }
            } catch (...) {
                error = std::current_exception();
            }
        });
        t.join();
        if (error)
            std::rethrow_exception(error);
        if constexpr (!std::is_void_v<R>)
            return std::move(*result);
    }

    // A socket created inside this namespace (sockets keep the namespace
    // they were created in, whichever thread uses them later).
    int socket(int domain, int type, int protocol = 0) const;

    // Runs f in a forked child that entered this namespace (a separate
    // process, as the CLI would be). The child's return value (0..255) is its
    // exit status; bytes it writes to `out` come back in *output.
    int runInChild(const std::function<int(int out)>& f, std::string* output = nullptr,
                   Millis timeout = Millis(10000)) const;

private:
    std::string name_;
};

// ---------------------------------------------------------------- topology

// A receiver namespace and client namespaces, each client joined to the
// receiver by its own veth pair. Link k (1-based) uses 198.18.k.0/24 and
// fd00:5c::k:0/112 (inside fd00:5c::/64): the receiver is .1 / ::k:1, the
// client's addresses are .10, .11, ... / ::k:a, ::k:b, ... (aliases on the
// one veth, IPv6 with `nodad` so they are usable at once).
//
// XDP on veth: a native (driver mode) XDP program on the receiver's veth runs
// on every frame its peer transmits; the peer needs nothing for XDP_PASS and
// XDP_DROP (veth turns on its NAPI receive path when a program is attached).
// The peer needs an XDP program of its own (or GRO on) only to receive frames
// that are XDP_REDIRECTed or XDP_TXed into it (ndo_xdp_xmit). On kernel 6.18
// GRO alone was not enough: actions_test.cpp attaches sluice with no policy
// (everything passes) to such peers.
class Testbed {
public:
    struct Link {
        int index = 0;                       // k
        std::unique_ptr<Netns> client;       // the client namespace
        std::string clientIf;                // veth end in the client ns
        std::string receiverIf;              // veth end in the receiver ns
        std::string receiver4, receiver6;    // receiver addresses on this link
        std::vector<std::string> client4;    // client source addresses
        std::vector<std::string> client6;
    };

    Testbed();
    ~Testbed();
    Testbed(const Testbed&) = delete;
    Testbed& operator=(const Testbed&) = delete;

    Netns& receiver() { return *receiver_; }
    // A new client namespace with n4 IPv4 and n6 IPv6 source addresses.
    Link& addClient(int n4 = 3, int n6 = 3);
    Link& link(size_t i) { return *links_.at(i); }
    size_t links() const { return links_.size(); }

private:
    std::unique_ptr<Netns> receiver_;
    std::vector<std::unique_ptr<Link>> links_;
};

// ---------------------------------------------------------------- traffic

bool isV6(const std::string& addr);

// Receives UDP datagrams on [addr]:port inside a namespace on a background
// thread, counting them per source address.
class UdpCounter {
public:
    UdpCounter(const Netns& ns, const std::string& addr, uint16_t port);
    ~UdpCounter();
    UdpCounter(const UdpCounter&) = delete;
    UdpCounter& operator=(const UdpCounter&) = delete;

    // Waits until nothing arrived for `quiet` (at most `limit` in all) and
    // returns the counts per source address since the last collect(),
    // starting a new count; the receiver keeps running.
    std::map<std::string, int> collect(Millis quiet = Millis(300), Millis limit = Millis(5000));
    // collect(), then stop receiving.
    std::map<std::string, int> finish(Millis quiet = Millis(300), Millis limit = Millis(5000));
    int total() const { return total_.load(); }

private:
    void loop();
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<int> total_{0};
    std::atomic<int64_t> lastNs_{0};
    std::mutex mu_;
    std::map<std::string, int> bySource_;
    std::thread thread_;
};

// Sends `count` datagrams of `size` payload bytes from src to [dst]:port,
// inside a namespace, giving up after `limit`. Returns how many were sent.
int udpSend(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
            int count, size_t size = 64, Millis limit = Millis(5000));

// Accepts TCP connections on [addr]:port inside a namespace on a background
// thread, counting them per source address, and closes each at once.
class TcpCounter {
public:
    TcpCounter(const Netns& ns, const std::string& addr, uint16_t port);
    ~TcpCounter();
    TcpCounter(const TcpCounter&) = delete;
    TcpCounter& operator=(const TcpCounter&) = delete;

    // As UdpCounter's.
    std::map<std::string, int> collect(Millis quiet = Millis(300), Millis limit = Millis(5000));
    std::map<std::string, int> finish(Millis quiet = Millis(300), Millis limit = Millis(5000));
    int total() const { return total_.load(); }

private:
    void loop();
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<int> total_{0};
    std::atomic<int64_t> lastNs_{0};
    std::mutex mu_;
    std::map<std::string, int> bySource_;
    std::thread thread_;
};

// `count` TCP connects from src to [dst]:port, inside a namespace, at most
// `parallel` in flight at once, each given `timeout` to complete (a dropped
// SYN simply times out: the first SYN retransmission comes after 1 s, so with
// a timeout below that each attempt sends exactly one SYN). Returns how many
// connected.
int tcpConnects(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
                int count, Millis timeout = Millis(500), int parallel = 1);

// Accepts one TCP connection at a time on [addr]:port inside a namespace and
// counts the bytes received over all of them.
class TcpSink {
public:
    TcpSink(const Netns& ns, const std::string& addr, uint16_t port);
    ~TcpSink();
    TcpSink(const TcpSink&) = delete;
    TcpSink& operator=(const TcpSink&) = delete;

    // Waits until nothing arrived for `quiet` (at most `limit`), stops, and
    // returns the bytes received.
    uint64_t finish(Millis quiet = Millis(300), Millis limit = Millis(10000));

private:
    void loop();
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> bytes_{0};
    std::atomic<int64_t> lastNs_{0};
    std::thread thread_;
};

// Connects from src to [dst]:port and writes `bytes` bytes in large writes
// (so the stack builds GSO super-packets), giving up after `limit`. Returns
// the bytes written, or -1 if the connection failed.
int64_t tcpSendBytes(const Netns& ns, const std::string& src, const std::string& dst,
                     uint16_t port, uint64_t bytes, Millis limit = Millis(5000));

// True if IFACE (in the namespace) has any XDP program attached, by
// bpf_xdp_query; *how gets a description (mode, program ids).
bool xdpAttached(const Netns& ns, const std::string& iface, std::string* how = nullptr);
// The same question answered by `ip -j link show`: true if it lists "xdp".
bool ipShowsXdp(const Netns& ns, const std::string& iface);

// Wall-clock monotonic nanoseconds.
int64_t monoNs();

}  // namespace slit
