// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sluice's XDP data path: parse -> allow/deny -> policy lookup -> GCRA
 * buckets -> verdict -> count. Parsing and rate math live in lib/; this file
 * only wires them to the maps. Map layouts are defined in sluice_abi.h.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_abi.h"
#include "lib/parse.h"
#include "lib/gcra.h"
#include "lib/admit.h"
#include "lib/known.h"
#include "lib/overcache.h"
#include "lib/respond.h"
#include "lib/rst.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set to 0 before load (Datapath::loadUnattached) to measure the data path
 * without the over-limit cache (`make bench-prog` runs both). */
const volatile __u32 sluice_over_cache = 1;

/* sluice_known_bits(entries of sluice_sources) - 1: one half of
 * sluice_seen, set by userspace before load with the map's size; the
 * default matches the default size. */
const volatile __u32 sluice_known_mask = SLUICE_KNOWN_WORD_BITS - 1;

/* The kernel's tick rate, for the over-limit cache's jiffies deadlines
 * (lib/overcache.h). 0 when the kernel config has no CONFIG_HZ, or has none
 * to read (the loader then passes CONFIG_HZ=0, as libbpf would refuse the
 * object): every cached refusal then reads the clock. */
extern unsigned int CONFIG_HZ __kconfig __weak;

#define NSEC_PER_SEC	1000000000ULL

/* The arrays userspace writes are mmapable: it fills a whole generation
 * with memory stores instead of a syscall per entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SLUICE_PORT_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SLUICE_GENERATIONS * SLUICE_MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct sluice_policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_policies SEC(".maps");

/* Sized by userspace at load time (max_sources). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_DEFAULT_MAX_SOURCES);
	__type(key, struct sluice_source_key);
	__type(value, struct sluice_source_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_sources SEC(".maps");

/* Sources seen once (sluice_abi.h); sized by userspace at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MIN_PROBATION);
	__type(key, struct sluice_source_key);
	__type(value, struct sluice_source_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_probation SEC(".maps");

/* Presence filters of sluice_sources and sluice_probation (lib/known.h),
 * one half each, sized by userspace. Not pinned: every load fills them from
 * the tables, which may hold sources that an earlier program put there, and
 * only then turns them on (sluice_known_on[0] = 1). Until then, and while
 * userspace rebuilds them (turned off), every source is looked up in both
 * tables, as if its bits were set. Userspace finds both maps through the
 * pinned program. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sluice_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sluice_known_on SEC(".maps");

/* Probation memory (lib/admit.h): a fingerprint, a state and the source's
 * fold hash per slot. The fold hash lets a rebuild of the presence filters
 * (datapath.cpp) set the probation bit of each remembered source. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_ADMIT_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_admit_fp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_ADMIT_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_source_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_admit_mem SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_ADMIT_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_admit_fold SEC(".maps");

/* The over-limit cache (lib/overcache.h). Per CPU, so a slot has one writer
 * at a time and needs no atomics. Not pinned: it is only a cache, and a
 * program loaded afresh starts with an empty one. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_OVER_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_over_entry);
} sluice_over SEC(".maps");

/* Its fast entries (lib/overcache.h): refusals of drop policies, found
 * before the policy lookup. Per CPU and not pinned, as above. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_OVER_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_fast_entry);
} sluice_over_fast SEC(".maps");

/* A policy's new_sources budget: its TAT, key = slot. Not pinned: a program
 * loaded afresh starts with a full budget, which admits at most one burst
 * more. A slot reused by another policy inherits at most one capacity of
 * debt, errs towards admitting fewer new sources for that long. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_MAX_POLICIES);
	__type(key, __u32);
	__type(value, __u64);
} sluice_new_budget SEC(".maps");

/* Banned sources: key as in sluice_sources, value = banned-until ns. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_BANS);
	__type(key, struct sluice_source_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_bans SEC(".maps");

/* Fleet scope (docs/fleet.md): units admitted per source, read by the fleet
 * sync; userspace sizes it at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_FLEET_SOURCES);
	__type(key, struct sluice_source_key);
	__type(value, struct sluice_fleet_units);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_fleet_units SEC(".maps");

/* Fleet scope: sources over their fleet limit, value = over-until ns. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_FLEET_OVER);
	__type(key, struct sluice_source_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_fleet_over SEC(".maps");

/* Action redirect: the target interface of each policy slot, per generation. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, SLUICE_REDIRECT_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_redirect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SLUICE_MAX_CIDRS);
	__type(key, struct sluice_lpm4_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lists4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SLUICE_MAX_CIDRS);
	__type(key, struct sluice_lpm6_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lists6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_FRAGMENTS);
	__type(key, struct sluice_frag_key);
	__type(value, struct sluice_frag_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, struct sluice_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_stats SEC(".maps");

static __always_inline int verdict_drops(__u32 verdict)
{
	return verdict == SLUICE_VERDICT_LIMITED ||
	       verdict == SLUICE_VERDICT_DENIED ||
	       verdict == SLUICE_VERDICT_MALFORMED ||
	       verdict == SLUICE_VERDICT_FRAGMENT ||
	       verdict == SLUICE_VERDICT_BANNED ||
	       verdict == SLUICE_VERDICT_NEW_SOURCE;
}

/* Count the packet. The counters are per CPU, so plain additions lose
 * nothing. */
static __always_inline void count(__u32 slot, __u32 verdict, __u32 len)
{
	__u32 key = slot * SLUICE_VERDICT_COUNT + verdict;
	struct sluice_counter *c = bpf_map_lookup_elem(&sluice_stats, &key);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/* Count the packet and turn the verdict into an XDP action. */
static __always_inline int finish(__u32 slot, __u32 verdict, __u32 len)
{
	count(slot, verdict, len);
	return verdict_drops(verdict) ? XDP_DROP : XDP_PASS;
}

/* Returns SLUICE_LIST_ALLOW, SLUICE_LIST_DENY or 0. */
static __always_inline __u32 list_lookup(const struct sluice_pkt *pkt,
					 __u32 gen)
{
	__u32 *kind;

	if (pkt->is_ipv6) {
		struct sluice_lpm6_key k = { .prefixlen = 32 + 128, .gen = gen };

		__builtin_memcpy(k.addr, pkt->src, sizeof(k.addr));
		kind = bpf_map_lookup_elem(&sluice_lists6, &k);
	} else {
		struct sluice_lpm4_key k = {
			.prefixlen = 32 + 32, .gen = gen, .addr = pkt->src[3],
		};

		kind = bpf_map_lookup_elem(&sluice_lists4, &k);
	}
	return kind ? *kind : 0;
}

static __always_inline void source_key(struct sluice_source_key *key,
				       const struct sluice_policy *p,
				       const struct sluice_pkt *pkt)
{
	const __u32 *mask = pkt->is_ipv6 ? p->mask6 : p->mask4;

	key->state_tag = p->state_tag;
	key->addr[0] = pkt->src[0] & mask[0];
	key->addr[1] = pkt->src[1] & mask[1];
	key->addr[2] = pkt->src[2] & mask[2];
	key->addr[3] = pkt->src[3] & mask[3];
}

/* What source_state() found besides a state (*found). */
enum {
	SOURCE_KNOWN = 0,	/* in sluice_sources */
	SOURCE_PROBATION = 1,	/* a probation entry: remember it after the charge */
	SOURCE_REFUSED = 2,	/* never seen, refused by new_sources: no state */
};

/*
 * A never-seen source may start a bucket: the policy has no new_sources
 * budget, or the budget has a unit for it. Lost contention admits it (fails
 * open): a race between CPUs is not a refusal, and one source more on
 * probation costs a probation entry.
 */
static __always_inline int new_source_allowed(const struct sluice_policy *p,
					      __u64 now)
{
	__u32 slot = p->slot;
	__u64 *tat;

	if (!p->new_sources.interval_ns)
		return 1;
	tat = bpf_map_lookup_elem(&sluice_new_budget, &slot);
	if (!tat)
		return 1;
	return gcra_take(tat, &p->new_sources, now) != 0;
}

/* Are the filters filled and in use? Read once per packet. Fails towards
 * the lookups: a missing flag answers no. */
static __always_inline int filters_on(void)
{
	__u32 zero = 0, *on = bpf_map_lookup_elem(&sluice_known_on, &zero);

	return on && *on;
}

/* Could a source whose bit is `bit` of word w of sluice_seen be in the
 * table of that half? Yes unless the filters are `on` and the bit is
 * clear. Fails towards the lookup: a missing word answers yes. */
static __always_inline int maybe_seen(int on, __u32 w, __u64 bit)
{
	__u64 *word;

	if (!on)
		return 1;
	word = bpf_map_lookup_elem(&sluice_seen, &w);
	return !word || (*word & bit);
}

/* Before the source's insert into the table of w's half, so that a clear
 * bit is never wrong. Race: a CPU that read the bit just before it was set
 * skips that lookup. For sluice_sources it goes on to admit_source(), whose
 * NOEXIST insert and lookup then find the promoted entry through the
 * probation entry or the memory; only when both are gone already does it
 * charge a fresh probation bucket, the race of a source's first two packets
 * on two CPUs at once (admit_source). For sluice_probation it takes the
 * source for a new one: its NOEXIST insert fails and its lookup finds the
 * other CPU's entry, unless the new_sources budget, spent in between,
 * refuses this one packet as it would have refused the other. */
static __always_inline void mark_seen(__u32 w, __u64 bit)
{
	__u64 *word = bpf_map_lookup_elem(&sluice_seen, &w);

	/* Read first: a bit already set costs no write to a shared line. */
	if (word && !(*word & bit))
		__sync_fetch_and_or(word, bit);
}

static __always_inline int maybe_known(int on, __u32 h)
{
	return maybe_seen(on, known_word(h, sluice_known_mask), known_bit(h));
}

static __always_inline void mark_known(__u32 h)
{
	mark_seen(known_word(h, sluice_known_mask), known_bit(h));
}

static __always_inline int maybe_on_probation(int on, __u32 h)
{
	return maybe_seen(on, probation_word(h, sluice_known_mask), known_bit(h));
}

static __always_inline void mark_on_probation(__u32 h)
{
	mark_seen(probation_word(h, sluice_known_mask), known_bit(h));
}

/* The probation memory's state of the source of `key`, if its slot still
 * holds it. */
static __always_inline struct sluice_source_state *
admit_recall(const struct sluice_source_key *key)
{
	__u32 slot = admit_slot(key), *fp;
	struct sluice_source_state *mem;

	fp = bpf_map_lookup_elem(&sluice_admit_fp, &slot);
	mem = bpf_map_lookup_elem(&sluice_admit_mem, &slot);
	return fp && mem && *fp == admit_fingerprint(key) ? mem : NULL;
}

/*
 * Admission of a source that is not in sluice_sources. Its first packet gets
 * a fresh entry in sluice_probation and is charged there with the policy's
 * own GCRA, so a source on probation is limited like any other. Its second
 * packet finds that entry and promotes it: the state is copied into
 * sluice_sources and the probation entry removed. Spoofed sources that send
 * one packet each only ever evict each other from probation. A source whose
 * probation entry they evicted is recognised by the probation memory
 * (lib/admit.h) and promoted with the state it had, not a fresh bucket.
 * *found is SOURCE_PROBATION when the returned state is a probation entry:
 * the caller then writes it to the memory after charging it
 * (admit_remember). A source seen nowhere (no probation entry, no memory)
 * is new: the policy's new_sources budget must have room for it, or it gets
 * no state at all and *found is SOURCE_REFUSED.
 *
 * Races: two CPUs may create the same probation entry at once: NOEXIST lets
 * one win, and both charge its entry. A unit charged to the probation entry
 * after another CPU copied it (the first and second packets of one source on
 * two CPUs within the same instant) is lost with the probation entry: at most
 * one unit per CPU, once in a source's life, towards admitting more. Two
 * CPUs promoting at once: NOEXIST again, both use the winner's copy.
 */
static __always_inline struct sluice_source_state *
admit_source(const struct sluice_source_key *key, __u32 h, int on,
	     const struct sluice_policy *p, __u64 now, int *found)
{
	struct sluice_source_state init = {}, *st, *promoted, *mem;
	/* Only a policy with a new_sources budget consults and marks the
	 * probation table's filter: without one every spoofed packet would
	 * set a bit, the filter would be full within seconds, and each packet
	 * would pay the mark for nothing. A probation entry made without a
	 * budget therefore has no bit: a policy that gains one keeping its
	 * state tag gets the filters rebuilt around the flip (datapath.cpp,
	 * flipGeneration). A source the memory holds got its bit with its
	 * probation entry, or from a rebuild, which reads the memory's fold
	 * hashes; so a clear bit also skips the memory's two hashes and its
	 * read. */
	const int budget = p->new_sources.interval_ns != 0;
	const int seen = !budget || maybe_on_probation(on, h);

	st = seen ? bpf_map_lookup_elem(&sluice_probation, key) : NULL;
	if (st) {
		mark_known(h);
		bpf_map_update_elem(&sluice_sources, key, st, BPF_NOEXIST);
		promoted = bpf_map_lookup_elem(&sluice_sources, key);
		if (!promoted) {	/* no room was made: stay on probation */
			*found = SOURCE_PROBATION;
			return st;
		}
		bpf_map_delete_elem(&sluice_probation, key);
		return promoted;
	}
	mem = seen ? admit_recall(key) : NULL;
	if (mem) {
		/* Seen before, its probation entry evicted since: this is
		 * its second packet at least. */
		mark_known(h);
		bpf_map_update_elem(&sluice_sources, key, mem, BPF_NOEXIST);
		promoted = bpf_map_lookup_elem(&sluice_sources, key);
		if (promoted)
			return promoted;
		init = *mem;
	} else if (!new_source_allowed(p, now)) {
		*found = SOURCE_REFUSED;
		return NULL;
	}
	if (budget)
		mark_on_probation(h);
	bpf_map_update_elem(&sluice_probation, key, &init, BPF_NOEXIST);
	*found = SOURCE_PROBATION;
	return bpf_map_lookup_elem(&sluice_probation, key);
}

/*
 * Write a probation entry's state to the source's slot of the probation
 * memory, after its charge, with the fold hash that gives its filter bit.
 * Race: the fingerprint and the state are two stores, not one: two CPUs
 * writing one slot for two sources at the same instant may leave one
 * source's fingerprint with the other's state, which that source would then
 * resume from once (stricter or laxer by what the other was charged), or
 * with the other's fold hash: after the next rebuild its own probation bit
 * may be clear, and its next packet is then taken for a new source's. Fail
 * open on a missing slot: the source just has no memory, as before it
 * existed.
 */
static __always_inline void admit_remember(const struct sluice_source_key *key,
					   const struct sluice_source_state *st)
{
	struct sluice_source_state *mem;
	__u32 slot = admit_slot(key), *fp, *fold;

	fp = bpf_map_lookup_elem(&sluice_admit_fp, &slot);
	mem = bpf_map_lookup_elem(&sluice_admit_mem, &slot);
	fold = bpf_map_lookup_elem(&sluice_admit_fold, &slot);
	if (!fp || !mem || !fold)
		return;
	*fold = source_fold_hash(key);
	*mem = *st;
	*fp = admit_fingerprint(key);
}

/* A known source costs its filter bit and one lookup; a source never
 * promoted skips the lookup on a clear bit, and one never on probation
 * either (a spoofed one) skips the probation table's lookup too. */
static __always_inline struct sluice_source_state *
source_state(const struct sluice_source_key *key,
	     const struct sluice_policy *p, __u64 now, int *found)
{
	struct sluice_source_state *st;
	__u32 h = source_fold_hash(key);
	int on = filters_on();

	*found = SOURCE_KNOWN;
	if (maybe_known(on, h)) {
		st = bpf_map_lookup_elem(&sluice_sources, key);
		if (st)
			return st;
	}
	return admit_source(key, h, on, p, now, found);
}

/* Fleet scope: the sync wrote an over-until for this source. An expired
 * entry is removed on sight. Race: the sync may rewrite the entry between the
 * read and the delete; the rewrite is then lost for at most one sync
 * interval, which the overshoot bound of docs/fleet.md already covers. */
static __always_inline int fleet_over(const struct sluice_source_key *key,
				      __u64 now)
{
	__u64 *until = bpf_map_lookup_elem(&sluice_fleet_over, key);

	if (!until)
		return 0;
	if (*until > now)
		return 1;
	bpf_map_delete_elem(&sluice_fleet_over, key);
	return 0;
}

/* Fleet scope: add the units this packet was admitted for to the source's
 * running totals, which the fleet sync reads. Several CPUs add to one entry:
 * the additions are atomic. A failed insert (LRU under pressure) loses this
 * packet's units for the fleet only; the local limits still held it. */
static __always_inline void fleet_count(const struct sluice_source_key *key,
					const __u64 units[SLUICE_MAX_LIMITS])
{
	struct sluice_fleet_units zero = {}, *fu;
	int i;

	fu = bpf_map_lookup_elem(&sluice_fleet_units, key);
	if (!fu) {
		/* NOEXIST: two CPUs inserting one new source share an entry. */
		bpf_map_update_elem(&sluice_fleet_units, key, &zero,
				    BPF_NOEXIST);
		fu = bpf_map_lookup_elem(&sluice_fleet_units, key);
		if (!fu)
			return;
	}
	for (i = 0; i < SLUICE_MAX_LIMITS; i++)
		if (units[i])
			__sync_fetch_and_add(&fu->units[i], units[i]);
}

/* Policy p may use the over-limit cache: not with a ban, where every refused
 * packet must charge the ban_after bucket in the source state, nor with
 * fleet scope, where the fleet sync may lift a refusal at any time. */
static __always_inline int over_usable(const struct sluice_policy *p)
{
	return sluice_over_cache && !p->ban_ns && p->scope == SLUICE_SCOPE_HOST;
}

/* This CPU's over-limit cache slot for `key`. Looked up where it is used,
 * not held across the source lookup: a pointer live across that path would
 * double the states the verifier walks there. */
static __always_inline struct sluice_over_entry *
over_entry(const struct sluice_source_key *key)
{
	__u32 slot = over_slot(key);

	return bpf_map_lookup_elem(&sluice_over, &slot);
}

/* The cache holds a refusal of this packet: its source is refused by a limit
 * that charges this packet, and that limit admits nothing before until_ns.
 * The clock is read (into *now) only when the entry's jiffies deadline does
 * not settle it. */
static __always_inline int over_cached(const struct sluice_over_entry *e,
				       const struct sluice_source_key *key,
				       __u32 epoch, __u64 *now,
				       const struct sluice_policy *p,
				       const struct sluice_pkt *pkt, __u32 len)
{
	__u32 what = e->what;

	if (what >= SLUICE_MAX_LIMITS || what >= p->nlimits)
		return 0;
	if (!gcra_units(p->limits[what].kind, pkt->is_syn, len))
		return 0;
	if (!over_match(e, key, epoch, what))
		return 0;
	if (over_ahead_jiffies(e, bpf_jiffies64()))
		return 1;
	*now = bpf_ktime_get_ns();
	return over_ahead(e, *now);
}

static __always_inline __u64 tick_ns(void)
{
	return CONFIG_HZ ? NSEC_PER_SEC / CONFIG_HZ : 0;
}

/* A fast entry of the port's policy (`slot`) refuses this packet
 * (lib/overcache.h). The clock is read only when jiffies do not settle it. */
static __always_inline int fast_refused(const struct sluice_pkt *pkt, __u32 gen,
					__u32 epoch, __u32 slot)
{
	__u32 i = fast_slot(pkt->src, pkt->dport, pkt->l4proto);
	struct sluice_fast_entry *e = bpf_map_lookup_elem(&sluice_over_fast, &i);

	if (!e || e->slot != slot ||
	    !fast_match(e, pkt->src, pkt->dport, pkt->l4proto, pkt->is_ipv6,
			pkt->is_syn, gen, epoch))
		return 0;
	return bpf_jiffies64() < e->until_jiffies ||
	       bpf_ktime_get_ns() < e->until_ns;
}

/* Remember a refusal of a drop policy as a fast entry too: such a packet's
 * whole outcome is "limited, dropped", which needs nothing but the slot.
 * Not for fragments, whose first must leave a record for the later ones. */
static __always_inline void fast_remember(const struct sluice_pkt *pkt,
					  __u32 gen, __u32 epoch,
					  const struct sluice_policy *p,
					  __u32 refused, __u64 until_ns,
					  __u64 until_jiffies)
{
	struct sluice_fast_entry *e;
	__u32 i;

	if (p->action != SLUICE_ACTION_DROP || pkt->frag != FRAG_NONE ||
	    refused >= SLUICE_MAX_LIMITS)
		return;
	i = fast_slot(pkt->src, pkt->dport, pkt->l4proto);
	e = bpf_map_lookup_elem(&sluice_over_fast, &i);
	if (e)
		fast_put(e, pkt->src, pkt->dport, pkt->l4proto,
			 fast_flags(pkt->is_ipv6,
				    p->limits[refused].kind ==
					    SLUICE_LIMIT_CONNECTIONS),
			 gen, epoch, p->slot, until_ns, until_jiffies);
}

/* Remember a refusal by limit `refused` until its next unit is due. The TAT
 * is read again: another CPU may have charged it since, which only moves
 * the due time later, as the bucket really is. Race: between a charge and
 * its refund (a later limit refused that packet) another CPU may read a TAT
 * one charge too far ahead and cache a due time up to that charge late; it
 * errs towards admitting less, like the refund race in gcra.h. A refusal
 * that was only lost contention (no unit due later) is not cached. */
static __always_inline void over_remember(const struct sluice_source_key *key,
					  const struct sluice_pkt *pkt,
					  __u32 gen, __u32 epoch, __u64 now,
					  const struct sluice_policy *p,
					  const struct sluice_source_state *st,
					  __u32 refused)
{
	struct sluice_over_entry *e;
	__u64 due, until_jiffies;

	/* Unsigned, so that one compare bounds the index for the verifier:
	 * sluice_charge() returns an int it knows nothing of. */
	if (refused >= SLUICE_MAX_LIMITS)
		return;
	due = gcra_due_ns(&p->limits[refused], st->tat_ns[refused]);
	if (due <= now)
		return;
	until_jiffies = over_until_jiffies(&p->limits[refused], now, due,
					   bpf_jiffies64(), tick_ns());
	e = over_entry(key);
	if (e)
		over_put(e, key, epoch, refused, due, until_jiffies);
	fast_remember(pkt, gen, epoch, p, refused, due, until_jiffies);
}

/* What charge_source() decided. */
enum {
	CHARGE_LIMITED = 0,	/* a limit refuses it */
	CHARGE_ADMITTED = 1,	/* every limit admits it */
	CHARGE_NEW_SOURCE = 2,	/* a new source, new_sources has no room */
};

/* The units each limit charges for one packet, as one object: a global
 * function's pointer argument is checked against what it points to. */
struct charge_units {
	__u64 units[SLUICE_MAX_LIMITS];
};

/*
 * gcra_charge_units() as a global function, which the verifier checks once,
 * on its own. Inlined, its limits times SLUICE_CAS_RETRIES attempts were
 * explored again for every state that reached a call: with clang 19, more
 * than the verifier's 1M-instruction budget. The pointers are never NULL
 * here; the verifier wants the check, and it admits (fails open) like a
 * source without state.
 */
__noinline int sluice_charge(struct sluice_source_state *st,
			     const struct sluice_policy *p,
			     const struct charge_units *u, __u64 now)
{
	if (!st || !p || !u)
		return SLUICE_ADMIT;
	return gcra_charge_units(st, p, u->units, now);
}

/*
 * Charge a packet to its source's buckets under policy p. Every admission
 * reads the clock and the shared state: whether a unit is due depends on the
 * time since the last one, so no per-CPU shortcut can admit a packet without
 * both and stay exact. A refusal can be cached (lib/overcache.h): until its
 * limit's next unit is due, the answer cannot change.
 */
static __always_inline int charge_source(const struct sluice_policy *p,
					 const struct sluice_pkt *pkt,
					 __u32 len, __u32 gen, __u32 epoch,
					 struct sluice_source_state **stp)
{
	struct sluice_source_state *st;
	struct charge_units u;
	__u64 now;
	struct sluice_over_entry *over;
	struct sluice_source_key key;
	int found, ok, refused;

	source_key(&key, p, pkt);
	now = 0;
	/* Before the units: a cached refusal needs only its own limit's
	 * (over_cached), and is the path a flood takes. */
	if (over_usable(p)) {
		over = over_entry(&key);
		if (over && over_cached(over, &key, epoch, &now, p, pkt, len))
			return CHARGE_LIMITED;
	}
	/* A non-SYN under connections limits only: nothing to charge, no
	 * state to create. */
	if (!gcra_packet_units(p, pkt->is_syn, len, u.units))
		return CHARGE_ADMITTED;
	/* over_cached() reads the clock only when jiffies did not settle it;
	 * bpf_ktime_get_ns() is never 0 once the system has booted. */
	if (!now)
		now = bpf_ktime_get_ns();
	st = source_state(&key, p, now, &found);
	*stp = st;
	if (!st) {
		if (found == SOURCE_REFUSED)
			return CHARGE_NEW_SOURCE;
		/* The LRU could not give us an entry (-ENOMEM under extreme
		 * contention). Fail open for this one packet: a dropped
		 * legitimate packet is worse than one unit over the limit. */
		return CHARGE_ADMITTED;
	}
	if (p->scope != SLUICE_SCOPE_FLEET) {
		refused = sluice_charge(st, p, &u, now);
		ok = refused == SLUICE_ADMIT;
		/* over_usable() again rather than a flag kept from above: a
		 * flag live across source_state() doubles the verifier's
		 * states there. */
		if (!ok && over_usable(p))
			over_remember(&key, pkt, gen, epoch, now, p, st,
				      refused);
	} else if (fleet_over(&key, now)) {
		/* Over the fleet limit: refused before the local buckets,
		 * which keep their units for when the fleet admits the
		 * source again. */
		ok = 0;
	} else {
		ok = sluice_charge(st, p, &u, now) == SLUICE_ADMIT;
		if (ok)
			fleet_count(&key, u.units);
	}
	if (found == SOURCE_PROBATION)
		admit_remember(&key, st);
	return ok ? CHARGE_ADMITTED : CHARGE_LIMITED;
}

/* A source is banned under p until the ns stored in sluice_bans. An expired
 * ban is removed on sight. A ban found there is cached until it ends, by a
 * jiffies deadline where the tick is known (lib/overcache.h), so the packets
 * of a banned flood skip the LRU lookup and the clock. */
static __always_inline int source_banned(const struct sluice_policy *p,
					 const struct sluice_pkt *pkt, __u32 epoch)
{
	struct sluice_over_entry *over = NULL;
	struct sluice_source_key key;
	__u64 *until, now;
	int cached = 0;

	source_key(&key, p, pkt);
	if (sluice_over_cache) {
		over = over_entry(&key);
		cached = over && over_match(over, &key, epoch,
					    SLUICE_OVER_BANNED);
		if (cached && over_ahead_jiffies(over, bpf_jiffies64()))
			return 1;
	}
	now = bpf_ktime_get_ns();
	/* `over &&` again for the verifier: it cannot tell that cached
	 * implies it. */
	if (cached && over && over_ahead(over, now))
		return 1;
	until = bpf_map_lookup_elem(&sluice_bans, &key);
	if (!until)
		return 0;
	if (*until > now) {
		if (over)
			over_put(over, &key, epoch, SLUICE_OVER_BANNED, *until,
				 over_deadline_jiffies(now, *until,
						       bpf_jiffies64(),
						       tick_ns()));
		return 1;
	}
	bpf_map_delete_elem(&sluice_bans, &key);
	return 0;
}

/* Charge one limited unit to the source's ban_after bucket; when the bucket
 * refuses it, ban the source for p->ban_ns and return 1. */
static __always_inline int charge_ban(const struct sluice_policy *p,
				      const struct sluice_pkt *pkt,
				      struct sluice_source_state *st)
{
	__u64 now = bpf_ktime_get_ns(), until;
	struct sluice_source_key key;

	/* Contention is not a refusal: no ban on a race. */
	if (gcra_take(&st->ban_tat_ns, &p->ban_after, now) != 0)
		return 0;
	until = now + p->ban_ns;
	source_key(&key, p, pkt);
	bpf_map_update_elem(&sluice_bans, &key, &until, BPF_ANY);
	return 1;
}

static __always_inline int responder_running(const struct sluice_pkt *pkt)
{
	__u32 key = pkt->is_ipv6 ? SLUICE_RESPONDER_KEY_V6 :
				   SLUICE_RESPONDER_KEY_V4;
	struct bpf_sock *sk = bpf_map_lookup_elem(&sluice_responder, &key);

	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

static __always_inline void pkt_flow_key(struct sluice_flow_key *k,
					 const struct sluice_pkt *pkt)
{
	flow_key_fill(k, pkt->src, pkt->dst, pkt->sport, pkt->dport);
}

/*
 * Action respond over the limit. A SYN, while the responder runs, is recorded
 * and passed untouched for responder.bpf.c to steer; with no responder it is
 * answered as reject would. A later packet of a recorded connection (its
 * handshake ACK, the request, the FIN) passes, uncharged, while the record
 * lasts: the packets of one refused exchange, bounded by the responder's own
 * timeouts and SLUICE_RESPOND_FLOW_NS. Anything else is dropped (-1).
 */
static __always_inline int respond_excess(struct xdp_md *ctx,
					  const struct sluice_policy *p,
					  const struct sluice_pkt *pkt,
					  __u32 gen, __u32 *verdict)
{
	struct sluice_flow_key k = {};
	struct sluice_flow_state *fs;
	__u64 now;

	if (pkt->l4proto != IPPROTO_TCP)
		return -1;
	pkt_flow_key(&k, pkt);
	now = bpf_ktime_get_ns();
	if (pkt->is_syn) {
		struct sluice_flow_state st = {
			.until_ns = now + SLUICE_RESPOND_FLOW_NS,
			.slot = p->slot,
			.gen = gen,
		};

		if (!responder_running(pkt)) {
			if (rst_build(ctx))
				return -1;
			*verdict = SLUICE_VERDICT_RESPOND_FALLBACK;
			return XDP_TX;
		}
		/* LRU: a full table forgets the oldest record, whose
		 * connection then falls to the ordinary lookup. */
		bpf_map_update_elem(&sluice_respond_flows, &k, &st, BPF_ANY);
		*verdict = SLUICE_VERDICT_RESPONDED;
		return XDP_PASS;
	}
	fs = bpf_map_lookup_elem(&sluice_respond_flows, &k);
	if (!fs || fs->until_ns <= now)
		return -1;
	*verdict = SLUICE_VERDICT_RESPONDED;
	return XDP_PASS;
}

/* An admitted SYN under action respond: a record left by an earlier,
 * refused connection on the same 4-tuple must not steer this one. */
static __always_inline void respond_forget(const struct sluice_pkt *pkt)
{
	struct sluice_flow_key k = {};

	pkt_flow_key(&k, pkt);
	bpf_map_delete_elem(&sluice_respond_flows, &k);
}

/* The action over the limit, for a packet that is not a fragment: reject
 * answers a SYN with a RST, respond hands it to the responder, redirect
 * sends it out of the policy's target. Returns the XDP action, or -1 to
 * fall back to a drop. */
static __always_inline int excess_action(struct xdp_md *ctx,
					 const struct sluice_policy *p,
					 const struct sluice_pkt *pkt,
					 __u32 gen, __u32 *verdict)
{
	/* Its non-SYN packets were handled before the ban (sluice_xdp). */
	if (p->action == SLUICE_ACTION_RESPOND)
		return pkt->is_syn ? respond_excess(ctx, p, pkt, gen, verdict) : -1;
	if (p->action == SLUICE_ACTION_REJECT) {
		if (!pkt->is_syn || rst_build(ctx))
			return -1;
		*verdict = SLUICE_VERDICT_REJECTED;
		return XDP_TX;
	}
	if (p->action == SLUICE_ACTION_REDIRECT) {
		__u32 key = gen * SLUICE_MAX_POLICIES + p->slot;
		int act = bpf_redirect_map(&sluice_redirect, key, XDP_DROP);

		if (act != XDP_REDIRECT)
			return -1;
		*verdict = SLUICE_VERDICT_REDIRECTED;
		return act;
	}
	return -1;
}

static __always_inline void frag_key(struct sluice_frag_key *k,
				     const struct sluice_pkt *pkt)
{
	__builtin_memcpy(k->src, pkt->src, sizeof(k->src));
	__builtin_memcpy(k->dst, pkt->dst, sizeof(k->dst));
	k->id = pkt->frag_id;
	k->proto = pkt->frag_proto;
}

/* Later fragments carry no ports: they follow the verdict of their
 * datagram's first fragment, recorded here. */
static __always_inline int finish_first_fragment(const struct sluice_pkt *pkt,
						 __u32 slot, __u32 verdict,
						 __u32 len)
{
	struct sluice_frag_key k = {};
	struct sluice_frag_state fs = { .slot = slot, .verdict = verdict };

	frag_key(&k, pkt);
	bpf_map_update_elem(&sluice_frags, &k, &fs, BPF_ANY);
	return finish(slot, verdict, len);
}

/* The policy flags a later fragment could fall under. Past a fragmented
 * extension header its upper protocol is unknown: it could be either. */
static __always_inline __u32 proto_policy_flag(__u8 l4proto)
{
	if (l4proto == IPPROTO_TCP)
		return SLUICE_GEN_TCP_POLICY;
	if (l4proto == IPPROTO_UDP)
		return SLUICE_GEN_UDP_POLICY;
	if (ipv6_is_ext(l4proto))
		return SLUICE_GEN_TCP_POLICY | SLUICE_GEN_UDP_POLICY;
	return 0;
}

/*
 * The parser as a global function: the verifier checks it once, on its own,
 * and the caller sees *pkt as written by it whichever path it took. Inlined,
 * every parser outcome (VLAN depth, extension headers, fragment kind) was
 * carried through the rest of the program as states of its own.
 */
__noinline int sluice_parse(struct xdp_md *ctx, struct sluice_pkt *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (!pkt)
		return PARSE_MALFORMED;
	return parse_packet(data, data_end, pkt);
}

SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct sluice_pkt pkt = {};
	const struct sluice_policy *policy;
	struct sluice_source_state *st = NULL;
	struct sluice_config *cfg;
	__u32 zero = 0, gen, flags, slot = SLUICE_SLOT_NONE, key, verdict, epoch;
	__u32 list = 0;
	int rc;

	rc = sluice_parse(ctx, &pkt);
	if (rc == PARSE_NOT_IP)
		return finish(SLUICE_SLOT_NONE, SLUICE_VERDICT_PASS, len);
	if (rc != PARSE_OK)
		return finish(SLUICE_SLOT_NONE, SLUICE_VERDICT_MALFORMED, len);

	cfg = bpf_map_lookup_elem(&sluice_config, &zero);
	if (!cfg)	/* an array always has entry 0; keeps the verifier happy */
		return XDP_PASS;
	/* Userspace flips active_gen with one atomic store (sluice_abi.h). */
	gen = *(volatile __u32 *)&cfg->active_gen & 1;
	flags = cfg->gen[gen].flags;
	/* Read before any source state: userspace deletes the state of a reset
	 * source first and bumps the epoch after, so an entry cached from the
	 * old state carries the old epoch. Race: on a CPU that reorders loads,
	 * this read may see the new epoch and a later lookup the old state; the
	 * entry written then holds the reset source for at most one interval
	 * of its limit (x86 does not reorder loads). */
	epoch = *(volatile __u32 *)&cfg->cache_epoch;

	if (pkt.frag == FRAG_LATER) {
		struct sluice_frag_key fk = {};
		struct sluice_frag_state *fs;

		frag_key(&fk, &pkt);
		fs = bpf_map_lookup_elem(&sluice_frags, &fk);
		if (fs) {
			slot = fs->slot;
			if (verdict_drops(fs->verdict))
				return finish(slot, fs->verdict, len);
		} else if (flags & proto_policy_flag(pkt.l4proto)) {
			/* Its first fragment was not seen (reordered, lost, or
			 * never sent): the port it is for is unknown, so it
			 * cannot be judged. Fail closed on protocols that
			 * have policies. */
			return finish(SLUICE_SLOT_NONE, SLUICE_VERDICT_FRAGMENT,
				      len);
		}
	} else if (pkt.has_ports) {
		__u32 proto_idx = pkt.l4proto == IPPROTO_TCP ?
				  SLUICE_PROTO_TCP_IDX : SLUICE_PROTO_UDP_IDX;
		__u32 *port_slot;

		key = sluice_port_key(gen, proto_idx, pkt.dport);
		port_slot = bpf_map_lookup_elem(&sluice_ports, &key);
		if (port_slot)
			slot = *port_slot;
		/* A flood's packet ends here (sluice_over_fast); a port
		 * without a policy does not pay the probe. */
		if (sluice_over_cache && slot != SLUICE_SLOT_NONE &&
		    pkt.frag == FRAG_NONE && fast_refused(&pkt, gen, epoch, slot))
			return finish(slot, SLUICE_VERDICT_LIMITED, len);
	}

	/* The allow/deny trie costs a lookup: only when it has entries for
	 * this family, and, with no policy here, only to find a deny. */
	if (flags & (pkt.is_ipv6 ? SLUICE_GEN_LISTS_V6 : SLUICE_GEN_LISTS_V4) &&
	    (slot != SLUICE_SLOT_NONE ||
	     flags & (pkt.is_ipv6 ? SLUICE_GEN_DENY_V6 : SLUICE_GEN_DENY_V4)))
		list = list_lookup(&pkt, gen);

	if (list == SLUICE_LIST_DENY)
		verdict = SLUICE_VERDICT_DENIED;
	else if (list == SLUICE_LIST_ALLOW && slot != SLUICE_SLOT_NONE)
		verdict = SLUICE_VERDICT_ALLOWED;
	else if (slot == SLUICE_SLOT_NONE || slot >= SLUICE_MAX_POLICIES)
		verdict = SLUICE_VERDICT_PASS;
	else
		verdict = SLUICE_VERDICT_ADMITTED;
	if (verdict != SLUICE_VERDICT_ADMITTED)
		goto out;

	key = gen * SLUICE_MAX_POLICIES + slot;
	policy = bpf_map_lookup_elem(&sluice_policies, &key);
	if (!policy || !policy->nlimits)
		goto out;
	/* A banned source costs one lookup and touches nothing else. */
	if (policy->ban_ns && source_banned(policy, &pkt, epoch)) {
		verdict = SLUICE_VERDICT_BANNED;
		goto out;
	}
	rc = charge_source(policy, &pkt, len, gen, epoch, &st);
	if (rc == CHARGE_NEW_SOURCE) {
		/* Dropped whatever the action: no state was made for it, and
		 * a reply to a spoofed address would reflect the flood. */
		verdict = policy->action == SLUICE_ACTION_MONITOR ?
			  SLUICE_VERDICT_MONITORED : SLUICE_VERDICT_NEW_SOURCE;
		goto out;
	}
	if (rc == CHARGE_LIMITED) {
		if (policy->action == SLUICE_ACTION_MONITOR) {
			verdict = SLUICE_VERDICT_MONITORED;
			goto out;
		}
		verdict = SLUICE_VERDICT_LIMITED;
		/* A packet of a connection already handed to the responder is
		 * not a new excess: it must not count towards a ban. */
		if (policy->action == SLUICE_ACTION_RESPOND && !pkt.is_syn &&
		    pkt.frag == FRAG_NONE) {
			rc = respond_excess(ctx, policy, &pkt, gen, &verdict);
			if (rc >= 0) {
				count(slot, verdict, len);
				return rc;
			}
		}
		if (policy->ban_ns && st && charge_ban(policy, &pkt, st)) {
			verdict = SLUICE_VERDICT_BANNED;
			goto out;
		}
		/* Fragments are dropped: the datagram's later fragments could
		 * not follow a reply or a redirect. */
		if (pkt.frag == FRAG_NONE) {
			rc = excess_action(ctx, policy, &pkt, gen, &verdict);
			if (rc >= 0) {
				count(slot, verdict, len);
				return rc;
			}
		}
	} else if (policy->action == SLUICE_ACTION_RESPOND && pkt.is_syn) {
		respond_forget(&pkt);
	}
out:
	if (pkt.frag == FRAG_FIRST)
		return finish_first_fragment(&pkt, slot, verdict, len);
	return finish(slot, verdict, len);
}
