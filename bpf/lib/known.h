/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Presence filters of the per-source table and of the probation table (map
 * sluice_seen, sluice_abi.h), one half each; the second only for policies
 * with a new_sources budget. A source's bit in a half is set before the
 * source is first inserted into that table; a clear bit therefore proves
 * the source is not there, and its packet skips the table's lookup. The
 * bit comes from the source's source_fold_hash() (lib/admit.h), cheap
 * enough for every packet; both halves use the same bit, the second half's
 * words after the first's.
 *
 * Pure: compiled by the BPF program and by userspace, which fills the
 * filters from the tables at every load (Datapath::refreshKnownFilter).
 */
#ifndef SLUICE_KNOWN_H
#define SLUICE_KNOWN_H

#include "../sluice_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* bits_mask: sluice_known_bits() - 1. */
static __always_inline __u32 known_word(__u32 hash, __u32 bits_mask)
{
	return (hash & bits_mask) / SLUICE_KNOWN_WORD_BITS;
}

/* The same bit's word in the probation half. */
static __always_inline __u32 probation_word(__u32 hash, __u32 bits_mask)
{
	return known_word(hash, bits_mask) + (bits_mask + 1) / SLUICE_KNOWN_WORD_BITS;
}

static __always_inline __u64 known_bit(__u32 hash)
{
	return 1ULL << (hash % SLUICE_KNOWN_WORD_BITS);
}

#endif /* SLUICE_KNOWN_H */
