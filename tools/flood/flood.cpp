// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "flood.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <linux/if_link.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

#include "flood.skel.h"
#include "park.h"

namespace flood {
namespace {

// Must match bpf/flood.bpf.c.
constexpr uint32_t kSrcFixed = 0, kSrcPool = 1, kSrcRandom = 2;
constexpr uint32_t kCsumIncremental = 0, kCsumFull = 1;

// Frames per kernel call when not paced: small enough that the duration
// bound is kept to a few milliseconds, large enough to amortise the call.
constexpr uint64_t kUnpacedChunk = 16384;
constexpr double kMinPacedCallNs = 300e3;

[[noreturn]] void sysFail(const std::string& what, int err)
{
    throw std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err));
}

uint64_t monoNs()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

void sleepUntil(uint64_t ns)
{
    timespec ts = {time_t(ns / 1'000'000'000ULL), long(ns % 1'000'000'000ULL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        // a signal: the caller's stop flag decides
        break;
    }
}

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd()
    {
        if (fd >= 0)
            close(fd);
    }
};

// The sum of the device's ethtool counters whose names end in `suffix`
// (veth: tx_queue_N_xdp_xmit, tx_queue_N_xdp_xmit_errors). -1 when none.
struct XmitCounters {
    int64_t xmit = -1, errors = -1;
};

XmitCounters readXmitCounters(const std::string& dev)
{
    XmitCounters out;
    Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (sock.fd < 0)
        return out;
    ifreq ifr = {};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev.c_str());

    // ethtool_sset_info with room for one answer after it.
    alignas(ethtool_sset_info) uint8_t ssetBuf[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
    auto* sset = reinterpret_cast<ethtool_sset_info*>(ssetBuf);
    sset->cmd = ETHTOOL_GSSET_INFO;
    sset->sset_mask = 1ULL << ETH_SS_STATS;
    ifr.ifr_data = reinterpret_cast<char*>(sset);
    if (ioctl(sock.fd, SIOCETHTOOL, &ifr) < 0 || !sset->sset_mask)
        return out;
    uint32_t n;
    std::memcpy(&n, ssetBuf + sizeof(ethtool_sset_info), sizeof n);
    if (n == 0 || n > 4096)
        return out;

    std::vector<uint8_t> strings(sizeof(ethtool_gstrings) + size_t(n) * ETH_GSTRING_LEN);
    auto* gs = reinterpret_cast<ethtool_gstrings*>(strings.data());
    gs->cmd = ETHTOOL_GSTRINGS;
    gs->string_set = ETH_SS_STATS;
    gs->len = n;
    ifr.ifr_data = reinterpret_cast<char*>(gs);
    if (ioctl(sock.fd, SIOCETHTOOL, &ifr) < 0)
        return out;

    std::vector<uint8_t> stats(sizeof(ethtool_stats) + size_t(n) * sizeof(uint64_t));
    auto* st = reinterpret_cast<ethtool_stats*>(stats.data());
    st->cmd = ETHTOOL_GSTATS;
    st->n_stats = n;
    ifr.ifr_data = reinterpret_cast<char*>(st);
    if (ioctl(sock.fd, SIOCETHTOOL, &ifr) < 0)
        return out;

    auto endsWith = [](const std::string& s, const std::string& suffix) {
        return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    for (uint32_t i = 0; i < n; i++) {
        std::string name(reinterpret_cast<const char*>(gs->data) + size_t(i) * ETH_GSTRING_LEN,
                         strnlen(reinterpret_cast<const char*>(gs->data) + size_t(i) * ETH_GSTRING_LEN,
                                 ETH_GSTRING_LEN));
        if (name.rfind("tx_queue_", 0) != 0)
            continue;
        if (endsWith(name, "_xdp_xmit"))
            out.xmit = std::max<int64_t>(out.xmit, 0) + int64_t(st->data[i]);
        else if (endsWith(name, "_xdp_xmit_errors"))
            out.errors = std::max<int64_t>(out.errors, 0) + int64_t(st->data[i]);
    }
    return out;
}

// The address `n` after `base` in its last 32 bits, network byte order.
Ip addToLastWord(const Ip& base, uint32_t n)
{
    Ip ip = base;
    size_t off = base.v6 ? 12 : 0;
    uint32_t w;
    std::memcpy(&w, ip.bytes.data() + off, 4);
    w = htonl(ntohl(w) + n);
    std::memcpy(ip.bytes.data() + off, &w, 4);
    return ip;
}

bool inPrefix(const Ip& ip, const Prefix& p)
{
    if (ip.v6 != p.base.v6)
        return false;
    for (int bit = 0; bit < p.len; bit++) {
        uint8_t m = uint8_t(0x80u >> (bit % 8));
        if ((ip.bytes[bit / 8] & m) != (p.base.bytes[bit / 8] & m))
            return false;
    }
    return true;
}

}  // namespace

struct Flood::Impl {
    flood_bpf* skel = nullptr;
    int parkNs = -1;  // the private namespace whose lo holds the program
    ~Impl()
    {
        if (parkNs >= 0)
            close(parkNs);  // the namespace goes, and the attachment with it
        if (skel)
            flood_bpf__destroy(skel);
    }
};


Mac deviceMac(const std::string& dev)
{
    Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (sock.fd < 0)
        sysFail("socket", errno);
    ifreq ifr = {};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev.c_str());
    if (ioctl(sock.fd, SIOCGIFHWADDR, &ifr) < 0)
        throw UsageError("cannot read the MAC address of " + dev + ": " + std::strerror(errno) +
                         " (give --src-mac)");
    Mac m;
    std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
    return m;
}

void enterNetns(const std::string& name)
{
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        throw UsageError("--netns takes a name from `ip netns list`, not '" + name + "'");
    std::string path = "/run/netns/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw UsageError("no network namespace " + name + " (" + path + ": " + std::strerror(errno) + ")");
    int rc = setns(fd, CLONE_NEWNET);
    int err = errno;
    close(fd);
    if (rc < 0)
        sysFail("cannot enter network namespace " + name + " (needs CAP_SYS_ADMIN: run as root)", err);
}

Flood::Flood(const Options& options) : opt_(options), impl_(std::make_unique<Impl>())
{
    if (opt_.dev.empty())
        throw UsageError("--dev is required");
    if (opt_.count == 0)
        throw UsageError("--count must be at least 1");
    if (!(opt_.durationSec > 0) || opt_.durationSec > 3600)
        throw UsageError("--duration must be within (0, 3600] seconds");
    if (opt_.batch == 0 || opt_.batch > 256)
        throw UsageError("--batch must be within 1..256");
    ifindex_ = int(if_nametoindex(opt_.dev.c_str()));
    if (!ifindex_)
        throw UsageError("no interface " + opt_.dev + " in this network namespace");

    if (opt_.sources == SourceMode::Random) {
        if (opt_.prefix.base.v6 != opt_.frame.dst.v6)
            throw UsageError("--src-prefix and --dst are of different families");
        opt_.frame.src = opt_.prefix.base;
    } else if (opt_.sources == SourceMode::Pool) {
        if (opt_.poolSize == 0)
            throw UsageError("--sources must be at least 1");
        // The pool counts up in the address's last 32 bits: it must neither
        // wrap around them nor leave the prefix.
        uint32_t firstWord;
        std::memcpy(&firstWord, opt_.frame.src.bytes.data() + (opt_.frame.src.v6 ? 12 : 0), 4);
        Ip last = addToLastWord(opt_.frame.src, opt_.poolSize - 1);
        if (uint64_t(ntohl(firstWord)) + opt_.poolSize - 1 > UINT32_MAX ||
            !inPrefix(opt_.frame.src, opt_.prefix) || !inPrefix(last, opt_.prefix))
            throw UsageError("--sources " + std::to_string(opt_.poolSize) + " from " +
                             opt_.frame.src.str() + " leaves " + opt_.prefix.str());
    }
    frame_ = buildFrame(opt_.frame);

    auto* skel = flood_bpf__open();
    if (!skel)
        sysFail("cannot open the flood BPF program", errno);
    impl_->skel = skel;
    auto* ro = skel->rodata;
    ro->src_mode = opt_.sources == SourceMode::Fixed  ? kSrcFixed
                   : opt_.sources == SourceMode::Pool ? kSrcPool
                                                      : kSrcRandom;
    ro->csum_mode = opt_.csum == CsumMode::Full ? kCsumFull : kCsumIncremental;
    ro->is_v6 = opt_.frame.dst.v6;
    ro->is_udp = opt_.frame.l4 == L4::Udp;
    ro->l4_csum_off = frame_.l4CsumOff;
    ro->pool_size = opt_.poolSize;
    ro->l4_sum = frame_.l4FixedSum;
    // Addresses as four network-order words; IPv4 in word 3.
    std::array<uint8_t, 16> base{}, mask{};
    const int bits = opt_.frame.src.bits();
    const size_t off = opt_.frame.src.v6 ? 0 : 12;
    std::memcpy(base.data() + off, opt_.frame.src.bytes.data(), size_t(bits / 8));
    if (opt_.sources == SourceMode::Random)
        for (int bit = opt_.prefix.len; bit < bits; bit++)
            mask[off + size_t(bit / 8)] |= uint8_t(0x80u >> (bit % 8));
    std::memcpy(const_cast<uint32_t*>(ro->src_base), base.data(), 16);
    std::memcpy(const_cast<uint32_t*>(ro->rand_mask), mask.data(), 16);

    ro->target_ifindex = uint32_t(ifindex_);
    if (int err = flood_bpf__load(skel))
        sysFail("cannot load the flood BPF program (needs CAP_BPF and CAP_NET_ADMIN: run as root)", err);
    impl_->parkNs = parkInDispatcher(bpf_program__fd(skel->progs.flood_xdp), &parkNote_);
}

Flood::~Flood() = default;

std::string Flood::describeSources() const
{
    switch (opt_.sources) {
    case SourceMode::Fixed:
        return opt_.frame.src.str();
    case SourceMode::Pool:
        return std::to_string(opt_.poolSize) + " from " + opt_.frame.src.str();
    case SourceMode::Random:
        return "random in " + opt_.prefix.str();
    }
    return "";
}

std::vector<uint8_t> Flood::rewriteOnce(const std::vector<uint8_t>& in)
{
    const int progFd = bpf_program__fd(impl_->skel->progs.flood_xdp);
    std::vector<uint8_t> data = in, out(in.size() + 256);
    xdp_md ctxIn = {};
    ctxIn.data_end = uint32_t(data.size());
    ctxIn.ingress_ifindex = uint32_t(ifindex_);
    DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.data(),
                        .data_out = out.data(), .data_size_in = uint32_t(data.size()),
                        .data_size_out = uint32_t(out.size()), .ctx_in = &ctxIn,
                        .ctx_size_in = sizeof(ctxIn), .repeat = 1);
    if (int err = bpf_prog_test_run_opts(progFd, &opts))
        sysFail("BPF_PROG_TEST_RUN of the flood program failed", err);
    if (opts.retval != XDP_TX)
        throw std::runtime_error("the flood program returned " + std::to_string(opts.retval) +
                                 ", not XDP_TX");
    out.resize(opts.data_size_out);
    return out;
}

Result Flood::run(const std::atomic<bool>* stop)
{
    const int progFd = bpf_program__fd(impl_->skel->progs.flood_xdp);
    std::vector<uint8_t> data = frame_.bytes;
    xdp_md ctxIn = {};
    ctxIn.data_end = uint32_t(data.size());
    ctxIn.ingress_ifindex = uint32_t(ifindex_);

    Result r;
    const XmitCounters before = readXmitCounters(opt_.dev);
    const uint64_t start = monoNs();
    const uint64_t deadline = start + uint64_t(opt_.durationSec * 1e9);
    // Paced: one kernel call per batch, each started when it is due. A call
    // costs ~60 us on top of its frames (the kernel builds a page pool per
    // call), so above ~200k frames/s a call carries several batches: as
    // many as are due in kMinPacedCallNs.
    uint64_t step = std::max<uint64_t>(kUnpacedChunk, opt_.batch);
    if (opt_.ratePps) {
        uint64_t batchesPerCall =
            std::max<uint64_t>(1, uint64_t(double(opt_.ratePps) * kMinPacedCallNs / 1e9 / opt_.batch));
        step = std::min<uint64_t>(batchesPerCall * opt_.batch, kUnpacedChunk);
    }
    uint64_t sent = 0;
    r.endedBy = "count";
    while (sent < opt_.count) {
        if (stop && stop->load()) {
            r.stopped = true;
            r.endedBy = "signal";
            break;
        }
        uint64_t now = monoNs();
        if (now >= deadline) {
            r.endedBy = "duration";
            break;
        }
        uint64_t n = std::min(step, opt_.count - sent);
        if (!opt_.ratePps) {
            // Shrink the last chunks so the duration bound holds closely:
            // at the rate seen so far, stay within the time left.
            double elapsed = double(now - start);
            if (sent > 0 && elapsed > 0) {
                double perFrame = elapsed / double(sent);
                uint64_t fit = uint64_t(double(deadline - now) / perFrame) + 1;
                n = std::max<uint64_t>(std::min(n, fit), std::min<uint64_t>(opt_.batch, n));
            }
        }
        DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.data(),
                            .data_size_in = uint32_t(data.size()), .ctx_in = &ctxIn,
                            .ctx_size_in = sizeof(ctxIn), .repeat = int(n),
                            .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = opt_.batch);
        int err = bpf_prog_test_run_opts(progFd, &opts);
        if (err == -EINTR || (err && stop && stop->load())) {
            r.stopped = true;
            r.endedBy = "signal";
            break;
        }
        if (err)
            sysFail("BPF_PROG_TEST_RUN with live frames on " + opt_.dev +
                        " failed (kernel >= 5.18, root, and a device that takes XDP_TX frames)",
                    err);
        r.kernelNsPerFrame = opts.duration;
        sent += n;
        if (opt_.ratePps && sent < opt_.count) {
            uint64_t due = start + uint64_t(double(sent) * 1e9 / double(opt_.ratePps));
            if (due >= deadline) {
                sleepUntil(deadline);
                r.endedBy = "duration";
                break;
            }
            sleepUntil(due);
        }
    }
    const uint64_t end = monoNs();
    // bss counts what the program ran on: the same as `sent` unless a call
    // was cut short by a signal.
    r.frames = impl_->skel->bss->frames;
    if (impl_->skel->bss->bad_frames)
        throw std::runtime_error("the flood program saw frames shorter than its template");
    r.seconds = double(end - start) / 1e9;
    r.pps = r.seconds > 0 ? double(r.frames) / r.seconds : 0;
    r.mbps = r.pps * double(data.size()) * 8 / 1e6;
    const XmitCounters after = readXmitCounters(opt_.dev);
    if (before.xmit >= 0 && after.xmit >= 0) {
        r.xmit = after.xmit - before.xmit;
        r.xmitErrors = after.errors - before.errors;
    }
    impl_->skel->bss->frames = 0;
    return r;
}

}  // namespace flood
