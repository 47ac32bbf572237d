// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sluice-flood: a live-frames traffic generator for tests and benchmarks.
// It transmits crafted UDP or TCP SYN frames out of one interface with
// BPF_PROG_TEST_RUN (BPF_F_TEST_XDP_LIVE_FRAMES, kernel >= 5.18), several
// Mpps per core without a NIC. Every run is bounded by --count AND
// --duration. Meant for veth pairs between test namespaces only.
// Exit 0 on success, 1 on a runtime error, 2 on a usage error.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "flood.h"

namespace {

std::atomic<bool> g_stop{false};

void onSignal(int) { g_stop = true; }

// "10", "10s", "250ms", "2m" -> seconds.
double parseDuration(const std::string& text)
{
    size_t end = 0;
    double v = 0;
    try {
        v = std::stod(text, &end);
    } catch (const std::exception&) {
        throw flood::UsageError("--duration: not a duration: '" + text + "' (e.g. 10s, 250ms)");
    }
    std::string unit = text.substr(end);
    double scale = unit.empty() || unit == "s" ? 1 : unit == "ms" ? 1e-3 : unit == "m" ? 60 : -1;
    if (scale < 0 || !std::isfinite(v))
        throw flood::UsageError("--duration: unknown unit in '" + text + "' (use ms, s or m)");
    return v * scale;
}

// A JSON string literal, escaped as the CLI's --json output is (nlohmann).
std::string jsonString(const std::string& s)
{
    return nlohmann::json(s).dump();
}

}  // namespace

int main(int argc, char** argv)
{
    CLI::App app{"sluice-flood: send crafted UDP or TCP SYN frames out of an interface with "
                 "BPF_PROG_TEST_RUN live frames (XDP_TX), bounded by a frame count and a "
                 "duration. For veth pairs between test network namespaces."};
    app.footer(
        "Example (1M frames from 1000 sources, at most 5 s, into the peer of veth0 in ns gen):\n"
        "  sluice-flood --netns gen --dev veth0 --dst-mac 02:5c:00:00:01:01 \\\n"
        "      --dst 198.18.1.1 --src-prefix 198.18.128.0/17 --sources 1000 \\\n"
        "      --proto udp --dport 9000 --count 1000000 --duration 5s\n"
        "The receiving veth must have an XDP program (or GRO) for XDP_TX'd frames to arrive.");

    std::string dev, netns, dstMac, srcMac, dst, src, srcPrefix, sources, proto = "udp",
                csum = "incremental", duration;
    uint16_t dport = 9000, sport = 40000;
    uint32_t size = 64, batch = 64;
    uint64_t count = 0, rate = 0;
    bool json = false;

    app.add_option("--dev", dev, "interface to transmit on (in the current or --netns namespace)")
        ->required();
    app.add_option("--netns", netns, "enter this network namespace (ip netns name) first");
    app.add_option("--dst-mac", dstMac, "destination MAC (the receiving end of the veth)")->required();
    app.add_option("--src-mac", srcMac, "source MAC (default: --dev's own)");
    app.add_option("--dst", dst, "destination IPv4 or IPv6 address")->required();
    app.add_option("--src", src, "source address (alone: every frame from it; with --src-prefix: "
                                 "the first of the --sources pool)");
    app.add_option("--src-prefix", srcPrefix, "source addresses from this CIDR prefix");
    app.add_option("--sources", sources,
                   "with --src-prefix: N (a pool of N consecutive addresses, round robin) or "
                   "random (random host bits per frame; the default)");
    app.add_option("--proto", proto, "udp or tcp-syn")->check(CLI::IsMember({"udp", "tcp-syn"}));
    app.add_option("--dport", dport, "destination port")->capture_default_str();
    app.add_option("--sport", sport, "source port")->capture_default_str();
    app.add_option("--size", size, "frame size in bytes, Ethernet header to payload, no FCS")
        ->capture_default_str();
    app.add_option("--count", count, "send at most this many frames (required)")->required();
    app.add_option("--duration", duration, "send for at most this long: 10s, 250ms, 2m (required)")
        ->required();
    app.add_option("--rate", rate, "cap in frames per second, paced per batch (above ~200k/s per group of batches "
                   "due within 300 us); 0: as fast as possible")
        ->capture_default_str();
    app.add_option("--batch", batch, "frames per kernel batch (1..256)")->capture_default_str();
    app.add_option("--csum", csum, "incremental (RFC 1624 per rewritten address) or full (recompute)")
        ->check(CLI::IsMember({"incremental", "full"}))
        ->capture_default_str();
    app.add_flag("--json", json, "print the result as JSON");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }

    try {
        if (!netns.empty())
            flood::enterNetns(netns);

        flood::Options o;
        o.dev = dev;
        o.count = count;
        o.durationSec = parseDuration(duration);
        o.ratePps = rate;
        o.batch = batch;
        o.csum = csum == "full" ? flood::CsumMode::Full : flood::CsumMode::Incremental;
        o.frame.dst = flood::Ip::parse(dst);
        o.frame.dstMac = flood::parseMac(dstMac);
        o.frame.srcMac = srcMac.empty() ? flood::deviceMac(dev) : flood::parseMac(srcMac);
        o.frame.l4 = proto == "udp" ? flood::L4::Udp : flood::L4::TcpSyn;
        o.frame.sport = sport;
        o.frame.dport = dport;
        o.frame.size = size;

        if (srcPrefix.empty()) {
            if (src.empty())
                throw flood::UsageError("give --src ADDRESS or --src-prefix CIDR");
            if (!sources.empty())
                throw flood::UsageError("--sources needs --src-prefix (the range the pool stays in)");
            o.frame.src = flood::Ip::parse(src);
        } else {
            o.prefix = flood::Prefix::parse(srcPrefix);
            if (sources.empty() || sources == "random") {
                if (!src.empty())
                    throw flood::UsageError("--src with --src-prefix needs --sources N (the pool's first address)");
                o.sources = flood::SourceMode::Random;
            } else {
                if (sources.find_first_not_of("0123456789") != std::string::npos || sources.size() > 10)
                    throw flood::UsageError("--sources takes a count or 'random', not '" + sources + "'");
                uint64_t n = std::stoull(sources);
                if (n == 0 || n > UINT32_MAX)
                    throw flood::UsageError("--sources must be within 1..4294967295");
                o.sources = flood::SourceMode::Pool;
                o.poolSize = uint32_t(n);
                if (!src.empty()) {
                    o.frame.src = flood::Ip::parse(src);
                } else {
                    // The first host address: base + 1 unless the prefix is a host.
                    o.frame.src = o.prefix.base;
                    if (o.prefix.len < o.prefix.base.bits())
                        o.frame.src.bytes[o.prefix.base.bits() / 8 - 1] |= 1;
                }
            }
        }

        flood::Flood f(o);
        if (!f.slowCallNote().empty())
            std::fprintf(stderr,
                         "sluice-flood: note: every kernel call will wait for an RCU grace period "
                         "(could not keep the program in the XDP dispatcher: %s); paced rates "
                         "suffer\n",
                         f.slowCallNote().c_str());

        struct sigaction sa = {};
        sa.sa_handler = onSignal;  // no SA_RESTART: a test run returns EINTR
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);

        flood::Result r = f.run(&g_stop);

        const std::string protoText = proto == "udp" ? "UDP" : "TCP SYN";
        if (json) {
            std::printf(
                "{\"dev\": %s, \"netns\": %s, \"family\": %s, \"proto\": %s, \"dst\": %s, "
                "\"dport\": %u, \"sources\": %s, \"size\": %u, \"batch\": %u, \"rate_cap_pps\": %llu, "
                "\"csum\": %s, \"frames\": %llu, \"seconds\": %.6f, \"pps\": %.0f, \"mbps\": %.1f, "
                "\"xdp_xmit\": %lld, \"xdp_xmit_errors\": %lld, \"ended_by\": %s}\n",
                jsonString(dev).c_str(), jsonString(netns).c_str(),
                o.frame.dst.v6 ? "\"ipv6\"" : "\"ipv4\"", jsonString(proto).c_str(),
                jsonString(o.frame.dst.str()).c_str(), unsigned(dport),
                jsonString(f.describeSources()).c_str(), size, batch, (unsigned long long)rate,
                jsonString(csum).c_str(), (unsigned long long)r.frames, r.seconds, r.pps, r.mbps,
                (long long)r.xmit, (long long)r.xmitErrors, jsonString(r.endedBy).c_str());
        } else {
            std::printf("sent %llu %s frames of %u bytes to %s port %u from %s on %s%s\n",
                        (unsigned long long)r.frames, protoText.c_str(), size,
                        o.frame.dst.str().c_str(), unsigned(dport), f.describeSources().c_str(),
                        dev.c_str(), netns.empty() ? "" : (" (netns " + netns + ")").c_str());
            std::printf("in %.3f s: %.0f frames/s, %.1f Mbit/s%s; stopped by %s\n", r.seconds,
                        r.pps, r.mbps,
                        rate ? (" (cap " + std::to_string(rate) + "/s)").c_str() : "",
                        r.endedBy.c_str());
            if (r.xmit >= 0)
                std::printf("device counters: %lld handed to the peer, %lld transmit errors%s\n",
                            (long long)r.xmit, (long long)r.xmitErrors,
                            r.xmitErrors > 0 ? " (the peer's ring was full, or it has no XDP program/GRO)" : "");
        }
        return r.stopped ? 130 : 0;
    } catch (const flood::UsageError& e) {
        std::fprintf(stderr, "sluice-flood: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice-flood: %s\n", e.what());
        return 1;
    }
}
