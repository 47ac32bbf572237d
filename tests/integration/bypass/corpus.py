#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The bypass corpus: crafted frames that try to get past a policed port.

Each shape is one generator, SHAPES[name](ctx, family) -> the frames of one
copy (a fragmented datagram is several frames). The frames are sent with
sendp() out of the one interface given (--iface), to the destination MAC and
address given: never anywhere else. Every send is bounded by --count.

    corpus.py --iface IF --src-mac M --dst-mac M --dst4 A --dst6 A \\
              --shape NAME --family 4|6 --src ADDR --count N
    corpus.py ... --serve     # read "SHAPE FAMILY SRC COUNT" lines on stdin
    corpus.py --list          # the shapes and the families each exists in

Each send prints one line: "sent SHAPE FAMILY SRC COPIES FRAMES". Run it with
/usr/bin/python3: scapy is Debian's python3-scapy.
"""
import argparse
import logging
import sys

# scapy warns about interfaces without addresses (the namespace's lo) at import.
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.config import conf  # noqa: E402

conf.verb = 0
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, PadN)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.sendrecv import sendp  # noqa: E402

MAX_COUNT = 1000          # copies of one shape per send
UDP_PORT = 7000           # the ports the test polices (overridable)
TCP_PORT = 7100
SPORT = 40000
PAYLOAD = b"sluice-bypass-corpus-payload-32b"   # 32 bytes: 4 fragment units
ECN_CE = 0x03             # both ECN bits of the TOS / traffic class byte
ETH_P_IP = 0x0800
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_DSTOPTS = 60
NH_EXPERIMENT1 = 253      # RFC 3692 experimental next-header values
NH_EXPERIMENT2 = 254
NH_UNASSIGNED = 200       # not assigned by IANA
PARSER_DEPTH = 8          # SLUICE_MAX_EXT_HDRS in bpf/lib/parse.h


class Ctx:
    """Addresses and a per-copy fragment ID."""

    def __init__(self, a):
        self.src_mac, self.dst_mac = a.src_mac, a.dst_mac
        self.dst4, self.dst6 = a.dst4, a.dst6
        self.udp_port, self.tcp_port = a.udp_port, a.tcp_port
        self.src = None
        self.next_id = 0x1000

    def frag_id(self):
        self.next_id += 1
        return self.next_id

    def eth(self):
        return Ether(src=self.src_mac, dst=self.dst_mac)

    def ip(self, family, **kw):
        if family == 4:
            return IP(src=self.src, dst=self.dst4, **kw)
        return IPv6(src=self.src, dst=self.dst6, **kw)

    def udp(self, **kw):
        return UDP(sport=SPORT, dport=self.udp_port, **kw)

    def tcp(self, flags="S", **kw):
        return TCP(sport=SPORT, dport=self.tcp_port, flags=flags, seq=1000, **kw)


def both(f):
    f.families = (4, 6)
    return f


def v4only(f):
    f.families = (4,)
    return f


def v6only(f):
    f.families = (6,)
    return f


# ------------------------------------------------------------ plain controls

@both
def udp_plain(c, fam):
    return [c.eth() / c.ip(fam) / c.udp() / PAYLOAD]


@both
def tcp_syn(c, fam):
    return [c.eth() / c.ip(fam) / c.tcp()]


# ------------------------------------------------------------ VLAN stacks
# VLAN ID 0 (a priority tag): a host without VLAN devices strips it and
# delivers the packet (net/core/dev.c, "vlan id 0"), so a tag on its own is
# not what keeps these from the receiver's sockets.

def vlan_tags(n):
    if n == 1:
        return Dot1Q(vlan=0)
    if n == 2:
        return Dot1AD(vlan=0) / Dot1Q(vlan=0)
    return Dot1AD(vlan=0) / Dot1Q(vlan=0) / Dot1Q(vlan=0)


@both
def vlan1_udp(c, fam):
    return [c.eth() / vlan_tags(1) / c.ip(fam) / c.udp() / PAYLOAD]


@both
def vlan2_udp(c, fam):
    return [c.eth() / vlan_tags(2) / c.ip(fam) / c.udp() / PAYLOAD]


@both
def vlan3_udp(c, fam):
    return [c.eth() / vlan_tags(3) / c.ip(fam) / c.udp() / PAYLOAD]


@both
def vlan1_syn(c, fam):
    return [c.eth() / vlan_tags(1) / c.ip(fam) / c.tcp()]


# ------------------------------------------------------------ TCP flags, ECN

@both
def ecn_udp(c, fam):
    kw = {"tos": ECN_CE} if fam == 4 else {"tc": ECN_CE}
    return [c.eth() / c.ip(fam, **kw) / c.udp() / PAYLOAD]


@both
def ecn_syn(c, fam):
    """An ECN-setup SYN (ECE and CWR, RFC 3168) with CE in the IP header."""
    kw = {"tos": ECN_CE} if fam == 4 else {"tc": ECN_CE}
    return [c.eth() / c.ip(fam, **kw) / c.tcp(flags="SEC")]


@both
def syn_payload(c, fam):
    return [c.eth() / c.ip(fam) / c.tcp() / (PAYLOAD * 4)]


@both
def synack_outside(c, fam):
    return [c.eth() / c.ip(fam) / c.tcp(flags="SA", ack=1)]


@both
def rst_outside(c, fam):
    return [c.eth() / c.ip(fam) / c.tcp(flags="R")]


# ------------------------------------------------------------ truncated L4

def cut(c, fam, l4, keep):
    """The IP header (lengths describing the cut packet) and `keep` bytes of
    the L4 header: IP(len/plen) matches the frame, so only L4 is short."""
    proto = PROTO_TCP if isinstance(l4, TCP) else PROTO_UDP
    raw = bytes(l4)[:keep]
    if fam == 4:
        return [c.eth() / IP(src=c.src, dst=c.dst4, proto=proto) / Raw(raw)]
    return [c.eth() / IPv6(src=c.src, dst=c.dst6, nh=proto) / Raw(raw)]


@both
def tcp_truncated(c, fam):
    return cut(c, fam, c.tcp(), 12)


@both
def udp_truncated(c, fam):
    return cut(c, fam, c.udp(), 4)


@both
def tcp_doff_short(c, fam):
    """TCP data offset 4: the header claims to be shorter than its minimum."""
    return [c.eth() / c.ip(fam) / c.tcp(dataofs=4)]


@both
def udp_bad_checksum(c, fam):
    return [c.eth() / c.ip(fam) / c.udp(chksum=0x1234) / PAYLOAD]


# ------------------------------------------------------------ IPv4 header

@v4only
def ipv4_options(c, fam):
    return [c.eth() / IP(src=c.src, dst=c.dst4, options=[IPOption_NOP()] * 4) /
            c.udp() / PAYLOAD]


@v4only
def ipv4_options_max(c, fam):
    """IHL 15: 40 bytes of options, the most an IPv4 header holds."""
    return [c.eth() / IP(src=c.src, dst=c.dst4, options=[IPOption_NOP()] * 40) /
            c.udp() / PAYLOAD]


@v4only
def ipv4_ihl_short(c, fam):
    """IHL 4: a header shorter than the fixed 20 bytes."""
    return [c.eth() / IP(src=c.src, dst=c.dst4, ihl=4) / c.udp() / PAYLOAD]


@v4only
def ipv4_ihl_over_total(c, fam):
    """IHL 15 while the total length says 40 bytes: a UDP header sits past
    the 60-byte header the IHL claims, beyond what the total length covers."""
    body = bytes(c.udp() / PAYLOAD)
    hdr = IP(src=c.src, dst=c.dst4, ihl=15, len=40, proto=PROTO_UDP,
             options=[IPOption_NOP()] * 40)
    return [Ether(src=c.src_mac, dst=c.dst_mac, type=ETH_P_IP) / Raw(bytes(hdr)[:60] + body)]


# ------------------------------------------------------------ fragments

def udp_datagram(c, fam, size=3):
    """A UDP datagram's L4 bytes: header + size x 32 bytes of payload."""
    l3 = c.ip(fam) / c.udp() / (PAYLOAD * size)
    return bytes(l3[UDP])


def tcp_segment(c, fam, payload=2):
    l3 = c.ip(fam) / c.tcp() / (PAYLOAD * payload)
    return bytes(l3[TCP])


def frag4(c, proto, fid, off_bytes, data, more):
    return c.eth() / IP(src=c.src, dst=c.dst4, proto=proto, id=fid,
                        flags="MF" if more else 0, frag=off_bytes // 8) / Raw(data)


def frag6(c, proto, fid, off_bytes, data, more):
    return (c.eth() / IPv6(src=c.src, dst=c.dst6) /
            IPv6ExtHdrFragment(nh=proto, id=fid, offset=off_bytes // 8, m=int(more)) /
            Raw(data))


def frags(c, fam, proto, pieces):
    """pieces: [(offset in bytes, data, more)] of one datagram."""
    fid = c.frag_id()
    mk = frag4 if fam == 4 else frag6
    return [mk(c, proto, fid, off, data, more) for off, data, more in pieces]


@both
def frag_udp(c, fam):
    """A well-formed fragmented UDP datagram: header in the first fragment."""
    d = udp_datagram(c, fam)
    return frags(c, fam, PROTO_UDP, [(0, d[:40], True), (40, d[40:], False)])


@both
def frag_tiny_tcp(c, fam):
    """RFC 1858 tiny fragment: the first holds 8 bytes of TCP (the ports but
    not the flags), the rest follows."""
    d = tcp_segment(c, fam)
    return frags(c, fam, PROTO_TCP, [(0, d[:8], True), (8, d[8:], False)])


@both
def frag_tiny_udp(c, fam):
    """A first fragment holding 4 bytes of the UDP header (the ports only)."""
    d = udp_datagram(c, fam)
    return frags(c, fam, PROTO_UDP, [(0, d[:4], True), (8, d[8:], False)])


@both
def frag_overlap_udp(c, fam):
    """Overlapping fragments: the second starts inside the first."""
    d = udp_datagram(c, fam)
    return frags(c, fam, PROTO_UDP,
                 [(0, d[:40], True), (32, d[32:72], True), (72, d[72:], False)])


@both
def frag_overlap_tcp(c, fam):
    """A fragment at offset 8 rewriting the TCP flags of the first (RFC 1858)."""
    d = tcp_segment(c, fam)
    rewritten = bytes(c.ip(fam) / c.tcp(flags="S") / (PAYLOAD * 2))
    rewritten = rewritten[len(rewritten) - len(d):]
    return frags(c, fam, PROTO_TCP,
                 [(0, d[:24], True), (8, rewritten[8:40], True), (40, d[40:], False)])


@both
def frag_rewrite_port(c, fam):
    """Two first fragments of one datagram: one for an unpoliced port, then
    one for the policed port (a duplicate the stack keeps the first of)."""
    d = udp_datagram(c, fam)
    other = bytearray(d)
    other[2:4] = (c.udp_port + 1).to_bytes(2, "big")
    return frags(c, fam, PROTO_UDP,
                 [(0, bytes(other[:40]), True), (0, d[:40], True), (40, d[40:], False)])


@both
def frag_later_only(c, fam):
    """Non-first fragments alone: no first fragment is ever sent."""
    d = udp_datagram(c, fam)
    return frags(c, fam, PROTO_UDP, [(40, d[40:72], True), (72, d[72:], False)])


# ------------------------------------------------------------ IPv6 headers

@v6only
def ipv6_atomic_fragment(c, fam):
    """A fragment header with offset 0 and no more fragments (RFC 6946)."""
    return [c.eth() / IPv6(src=c.src, dst=c.dst6) /
            IPv6ExtHdrFragment(nh=PROTO_UDP, id=c.frag_id(), offset=0, m=0) /
            c.udp() / PAYLOAD]


@v6only
def ipv6_frag_split_chain(c, fam):
    """The first fragment ends inside the header chain: UDP is in the second
    (RFC 7112 forbids it)."""
    fid = c.frag_id()
    opts = bytes(IPv6ExtHdrDestOpt(nh=PROTO_UDP, options=[PadN(optdata=b"\0" * 4)]))
    d = opts + bytes(c.ip(fam) / c.udp() / PAYLOAD)[40:]
    return [frag6(c, PROTO_DSTOPTS, fid, 0, d[:8], True),
            frag6(c, PROTO_DSTOPTS, fid, 8, d[8:], False)]


def dstopts_chain(c, n, last_nh=PROTO_UDP):
    chain = None
    for i in range(n):
        h = IPv6ExtHdrDestOpt(nh=PROTO_DSTOPTS if i < n - 1 else last_nh,
                              options=[PadN(optdata=b"\0" * 4)])
        chain = h if chain is None else chain / h
    return chain


@v6only
def ipv6_ext_chain_at_depth(c, fam):
    """As many extension headers as the parser reads (8): still charged."""
    return [c.eth() / IPv6(src=c.src, dst=c.dst6) / dstopts_chain(c, PARSER_DEPTH) /
            c.udp() / PAYLOAD]


@v6only
def ipv6_ext_chain_deep(c, fam):
    """One extension header more than the parser reads (9)."""
    return [c.eth() / IPv6(src=c.src, dst=c.dst6) / dstopts_chain(c, PARSER_DEPTH + 1) /
            c.udp() / PAYLOAD]


def unknown_ext(c, nh):
    """IPv6 next header `nh`, shaped as an extension header (next header UDP,
    length 0) with a UDP datagram to the policed port behind it."""
    hdr = bytes([PROTO_UDP, 0]) + b"\0" * 6
    return [c.eth() / IPv6(src=c.src, dst=c.dst6, nh=nh) / Raw(hdr) /
            c.udp(chksum=0) / PAYLOAD]


@v6only
def ipv6_ext_experimental_253(c, fam):
    return unknown_ext(c, NH_EXPERIMENT1)


@v6only
def ipv6_ext_experimental_254(c, fam):
    return unknown_ext(c, NH_EXPERIMENT2)


@v6only
def ipv6_ext_unassigned(c, fam):
    return unknown_ext(c, NH_UNASSIGNED)


@v6only
def ipv6_ext_unknown_after_dstopts(c, fam):
    """A known extension header followed by an unknown one."""
    hdr = bytes([PROTO_UDP, 0]) + b"\0" * 6
    return [c.eth() / IPv6(src=c.src, dst=c.dst6) / dstopts_chain(c, 1, NH_EXPERIMENT1) /
            Raw(hdr) / c.udp(chksum=0) / PAYLOAD]


SHAPES = {name: f for name, f in globals().items()
          if callable(f) and hasattr(f, "families")}


def send(ctx, iface, shape, family, src, count):
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r} (--list shows them)")
    if family not in SHAPES[shape].families:
        raise ValueError(f"shape {shape} has no IPv{family} form")
    if not 0 < count <= MAX_COUNT:
        raise ValueError(f"count must be 1..{MAX_COUNT}")
    ctx.src = src
    frames = []
    for _ in range(count):
        frames += SHAPES[shape](ctx, family)
    sendp(frames, iface=iface, verbose=False)
    print(f"sent {shape} {family} {src} {count} {len(frames)}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="print the shapes and exit")
    p.add_argument("--iface", help="the interface to send out of (a test veth)")
    p.add_argument("--src-mac", help="the sending interface's MAC")
    p.add_argument("--dst-mac", help="the receiving veth's MAC")
    p.add_argument("--dst4", help="the receiver's IPv4 address")
    p.add_argument("--dst6", help="the receiver's IPv6 address")
    p.add_argument("--udp-port", type=int, default=UDP_PORT,
                   help=f"the policed UDP port (default {UDP_PORT})")
    p.add_argument("--tcp-port", type=int, default=TCP_PORT,
                   help=f"the policed TCP port (default {TCP_PORT})")
    p.add_argument("--shape", help="a shape --list names")
    p.add_argument("--family", type=int, choices=(4, 6), help="IPv4 or IPv6")
    p.add_argument("--src", help="the source address of the crafted packets")
    p.add_argument("--count", type=int, default=1,
                   help=f"copies of the shape, 1..{MAX_COUNT} (default 1)")
    p.add_argument("--serve", action="store_true",
                   help='read "SHAPE FAMILY SRC COUNT" lines on stdin')
    a = p.parse_args()

    if a.list:
        for name, f in SHAPES.items():
            print(name, " ".join(str(x) for x in f.families))
        return 0
    for need in ("iface", "src_mac", "dst_mac", "dst4", "dst6"):
        if not getattr(a, need):
            p.error(f"--{need.replace('_', '-')} is required")
    ctx = Ctx(a)
    if not a.serve:
        if not (a.shape and a.family and a.src):
            p.error("--shape, --family and --src are required (or --serve)")
        send(ctx, a.iface, a.shape, a.family, a.src, a.count)
        return 0
    print("ready", flush=True)
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        try:
            send(ctx, a.iface, w[0], int(w[1]), w[2], int(w[3]))
        except (ValueError, IndexError, OSError) as e:
            print(f"error {e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
