// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A quick per-packet cost comparison with BPF_PROG_TEST_RUN: sluice against
// a bare XDP_DROP program, interleaved in one run, as ratios. test_run's own
// loop costs tens of ns per repeat, so it is in both numbers; the ns sluice
// adds are printed too. Each scenario runs on two loads of the program, with
// and without the over-limit cache (bpf/lib/overcache.h), interleaved, so
// the cache's effect is measured in one run. `make bench-prog` runs it (root).
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../bpf/packet.h"
#include "../integration/xdp_stub.h"
#include "datapath.h"
#include "error.h"

using namespace sluice;
using sluice::test::Frame;
using sluice::test::Packet;

namespace {

constexpr int kRounds = 7;
constexpr int kRepeat = 1'000'000;
constexpr uint16_t kPolicedPort = 9000;
constexpr uint16_t kBanPort = 9001;
constexpr uint16_t kOpenPort = 9999;
constexpr uint16_t kNewSourcesPort = 9002;
constexpr uint16_t kRoomyPort = 9003;

// Average ns per run over kRepeat runs, as the kernel measures it.
double nsPerRun(int progFd, const Frame& frame, int repeat = kRepeat)
{
    std::vector<uint8_t> data = frame.bytes;
    DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.data(),
                        .data_size_in = static_cast<uint32_t>(data.size()), .repeat = repeat);
    if (int err = bpf_prog_test_run_opts(progFd, &opts))
        throwSys("BPF_PROG_TEST_RUN failed", err);
    return opts.duration;
}

struct Scenario {
    std::string name;
    Frame frame;
    int expectAction;
};

struct Stats {
    double median, min, max;
};

Stats summarize(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v.front(), v.back()};
}

}  // namespace

int main()
{
    try {
        int bare = slit::loadXdpVerdict(XDP_DROP, "bare_drop");
        Datapath dp = Datapath::loadUnattached(4096);
        Datapath noCache = Datapath::loadUnattached(4096, false);

        Ruleset rules;
        Policy generous;  // never refuses during the run: the admitted path
        generous.name = "within-limit";
        generous.proto = Proto::Udp;
        generous.ports = {{kPolicedPort, kPolicedPort}};
        generous.limits = {{LimitKind::Packets, 1'000'000'000, kNsPerSecond, 1'000'000'000}};
        // Refuses everything after one packet. Burst 1 leaves the bucket no
        // room, so each cached refusal reads the clock (lib/overcache.h).
        Policy tight = generous;
        tight.name = "over-limit";
        tight.proto = Proto::Tcp;
        tight.limits = {{LimitKind::Packets, 1, 86400 * kNsPerSecond, 1}};
        // Refuses everything after two packets, with room for a unit more
        // than one: its cached refusals are served by a jiffies deadline.
        Policy roomy = tight;
        roomy.name = "over-limit-roomy";
        roomy.ports = {{kRoomyPort, kRoomyPort}};
        roomy.limits = {{LimitKind::Packets, 2, 86400 * kNsPerSecond, 2}};
        Policy banning = tight;  // bans on the second refused packet, for a day
        banning.name = "ban";
        banning.ports = {{kBanPort, kBanPort}};
        banning.banAfter = Limit{LimitKind::Packets, 1, 86400 * kNsPerSecond, 1};
        banning.banNs = 86400 * kNsPerSecond;
        Policy budget = generous;  // new_sources: one a day, spent below
        budget.name = "new-sources";
        budget.ports = {{kNewSourcesPort, kNewSourcesPort}};
        budget.newSources = Limit{LimitKind::Packets, 1, 86400 * kNsPerSecond, 1};
        rules.policies = {generous, tight, roomy, banning, budget};
        dp.install(rules);
        noCache.install(rules);
        // Spend the budget: from here on every other source is new and refused.
        for (int prog : {dp.progFd(), noCache.progFd()})
            nsPerRun(prog, Packet::v4("198.18.0.9", "198.18.0.1").udp(40000, kNewSourcesPort).payload(18).build(),
                     1);

        std::vector<Scenario> scenarios = {
            {"known IPv4 source within its limit",
             Packet::v4("198.18.0.2", "198.18.0.1").udp(40000, kPolicedPort).payload(18).build(), XDP_PASS},
            {"known IPv6 source within its limit",
             Packet::v6("fd00:5c::2", "fd00:5c::1").udp(40000, kPolicedPort).payload(18).build(), XDP_PASS},
            {"IPv4 source over its limit, burst 1",
             Packet::v4("198.18.0.3", "198.18.0.1").tcp(40000, kPolicedPort).payload(6).build(), XDP_DROP},
            {"IPv4 source over its limit, roomy",
             Packet::v4("198.18.0.3", "198.18.0.1").tcp(40000, kRoomyPort).payload(6).build(), XDP_DROP},
            {"IPv4 source banned",
             Packet::v4("198.18.0.4", "198.18.0.1").tcp(40000, kBanPort).payload(6).build(), XDP_DROP},
            {"IPv4 port without a policy",
             Packet::v4("198.18.0.2", "198.18.0.1").udp(40000, kOpenPort).payload(18).build(), XDP_PASS},
            // Never recorded, so new at every run: a spoofed flood's packet.
            {"IPv4 new source, new_sources spent",
             Packet::v4("198.18.0.10", "198.18.0.1").udp(40000, kNewSourcesPort).payload(18).build(), XDP_DROP},
        };

        const int progs[] = {noCache.progFd(), dp.progFd()};
        std::vector<double> bareRuns;
        std::vector<std::vector<double>> runs[2] = {std::vector<std::vector<double>>(scenarios.size()),
                                                    std::vector<std::vector<double>>(scenarios.size())};
        for (int round = 0; round < kRounds; round++) {
            for (size_t i = 0; i < scenarios.size(); i++) {
                bareRuns.push_back(nsPerRun(bare, scenarios[i].frame));
                // The order of the two loads alternates by round.
                for (int k = 0; k < 2; k++) {
                    int which = (k + round) % 2;
                    runs[which][i].push_back(nsPerRun(progs[which], scenarios[i].frame));
                }
            }
        }
        // Check each scenario really took the path it names, on both loads.
        for (int prog : progs) {
            for (const auto& s : scenarios) {
                std::vector<uint8_t> data = s.frame.bytes;
                DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.data(),
                                    .data_size_in = static_cast<uint32_t>(data.size()), .repeat = 1);
                if (int err = bpf_prog_test_run_opts(prog, &opts))
                    throwSys("BPF_PROG_TEST_RUN failed", err);
                if (static_cast<int>(opts.retval) != s.expectAction) {
                    fprintf(stderr, "scenario '%s' returned %u, expected %d\n", s.name.c_str(),
                            opts.retval, s.expectAction);
                    return 1;
                }
            }
        }

        Stats b = summarize(bareRuns);
        printf("BPF_PROG_TEST_RUN, %d repeats x %d rounds, interleaved; median [min-max] ns per run\n",
               kRepeat, kRounds);
        printf("%-38s %6.1f [%.1f-%.1f]\n", "bare XDP_DROP (baseline)", b.median, b.min, b.max);
        printf("%-38s %-36s %-36s %s\n", "", "sluice, over-limit cache off", "sluice, over-limit cache on",
               "on/off");
        for (size_t i = 0; i < scenarios.size(); i++) {
            Stats off = summarize(runs[0][i]), on = summarize(runs[1][i]);
            char a[64], c[64];
            snprintf(a, sizeof a, "%.1f [%.1f-%.1f] %.2fx bare", off.median, off.min, off.max,
                     off.median / b.median);
            snprintf(c, sizeof c, "%.1f [%.1f-%.1f] %.2fx bare", on.median, on.min, on.max,
                     on.median / b.median);
            printf("%-38s %-36s %-36s %.2f\n", scenarios[i].name.c_str(), a, c, on.median / off.median);
        }
        return 0;
    } catch (const Error& e) {
        fprintf(stderr, "sluice: %s\n", e.what());
        return e.exitCode();
    } catch (const std::exception& e) {
        fprintf(stderr, "sluice: %s\n", e.what());
        return 1;
    }
}
