/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * GCRA (generic cell rate algorithm): a token bucket that keeps one word per
 * limit, the theoretical arrival time (TAT). A unit costs interval_ns; the
 * bucket holds capacity_ns = burst * interval_ns. A charge of c units is
 * admitted when max(TAT, now) + c * interval - now <= capacity, and then that
 * sum becomes the new TAT. A TAT at or before now is a full bucket, so the
 * state starts full at zero and needs no initialisation.
 *
 * Pure: no helpers, `now` is passed in. The BPF program and the unit tests
 * compile this same file; __sync builtins are atomic on both.
 *
 * Bounds (enforced by the policy compiler): capacity_ns <= SLUICE_MAX_SPAN_NS
 * and the cost of the largest charge <= SLUICE_MAX_SPAN_NS, so with now below
 * 2^63 every sum here stays inside u64.
 */
#ifndef SLUICE_GCRA_H
#define SLUICE_GCRA_H

#include "../sluice_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* A TAT update that loses its compare-and-swap this many times in a row
 * (other CPUs charging the same bucket) gives up, and the packet is treated
 * as over the limit: under such contention the source is flooding, and
 * failing closed never admits more than the limit. */
#define SLUICE_CAS_RETRIES	8

/* Value of gcra_charge() when every limit admitted the packet. */
#define SLUICE_ADMIT		(-1)

/* Time that `units` units cost under limit l. The fractional part matters
 * for byte limits, where the per-byte interval can be below a nanosecond.
 * It is rounded up: a charge may cost up to 1 ns more than exact, so the
 * limit errs towards admitting less, never more (at 1 GB/s, 64-byte frames
 * get at most 1.6% less than the limit, 1500-byte frames 0.07%). */
static __always_inline __u64 gcra_cost_ns(const struct sluice_limit *l,
					  __u64 units)
{
	return units * l->interval_ns +
	       ((units * l->interval_frac + 0xffffffffULL) >> 32);
}

/* Take `cost` back from a TAT, never below 0: a refund larger than the
 * bucket holds (its entry was re-created since) leaves it full. Losing the
 * race SLUICE_CAS_RETRIES times drops the refund, which errs towards less. */
static __always_inline void gcra_give_back(__u64 *tat, __u64 cost)
{
	__u64 old, next;
	int attempt;

	for (attempt = 0; attempt < SLUICE_CAS_RETRIES; attempt++) {
		old = *tat;
		next = old > cost ? old - cost : 0;
		if (__sync_val_compare_and_swap(tat, old, next) == old)
			return;
	}
}

/* Units the limit charges for a packet of `len` bytes, 0 if it does not
 * charge this packet. */
static __always_inline __u64 gcra_units(__u8 kind, int is_syn, __u32 len)
{
	switch (kind) {
	case SLUICE_LIMIT_CONNECTIONS:
		return is_syn ? 1 : 0;
	case SLUICE_LIMIT_PACKETS:
		return 1;
	case SLUICE_LIMIT_BYTES:
		return len;
	default:
		return 0;
	}
}

/* One admission decision: returns 1 and sets *new_tat if admitted. */
static __always_inline int gcra_step(__u64 tat, __u64 now, __u64 cost_ns,
				     __u64 capacity_ns, __u64 *new_tat)
{
	__u64 start = tat > now ? tat : now;
	__u64 next = start + cost_ns;

	if (next - now > capacity_ns)
		return 0;
	*new_tat = next;
	return 1;
}

#define SLUICE_TAKE_CONTENDED	(-1)

/*
 * Take one unit of l from the shared TAT *tat by compare-and-swap. Returns
 * 1 when taken, 0 when l refuses it, SLUICE_TAKE_CONTENDED when every retry
 * lost to another CPU: the caller decides which way that fails, as it is
 * neither an admission nor a refusal.
 */
static __always_inline int gcra_take(__u64 *tat, const struct sluice_limit *l,
				     __u64 now)
{
	__u64 cost = gcra_cost_ns(l, 1), old, next = 0;
	int attempt;

	for (attempt = 0; attempt < SLUICE_CAS_RETRIES; attempt++) {
		old = *tat;
		if (!gcra_step(old, now, cost, l->capacity_ns, &next))
			return 0;
		if (__sync_val_compare_and_swap(tat, old, next) == old)
			return 1;
	}
	return SLUICE_TAKE_CONTENDED;
}

/* The units each limit of p charges for one packet; returns 0 when the
 * packet charges no limit at all (a non-SYN under connections limits). */
static __always_inline int gcra_packet_units(const struct sluice_policy *p,
					     int is_syn, __u32 len,
					     __u64 units[SLUICE_MAX_LIMITS])
{
	int i, any = 0;

	for (i = 0; i < SLUICE_MAX_LIMITS; i++) {
		units[i] = i < p->nlimits ?
			   gcra_units(p->limits[i].kind, is_syn, len) : 0;
		any |= units[i] != 0;
	}
	return any;
}

/*
 * Charge units[i] to limit i of policy p, for every limit at once. Returns
 * SLUICE_ADMIT, or the index of the limit that refused it. A refused charge
 * takes nothing: limits already charged are refunded.
 *
 * Race: each TAT is updated by compare-and-swap, so two CPUs charging one
 * bucket can never both spend the same capacity. A refund is an atomic
 * subtraction; between charge and refund another CPU may see the bucket
 * fuller than it is and refuse a unit it could have had. That errs towards
 * admitting less, never more, than the limit.
 */
static __always_inline int
gcra_charge_units(struct sluice_source_state *st, const struct sluice_policy *p,
		  const __u64 units[SLUICE_MAX_LIMITS], __u64 now)
{
	__u64 charged[SLUICE_MAX_LIMITS] = {};
	int refused = SLUICE_ADMIT;
	int i, j, attempt;

	for (i = 0; i < SLUICE_MAX_LIMITS; i++) {
		const struct sluice_limit *l = &p->limits[i];
		__u64 cost, old, next = 0;
		int ok = 0;

		if (i >= p->nlimits)
			break;
		if (!units[i])
			continue;
		cost = gcra_cost_ns(l, units[i]);
		for (attempt = 0; attempt < SLUICE_CAS_RETRIES; attempt++) {
			old = st->tat_ns[i];
			if (!gcra_step(old, now, cost, l->capacity_ns, &next))
				break;
			if (__sync_val_compare_and_swap(&st->tat_ns[i], old,
							next) == old) {
				ok = 1;
				break;
			}
		}
		if (!ok) {
			refused = i;
			break;
		}
		charged[i] = cost;
	}
	if (refused == SLUICE_ADMIT)
		return SLUICE_ADMIT;
	for (j = 0; j < SLUICE_MAX_LIMITS; j++) {
		if (j >= refused)
			break;
		if (charged[j])
			gcra_give_back(&st->tat_ns[j], charged[j]);
	}
	return refused;
}

/* Charge one packet of `len` bytes (a SYN without ACK if is_syn). */
static __always_inline int gcra_charge(struct sluice_source_state *st,
				       const struct sluice_policy *p,
				       int is_syn, __u32 len, __u64 now)
{
	__u64 units[SLUICE_MAX_LIMITS];

	gcra_packet_units(p, is_syn, len, units);
	return gcra_charge_units(st, p, units, now);
}

#ifndef __bpf__	/* userspace only: BPF has no 128-bit division */
/* What `flask limiter limits --key` shows: units a limit would admit now,
 * and nanoseconds until the next unit is admitted (0 when one is now). */
static __always_inline __u64 gcra_remaining(const struct sluice_limit *l,
					    __u64 tat, __u64 now)
{
	__u64 used = tat > now ? tat - now : 0;
	/* In 2^-32 ns: a bytes limit's interval may be all fraction. */
	unsigned __int128 interval_q32 =
		((unsigned __int128)l->interval_ns << 32) | l->interval_frac;

	if (!interval_q32 || used >= l->capacity_ns)
		return 0;
	return (__u64)(((unsigned __int128)(l->capacity_ns - used) << 32) /
		       interval_q32);
}

static __always_inline __u64 gcra_retry_after_ns(const struct sluice_limit *l,
						 __u64 tat, __u64 now)
{
	__u64 used = tat > now ? tat - now : 0;
	__u64 one = gcra_cost_ns(l, 1);

	if (used + one <= l->capacity_ns)
		return 0;
	return used + one - l->capacity_ns;
}
#endif /* !__bpf__ */

#endif /* SLUICE_GCRA_H */
