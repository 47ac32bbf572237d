/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Presence filter of the per-source table (map sluice_known, sluice_abi.h).
 * A source's bit is set before the source is first inserted into
 * sluice_sources; a clear bit therefore proves the source is not there, and
 * its packet skips the table's lookup. The bit comes from the source's
 * source_fold_hash() (lib/admit.h), cheap enough for every packet.
 *
 * Pure: compiled by the BPF program and by userspace, which fills the
 * filter from the table at every load (Datapath::refreshKnownFilter).
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

static __always_inline __u64 known_bit(__u32 hash)
{
	return 1ULL << (hash % SLUICE_KNOWN_WORD_BITS);
}

#endif /* SLUICE_KNOWN_H */
