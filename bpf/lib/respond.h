/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Action respond, the part both programs share: the two maps and the flow
 * key. The XDP program (sluice.bpf.c) records an over-limit SYN here and
 * passes it; the sk_lookup program (responder.bpf.c), loaded by `sluice run`
 * against the same pinned maps, hands that connection to the responder's
 * listening socket, so the API process never accepts it.
 *
 * Both objects define these maps from this header, so the layouts libbpf
 * compares when it reuses a pin are the same by construction.
 */
#ifndef SLUICE_RESPOND_H
#define SLUICE_RESPOND_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../sluice_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_RESPOND_FLOWS);
	__type(key, struct sluice_flow_key);
	__type(value, struct sluice_flow_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_respond_flows SEC(".maps");

/* The values are sockets: u64 so that userspace can read an entry back (as
 * the socket's cookie) to tell whether a responder is running. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, SLUICE_RESPONDER_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_responder SEC(".maps");

/* Addresses as the data path keys them (IPv4-mapped), ports host order. */
static __always_inline void flow_key_fill(struct sluice_flow_key *k,
					  const __u32 src[4], const __u32 dst[4],
					  __u16 sport, __u16 dport)
{
	k->src[0] = src[0];
	k->src[1] = src[1];
	k->src[2] = src[2];
	k->src[3] = src[3];
	k->dst[0] = dst[0];
	k->dst[1] = dst[1];
	k->dst[2] = dst[2];
	k->dst[3] = dst[3];
	k->sport = sport;
	k->dport = dport;
}

#endif /* SLUICE_RESPOND_H */
