#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Summarises tests/bench/run.sh's measurements.

Per receiver and scenario: receiver CPU ns per packet (median and min-max
over rounds) and the ratio to bare XDP_DROP measured on the same scenario in
the same round (median and min-max of the per-round ratios). Writes
results.json, a Markdown table, and optionally replaces the results section
of BENCHMARKS.md (between its <!-- bench-results:begin/end --> markers).
"""
import argparse
import json
import math
import statistics
import sys

RECEIVERS = {
    "bare": "bare XDP_DROP",
    "parse": "XDP_DROP after reading headers",
    "pass": "XDP_PASS, empty stack",
    "alu20": "XDP_DROP after 20 rounds of arithmetic (calibration)",
    "alu60": "XDP_DROP after 60 rounds of arithmetic (calibration)",
    "sluice": "sluice",
    "sluicens": "sluice, new_sources 10000/s",
    "nft": "nftables netdev meter",
    "ipt": "iptables raw hashlimit",
}
SCENARIOS = {
    "flood1": "1 source over its limit",
    "within": "1 source within its limit",
    "over100": "1 source 100x over (100k/s)",
    "src1k": "1k sources",
    "rand16m": "16M random sources (IPv6)",
    "nopolicy": "port without a policy",
}
BEGIN = "<!-- bench-results:begin -->"
END = "<!-- bench-results:end -->"


def spread(values):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def summarise(rows):
    ns = {}
    for r in rows:
        v = r["run_ns"] / r["packets"] if r["packets"] else float("nan")
        ns[(r["receiver"], r["scenario"], r["round"])] = v
    # The XDP program's own ns per run (BPF stats window), where recorded.
    prog = {}
    for r in rows:
        p = r.get("prog")
        if p and p.get("run_cnt"):
            prog[(r["receiver"], r["scenario"], r["round"])] = p["run_time_ns"] / p["run_cnt"]
    cells = []
    keys = sorted({(r["receiver"], r["scenario"]) for r in rows},
                  key=lambda k: (list(RECEIVERS).index(k[0]) if k[0] in RECEIVERS else 99,
                                 list(SCENARIOS).index(k[1]) if k[1] in SCENARIOS else 99))
    for rx, sc in keys:
        mine = [r for r in rows if r["receiver"] == rx and r["scenario"] == sc]
        ratios, above_pass, prog_ratios = [], [], []
        for r in mine:
            mine_prog = prog.get((rx, sc, r["round"]))
            base_prog = prog.get(("bare", sc, r["round"]))
            if mine_prog is not None and base_prog:
                prog_ratios.append(mine_prog / base_prog)
            base = ns.get(("bare", sc, r["round"]))
            if base and not math.isnan(base):
                ratios.append(ns[(rx, sc, r["round"])] / base)
            p = ns.get(("pass", sc, r["round"]))
            if p is not None and not math.isnan(p):
                above_pass.append(ns[(rx, sc, r["round"])] - p)
        cells.append({
            "receiver": rx,
            "scenario": sc,
            "ns_per_packet": spread([ns[(rx, sc, r["round"])] for r in mine]),
            "ratio_to_bare_drop": spread(ratios),
            "ns_above_xdp_pass": spread(above_pass),
            "prog_ns_per_run": spread([prog[(rx, sc, r["round"])] for r in mine
                                       if (rx, sc, r["round"]) in prog]),
            "prog_ratio_to_bare": spread(prog_ratios),
            "packets_median": statistics.median(r["packets"] for r in mine),
            "to_stack_pct_median": statistics.median(
                100 * r["to_stack"] / r["packets"] if r["packets"] else 0 for r in mine),
            "generator_mpps_median": statistics.median(r["generator"]["pps"] / 1e6 for r in mine),
            "generator_xmit_errors_pct_median": statistics.median(
                100 * r["generator"]["xdp_xmit_errors"] / r["generator"]["frames"]
                if r["generator"]["frames"] else 0 for r in mine),
            # Of the generator's send time: how loaded the receiver was.
            "rx_busy_pct_median": statistics.median(
                100 * r["run_ns"] / (r["generator"]["seconds"] * 1e9) for r in mine),
            "rounds": len(mine),
        })
    return cells


def ns_ratio_rows(by, rxs, scs, first, value_key, ratio_key):
    """Table lines: per receiver and scenario, median [min-max] of value_key
    and, but for bare, the median [min-max] ratio of ratio_key."""
    out = ["| " + first + " | " + " | ".join(SCENARIOS[s] for s in scs) + " |",
           "|---|" + "---|" * len(scs)]
    for rx in rxs:
        row = []
        for sc in scs:
            c = by.get((rx, sc))
            n, q = (c.get(value_key), c.get(ratio_key)) if c else (None, None)
            if not n:
                row.append("-")
                continue
            text = f"{n['median']:.0f} [{n['min']:.0f}-{n['max']:.0f}]"
            if q and rx != "bare":
                text += f"<br>{q['median']:.2f}x [{q['min']:.2f}-{q['max']:.2f}]"
            row.append(text)
        out.append(f"| {RECEIVERS[rx]} | " + " | ".join(row) + " |")
    return out


def table(cells, meta):
    rxs = [rx for rx in RECEIVERS if any(c["receiver"] == rx for c in cells)]
    scs = [sc for sc in SCENARIOS if any(c["scenario"] == sc for c in cells)]
    by = {(c["receiver"], c["scenario"]): c for c in cells}
    out = []
    # The run itself keeps both CPUs busy (load ~2 by its end): whether others
    # were busy shows in the load average before it started.
    start = meta.get("loadavg_at_start")
    load = float(start[0]) if start else float(meta["loadavg_at_end"][0])
    if load > 0.5 or meta["rounds"] < 5:
        out.append(f"**Not final figures**: {meta['rounds']} round(s), load average {load:.1f} at "
                   f"the {'start' if start else 'end'} of the run (other work on the machine). "
                   "Run `make bench` on a quiet machine for figures to quote.")
        out.append("")
    out.append(f"Receiver CPU ns per packet, median [min-max] over {meta['rounds']} rounds, "
               "and the median ratio to bare XDP_DROP on the same scenario in the same round "
               "[min-max of the ratios]:")
    out.append("")
    out += ns_ratio_rows(by, rxs, scs, "receiver", "ns_per_packet", "ratio_to_bare_drop")
    out.append("")
    out.append("What each measurement saw (medians): share of packets that reached the IP stack "
               "(UDP, nothing listening), generator rate, share of the generator's frames the "
               "receiver's full ring refused (xmit errors), receiver NAPI thread busy:")
    out.append("")
    out.append("| receiver | " + " | ".join(SCENARIOS[s] for s in scs) + " |")
    out.append("|---|" + "---|" * len(scs))
    for rx in rxs:
        row = []
        for sc in scs:
            c = by.get((rx, sc))
            if not c:
                row.append("-")
                continue
            row.append(f"{c['to_stack_pct_median']:.1f}% stack, {c['generator_mpps_median']:.2f} Mpps, "
                       f"{c['generator_xmit_errors_pct_median']:.0f}% refused, "
                       f"{c['rx_busy_pct_median']:.0f}% busy")
        out.append(f"| {RECEIVERS[rx]} | " + " | ".join(row) + " |")
    out.append("")
    out.append("Limiters' ns per packet above XDP_PASS into the empty stack, median [min-max] of the "
               "per-round differences: their own cost where, like XDP_PASS, they pass everything "
               "to the stack (compare the first column of the table above where they drop):")
    out.append("")
    lim = [rx for rx in rxs if rx not in ("bare", "parse", "pass", "alu20", "alu60")]
    out.append("| receiver | " + " | ".join(SCENARIOS[s] for s in scs) + " |")
    out.append("|---|" + "---|" * len(scs))
    for rx in lim:
        row = []
        for sc in scs:
            c = by.get((rx, sc))
            d = c and c.get("ns_above_xdp_pass")
            row.append(f"{d['median']:+.0f} [{d['min']:+.0f}..{d['max']:+.0f}]" if d else "-")
        out.append(f"| {RECEIVERS[rx]} | " + " | ".join(row) + " |")
    out.append("")
    xdp = [rx for rx in rxs if rx in ("bare", "parse", "pass", "alu20", "alu60", "sluice", "sluicens")]
    if any(by.get((rx, sc), {}).get("prog_ns_per_run") for rx in xdp for sc in scs):
        out.append("The XDP program's own run time per packet (BPF stats: run_time_ns / run_cnt, in a "
                   f"second window of {meta.get('prog_s', '?')} s of the same traffic with stats on), "
                   "median [min-max], and the median ratio to bare XDP_DROP's program in the same "
                   "round: the program's cost apart from the stack's. Stats add about two clock reads "
                   "to every run, bare's included, so these ratios understate the difference:")
        out.append("")
        out += ns_ratio_rows(by, xdp, scs, "program", "prog_ns_per_run", "prog_ratio_to_bare")
        out.append("")
    out.append(f"Run: `{meta['command']}`, {meta['started']} to {meta['ended']}; "
               f"kernel {meta['kernel']}, {meta['cpu']}, {meta['cores']} cores; "
               f"{meta['measure_s']} s per measurement after {meta['warmup_s']} s of warm-up; "
               f"generator on CPU {meta['gen_cpu']}, receiver NAPI on CPU {meta['rx_cpu']}; "
               f"spectre_v2: {meta.get('mitigations', '?')}; "
               f"{meta['nft']}; {meta['iptables']}; load average "
               + (f"before the run {' '.join(start)}, " if start else "")
               + f"at the end {' '.join(meta['loadavg_at_end'])}.")
    if meta.get("sluice_attach"):
        # "attached to IF (how) with N policies from /tmp/...": the how is what matters.
        out.append("")
        out.append("sluice: " + meta["sluice_attach"].split(" from /")[0])
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--markdown", help="BENCHMARKS.md to update between its markers")
    a = ap.parse_args()

    rows = [json.loads(line) for line in open(a.raw) if line.strip()]
    meta = json.load(open(a.meta))
    cells = summarise(rows)
    json.dump({"meta": meta, "results": cells}, open(a.json, "w"), indent=2)
    text = table(cells, meta)
    open(a.table, "w").write(text)
    print()
    print(text)
    if a.markdown:
        try:
            doc = open(a.markdown).read()
        except FileNotFoundError:
            doc = f"# Benchmarks\n\n{BEGIN}\n{END}\n"
        if BEGIN not in doc or END not in doc:
            print(f"report.py: {a.markdown} has no {BEGIN} ... {END} markers", file=sys.stderr)
            return 1
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        open(a.markdown, "w").write(head + BEGIN + "\n" + text + END + tail)
        print(f"results written into {a.markdown}, {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
