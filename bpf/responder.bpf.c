// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_lookup half of action respond. Runs when a new TCP connection looks for
 * a listening socket in the network namespace `sluice run` attached it to.
 * A connection the XDP program recorded as over its limit is handed to the
 * responder's socket; every other connection goes where it would without
 * sluice. Maps are shared with sluice.bpf.c through their pins.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_abi.h"
#include "lib/parse.h"
#include "lib/respond.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* From <sys/socket.h>, which does not build for the BPF target. */
#define SLUICE_AF_INET	2

SEC("sk_lookup")
int sluice_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct sluice_flow_key key = {};
	struct sluice_flow_state *fs;
	__u32 src[4], dst[4], rkey = SLUICE_RESPONDER_KEY_V6;
	struct bpf_sock *sk;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	/* The context allows only loads at constant offsets from ctx itself.
	 * Without the barriers clang sinks the two branches' loads into one
	 * through a computed pointer, which the verifier refuses. */
	if (ctx->family == SLUICE_AF_INET) {
		rkey = SLUICE_RESPONDER_KEY_V4;
		map_ipv4(src, *(volatile __u32 *)&ctx->remote_ip4);
		map_ipv4(dst, *(volatile __u32 *)&ctx->local_ip4);
		barrier();
	} else {
		src[0] = *(volatile __u32 *)&ctx->remote_ip6[0];
		src[1] = *(volatile __u32 *)&ctx->remote_ip6[1];
		src[2] = *(volatile __u32 *)&ctx->remote_ip6[2];
		src[3] = *(volatile __u32 *)&ctx->remote_ip6[3];
		dst[0] = *(volatile __u32 *)&ctx->local_ip6[0];
		dst[1] = *(volatile __u32 *)&ctx->local_ip6[1];
		dst[2] = *(volatile __u32 *)&ctx->local_ip6[2];
		dst[3] = *(volatile __u32 *)&ctx->local_ip6[3];
		barrier();
	}
	flow_key_fill(&key, src, dst, bpf_ntohs(ctx->remote_port),
		      ctx->local_port);
	fs = bpf_map_lookup_elem(&sluice_respond_flows, &key);
	if (!fs || fs->until_ns <= bpf_ktime_get_ns())
		return SK_PASS;
	sk = bpf_map_lookup_elem(&sluice_responder, &rkey);
	/* The responder stopped between the XDP verdict and now: the
	 * connection goes to whoever listens, as without sluice. */
	if (!sk)
		return SK_PASS;
	/* A refused assignment (the socket is not listening any more) also
	 * leaves the ordinary lookup to decide. */
	bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return SK_PASS;
}
