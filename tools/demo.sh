#!/bin/bash
# `make demo`: a legitimate client and an attacker against one HTTP server,
# with sluice attached to the server's interface. Everything runs in two
# network namespaces this script creates and removes; no traffic leaves them.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly DURATION_S=30
readonly ATTACKERS=16           # concurrent attacker loops
readonly PORT=8080
readonly SRV_ADDR=198.18.0.1    # RFC 2544 benchmarking range, namespaces only
readonly LEGIT_ADDR=198.18.0.2
readonly ATTACK_ADDR=198.18.0.3
readonly SLUICE=build/sluice

[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (CAP_BPF, CAP_NET_ADMIN): run as root" >&2; exit 2; }

tag="sd$$"
srv_ns="${tag}srv"; cli_ns="${tag}cli"
srv_if="${tag}s"; cli_if="${tag}c"
work=$(mktemp -d)

cleanup() {
    set +e
    jobs -p | xargs -r kill 2>/dev/null
    wait 2>/dev/null
    [ -e "/run/netns/$srv_ns" ] && nsenter --net="/run/netns/$srv_ns" "$SLUICE" detach "$srv_if" >/dev/null 2>&1
    ip netns del "$srv_ns" 2>/dev/null
    ip netns del "$cli_ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

in_srv() { ip netns exec "$srv_ns" "$@"; }
in_cli() { ip netns exec "$cli_ns" "$@"; }

echo "== setting up: server namespace $srv_ns, client namespace $cli_ns"
ip netns add "$srv_ns"
ip netns add "$cli_ns"
ip link add "$srv_if" netns "$srv_ns" type veth peer name "$cli_if" netns "$cli_ns"
in_srv ip addr add "$SRV_ADDR/24" dev "$srv_if"
in_srv ip link set "$srv_if" up
in_srv ip link set lo up
in_cli ip addr add "$LEGIT_ADDR/24" dev "$cli_if"
in_cli ip addr add "$ATTACK_ADDR/24" dev "$cli_if"
in_cli ip link set "$cli_if" up
in_cli ip link set lo up

mkdir -p "$work/www/api"
echo '{"status": "ok"}' > "$work/www/api/index.html"
in_srv /usr/bin/python3 -m http.server "$PORT" --bind "$SRV_ADDR" --directory "$work/www" \
    >"$work/server.log" 2>&1 &
for _ in $(seq 50); do in_cli curl -s -o /dev/null "http://$SRV_ADDR:$PORT/api/" && break; sleep 0.1; done

cat > "$work/demo.toml" <<TOML
[sluice]
interfaces = ["$srv_if"]

[[policy]]
name        = "api"
proto       = "tcp"
ports       = [$PORT]
connections = "5 per 10 seconds"      # pasted from a Flask-Limiter decorator
packets     = "200/second burst 400"
action      = "drop"
TOML
echo "== attaching sluice to $srv_if with this policy:"
grep -E '^(name|proto|ports|connections|packets|action)' "$work/demo.toml" | sed 's/^/   /'
# nsenter joins only the network namespace, so the pins land in the host's bpffs.
nsenter --net="/run/netns/$srv_ns" "$SLUICE" attach "$srv_if" --config "$work/demo.toml"

# Each client writes one line per request: "ok" or "fail".
client() {  # ADDR LOG PAUSE_S
    local end=$((SECONDS + DURATION_S))
    while [ $SECONDS -lt $end ]; do
        if in_cli curl -s -o /dev/null --max-time 1 --interface "$1" "http://$SRV_ADDR:$PORT/api/"; then
            echo ok >>"$2"
        else
            echo fail >>"$2"
        fi
        sleep "$3"
    done
}
echo "== for ${DURATION_S}s: one legitimate client ($LEGIT_ADDR, a request every 2.5 s)"
echo "   and $ATTACKERS attacker loops ($ATTACK_ADDR, as fast as they can)"
client "$LEGIT_ADDR" "$work/legit" 2.5 &
for i in $(seq "$ATTACKERS"); do client "$ATTACK_ADDR" "$work/attack" 0 & done

count() { grep -c "$1" "$2" 2>/dev/null || true; }
for t in $(seq 5 5 "$DURATION_S"); do
    sleep 5
    echo
    echo "-- after ${t}s: legitimate ok $(count ok "$work/legit")/$(count . "$work/legit"), attacker ok $(count ok "$work/attack")/$(count . "$work/attack")"
    nsenter --net="/run/netns/$srv_ns" "$SLUICE" stats "$srv_if" | sed 's/^/   /'
done
wait $(jobs -p | grep -v "^$(jobs -p %1 2>/dev/null)$") 2>/dev/null || true
sleep 1

legit_ok=$(count ok "$work/legit"); legit_all=$(count . "$work/legit")
attack_ok=$(count ok "$work/attack"); attack_all=$(count . "$work/attack")
served=$(grep -c '"GET /api/' "$work/server.log" || true)
echo
echo "== summary"
echo "   legitimate client: $legit_ok of $legit_all requests answered"
echo "   attacker:          $attack_ok of $attack_all requests answered (its limit: 5 connections per 10 s)"
echo "   the server handled $served requests; sluice dropped the rest in XDP before the stack saw them"
nsenter --net="/run/netns/$srv_ns" "$SLUICE" inspect "$srv_if" "$ATTACK_ADDR" | sed 's/^/   /'
