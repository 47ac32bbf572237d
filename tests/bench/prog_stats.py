#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The XDP program's own run time per packet on an interface, while a command
runs: BPF run-time stats are switched on with BPF_ENABLE_STATS (held by an
fd, so kernel.bpf_stats_enabled is left as it was and stats stop when this
exits), the program's run_time_ns and run_cnt (bpftool) are read before and
after the command, and one JSON line is printed:
{"prog_id": N, "run_time_ns": D, "run_cnt": C}.

Usage: prog_stats.py --netns NAME --dev IF -- COMMAND [ARGS...]
Used by tests/bench/run.sh; needs root.
"""
import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys

BPF_ENABLE_STATS = 32      # enum bpf_cmd, linux/bpf.h
BPF_STATS_RUN_TIME = 0
SYS_BPF = {"x86_64": 321, "aarch64": 280}


def enable_stats():
    nr = SYS_BPF.get(platform.machine())
    if nr is None:
        sys.exit(f"prog_stats.py: no bpf syscall number known for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 4)(BPF_STATS_RUN_TIME, 0, 0, 0)
    fd = libc.syscall(nr, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        sys.exit(f"prog_stats.py: BPF_ENABLE_STATS failed: {os.strerror(ctypes.get_errno())}")
    return fd


def xdp_prog_id(netns, dev):
    out = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "ip", "-j", "link", "show", "dev", dev],
                         check=True, capture_output=True, text=True).stdout
    link = json.loads(out)[0]
    xdp = link.get("xdp", {})
    prog = xdp.get("prog") or next((a.get("prog") for a in xdp.get("attached", []) if a.get("prog")), None)
    if not prog:
        sys.exit(f"prog_stats.py: no XDP program on {dev} in {netns}")
    return prog["id"]


def prog_stats(prog_id):
    out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)],
                         check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    return info.get("run_time_ns", 0), info.get("run_cnt", 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("a command to run is needed after --")
    prog_id = xdp_prog_id(a.netns, a.dev)
    fd = enable_stats()
    try:
        t0, c0 = prog_stats(prog_id)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        t1, c1 = prog_stats(prog_id)
    finally:
        os.close(fd)
    print(json.dumps({"prog_id": prog_id, "run_time_ns": t1 - t0, "run_cnt": c1 - c0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
