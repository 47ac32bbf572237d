// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Receiver stubs for the benchmarks (tests/bench/run.sh). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* a. bare XDP_DROP: nothing but the verdict. */
SEC("xdp")
int bare_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* Per-CPU frame count of the counting stub. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stub_count SEC(".maps");

/* b, d, e: a counting XDP_PASS stub, so that the netfilter peers see the
 * same packet path (veth's NAPI with XDP) as sluice. */
SEC("xdp")
int count_pass(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&stub_count, &zero);

	if (n)
		(*n)++;
	return XDP_PASS;
}

/* Read the headers every limiter must read (Ethernet, IPv4 or IPv6, the UDP
 * ports), then XDP_DROP: what reading a frame that another CPU wrote costs
 * on top of bare XDP_DROP, which never touches the packet. The volatile sink
 * keeps the reads from being optimised away. */
volatile __u32 parse_sink;

SEC("xdp")
int parse_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 v = 0;

	if (data + 14 > data_end)
		return XDP_DROP;
	if (p[12] == 0x08 && p[13] == 0x00) {
		if (data + 14 + 20 + 4 > data_end)
			return XDP_DROP;
		v = *(__u32 *)(p + 26) ^ *(__u16 *)(p + 36);	/* saddr ^ dport */
	} else if (p[12] == 0x86 && p[13] == 0xdd) {
		if (data + 14 + 40 + 4 > data_end)
			return XDP_DROP;
		v = *(__u32 *)(p + 22) ^ *(__u32 *)(p + 34) ^ *(__u16 *)(p + 56);
	}
	parse_sink = v;
	return XDP_DROP;
}

/* Calibration: XDP_DROP after a fixed run of register arithmetic that
 * touches no memory (a dependent multiply-add chain the compiler cannot
 * fold). Their program time is known from BPF stats, so the receiver's
 * cost per packet of a program that is N ns heavier than bare, and nothing
 * else, can be read next to sluice's (BENCHMARKS.md "Receiver cost and
 * program cost"). */
#define ALU_ROUNDS_SHORT	20
#define ALU_ROUNDS_LONG		60

volatile __u32 alu_sink;

static __always_inline int alu_drop(struct xdp_md *ctx, __u32 rounds)
{
	__u32 x = ctx->ingress_ifindex, i;

#pragma clang loop unroll(disable)
	for (i = 0; i < rounds; i++)
		x = x * 31 + i;
	alu_sink = x;
	return XDP_DROP;
}

SEC("xdp")
int alu_drop_short(struct xdp_md *ctx)
{
	return alu_drop(ctx, ALU_ROUNDS_SHORT);
}

SEC("xdp")
int alu_drop_long(struct xdp_md *ctx)
{
	return alu_drop(ctx, ALU_ROUNDS_LONG);
}
