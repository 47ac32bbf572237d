// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sluice-flood's XDP program. It never sees a real NIC: userspace runs it
 * with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES on a template frame,
 * and XDP_TX turns every run into a transmission out of the device the run is
 * bound to (ctx_in.ingress_ifindex).
 *
 * Per frame it rewrites what must vary, the source address, and fixes the
 * checksums so that the frame stays valid:
 *  - incremental (default): RFC 1624 updates of the IPv4 header checksum and
 *    of the UDP/TCP checksum from the address the frame holds now to the new
 *    one. Live-frames pages are recycled without being re-copied, so the old
 *    address is always read back from the frame itself, never assumed.
 *  - full: both checksums recomputed from scratch: the IPv4 header from its
 *    20 bytes, the L4 checksum from the pseudo-header plus the constant sum of
 *    the L4 header and payload that userspace computed (l4_sum).
 *
 * Userspace fixes the layout before load (const volatile: the verifier sees
 * constants and prunes what a run does not use).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FLOOD_SRC_FIXED		0	/* the template's address, unchanged */
#define FLOOD_SRC_POOL		1	/* base + (n mod pool_size), last word */
#define FLOOD_SRC_RANDOM	2	/* random host bits within a prefix */

#define FLOOD_CSUM_INCREMENTAL	0
#define FLOOD_CSUM_FULL		1

/* Set by userspace before load. The template is Ethernet (no VLAN tag),
 * then IPv4 without options or IPv6 without extension headers, then UDP or
 * TCP. */
const volatile __u32 src_mode = FLOOD_SRC_FIXED;
const volatile __u32 csum_mode = FLOOD_CSUM_INCREMENTAL;
const volatile __u32 is_v6 = 0;
const volatile __u32 is_udp = 1;
const volatile __u32 l4_csum_off = 40;	/* the UDP/TCP checksum field */
/* The device the test runs are bound to. Userspace also attaches the
 * program to a private loopback (flood.cpp: parkInDispatcher) where no
 * frame should ever arrive; if one does, it passes untouched. */
const volatile __u32 target_ifindex = 0;
/* Source address base and random mask, network byte order. For IPv4 only
 * word 3 is used (the address itself). */
const volatile __u32 src_base[4] = {};
const volatile __u32 rand_mask[4] = {};
const volatile __u32 pool_size = 1;
/* The folded one's complement sum of the pseudo-header's fixed part
 * (destination, protocol, L4 length) plus the L4 header and payload with the
 * checksum field zero, in the frame's byte order: FLOOD_CSUM_FULL only. */
const volatile __u32 l4_sum = 0;

/* Frames run, and how the source address was chosen. One CPU runs a test
 * run, so plain increments are exact for one run. */
__u64 frames = 0;
__u64 bad_frames = 0;	/* shorter than the template: never XDP_TX'd */
__u32 pool_next = 0;

static __always_inline __u32 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)sum;
}

/* One 32-bit word's contribution to a one's complement sum: both 16-bit
 * halves, in memory order (the sum is byte-order neutral). */
static __always_inline __u64 word_sum(__u32 w)
{
	return (__u64)(w & 0xffff) + (w >> 16);
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), over the four words old -> new. */
static __always_inline __u16 csum_update(__u16 check, const __u32 *old,
					 const __u32 *new, int words)
{
	__u64 sum = (__u16)~check;

	for (int i = 0; i < words; i++)
		sum += word_sum(~old[i]) + word_sum(new[i]);
	return (__u16)~fold(sum);
}

static __always_inline void next_source(__u32 *addr)
{
	if (src_mode == FLOOD_SRC_POOL) {
		__u32 n = pool_next;

		pool_next = n + 1 >= pool_size ? 0 : n + 1;
		addr[0] = src_base[0];
		addr[1] = src_base[1];
		addr[2] = src_base[2];
		addr[3] = bpf_htonl(bpf_ntohl(src_base[3]) + n);
		return;
	}
	/* FLOOD_SRC_RANDOM: only the words with host bits get random ones. */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (rand_mask[i])
			addr[i] = (src_base[i] & ~rand_mask[i]) |
				  (bpf_get_prandom_u32() & rand_mask[i]);
		else
			addr[i] = src_base[i];
	}
}

SEC("xdp")
int flood_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 old[4], new[4];
	__u32 *src;
	__u16 *l4_check, *ip_check;
	__u16 check;

	if (ctx->ingress_ifindex != target_ifindex)
		return XDP_PASS;
	frames++;
	if (src_mode == FLOOD_SRC_FIXED)
		return XDP_TX;

	/* The verifier reads l4_csum_off from the frozen .rodata as a
	 * constant: this one check covers every header byte touched below
	 * (the checksum field lies past the source address). */
	if (data + l4_csum_off + 2 > data_end) {
		bad_frames++;
		return XDP_DROP;
	}
	l4_check = data + l4_csum_off;

	if (is_v6) {
		src = data + 14 + 8;		/* ipv6hdr.saddr */
		old[0] = src[0];
		old[1] = src[1];
		old[2] = src[2];
		old[3] = src[3];
		next_source(new);
		src[0] = new[0];
		src[1] = new[1];
		src[2] = new[2];
		src[3] = new[3];
	} else {
		src = data + 14 + 12;		/* iphdr.saddr */
		old[3] = *src;
		next_source(new);
		*src = new[3];
		ip_check = data + 14 + 10;
		if (csum_mode == FLOOD_CSUM_FULL) {
			__u32 *w = data + 14;
			__u64 sum = 0;

			*ip_check = 0;
#pragma unroll
			for (int i = 0; i < 5; i++)
				sum += word_sum(w[i]);
			*ip_check = (__u16)~fold(sum);
		} else {
			*ip_check = csum_update(*ip_check, &old[3], &new[3], 1);
		}
	}

	if (csum_mode == FLOOD_CSUM_FULL) {
		__u64 sum = l4_sum;

		if (is_v6)
			sum += word_sum(new[0]) + word_sum(new[1]) +
			       word_sum(new[2]) + word_sum(new[3]);
		else
			sum += word_sum(new[3]);
		check = (__u16)~fold(sum);
	} else if (is_v6) {
		check = csum_update(*l4_check, old, new, 4);
	} else {
		check = csum_update(*l4_check, &old[3], &new[3], 1);
	}
	/* A UDP checksum of 0 means "none" (IPv4) or is invalid (IPv6): the
	 * same sum is sent as its other one's complement form. */
	if (is_udp && check == 0)
		check = 0xffff;
	*l4_check = check;
	return XDP_TX;
}
