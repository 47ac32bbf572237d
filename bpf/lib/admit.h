/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Probation memory (README "Spoofed sources"). A flood of one-packet sources
 * cycles the probation table faster than a slow source sends: without
 * memory, such a source's every packet would find its probation entry gone
 * and be charged to a fresh bucket, and it would never be promoted. So each
 * probation charge is also written to one slot of a fixed array, chosen by a
 * hash of the source key and tagged with a second hash (the fingerprint). A
 * source that finds no probation entry but its own fingerprint in its slot
 * has been seen before: it is promoted at once, with the state it had.
 *
 * A flood can still overwrite a slot between two packets of a source (with
 * probability about flood rate x gap / SLUICE_ADMIT_SLOTS); that source then
 * starts from a fresh bucket, as it would have without memory.
 *
 * Pure: compiled by the BPF program and by userspace (`sluice reset`).
 */
#ifndef SLUICE_ADMIT_H
#define SLUICE_ADMIT_H

#include "../sluice_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define SLUICE_ADMIT_SLOT_SEED	0x9e3779b9U
#define SLUICE_ADMIT_FP_SEED	0x85ebca6bU

/* murmur3's 32-bit finaliser: every input bit moves every output bit. */
static __always_inline __u32 admit_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 admit_hash(const struct sluice_source_key *k,
					__u32 seed)
{
	__u32 h = admit_mix(seed ^ k->state_tag);

	h = admit_mix(h ^ k->addr[0]);
	h = admit_mix(h ^ k->addr[1]);
	h = admit_mix(h ^ k->addr[2]);
	return admit_mix(h ^ k->addr[3]);
}

/* A cheap hash of a source, for what every packet that reaches its buckets
 * needs: the over-limit cache's slot (lib/overcache.h) and the bit of the
 * per-source table's presence filter (lib/known.h). A fold of XORs, so
 * sources built to share one share a slot or a bit: that costs them a cache
 * entry or a table lookup, never a wrong answer. IPv4 sources (addr[0..2]
 * fixed) never share one under a policy. */
static __always_inline __u32 source_fold_hash(const struct sluice_source_key *k)
{
	return admit_mix(k->state_tag ^ k->addr[0] ^ k->addr[1] ^ k->addr[2] ^
			 k->addr[3]);
}

static __always_inline __u32 admit_slot(const struct sluice_source_key *k)
{
	return admit_hash(k, SLUICE_ADMIT_SLOT_SEED) & (SLUICE_ADMIT_SLOTS - 1);
}

/* Never 0, which marks an empty slot. */
static __always_inline __u32 admit_fingerprint(const struct sluice_source_key *k)
{
	return admit_hash(k, SLUICE_ADMIT_FP_SEED) | 1;
}

#endif /* SLUICE_ADMIT_H */
