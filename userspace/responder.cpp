// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "responder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include "datapath.h"
#include "error.h"
#include "ratelimit_response.h"
#include "responder.skel.h"
#include "unique_fd.h"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

struct SkelDeleter {
    void operator()(responder_bpf* s) const { responder_bpf__destroy(s); }
};
using SkelPtr = std::unique_ptr<responder_bpf, SkelDeleter>;

struct LinkDeleter {
    void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

// What one interface needs: its maps (to look connections up and hold the
// socket) and the sk_lookup program attached for it.
struct Steering {
    Datapath maps;
    SkelPtr skel;
    LinkPtr link;
};

// An accepted connection's end as the data path keys it (IPv4-mapped).
Address toAddress(const sockaddr_storage& ss, uint16_t* port)
{
    Address a;
    if (ss.ss_family == AF_INET) {
        const auto& sa = reinterpret_cast<const sockaddr_in&>(ss);
        a.bytes[10] = a.bytes[11] = 0xff;
        std::memcpy(a.bytes.data() + 12, &sa.sin_addr, 4);
        a.isV4 = true;
        *port = ntohs(sa.sin_port);
    } else {
        const auto& sa = reinterpret_cast<const sockaddr_in6&>(ss);
        std::memcpy(a.bytes.data(), &sa.sin6_addr, 16);
        a.isV4 = IN6_IS_ADDR_V4MAPPED(&sa.sin6_addr);
        *port = ntohs(sa.sin6_port);
    }
    return a;
}

// A listening socket on loopback, port chosen by the kernel. Only steered
// connections and local ones reach it. FREEBIND: the namespace's loopback
// may be down (then nothing local can dial it, and steering still works).
UniqueFd listenOnLoopback(int family, uint16_t* port)
{
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
        throwSys("responder: cannot create its socket", -errno);
    int on = 1;
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
        ::setsockopt(fd.get(), IPPROTO_IP, IP_FREEBIND, &on, sizeof(on));
        auto& sa = reinterpret_cast<sockaddr_in&>(ss);
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(sa);
    } else {
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof(on));
        auto& sa = reinterpret_cast<sockaddr_in6&>(ss);
        sa.sin6_family = AF_INET6;
        sa.sin6_addr = in6addr_loopback;
        len = sizeof(sa);
    }
    const char* where = family == AF_INET ? "127.0.0.1" : "[::1]";
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len))
        throwSys(std::string("responder: cannot bind ") + where + ":0", -errno);
    if (::listen(fd.get(), Responder::kBacklog))
        throwSys(std::string("responder: cannot listen on ") + where, -errno);
    len = sizeof(ss);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    toAddress(ss, port);
    return fd;
}

struct Conn {
    UniqueFd fd;
    Clock::time_point deadline;
    std::array<char, Responder::kRequestBytes> buf{};
    size_t len = 0;
    bool answered = false;  // then only draining until the peer closes
};

}  // namespace

struct Responder::Impl {
    // epoll ids: connection slots are 0..kMaxConnections-1.
    static constexpr uint64_t kListen4 = kMaxConnections, kListen6 = kMaxConnections + 1,
                              kWake = kMaxConnections + 2;

    UniqueFd listen4, listen6, epoll, wake;
    uint16_t port4 = 0, port6 = 0;
    std::thread loop;

    mutable std::mutex mu;  // guards steering (the loop reads, the daemon changes)
    std::map<std::string, Steering> steering;

    std::vector<Conn> conns = std::vector<Conn>(kMaxConnections);
    std::vector<size_t> freeSlots;
    bool accepting = true;

    std::atomic<uint64_t> answered{0}, unmatched{0}, timedOut{0}, errors{0}, open{0};

    void setUp();
    void run();
    void acceptAll(int listener);
    void pauseAccepting(bool pause);
    void onReadable(size_t slot);
    void answer(size_t slot);
    void close(size_t slot);
    int nextTimeoutMs() const;
    void expire();
    std::string responseFor(int fd);
};

void Responder::Impl::setUp()
{
    listen4 = listenOnLoopback(AF_INET, &port4);
    listen6 = listenOnLoopback(AF_INET6, &port6);
    epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    wake = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (epoll.get() < 0 || wake.get() < 0)
        throwSys("responder: cannot create its event loop", -errno);
    const std::pair<int, uint64_t> watched[] = {{listen4.get(), kListen4}, {listen6.get(), kListen6},
                                                {wake.get(), kWake}};
    for (auto [fd, id] : watched) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = id;
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev))
            throwSys("responder: cannot watch its sockets", -errno);
    }
    for (size_t i = kMaxConnections; i-- > 0;)
        freeSlots.push_back(i);
}

void Responder::Impl::run()
{
    std::array<epoll_event, 64> events;
    for (;;) {
        int n = ::epoll_wait(epoll.get(), events.data(), events.size(), nextTimeoutMs());
        if (n < 0 && errno != EINTR) {
            errors++;
            return;
        }
        for (int i = 0; i < n; i++) {
            uint64_t id = events[i].data.u64;
            if (id == kWake)
                return;
            if (id == kListen4 || id == kListen6)
                acceptAll(id == kListen4 ? listen4.get() : listen6.get());
            else if (conns[id].fd.get() >= 0)
                onReadable(id);
        }
        expire();
    }
}

// At capacity the listeners leave the epoll set: new connections wait in
// the backlog (and beyond it, the kernel's SYN handling) until a slot frees.
void Responder::Impl::pauseAccepting(bool pause)
{
    if (accepting == !pause)
        return;
    accepting = !pause;
    for (auto [fd, id] : {std::pair{listen4.get(), kListen4}, std::pair{listen6.get(), kListen6}}) {
        epoll_event ev{};
        ev.events = pause ? 0U : static_cast<uint32_t>(EPOLLIN);
        ev.data.u64 = id;
        ::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, fd, &ev);
    }
}

void Responder::Impl::acceptAll(int listener)
{
    while (!freeSlots.empty()) {
        int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                errors++;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        size_t slot = freeSlots.back();
        freeSlots.pop_back();
        Conn& c = conns[slot];
        c.fd = UniqueFd(fd);
        c.len = 0;
        c.answered = false;
        c.deadline = Clock::now() + kDeadline;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = slot;
        ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev);
        open++;
    }
    if (freeSlots.empty())
        pauseAccepting(true);
}

void Responder::Impl::onReadable(size_t slot)
{
    Conn& c = conns[slot];
    for (;;) {
        char drain[512];
        char* into = c.answered ? drain : c.buf.data() + c.len;
        size_t room = c.answered ? sizeof(drain) : c.buf.size() - c.len;
        ssize_t n = ::recv(c.fd.get(), into, room, 0);
        if (n > 0) {
            if (c.answered)
                continue;
            c.len += static_cast<size_t>(n);
            std::string_view seen(c.buf.data(), c.len);
            // The end of the request's headers, or all we are willing to read.
            if (seen.find("\r\n\r\n") != std::string_view::npos || c.len == c.buf.size())
                answer(slot);
            if (c.fd.get() < 0 || !c.answered)
                return;
            continue;
        }
        if (n == 0) {
            // The peer finished sending: answer what came (a client may send
            // a request and half-close), then close.
            if (!c.answered)
                answer(slot);
            close(slot);
            return;
        }
        if (errno == EAGAIN || errno == EINTR)
            return;
        errors++;
        close(slot);
        return;
    }
}

std::string Responder::Impl::responseFor(int fd)
{
    sockaddr_storage peer{}, local{};
    socklen_t plen = sizeof(peer), llen = sizeof(local);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen)) {
        unmatched++;
        return tooManyRequestsResponse();
    }
    Flow flow;
    flow.src = toAddress(peer, &flow.sport);
    flow.dst = toAddress(local, &flow.dport);
    std::lock_guard lock(mu);
    for (auto& [iface, s] : steering) {
        try {
            if (auto conn = s.maps.respondedConnection(flow)) {
                answered++;
                return tooManyRequestsResponse(*conn);
            }
        } catch (const std::exception&) {
            errors++;
        }
    }
    unmatched++;
    return tooManyRequestsResponse();
}

// The whole answer fits a fresh socket's send buffer: one send, then a
// half-close; the client's FIN (or the deadline) ends the connection, so
// unread request bytes do not turn our close into a reset that could eat
// the answer.
void Responder::Impl::answer(size_t slot)
{
    Conn& c = conns[slot];
    std::string resp = responseFor(c.fd.get());
    if (::send(c.fd.get(), resp.data(), resp.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
        static_cast<ssize_t>(resp.size())) {
        errors++;
        close(slot);
        return;
    }
    ::shutdown(c.fd.get(), SHUT_WR);
    c.answered = true;
}

void Responder::Impl::close(size_t slot)
{
    Conn& c = conns[slot];
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
    c.fd.reset();
    freeSlots.push_back(slot);
    open--;
    pauseAccepting(false);
}

int Responder::Impl::nextTimeoutMs() const
{
    auto now = Clock::now();
    auto next = now + kDeadline;
    for (const Conn& c : conns)
        if (c.fd.get() >= 0)
            next = std::min(next, c.deadline);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::max<long long>(ms, 0) + 1);
}

void Responder::Impl::expire()
{
    auto now = Clock::now();
    for (size_t i = 0; i < conns.size(); i++) {
        if (conns[i].fd.get() < 0 || conns[i].deadline > now)
            continue;
        if (!conns[i].answered)
            timedOut++;
        close(i);
    }
}

Responder::Responder() : impl_(std::make_unique<Impl>())
{
    impl_->setUp();
    impl_->loop = std::thread([impl = impl_.get()] { impl->run(); });
}

Responder::~Responder()
{
    uint64_t one = 1;
    if (::write(impl_->wake.get(), &one, sizeof(one)) < 0)
        impl_->errors++;
    impl_->loop.join();
    std::lock_guard lock(impl_->mu);
    for (auto& [iface, s] : impl_->steering) {
        try {
            s.maps.clearResponder();
        } catch (const std::exception&) {
            // The socket closes next, which empties the map all the same.
        }
    }
}

void Responder::addInterface(const std::string& iface)
{
    Steering s{Datapath::open(iface), nullptr, nullptr};
    std::string pins = Datapath::pinDirectory(iface);
    DECLARE_LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pins.c_str());
    s.skel.reset(responder_bpf__open_opts(&opts));
    if (!s.skel)
        throwSys("responder: cannot open its BPF object", -errno);
    // Its maps are the XDP program's, reused from IFACE's pins.
    if (int err = responder_bpf__load(s.skel.get()))
        throwSys("responder: the kernel refused the sk_lookup program for " + iface +
                     " (are the pinned maps from another sluice version? `sluice detach " + iface +
                     "` first)",
                 err);
    UniqueFd netns(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    if (netns.get() < 0)
        throwSys("responder: cannot open this network namespace", -errno);
    s.link.reset(bpf_program__attach_netns(s.skel->progs.sluice_sk_lookup, netns.get()));
    if (!s.link)
        throwSys("responder: cannot attach sk_lookup to this network namespace", -errno);
    s.maps.setResponder(impl_->listen4.get(), impl_->listen6.get());
    std::lock_guard lock(impl_->mu);
    impl_->steering.insert_or_assign(iface, std::move(s));
}

void Responder::removeInterface(const std::string& iface)
{
    std::lock_guard lock(impl_->mu);
    auto it = impl_->steering.find(iface);
    if (it == impl_->steering.end())
        return;
    try {
        it->second.maps.clearResponder();
    } catch (const std::exception&) {
        // Its pins may be gone already; the program goes with the erase.
    }
    impl_->steering.erase(it);
}

std::vector<std::string> Responder::interfaces() const
{
    std::lock_guard lock(impl_->mu);
    std::vector<std::string> out;
    for (const auto& [iface, s] : impl_->steering)
        out.push_back(iface);
    return out;
}

ResponderStats Responder::stats() const
{
    return {impl_->answered.load(), impl_->unmatched.load(), impl_->timedOut.load(),
            impl_->errors.load(), impl_->open.load()};
}

uint16_t Responder::port4() const
{
    return impl_->port4;
}

uint16_t Responder::port6() const
{
    return impl_->port6;
}

}  // namespace sluice
