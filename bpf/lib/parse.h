/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Bounded, verifier-friendly header parsers: Ethernet, up to two VLAN tags
 * (802.1Q and 802.1ad), IPv4 with options, IPv6 with an extension-header
 * chain, TCP and UDP. Every read is checked against data_end; every loop has
 * a constant bound. No helper calls.
 *
 * Rules for what cannot be parsed (README "Packets sluice cannot parse"):
 * - not IPv4/IPv6 (ARP, LLDP, ...): PARSE_NOT_IP, passed untouched;
 * - an IP packet whose headers are cut short, inconsistent (IHL < 5, TCP
 *   data offset < 5, an IHL longer than the total length, a version that
 *   does not match the EtherType), a third
 *   VLAN tag, or an IPv6 extension chain longer than SLUICE_MAX_EXT_HDRS:
 *   PARSE_MALFORMED, dropped. The stack would discard most of these anyway,
 *   and the rest are ways to hide a port from the limiter.
 * - a first fragment too short to hold the whole TCP or UDP header, and an
 *   IPv4 TCP fragment at offset 8 (it can rewrite the TCP flags: RFC 1858),
 *   are PARSE_MALFORMED too.
 */
#ifndef SLUICE_PARSE_H
#define SLUICE_PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define SLUICE_MAX_VLAN_TAGS	2
#define SLUICE_MAX_EXT_HDRS	8

#define IPV4_FRAG_MORE		0x2000	/* IP_MF */
#define IPV4_FRAG_OFFSET	0x1fff	/* IP_OFFSET, in 8-byte units */
#define IPV6_FRAG_OFFSET	0xfff8	/* in frag_off, with the M flag below */
#define IPV6_FRAG_MORE		0x0001
/* RFC 1858: a TCP fragment at offset 1 (8 bytes) overlaps the flags. */
#define IPV4_TCP_OVERLAP_OFFSET	1

enum sluice_parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IP,
	PARSE_MALFORMED,
};

enum sluice_frag_kind {
	FRAG_NONE = 0,
	FRAG_FIRST,		/* offset 0, more fragments follow: has ports */
	FRAG_LATER,		/* offset > 0: no L4 header */
};

struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* The kernel's struct frag_hdr is not in the uapi headers. */
struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

struct sluice_pkt {
	__u32 src[4];		/* IPv4 addresses are IPv4-mapped */
	__u32 dst[4];
	__u32 frag_id;
	__u16 sport;		/* host byte order; 0 without an L4 header */
	__u16 dport;
	__u8 is_ipv6;
	__u8 l4proto;		/* IPPROTO_*, after extension headers */
	__u8 has_ports;		/* TCP or UDP header parsed */
	__u8 is_syn;		/* TCP SYN without ACK: a new connection */
	__u8 frag;		/* enum sluice_frag_kind */
	/* The protocol the fragment header names (IPv4: the header's protocol):
	 * the same in every fragment of a datagram, unlike l4proto, which a
	 * later fragment cannot see past a fragmented extension header. */
	__u8 frag_proto;
};

static __always_inline void map_ipv4(__u32 out[4], __be32 addr)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = bpf_htonl(0x0000ffff);
	out[3] = addr;
}

static __always_inline int parse_l4(void *pos, void *data_end,
				    struct sluice_pkt *pkt)
{
	if (pkt->frag == FRAG_LATER)
		return PARSE_OK;

	if (pkt->l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = pos;

		if ((void *)(tcp + 1) > data_end || tcp->doff < 5)
			return PARSE_MALFORMED;
		/* Options cut short: the stack would discard it too. */
		if (pos + tcp->doff * 4 > data_end)
			return PARSE_MALFORMED;
		pkt->sport = bpf_ntohs(tcp->source);
		pkt->dport = bpf_ntohs(tcp->dest);
		pkt->is_syn = tcp->syn && !tcp->ack;
		pkt->has_ports = 1;
	} else if (pkt->l4proto == IPPROTO_UDP) {
		struct udphdr *udp = pos;

		if ((void *)(udp + 1) > data_end)
			return PARSE_MALFORMED;
		pkt->sport = bpf_ntohs(udp->source);
		pkt->dport = bpf_ntohs(udp->dest);
		pkt->has_ports = 1;
	}
	return PARSE_OK;
}

static __always_inline int parse_ipv4(void *pos, void *data_end,
				      struct sluice_pkt *pkt)
{
	struct iphdr *ip = pos;
	__u16 frag_off, tot_len;
	__u32 hlen;

	if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	hlen = ip->ihl * 4;
	if (pos + hlen > data_end)
		return PARSE_MALFORMED;
	/* A header longer than the packet: the L4 header read past it would be
	 * frame padding the stack never sees. Total length 0 is BIG TCP's mark
	 * of a GRO packet over 64 KiB (the stack takes the skb's length). */
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len && hlen > tot_len)
		return PARSE_MALFORMED;

	map_ipv4(pkt->src, ip->saddr);
	map_ipv4(pkt->dst, ip->daddr);
	pkt->l4proto = ip->protocol;

	frag_off = bpf_ntohs(ip->frag_off);
	if (frag_off & IPV4_FRAG_OFFSET) {
		if ((frag_off & IPV4_FRAG_OFFSET) == IPV4_TCP_OVERLAP_OFFSET &&
		    ip->protocol == IPPROTO_TCP)
			return PARSE_MALFORMED;
		pkt->frag = FRAG_LATER;
	} else if (frag_off & IPV4_FRAG_MORE) {
		pkt->frag = FRAG_FIRST;
	}
	pkt->frag_id = bpf_ntohs(ip->id);
	pkt->frag_proto = ip->protocol;
	return parse_l4(pos + hlen, data_end, pkt);
}

static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT ||
	       nexthdr == IPPROTO_AH;
}

static __always_inline int parse_ipv6(void *pos, void *data_end,
				      struct sluice_pkt *pkt)
{
	struct ipv6hdr *ip6 = pos;
	__u8 nexthdr;
	int i;

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return PARSE_MALFORMED;
	__builtin_memcpy(pkt->src, &ip6->saddr, sizeof(pkt->src));
	__builtin_memcpy(pkt->dst, &ip6->daddr, sizeof(pkt->dst));
	pkt->is_ipv6 = 1;
	nexthdr = ip6->nexthdr;
	pos = ip6 + 1;

#pragma unroll
	for (i = 0; i < SLUICE_MAX_EXT_HDRS; i++) {
		struct ipv6_ext_hdr *ext = pos;

		if (!ipv6_is_ext(nexthdr))
			break;
		if ((void *)(ext + 1) > data_end)
			return PARSE_MALFORMED;
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct ipv6_frag_hdr *fh = pos;
			__u16 off;

			if ((void *)(fh + 1) > data_end)
				return PARSE_MALFORMED;
			off = bpf_ntohs(fh->frag_off);
			pkt->frag_id = bpf_ntohl(fh->identification);
			pkt->frag_proto = fh->nexthdr;
			nexthdr = fh->nexthdr;
			pos = fh + 1;
			if (off & IPV6_FRAG_OFFSET) {
				pkt->frag = FRAG_LATER;
				break;
			}
			if (off & IPV6_FRAG_MORE)
				pkt->frag = FRAG_FIRST;
			continue;
		}
		/* AH counts its length in 4-byte units less 2 (RFC 4302), the
		 * others in 8-byte units less 1 (RFC 8200). */
		if (nexthdr == IPPROTO_AH)
			pos += (ext->hdrlen + 2) * 4;
		else
			pos += (ext->hdrlen + 1) * 8;
		nexthdr = ext->nexthdr;
	}
	/* A chain deeper than we read could hide a TCP or UDP header. */
	if (pkt->frag != FRAG_LATER && ipv6_is_ext(nexthdr))
		return PARSE_MALFORMED;
	pkt->l4proto = nexthdr;
	return parse_l4(pos, data_end, pkt);
}

/* Fills *pkt from the frame [data, data_end). */
static __always_inline int parse_packet(void *data, void *data_end,
					struct sluice_pkt *pkt)
{
	struct ethhdr *eth = data;
	void *pos = eth + 1;
	__u16 proto;
	int i;

	if (pos > data_end)
		return PARSE_MALFORMED;
	proto = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (i = 0; i < SLUICE_MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag = pos;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(tag + 1) > data_end)
			return PARSE_MALFORMED;
		proto = bpf_ntohs(tag->encap_proto);
		pos = tag + 1;
	}
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD)
		return PARSE_MALFORMED;
	if (proto == ETH_P_IP)
		return parse_ipv4(pos, data_end, pkt);
	if (proto == ETH_P_IPV6)
		return parse_ipv6(pos, data_end, pkt);
	return PARSE_NOT_IP;
}

#endif /* SLUICE_PARSE_H */
