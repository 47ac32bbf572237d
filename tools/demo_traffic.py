# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The traffic, live view and summary of `make demo` (tools/demo.sh).

Runs inside the demo's client namespace: legitimate users (one request each
every 15 s, within 5 per minute) and an attacker (many requests a second from
each of its addresses) against the API's /api/v1/heavy-task, side by side.
Once a second it redraws what each source got, what sluice sees (`sluice top`
and `sluice stats` through nsenter into the server namespace) and the app's
CPU (its /stats on the server's loopback, which XDP never sees); written to
a log instead of a terminal, it prints one line a second. It ends with
a summary and one machine-readable "SUMMARY key=value ..." line.

Every loop is bounded by the deadline and by a count.
"""
import argparse
import ipaddress
import json
import re
import socket
import subprocess
import sys
import threading
import time
import tomllib

HEAVY = "/api/v1/heavy-task"
LEGIT_PERIOD_S = 15       # one request per 15 s: 4 a minute, within 5 per minute
REQUEST_TIMEOUT_S = 2.0


class Source:
    def __init__(self, addr, role):
        self.addr, self.role = addr, role
        self.sent = self.ok = self.r429 = self.refused = self.failed = 0


def request(src, server, port):
    """One GET without keep-alive from `src`; the HTTP status, or 'refused'/'failed'."""
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(REQUEST_TIMEOUT_S)
            s.bind((src, 0))
            s.connect((server, port))
            s.sendall(f"GET {HEAVY} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
            return int(m.group(1)) if m else "failed"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "failed"


def record(src, result):
    src.sent += 1
    if result == 200:
        src.ok += 1
    elif result == 429:
        src.r429 += 1
    elif result == "refused":
        src.refused += 1
    else:
        src.failed += 1


def legit_user(src, server, port, start_s, deadline):
    time.sleep(start_s)
    for _ in range(1000):
        if time.monotonic() >= deadline:
            return
        began = time.monotonic()
        record(src, request(src.addr, server, port))
        time.sleep(max(0.0, min(LEGIT_PERIOD_S - (time.monotonic() - began), deadline - time.monotonic())))


def attacker(src, server, port, rate, deadline, max_requests):
    gap = 1.0 / rate
    next_at = time.monotonic()
    for _ in range(max_requests):
        if time.monotonic() >= deadline:
            return
        record(src, request(src.addr, server, port))
        next_at += gap
        time.sleep(max(0.0, next_at - time.monotonic()))


def in_server(args, cmd):
    """A command in the server namespace; its stdout parsed as JSON, or None."""
    try:
        out = subprocess.run(["nsenter", f"--net={args.server_ns}"] + cmd, capture_output=True,
                             text=True, timeout=5, check=True).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, json.JSONDecodeError):
        return None


def app_stats(args):
    j = in_server(args, ["curl", "-s", "-m", "2", f"http://127.0.0.1:{args.port}/stats"])
    if not j:
        return 0, 0.0
    return j["served"].get(f"{HEAVY} 200", 0), j["cpu_seconds"]


def pct(a, b):
    return 100.0 * a / b if b else 100.0


def render(args, sources, elapsed, top, stats, app_served, app_cpu, cpu_last_s, tty):
    legit = [s for s in sources if s.role == "legitimate"]
    attack = [s for s in sources if s.role == "attacker"]
    l_ok, l_sent = sum(s.ok for s in legit), sum(s.sent for s in legit)
    a_sent = sum(s.sent for s in attack)
    a_reached = sum(s.ok for s in attack)
    if not tty:  # a log: one line a second
        print(f"t={elapsed:4.1f}s legitimate {l_ok}/{l_sent} ok | attacker {a_sent} sent, {a_reached} reached "
              f"the app | app CPU {app_cpu:.2f}s (last second {cpu_last_s:.2f}s)", flush=True)
        return
    # sluice keys a source by its masked address (an IPv6 /64 by default).
    state = []
    for e in (top or {}).get(args.iface, {}).get("sources", []):
        conn = next((l for l in e["limits"] if l["kind"] == "connections"), e["limits"][0])
        prefix = args.ipv6_prefix if ":" in e["source"] else args.ipv4_prefix
        net = ipaddress.ip_network(f"{e['source'].split('/')[0]}/{prefix}", strict=False)
        state.append((net, e["limited"], conn.get("remaining", "-")))
    lines = [f"sluice demo: {elapsed:4.1f}s of {args.seconds}s   API http://{args.server4}:{args.port}{HEAVY}   "
             f"policy heavy-task: {args.limit}, action respond", "",
             f"{'SOURCE':<22}{'ROLE':<12}{'SENT':>7}{'200':>6}{'429':>7}{'REFUSED':>9}{'FAILED':>8}"
             f"   SLUICE: {'STATE':<9}{'CONN LEFT':>9}"]
    for s in sources:
        limited, left = next(((l, r) for net, l, r in state if ipaddress.ip_address(s.addr) in net), (False, "-"))
        lines.append(f"{s.addr:<22}{s.role:<12}{s.sent:>7}{s.ok:>6}{s.r429:>7}{s.refused:>9}{s.failed:>8}"
                     f"           {'limited' if limited else 'ok':<9}{left:>9}")
    verdicts = {}
    for c in (stats or {}).get(args.iface, []):
        if c.get("policy") == "heavy-task":
            verdicts = {v: n["packets"] for v, n in c.get("verdicts", {}).items() if n["packets"]}
    lines += ["",
              f"legitimate success: {l_ok}/{l_sent} ({pct(l_ok, l_sent):.1f}%)    "
              f"attacker: {a_sent} sent, {a_reached} reached the app",
              "sluice heavy-task packets: " + (", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())) or "-"),
              f"the app: heavy-task served {app_served} times, CPU {app_cpu:.2f}s since the start, "
              f"{cpu_last_s:.2f}s in the last second"]
    sys.stdout.write("\033[H\033[2J" + "\n".join(lines) + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--server4", required=True)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--server-ns", required=True, help="/run/netns/NAME of the server")
    p.add_argument("--iface", required=True, help="the server's interface sluice protects")
    p.add_argument("--sluice", required=True, help="the sluice binary")
    p.add_argument("--config", required=True, help="the config sluice runs (for its heavy-task limit)")
    p.add_argument("--server6", required=True)
    p.add_argument("--legit", nargs="+", required=True)
    p.add_argument("--attack", nargs="+", required=True)
    p.add_argument("--attack-rate", type=int, default=50, help="requests per second per attacker address")
    p.add_argument("--heavy-seconds", type=float, default=0.02, help="CPU one heavy-task burns (api.py's default)")
    args = p.parse_args()

    with open(args.config, "rb") as f:
        policy = next(q for q in tomllib.load(f)["policy"] if q["name"] == "heavy-task")
    args.limit = policy["connections"]
    args.ipv4_prefix, args.ipv6_prefix = policy.get("ipv4_prefix", 32), policy.get("ipv6_prefix", 64)
    per_minute = int(re.match(r"(\d+) per minute", args.limit).group(1))
    # The bucket starts full (a burst of per_minute), then refills.
    allowed_each = per_minute + int(args.seconds * per_minute / 60) + 1

    sources = [Source(a, "legitimate") for a in args.legit] + [Source(a, "attacker") for a in args.attack]
    _, cpu0 = app_stats(args)
    cpu_prev = cpu0
    start = time.monotonic()
    deadline = start + args.seconds
    threads = []
    for i, s in enumerate(x for x in sources if x.role == "legitimate"):
        server = args.server6 if ":" in s.addr else args.server4
        start_s = i * min(LEGIT_PERIOD_S, args.seconds) / len(args.legit)
        threads.append(threading.Thread(target=legit_user, args=(s, server, args.port, start_s, deadline)))
    for s in (x for x in sources if x.role == "attacker"):
        server = args.server6 if ":" in s.addr else args.server4
        threads.append(threading.Thread(target=attacker, args=(s, server, args.port, args.attack_rate, deadline,
                                                               args.attack_rate * args.seconds)))
    for t in threads:
        t.daemon = True
        t.start()

    tty = sys.stdout.isatty()
    sluice = ["nsenter", f"--net={args.server_ns}", args.sluice]
    for tick in range(1, args.seconds + 1):
        top = in_server(args, [args.sluice, "top", args.iface, "--json", "-n", "40", "--interval", "0"]) if tty \
            else None
        stats = in_server(args, [args.sluice, "stats", args.iface, "--json"]) if tty else None
        served, cpu = app_stats(args)
        render(args, sources, time.monotonic() - start, top, stats, served, cpu - cpu0, cpu - cpu_prev, tty)
        cpu_prev = cpu
        time.sleep(max(0.0, start + tick - time.monotonic()))
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT_S + LEGIT_PERIOD_S)

    served, cpu = app_stats(args)
    legit = [s for s in sources if s.role == "legitimate"]
    attack = [s for s in sources if s.role == "attacker"]
    l_ok, l_sent = sum(s.ok for s in legit), sum(s.sent for s in legit)
    a = {k: sum(getattr(s, k) for s in attack) for k in ("sent", "ok", "r429", "refused", "failed")}
    allowed = allowed_each * len(attack)
    held = a["ok"] <= allowed < a["sent"]
    print(f"\n== summary ({args.seconds}s, policy heavy-task: {args.limit}, action respond)")
    print(f"   legitimate: {len(legit)} users, {l_ok} of {l_sent} requests answered 200 ({pct(l_ok, l_sent):.1f}%)")
    print(f"   attacker:   {len(attack)} addresses, {a['sent']} requests: {a['r429']} answered 429 by sluice, "
          f"{a['refused']} refused, {a['failed']} failed, {a['ok']} reached the app "
          f"(its limit allows at most {allowed})")
    print(f"   the app:    ran heavy-task {served} times, {cpu - cpu0:.2f} CPU-seconds during the demo; the "
          f"{a['sent'] - a['ok']} attacker requests it never saw would have cost it about "
          f"{(a['sent'] - a['ok']) * args.heavy_seconds:.0f} more ({args.heavy_seconds * 1000:.0f} ms each)")
    subprocess.run(sluice + ["stats", args.iface], timeout=5, check=False)
    print(f"SUMMARY legit_ok={l_ok} legit_sent={l_sent} legit_pct={pct(l_ok, l_sent):.1f} "
          f"attack_sent={a['sent']} attack_429={a['r429']} attack_refused={a['refused']} "
          f"attack_failed={a['failed']} attack_reached={a['ok']} attack_allowed={allowed} "
          f"app_served={served} app_cpu_s={cpu - cpu0:.2f} held={'yes' if held else 'no'}", flush=True)
    return 0 if held and pct(l_ok, l_sent) >= 99.0 else 1


if __name__ == "__main__":
    sys.exit(main())
