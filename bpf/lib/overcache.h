/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The over-limit cache (map sluice_over, per CPU, direct-mapped): "this source
 * is refused by limit L until T", or "banned until T". A flooding source's
 * packets then cost one inlined array lookup and a key compare instead of the
 * per-source LRU lookup and the GCRA step (BENCHMARKS.md, "Targets").
 *
 * Exact: an entry only ever refuses, and only until the earliest time at
 * which its limit could admit the smallest charge (gcra_due_ns): a TAT only
 * grows while no unit is admitted, so no unit is due before T. An entry is
 * valid only under the sluice_config.cache_epoch it was written with;
 * userspace bumps the epoch after `sluice reset` and after every apply, so
 * neither a reset source nor a changed policy is held by an old entry.
 *
 * Without the clock: reading it (bpf_ktime_get_ns, a TSC read) was about a
 * third of a cached refusal's cost. When the refusing limit's bucket has
 * room for SLUICE_OVER_SLACK_TICKS ticks of units beyond one, the entry also
 * holds a jiffy by which T has passed, and a hit before that jiffy reads only
 * jiffies64 (inlined: one load). Such a refusal may outlast T by up to one
 * tick (plus a late tick's delay), never end before it. The units that come
 * due meanwhile wait in the bucket, which has room for them: none is lost,
 * they are admitted up to a tick late. A limit with less room (burst 1 at a
 * high rate) or an unknown tick reads the clock on every hit. A ban's entry
 * holds a jiffies deadline too: a ban may end up to a tick late.
 *
 * Pure: compiled by the BPF program and by the unit tests.
 */
#ifndef SLUICE_OVERCACHE_H
#define SLUICE_OVERCACHE_H

#include "../sluice_abi.h"
#include "admit.h"
#include "gcra.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Slot of a source key: the key folded to one word, then mixed. A collision
 * only evicts another source's entry, which then takes the LRU path again. */
static __always_inline __u32 over_slot(const struct sluice_source_key *k)
{
	return source_fold_hash(k) & (SLUICE_OVER_SLOTS - 1);
}

static __always_inline int over_same_key(const struct sluice_source_key *a,
					 const struct sluice_source_key *b)
{
	return a->state_tag == b->state_tag && a->addr[0] == b->addr[0] &&
	       a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3];
}

/* Ticks of room a limit's bucket needs beyond one unit for its refusals to
 * be served by jiffies: the tick a refusal may outlast T by, and one more for
 * a tick that comes late. */
#define SLUICE_OVER_SLACK_TICKS	2

/* The entry is about `key`, refused by `what` (a limit index or
 * SLUICE_OVER_BANNED), written under `epoch`. Checked once per probe,
 * before either clock. */
static __always_inline int over_match(const struct sluice_over_entry *e,
				      const struct sluice_source_key *key,
				      __u32 epoch, __u32 what)
{
	return e->what == what && e->epoch == epoch &&
	       over_same_key(&e->key, key);
}

/* Its jiffies deadline (over_until_jiffies) is still ahead: T is too,
 * without reading the clock. Never for an entry without one (0). */
static __always_inline int over_ahead_jiffies(const struct sluice_over_entry *e,
					      __u64 jiffies)
{
	return jiffies < e->until_jiffies;
}

/* T is still ahead by the clock. */
static __always_inline int over_ahead(const struct sluice_over_entry *e,
				      __u64 now)
{
	return now < e->until_ns;
}

static __always_inline void over_put(struct sluice_over_entry *e,
				     const struct sluice_source_key *key,
				     __u32 epoch, __u32 what, __u64 until_ns,
				     __u64 until_jiffies)
{
	e->key = *key;
	e->epoch = epoch;
	e->what = what;
	e->until_ns = until_ns;
	e->until_jiffies = until_jiffies;
}

/*
 * The fast entries (map sluice_over_fast): a refusal of a drop policy, keyed
 * by the packet's own fields so that it is found before the policy is read.
 * The source is exact, not masked: the refusal was of the masked state that
 * holds it, and each source of a masked prefix gets its own entry on its own
 * first refusal. An entry of a limit that charges only SYNs refuses only
 * SYNs. The generation and epoch tie it to the config it was decided under:
 * a packet that read the old generation and the new epoch (an apply between
 * the two reads) writes an entry that no later packet matches.
 */
static __always_inline __u32 fast_slot(const __u32 src[4], __u16 dport,
				       __u8 l4proto)
{
	return admit_mix(src[0] ^ src[1] ^ src[2] ^ src[3] ^
			 ((__u32)dport << 8 | l4proto)) &
	       (SLUICE_OVER_SLOTS - 1);
}

static __always_inline __u8 fast_flags(int is_ipv6, int syn_only)
{
	return (is_ipv6 ? SLUICE_FAST_IPV6 : 0) |
	       (syn_only ? SLUICE_FAST_SYN_ONLY : 0);
}

/* The entry refuses this packet, if its deadline is still ahead. */
static __always_inline int fast_match(const struct sluice_fast_entry *e,
				      const __u32 src[4], __u16 dport,
				      __u8 l4proto, int is_ipv6, int is_syn,
				      __u32 gen, __u32 epoch)
{
	if (e->epoch != epoch || e->gen != gen || e->dport != dport ||
	    e->l4proto != l4proto)
		return 0;
	if ((e->flags & SLUICE_FAST_IPV6) != (is_ipv6 ? SLUICE_FAST_IPV6 : 0))
		return 0;
	if ((e->flags & SLUICE_FAST_SYN_ONLY) && !is_syn)
		return 0;
	return e->addr[0] == src[0] && e->addr[1] == src[1] &&
	       e->addr[2] == src[2] && e->addr[3] == src[3];
}

static __always_inline void fast_put(struct sluice_fast_entry *e,
				     const __u32 src[4], __u16 dport,
				     __u8 l4proto, __u8 flags, __u32 gen,
				     __u32 epoch, __u32 slot, __u64 until_ns,
				     __u64 until_jiffies)
{
	e->addr[0] = src[0];
	e->addr[1] = src[1];
	e->addr[2] = src[2];
	e->addr[3] = src[3];
	e->dport = dport;
	e->l4proto = l4proto;
	e->flags = flags;
	e->gen = gen;
	e->epoch = epoch;
	e->slot = slot;
	e->until_ns = until_ns;
	e->until_jiffies = until_jiffies;
}

/*
 * The earliest time at which limit l, with theoretical arrival time tat,
 * admits a charge of one unit: before it, every charge is refused. One unit
 * is the smallest charge of every kind (a bytes limit charges the frame
 * length, at least one), so a cached refusal until then holds for any packet
 * the limit charges. 0 when one unit would be admitted at any time.
 */
static __always_inline __u64 gcra_due_ns(const struct sluice_limit *l,
					 __u64 tat)
{
	__u64 reach = tat + gcra_cost_ns(l, 1);

	return reach > l->capacity_ns ? reach - l->capacity_ns : 0;
}

/*
 * The jiffy by which a refusal until until_ns, decided at now_ns with
 * jiffies64 reading `jiffies`, has surely ended, or 0 when its hits must
 * read the clock. jiffies + k is reached by now + k ticks, so the refusal
 * ends before until + one tick. tick_ns is 0 when the kernel's tick is
 * unknown.
 */
static __always_inline __u64 over_deadline_jiffies(__u64 now_ns,
						   __u64 until_ns,
						   __u64 jiffies,
						   __u64 tick_ns)
{
	if (!tick_ns || until_ns <= now_ns)
		return 0;
	return jiffies + (until_ns - now_ns + tick_ns - 1) / tick_ns;
}

/* The same for a refusal by limit l until its next unit is due: 0 unless
 * the bucket has room for the units due in the tick it may outlast that,
 * and in a late tick (SLUICE_OVER_SLACK_TICKS), so that none is lost. */
static __always_inline __u64 over_until_jiffies(const struct sluice_limit *l,
						__u64 now_ns, __u64 due_ns,
						__u64 jiffies, __u64 tick_ns)
{
	if (l->capacity_ns < gcra_cost_ns(l, 1) +
			     SLUICE_OVER_SLACK_TICKS * tick_ns)
		return 0;
	return over_deadline_jiffies(now_ns, due_ns, jiffies, tick_ns);
}

#endif /* SLUICE_OVERCACHE_H */
