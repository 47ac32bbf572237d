#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Receiver CPU cost per packet, sluice against bare XDP and the netfilter
# peers (REFERENCE.md §4). Two network namespaces joined by one veth pair:
# build/sluice-flood transmits from the generator end; the receiving end runs
# the receiver under test with threaded NAPI, and the cost of a packet is the
# growth of that NAPI kthread's run time (/proc/PID/schedstat, field 1) over
# the packets its XDP path processed (ethtool rx_queue_0_xdp_packets).
#
# Receivers (each attached on its own, in turn):
#   bare    XDP_DROP and nothing else (the baseline of every ratio)
#   parse   XDP_DROP after reading the Ethernet, IP and UDP headers: bare
#           never touches the frame, so this shows what reading a frame
#           that the generator's CPU wrote costs any real program
#   pass    a counting XDP_PASS stub, into an empty stack (nothing listens)
#   sluice  build/sluice attach with one policy "1000/second burst 1000", drop
#   sluicens  the same with new_sources = "10000 per second" on that policy
#           (README "Spoofed sources"): never-seen sources beyond 10,000 a
#           second are dropped; every other scenario is unchanged by it
#   nft     counting XDP_PASS stub + nftables netdev ingress meter on the veth
#   ipt     counting XDP_PASS stub + iptables/ip6tables raw hashlimit
#   alu20, alu60  calibration: XDP_DROP after 20 or 60 rounds of register
#           arithmetic, no memory touched (tests/bench/stubs.bpf.c): programs
#           a known number of ns heavier than bare and nothing else, so the
#           receiver cost of program time alone reads next to sluice's.
#           Measured in the scenarios of CALIB_SCENARIOS only (flood1)
# Scenarios (the same frames for every receiver; 64-byte UDP; "full speed"
# is as fast as the generator goes, several Mpps, more than any receiver
# here takes: the veth ring overflows and the generator counts xmit errors):
#   flood1    one IPv4 source over its limit (port 9000: 1000/second burst
#             1000), full speed: thousands of times over
#   within    one IPv4 source within its limit: port 9001, whose limit is
#             1000000/second burst 1000000 for all three limiters (hashlimit's
#             ceiling), full speed: no receiver here passes 1M packets/s into
#             its stack, and the "to stack" column shows that all passed
#   over100   one IPv4 source 100x over 1000/second: port 9000, paced at
#             100k/s (64-frame batches: each one wakes the NAPI thread, whose
#             wake-up is part of every receiver's cost here)
#   src1k     1000 IPv4 sources round robin, port 9000, as fast as possible
#   rand16m   random IPv6 sources in a /104 (16M addresses: a spoofed flood;
#             the IPv4 test range 198.18.0.0/15 has only 128k), port 9000,
#             as fast as possible; sluice keys IPv6 by /128 here, as nft and
#             hashlimit do
#   nopolicy  one IPv4 source to port 9999, which no limiter covers, as fast
#             as possible
# Every round measures every receiver on every scenario, receivers in a
# rotated order; each measurement follows a warm-up of the same traffic.
# Ratios are to bare XDP_DROP on the same scenario in the same round.
# After each measurement, a second window of the same traffic (--prog-seconds)
# runs with BPF run-time stats on (tests/bench/prog_stats.py) and records the
# receiver's XDP program's own run time per packet (run_time_ns / run_cnt):
# the program's cost apart from the stack's, for bare, parse, pass and sluice.
# It is a window of its own because stats add clock reads to every run.
#
# Usage: tests/bench/run.sh [--quick] [--rounds N] [--seconds S] [--warmup S] [--prog-seconds S]
#                           [--receivers "bare pass ..."] [--scenarios "..."]
#                           [--markdown FILE | --no-markdown]
#   make bench-quick   2 rounds of 0.2 s, no warm-up (< 2 min); table printed, BENCHMARKS.md untouched
#   make bench         7 rounds of 2 s (~18 min); writes BENCHMARKS.md
# Output: build/bench/raw.jsonl (one line per measurement), meta.json,
# results.json, table.md. Needs root. Not part of `make test` or CI.
#
# Traffic stays between the two namespaces this script creates (names carry
# its pid); every flood is bounded by a count and a duration; everything is
# removed on exit, error or Ctrl-C, and leftovers of dead runs at start.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
FLOOD=$BUILD/sluice-flood
SLUICE=$BUILD/sluice
STUBS=$BUILD/bench-stubs.bpf.o
OUT=$BUILD/bench
GEN_CPU=${GEN_CPU:-0}   # the generator runs here
RX_CPU=${RX_CPU:-1}     # the receiver's NAPI kthread runs here

ROUNDS=7
MEASURE_S=2
WARMUP_S=0.5
PROG_S=0.5
QUICK=0
RECEIVERS_GIVEN=0
RECEIVERS="bare parse pass alu20 alu60 sluice sluicens nft ipt"
CALIB_SCENARIOS="flood1"   # the only scenarios alu20 and alu60 measure
SCENARIOS="flood1 within over100 src1k rand16m nopolicy"
MARKDOWN=BENCHMARKS.md
ARGS="$*"

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ROUNDS=2; MEASURE_S=0.2; WARMUP_S=0; PROG_S=0.1; MARKDOWN="" ;;
        --rounds) ROUNDS=$2; shift ;;
        --seconds) MEASURE_S=$2; shift ;;
        --warmup) WARMUP_S=$2; shift ;;
        --prog-seconds) PROG_S=$2; shift ;;
        --receivers) RECEIVERS=$2; RECEIVERS_GIVEN=1; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --markdown) MARKDOWN=$2; shift ;;
        --no-markdown) MARKDOWN="" ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# The calibration receivers are for full runs: bench-quick stays within its
# two minutes without them.
if [ "$QUICK" = 1 ] && [ "$RECEIVERS_GIVEN" = 0 ]; then
    RECEIVERS=${RECEIVERS/alu20 alu60 /}
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: needs root (network namespaces, XDP, netfilter)" >&2
    exit 2
fi
for f in "$FLOOD" "$SLUICE" "$STUBS"; do
    [ -e "$f" ] || { echo "run.sh: $f is missing: run make bench / make bench-quick" >&2; exit 2; }
done
for tool in nft iptables ip6tables ethtool nsenter taskset python3 bpftool; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed (make deps)" >&2; exit 2; }
done
if [ "$(nproc)" -lt 2 ]; then
    GEN_CPU=0; RX_CPU=0
    echo "run.sh: one CPU only: generator and receiver share it; figures are less clean" >&2
fi

ID=$$
GNS=sbg$ID          # generator namespace
RNS=sbr$ID          # receiver namespace
GIF=sg$ID           # veth ends: short, so the NAPI kthread's name keeps them
RIF=sr$ID
GMAC=02:5c:00:00:bb:02
RMAC=02:5c:00:00:bb:01
NFT_TABLE=sb$ID
HL_NAME=sb$ID
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
CURRENT_RX=""

in_rx() { nsenter --net="/run/netns/$RNS" "$@"; }   # net namespace only: pins stay visible

cleanup() {
    set +e
    trap - EXIT INT TERM
    if [ -e "/run/netns/$RNS" ]; then
        case "$CURRENT_RX" in sluice*) in_rx "$SLUICE" detach "$RIF" >/dev/null 2>&1 ;; esac
        ip netns del "$RNS"
    fi
    [ -e "/run/netns/$GNS" ] && ip netns del "$GNS"
    rm -rf "/sys/fs/bpf/sluice/$RIF" "$WORK"
    rmdir /sys/fs/bpf/sluice 2>/dev/null
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted, cleaning up" >&2; exit 130' INT TERM

# Leftovers of runs that died without cleaning up (their pid is gone).
reap_stale() {
    local n pid
    for n in /run/netns/sbg* /run/netns/sbr*; do
        [ -e "$n" ] || continue
        pid=${n#/run/netns/sb?}
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        if [ "$pid" != "$ID" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: removing namespace ${n#/run/netns/} of dead run $pid" >&2
            ip netns del "${n#/run/netns/}"
        fi
    done
    for n in /sys/fs/bpf/sluice/sr*; do
        [ -e "$n" ] || continue
        pid=${n#/sys/fs/bpf/sluice/sr}
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        if [ "$pid" != "$ID" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: removing pins $n of dead run $pid" >&2
            rm -rf "$n"
        fi
    done
}

# ---------------------------------------------------------------- testbed

setup_bed() {
    ip netns add "$GNS"
    ip netns add "$RNS"
    # Created in the generator namespace, the peer straight into the
    # receiver's: no end ever exists in the host namespace.
    ip -n "$GNS" link add "$GIF" address "$GMAC" type veth peer name "$RIF" address "$RMAC" \
        netns "$RNS"
    ip -n "$RNS" addr add 198.18.1.1/24 dev "$RIF"
    ip -n "$RNS" -6 addr add fd00:5c::1:1/112 dev "$RIF" nodad
    ip -n "$GNS" addr add 198.18.1.2/24 dev "$GIF"
    ip -n "$GNS" -6 addr add fd00:5c::1:2/112 dev "$GIF" nodad
    ip -n "$GNS" link set lo up
    ip -n "$RNS" link set lo up
    ip -n "$GNS" link set "$GIF" up
    ip -n "$RNS" link set "$RIF" up
    # Sources are off-link (198.19.0.0/16, fd00:5c::100:0:0/104): with no
    # route back the receiver cannot answer (no ICMP, no neighbour lookups),
    # and rp_filter must not drop them first.
    ip netns exec "$RNS" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0 "net.ipv4.conf.$RIF.rp_filter=0"
    cat >"$WORK/sluice.toml" <<EOF
[sluice]
interfaces = ["$RIF"]
max_sources = 1000000

[[policy]]
name = "limited"
proto = "udp"
ports = [9000]
packets = "1000/second burst 1000"
ipv6_prefix = 128
action = "drop"

[[policy]]
name = "within"
proto = "udp"
ports = [9001]
packets = "1000000/second burst 1000000"
action = "drop"
EOF
    sed 's/^ipv6_prefix = 128$/&\nnew_sources = "10000 per second"/' "$WORK/sluice.toml" >"$WORK/sluicens.toml"
    grep -q '^new_sources' "$WORK/sluicens.toml"
}

# ---------------------------------------------------------------- receivers

attach_rx() {
    local rx=$1
    case "$rx" in
        bare) ip -n "$RNS" link set dev "$RIF" xdpdrv obj "$STUBS" program bare_drop ;;
        parse) ip -n "$RNS" link set dev "$RIF" xdpdrv obj "$STUBS" program parse_drop ;;
        alu20) ip -n "$RNS" link set dev "$RIF" xdpdrv obj "$STUBS" program alu_drop_short ;;
        alu60) ip -n "$RNS" link set dev "$RIF" xdpdrv obj "$STUBS" program alu_drop_long ;;
        pass|nft|ipt) ip -n "$RNS" link set dev "$RIF" xdpdrv obj "$STUBS" program count_pass ;;
        sluice) in_rx "$SLUICE" attach "$RIF" --mode native --config "$WORK/sluice.toml" >"$WORK/attach.txt" ;;
        sluicens) in_rx "$SLUICE" attach "$RIF" --mode native --config "$WORK/sluicens.toml" >/dev/null ;;
    esac
    CURRENT_RX=$rx
    case "$rx" in
        nft) in_rx nft -f - <<EOF
table netdev $NFT_TABLE {
    set m4 { type ipv4_addr; size 1048576; flags dynamic,timeout; timeout 60s; }
    set m6 { type ipv6_addr; size 1048576; flags dynamic,timeout; timeout 60s; }
    set w4 { type ipv4_addr; size 1048576; flags dynamic,timeout; timeout 60s; }
    chain ingress {
        type filter hook ingress device "$RIF" priority 0; policy accept;
        meta protocol ip udp dport 9000 update @m4 { ip saddr limit rate over 1000/second burst 1000 packets } drop
        meta protocol ip6 udp dport 9000 update @m6 { ip6 saddr limit rate over 1000/second burst 1000 packets } drop
        meta protocol ip udp dport 9001 update @w4 { ip saddr limit rate over 1000000/second burst 1000000 packets } drop
    }
}
EOF
            ;;
        ipt)
            local t
            for t in iptables ip6tables; do
                in_rx "$t" -t raw -A PREROUTING -p udp --dport 9000 -m hashlimit \
                    --hashlimit-above 1000/sec --hashlimit-burst 1000 --hashlimit-mode srcip \
                    --hashlimit-name "${HL_NAME}${t:0:3}" --hashlimit-htable-size 262144 \
                    --hashlimit-htable-max 1048576 --hashlimit-htable-expire 60000 -j DROP
            done
            in_rx iptables -t raw -A PREROUTING -p udp --dport 9001 -m hashlimit \
                --hashlimit-above 1000000/sec --hashlimit-burst 1000000 --hashlimit-mode srcip \
                --hashlimit-name "${HL_NAME}w" --hashlimit-htable-max 1048576 -j DROP
            ;;
    esac
    # veth creates its NAPI instance when XDP is attached: thread it now,
    # and keep its kthread on the receiver CPU.
    ip netns exec "$RNS" sh -c "echo 1 > /sys/class/net/$RIF/threaded"
    NAPI_PID=$(ps -e -o pid=,comm= | awk -v p="napi/$RIF-" 'index($2, p) == 1 { print $1 }')
    if [ -z "$NAPI_PID" ] || [ "$(echo "$NAPI_PID" | wc -l)" -ne 1 ]; then
        echo "run.sh: cannot find exactly one NAPI kthread napi/$RIF-* (found: '$NAPI_PID')" >&2
        exit 1
    fi
    taskset -pc "$RX_CPU" "$NAPI_PID" >/dev/null
}

detach_rx() {
    local rx=$1
    case "$rx" in
        sluice*) in_rx "$SLUICE" detach "$RIF" >/dev/null ;;
        *) ip -n "$RNS" link set dev "$RIF" xdpdrv off ;;
    esac
    case "$rx" in
        nft) in_rx nft delete table netdev "$NFT_TABLE" ;;
        ipt) in_rx iptables -t raw -F PREROUTING; in_rx ip6tables -t raw -F PREROUTING ;;
    esac
    CURRENT_RX=""
}

# ---------------------------------------------------------------- traffic

# Sets DST, SRC_ARGS, PORT, RATE for a scenario.
scenario() {
    DST=198.18.1.1
    RATE=0
    case "$1" in
        flood1)   PORT=9000; SRC_ARGS=(--src 198.19.0.2) ;;
        within)   PORT=9001; SRC_ARGS=(--src 198.19.0.1) ;;
        over100)  PORT=9000; SRC_ARGS=(--src 198.19.0.4); RATE=100000 ;;
        src1k)    PORT=9000; SRC_ARGS=(--src-prefix 198.19.0.0/16 --src 198.19.4.1 --sources 1000) ;;
        rand16m)  PORT=9000; DST=fd00:5c::1:1; SRC_ARGS=(--src-prefix fd00:5c::100:0:0/104 --sources random) ;;
        nopolicy) PORT=9999; SRC_ARGS=(--src 198.19.0.3) ;;
        *) echo "run.sh: unknown scenario $1" >&2; exit 2 ;;
    esac
}

# flood_cmd SECONDS [extra args]: sets FLOOD_CMD, a flood bounded by the
# duration and by a count no generator here can reach in it (10M frames/s).
flood_cmd() {
    local secs=$1
    shift
    local count
    count=$(awk -v s="$secs" 'BEGIN { n = int(s * 10000000); print (n < 1000 ? 1000 : n) }')
    FLOOD_CMD=(taskset -c "$GEN_CPU" "$FLOOD" --netns "$GNS" --dev "$GIF" --dst-mac "$RMAC" --dst "$DST"
        "${SRC_ARGS[@]}" --dport "$PORT" --size 64 --count "$count" --duration "${secs}s"
        --rate "$RATE" "$@")
}
flood() { flood_cmd "$@"; "${FLOOD_CMD[@]}"; }

xdp_packets() { in_rx ethtool -S "$RIF" | awk '$1 ~ /^rx_queue_[0-9]+_xdp_packets:$/ { n += $2 } END { print n + 0 }'; }
run_ns() { awk '{ print $1 }' "/proc/$NAPI_PID/schedstat"; }
# UDP datagrams that reached the receiver's stack (nothing listens: NoPorts).
stack_udp() {
    in_rx sh -c 'cat /proc/net/snmp /proc/net/snmp6' | awk '
        $1 == "Udp:" && $2 == "InDatagrams" { for (i = 2; i <= NF; i++) col[$i] = i; next }
        $1 == "Udp:" { n += $col["NoPorts"] + $col["InErrors"] + $col["InDatagrams"] }
        $1 == "Udp6NoPorts" || $1 == "Udp6InErrors" || $1 == "Udp6InDatagrams" { n += $2 }
        END { print n + 0 }'
}

measure() {
    local round=$1 rx=$2 sc=$3
    scenario "$sc"
    # --quick has no warm-up (its figures are not for quoting): a flood
    # costs ~0.3 s to start, which would take it past two minutes.
    [ "$WARMUP_S" = 0 ] || flood "$WARMUP_S" --json >/dev/null
    local p0 k0 s0 p1 k1 s1 t0 t1 gen
    p0=$(xdp_packets); k0=$(stack_udp); s0=$(run_ns); t0=$(date +%s%N)
    gen=$(flood "$MEASURE_S" --json)
    sleep 0.05   # let NAPI drain the ring
    s1=$(run_ns); t1=$(date +%s%N); p1=$(xdp_packets); k1=$(stack_udp)
    # The XDP program's own run time per packet, BPF stats on, same traffic.
    local prog
    flood_cmd "$PROG_S"
    prog=$(python3 tests/bench/prog_stats.py --netns "$RNS" --dev "$RIF" -- "${FLOOD_CMD[@]}")
    sleep 0.05
    printf '{"round": %d, "receiver": "%s", "scenario": "%s", "run_ns": %d, "wall_ns": %d, "packets": %d, "to_stack": %d, "generator": %s, "prog": %s}\n' \
        "$round" "$rx" "$sc" $((s1 - s0)) $((t1 - t0)) $((p1 - p0)) $((k1 - k0)) "$gen" "$prog" >>"$OUT/raw.jsonl"
    local gen_pps gen_s
    gen_pps=$(sed -n 's/.*"pps": \([0-9.]*\).*/\1/p' <<<"$gen")
    gen_s=$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' <<<"$gen")
    local prog_t prog_c
    prog_t=$(sed -n 's/.*"run_time_ns": \([0-9]*\).*/\1/p' <<<"$prog")
    prog_c=$(sed -n 's/.*"run_cnt": \([0-9]*\).*/\1/p' <<<"$prog")
    awk -v r="$round" -v rx="$rx" -v sc="$sc" -v run=$((s1 - s0)) -v p=$((p1 - p0)) \
        -v k=$((k1 - k0)) -v pps="$gen_pps" -v secs="$gen_s" -v pt="$prog_t" -v pc="$prog_c" 'BEGIN {
        printf "  round %d  %-7s %-9s %8.1f ns/pkt %9d pkts %5.1f%% to stack  gen %5.2f Mpps  rx busy %3.0f%%  prog %6.1f ns/run\n",
            r, rx, sc, p ? run / p : 0, p, p ? 100 * k / p : 0, pps / 1e6, secs ? 100 * run / (secs * 1e9) : 0,
            pc ? pt / pc : 0 }'
}

# ---------------------------------------------------------------- main

# Before anything of ours runs: the run's own generator and receiver keep
# both CPUs busy, so the load average at the end says nothing about others.
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
reap_stale
mkdir -p "$OUT"
: >"$OUT/raw.jsonl"
setup_bed

read -r -a RX_LIST <<<"$RECEIVERS"
read -r -a SC_LIST <<<"$SCENARIOS"
case " ${RX_LIST[*]} " in *" bare "*) ;; *) echo "run.sh: the receivers must include bare (the baseline)" >&2; exit 2 ;; esac

echo "== sluice receiver benchmark: ${#RX_LIST[@]} receivers x ${#SC_LIST[@]} scenarios x $ROUNDS rounds," \
     "${MEASURE_S}s each after ${WARMUP_S}s warm-up; generator on CPU $GEN_CPU, receiver NAPI on CPU $RX_CPU"
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((round = 1; round <= ROUNDS; round++)); do
    n=${#RX_LIST[@]}
    for ((i = 0; i < n; i++)); do
        rx=${RX_LIST[$(((i + round - 1) % n))]}   # rotated: no receiver always goes first
        attach_rx "$rx"
        [ "$rx" = sluice ] && [ "$round" = 1 ] && sed 's/^/  /' "$WORK/attach.txt"
        for sc in "${SC_LIST[@]}"; do
            case "$rx" in alu*) [[ " $CALIB_SCENARIOS " == *" $sc "* ]] || continue ;; esac
            measure "$round" "$rx" "$sc"
        done
        detach_rx "$rx"
    done
done
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)

if [ "$QUICK" = 1 ]; then
    COMMAND="make bench-quick"
else
    COMMAND="make bench"
fi
python3 - "$OUT/meta.json" <<EOF
import json, os, platform, subprocess, sys
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
meta = {
    "command": "$COMMAND" + (" (tests/bench/run.sh $ARGS)" if "$ARGS" else ""),
    "started": "$START", "ended": "$END",
    "kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(),
    "mitigations": out("cat", "/sys/devices/system/cpu/vulnerabilities/spectre_v2"),
    "loadavg_at_start": "$LOAD_START".split(),
    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    "rounds": $ROUNDS, "measure_s": $MEASURE_S, "warmup_s": $WARMUP_S, "prog_s": $PROG_S,
    "gen_cpu": $GEN_CPU, "rx_cpu": $RX_CPU,
    "receivers": "$RECEIVERS".split(), "scenarios": "$SCENARIOS".split(),
    "nft": out("nft", "--version"), "iptables": out("iptables", "--version"),
    "sluice_attach": open("$WORK/attach.txt").read().strip() if os.path.exists("$WORK/attach.txt") else "",
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF
python3 tests/bench/report.py --raw "$OUT/raw.jsonl" --meta "$OUT/meta.json" \
    --json "$OUT/results.json" --table "$OUT/table.md" ${MARKDOWN:+--markdown "$MARKDOWN"}
