/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Turn a TCP SYN, in place, into the RST+ACK that refuses it (RFC 9293 3.10.7.1,
 * a segment without ACK arriving at a closed port): seq 0, ack = the SYN's
 * sequence number + its segment length (1 for the SYN, plus any payload and
 * a FIN), flags RST|ACK, window 0, no options. Ethernet addresses, IP
 * addresses and ports are swapped; VLAN tags stay where they are. The IP
 * header is rewritten without options (IPv4: DF, TTL 64; IPv6: hop limit
 * 64), and the frame is cut just after the 20-byte TCP header. Both
 * checksums are computed from scratch.
 *
 * Bounded and verifier-friendly: at most two VLAN tags, fixed-size header
 * writes, unrolled checksum sums. What it does not handle (an IPv6 SYN behind
 * extension headers, a fragment, inconsistent lengths) returns -1 with the
 * frame untouched, and the caller drops it instead.
 *
 * After rst_build() returns 0 the frame has moved (bpf_xdp_adjust_tail):
 * the caller must not touch packet pointers it held before, and returns
 * XDP_TX.
 */
#ifndef SLUICE_RST_H
#define SLUICE_RST_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"

#define SLUICE_RST_TTL		64
#define SLUICE_IPV4_DF		0x4000

/* Adds n 16-bit words at p to a one's-complement sum. */
static __always_inline __u32 rst_sum16(const void *p, int nwords, __u32 sum)
{
	const __u16 *w = p;
	int i;

#pragma unroll
	for (i = 0; i < nwords; i++)
		sum += w[i];
	return sum;
}

static __always_inline __u16 rst_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Fills the RST+ACK for a SYN from sport to dport with sequence number seq
 * that carried seglen bytes of sequence space after the SYN. */
static __always_inline void rst_tcp(struct tcphdr *t, __be16 sport, __be16 dport,
				    __u32 seq, __u32 seglen)
{
	__builtin_memset(t, 0, sizeof(*t));
	t->source = dport;
	t->dest = sport;
	t->seq = 0;
	t->ack_seq = bpf_htonl(seq + 1 + seglen);
	t->doff = 5;
	t->rst = 1;
	t->ack = 1;
}

/* seglen: the SYN's payload, plus one if it also carries FIN. */
static __always_inline int rst_seglen(const struct tcphdr *tcp, __u32 l4len,
				      __u32 *seglen)
{
	__u32 doff = tcp->doff * 4;

	if (doff < sizeof(*tcp) || l4len < doff)
		return -1;
	*seglen = l4len - doff + (tcp->fin ? 1 : 0);
	return 0;
}

static __always_inline int rst_build(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u8 mac[ETH_ALEN];
	struct tcphdr t;
	__u32 seglen, sum, new_len, old_len = data_end - data;
	__u16 proto;
	int i;

	if (l3 > data_end)
		return -1;
	proto = bpf_ntohs(eth->h_proto);
#pragma unroll
	for (i = 0; i < SLUICE_MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag = l3;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(tag + 1) > data_end)
			return -1;
		proto = bpf_ntohs(tag->encap_proto);
		l3 = tag + 1;
	}

	if (proto == ETH_P_IP) {
		struct iphdr *ip = l3, nip;
		struct tcphdr *tcp;
		__u32 hlen, tot;

		if ((void *)(ip + 1) > data_end)
			return -1;
		hlen = ip->ihl * 4;
		if (hlen < sizeof(*ip) ||
		    ip->frag_off & bpf_htons(IPV4_FRAG_MORE | IPV4_FRAG_OFFSET))
			return -1;
		tcp = l3 + hlen;
		if ((void *)(tcp + 1) > data_end)
			return -1;
		tot = bpf_ntohs(ip->tot_len);
		if (tot < hlen || rst_seglen(tcp, tot - hlen, &seglen))
			return -1;
		rst_tcp(&t, tcp->source, tcp->dest, bpf_ntohl(tcp->seq), seglen);

		__builtin_memset(&nip, 0, sizeof(nip));
		nip.version = 4;
		nip.ihl = 5;
		nip.tot_len = bpf_htons(sizeof(nip) + sizeof(t));
		nip.frag_off = bpf_htons(SLUICE_IPV4_DF);
		nip.ttl = SLUICE_RST_TTL;
		nip.protocol = IPPROTO_TCP;
		nip.saddr = ip->daddr;
		nip.daddr = ip->saddr;
		nip.check = rst_fold(rst_sum16(&nip, sizeof(nip) / 2, 0));

		/* Pseudo header: addresses, protocol, TCP length. */
		sum = rst_sum16(&nip.saddr, 4, 0);
		sum += bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(t));
		t.check = rst_fold(rst_sum16(&t, sizeof(t) / 2, sum));

		/* The new TCP header sits at l3 + 20, at or before the old one
		 * (whose fields are all read by now), so inside the frame. The
		 * compiler can prove that from hlen >= 20 and drop this check
		 * (clang 19 does); the verifier cannot, so the barrier keeps
		 * it. */
		tcp = l3 + sizeof(nip);
		barrier_var(tcp);
		if ((void *)(tcp + 1) > data_end)
			return -1;
		__builtin_memcpy(ip, &nip, sizeof(nip));
		__builtin_memcpy(tcp, &t, sizeof(t));
		new_len = (l3 - data) + sizeof(nip) + sizeof(t);
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = l3;
		struct tcphdr *tcp = (void *)(ip6 + 1);
		struct in6_addr a;

		if ((void *)(tcp + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		if (rst_seglen(tcp, bpf_ntohs(ip6->payload_len), &seglen))
			return -1;
		rst_tcp(&t, tcp->source, tcp->dest, bpf_ntohl(tcp->seq), seglen);

		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		ip6->priority = 0;
		ip6->flow_lbl[0] = 0;
		ip6->flow_lbl[1] = 0;
		ip6->flow_lbl[2] = 0;
		ip6->payload_len = bpf_htons(sizeof(t));
		ip6->hop_limit = SLUICE_RST_TTL;

		sum = rst_sum16(&ip6->saddr, 16, 0);
		sum += bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(t));
		t.check = rst_fold(rst_sum16(&t, sizeof(t) / 2, sum));
		__builtin_memcpy(tcp, &t, sizeof(t));
		new_len = (l3 - data) + sizeof(*ip6) + sizeof(t);
	} else {
		return -1;
	}

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	/* Cut options, payload and any Ethernet padding. A failed trim still
	 * leaves a valid RST: the IP length fields bound it. */
	if (new_len < old_len)
		bpf_xdp_adjust_tail(ctx, (int)new_len - (int)old_len);
	return 0;
}

#endif /* SLUICE_RST_H */
