// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A quick per-packet cost comparison with BPF_PROG_TEST_RUN: sluice against
// a bare XDP_DROP program, interleaved in one run, as ratios. test_run's own
// loop costs tens of ns per repeat, so it is in both numbers; the ns sluice
// adds are printed too. `make bench-prog` runs it (root).
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../bpf/packet.h"
#include "datapath.h"
#include "error.h"

using namespace sluice;
using sluice::test::Frame;
using sluice::test::Packet;

namespace {

constexpr int kRounds = 7;
constexpr uint32_t kRepeat = 1'000'000;
constexpr uint16_t kPolicedPort = 9000;
constexpr uint16_t kOpenPort = 9999;

// r0 = XDP_DROP; exit
int loadBareDrop()
{
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_DROP},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "bare_drop", "GPL", insns, 2, nullptr);
    if (fd < 0)
        throwSys("cannot load the bare XDP_DROP program", fd);
    return fd;
}

// Average ns per run over kRepeat runs, as the kernel measures it.
double nsPerRun(int progFd, const Frame& frame)
{
    std::vector<uint8_t> data = frame.bytes;
    DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.data(),
                        .data_size_in = static_cast<uint32_t>(data.size()), .repeat = kRepeat);
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
        int bare = loadBareDrop();
        Datapath dp = Datapath::loadUnattached(4096);

        Ruleset rules;
        Policy generous;  // never refuses during the run: the admitted path
        generous.name = "within-limit";
        generous.proto = Proto::Udp;
        generous.ports = {{kPolicedPort, kPolicedPort}};
        generous.limits = {{LimitKind::Packets, 1'000'000'000, kNsPerSecond, 1'000'000'000}};
        Policy tight = generous;  // refuses everything after one packet
        tight.name = "over-limit";
        tight.proto = Proto::Tcp;
        tight.limits = {{LimitKind::Packets, 1, 86400 * kNsPerSecond, 1}};
        rules.policies = {generous, tight};
        dp.install(rules);

        std::vector<Scenario> scenarios = {
            {"known IPv4 source within its limit",
             Packet::v4("198.18.0.2", "198.18.0.1").udp(40000, kPolicedPort).payload(18).build(), XDP_PASS},
            {"known IPv6 source within its limit",
             Packet::v6("fd00:5c::2", "fd00:5c::1").udp(40000, kPolicedPort).payload(18).build(), XDP_PASS},
            {"IPv4 source over its limit",
             Packet::v4("198.18.0.3", "198.18.0.1").tcp(40000, kPolicedPort).payload(6).build(), XDP_DROP},
            {"IPv4 port without a policy",
             Packet::v4("198.18.0.2", "198.18.0.1").udp(40000, kOpenPort).payload(18).build(), XDP_PASS},
        };

        std::vector<double> bareRuns;
        std::vector<std::vector<double>> runs(scenarios.size());
        for (int round = 0; round < kRounds; round++) {
            for (size_t i = 0; i < scenarios.size(); i++) {
                bareRuns.push_back(nsPerRun(bare, scenarios[i].frame));
                runs[i].push_back(nsPerRun(dp.progFd(), scenarios[i].frame));
            }
        }
        // Check each scenario really took the path it names.
        for (const auto& s : scenarios) {
            std::vector<uint8_t> data = s.frame.bytes;
            DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.data(),
                                .data_size_in = static_cast<uint32_t>(data.size()), .repeat = 1);
            if (int err = bpf_prog_test_run_opts(dp.progFd(), &opts))
                throwSys("BPF_PROG_TEST_RUN failed", err);
            if (static_cast<int>(opts.retval) != s.expectAction) {
                fprintf(stderr, "scenario '%s' returned %u, expected %d\n", s.name.c_str(),
                        opts.retval, s.expectAction);
                return 1;
            }
        }

        Stats b = summarize(bareRuns);
        printf("BPF_PROG_TEST_RUN, %u repeats x %d rounds, interleaved; median [min-max] ns per run\n",
               kRepeat, kRounds);
        printf("%-38s %6.1f [%.1f-%.1f]\n", "bare XDP_DROP (baseline)", b.median, b.min, b.max);
        for (size_t i = 0; i < scenarios.size(); i++) {
            Stats s = summarize(runs[i]);
            printf("%-38s %6.1f [%.1f-%.1f]  %.2fx bare, +%.1f ns\n", scenarios[i].name.c_str(),
                   s.median, s.min, s.max, s.median / b.median, s.median - b.median);
        }
        return 0;
    } catch (const Error& e) {
        fprintf(stderr, "sluice: %s\n", e.what());
        return e.exitCode();
    }
}
