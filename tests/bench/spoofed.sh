#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The admission step under a spoofed flood (issue 7, point 2; BENCHMARKS.md
# "Spoofed-source flood"): the integration test SpoofedFlood, run longer and
# in three set-ups, printing its figures instead of checking them.
#   1. top rate, senders' veth with a qdisc (what `make test` checks, 8 s)
#   2. top rate, senders' veth noqueue (the kernel's default for veth): the
#      senders' datagrams that find the receiver's ring full are dropped
#      before any XDP program runs
#   3. the flood capped at 100k frames/s, noqueue: a rate this VM's receiving
#      veth takes whole
# Each run: SECONDS (default 20) of 16M random IPv6 sources, bounded by the
# generator's --count and --duration; namespaces and pins are removed by the
# test even when it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${SECONDS_PER_RUN:-20}
bin=build/tests/integration_tests
[ "$(id -u)" = 0 ] || { echo "bench-spoofed: needs root (namespaces, XDP)" >&2; exit 1; }
echo "bench-spoofed: $(date -u +%FT%TZ), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
    echo "== $1"
    env SLUICE_SPOOFED_MEASURE=1 SLUICE_SPOOFED_SECONDS="$seconds" "${@:2}" \
        "$bin" --gtest_filter='SpoofedFlood.*' 2>&1 | grep '^\[spoofed-flood\]\|^in \|^device counters' || true
}
run "top rate, senders' veth pfifo" SLUICE_SPOOFED_RATE=0
run "top rate, senders' veth noqueue" SLUICE_SPOOFED_RATE=0 SLUICE_SPOOFED_NOQUEUE=1
run "capped at 100k frames/s, senders' veth noqueue" SLUICE_SPOOFED_RATE=100000 SLUICE_SPOOFED_NOQUEUE=1
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
