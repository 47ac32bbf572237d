#!/bin/bash
# `make demo`: the Flask API of the scenario tests (tests/integration/apps/
# api.py) under gunicorn, protected by `sluice run --config examples/api.toml`,
# with legitimate users and an attacker side by side; a live view once a
# second, then a summary (tools/demo_traffic.py). Everything runs in two
# network namespaces this script creates and removes, on exit, Ctrl-C or
# failure; no traffic leaves them. DEMO_SECONDS sets the duration (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly SECONDS_RUN=${DEMO_SECONDS:-30}
readonly PORT=8080                       # heavy-task's port in examples/api.toml
readonly CONFIG=examples/api.toml
readonly SLUICE=$PWD/build/sluice
readonly PY=/usr/bin/python3             # Debian's, which has Flask and gunicorn
# RFC 2544 benchmarking range and a ULA, namespaces only. The /48 is on-link,
# so each IPv6 source is in its own /64 (sluice's default IPv6 bucket).
readonly SRV4=198.18.0.1 SRV6=fd00:5c::1
readonly LEGIT=(198.18.0.11 198.18.0.12 198.18.0.13 198.18.0.14 fd00:5c:0:11::1 fd00:5c:0:12::1)
readonly ATTACK=(198.18.0.101 198.18.0.102 198.18.0.103 198.18.0.104 198.18.0.105
                 fd00:5c:0:101::1 fd00:5c:0:102::1 fd00:5c:0:103::1)

[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (CAP_BPF, CAP_NET_ADMIN): run as root" >&2; exit 2; }
[[ "$SECONDS_RUN" =~ ^[0-9]+$ ]] && [ "$SECONDS_RUN" -ge 3 ] && [ "$SECONDS_RUN" -le 600 ] ||
    { echo "DEMO_SECONDS must be 3-600, not '$SECONDS_RUN'" >&2; exit 2; }

tag="sd$$"
srv_ns="sluice-demo-$$-srv"; cli_ns="sluice-demo-$$-cli"
srv_if="${tag}s"; cli_if="${tag}c"
work=$(mktemp -d /tmp/sluice-demo-XXXXXX)
pids=()

cleanup() {
    set +e
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    # sluice run detaches on SIGTERM; this is for a run that died.
    [ -e "/run/netns/$srv_ns" ] && [ -e "/sys/fs/bpf/sluice/$srv_if" ] &&
        nsenter --net="/run/netns/$srv_ns" "$SLUICE" detach "$srv_if" >/dev/null 2>&1
    ip netns del "$srv_ns" 2>/dev/null
    ip netns del "$cli_ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_srv() { nsenter --net="/run/netns/$srv_ns" "$@"; }
in_cli() { nsenter --net="/run/netns/$cli_ns" "$@"; }

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
echo "== namespaces $srv_ns (the API) and $cli_ns (its clients), joined by veth $srv_if/$cli_if"
ip netns add "$srv_ns"
ip netns add "$cli_ns"
ip link add "$srv_if" netns "$srv_ns" type veth peer name "$cli_if" netns "$cli_ns"
in_srv ip addr add "$SRV4/24" dev "$srv_if"
in_srv ip addr add "$SRV6/48" dev "$srv_if" nodad
for a in "${LEGIT[@]}" "${ATTACK[@]}"; do
    if [[ $a == *:* ]]; then in_cli ip addr add "$a/48" dev "$cli_if" nodad; else in_cli ip addr add "$a/24" dev "$cli_if"; fi
done
in_srv ip link set lo up
in_cli ip link set lo up
in_srv ip link set "$srv_if" up
in_cli ip link set "$cli_if" up

echo "== the API: tests/integration/apps/api.py under gunicorn on port $PORT"
nsenter --net="/run/netns/$srv_ns" "$PY" -m gunicorn --chdir tests/integration/apps --bind "[::]:$PORT" --workers 1 --threads 4 \
    --keep-alive 1 --graceful-timeout 1 api:app >"$work/gunicorn.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    in_srv curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/health" && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.2
done
in_srv curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/health" ||
    { echo "gunicorn did not start; its log:" >&2; cat "$work/gunicorn.log" >&2; exit 1; }

echo "== sluice run --config $CONFIG --interface $srv_if"
nsenter --net="/run/netns/$srv_ns" "$SLUICE" run --config "$CONFIG" --interface "$srv_if" >"$work/sluice.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    grep -q "running with" "$work/sluice.log" && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
done
grep -q "running with" "$work/sluice.log" ||
    { echo "sluice run did not start; its log:" >&2; cat "$work/sluice.log" >&2; exit 1; }
sed 's/^/   /' "$work/sluice.log"

echo "== ${SECONDS_RUN}s: ${#LEGIT[@]} legitimate users (a request every 15 s each) and an attacker"
echo "   from ${#ATTACK[@]} addresses (50 requests a second each), all on http://$SRV4:$PORT/api/v1/heavy-task"
# In the background, so that `wait` (unlike a foreground command) lets
# Ctrl-C and SIGTERM run the traps at once.
nsenter --net="/run/netns/$cli_ns" "$PY" tools/demo_traffic.py --seconds "$SECONDS_RUN" --server4 "$SRV4" --server6 "$SRV6" --port "$PORT" \
    --server-ns "/run/netns/$srv_ns" --iface "$srv_if" --sluice "$SLUICE" --config "$CONFIG" \
    --legit "${LEGIT[@]}" --attack "${ATTACK[@]}" &
pids+=($!)
rc=0
wait "${pids[-1]}" || rc=$?
exit "$rc"
