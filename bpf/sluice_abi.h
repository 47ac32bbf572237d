/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of every map key, map value and constant shared by the
 * XDP data path and userspace. Userspace static_asserts these layouts
 * (userspace/abi_check.cpp); change a struct here and both sides follow.
 *
 * Generations: policies, the port table and the allow/deny tries each hold two
 * generations side by side. Userspace fills the inactive one completely and
 * then flips sluice_config.active_gen with a single atomic store, so a packet
 * is judged entirely by the old or entirely by the new policy set.
 */
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

#include <linux/types.h>

#define SLUICE_GENERATIONS	2
#define SLUICE_MAX_LIMITS	4
/* Policy slots per generation. Slot 0 is "no policy": it carries the
 * counters of traffic that matched none, so 16383 policies fit. Memory that
 * scales with it: sluice_policies 2 x 16384 x 400 B = 12.5 MiB, sluice_stats
 * 16384 x 14 verdicts x 16 B = 3.5 MiB per possible CPU, sluice_redirect
 * 2 x 16384 device slots. */
#define SLUICE_MAX_POLICIES	16384
#define SLUICE_SLOT_NONE	0

#define SLUICE_PORTS		65536
#define SLUICE_PROTO_TCP_IDX	0
#define SLUICE_PROTO_UDP_IDX	1
#define SLUICE_PROTOS		2
#define SLUICE_PORT_ENTRIES	(SLUICE_GENERATIONS * SLUICE_PROTOS * SLUICE_PORTS)

/* Default size of the per-source LRU table; userspace sets it at load time. */
#define SLUICE_DEFAULT_MAX_SOURCES	1000000
/* The kernel's common LRU (kernel/bpf/bpf_lru_list.c, LOCAL_FREE_TARGET)
 * keeps up to this many free entries on each CPU's own list, and evicts
 * when a CPU's list is empty and the shared one holds fewer than that. An
 * insert also takes an entry before it looks the key up, and gives it back
 * when the key is there. So a table of exactly N entries evicts before it
 * holds N, and a cyclic pattern then loses nearly every state. Userspace
 * gives each LRU whose size sluice promises (sluice_sources,
 * sluice_fleet_units, sluice_bans, sluice_fleet_over) sluice_lru_slack()
 * entries more: N are then never evicted, whatever their order or CPU. */
#define SLUICE_LRU_LOCAL_FREE		128

static inline __u32 sluice_lru_slack(__u32 possible_cpus)
{
	return possible_cpus * (SLUICE_LRU_LOCAL_FREE + 1);
}

/* The probation table (map sluice_probation) holds sources seen once, and is
 * sized from max_sources: one entry per SLUICE_PROBATION_DIVISOR, at least
 * SLUICE_MIN_PROBATION. */
#define SLUICE_PROBATION_DIVISOR	8
#define SLUICE_MIN_PROBATION		1024
/* Probation memory (bpf/lib/admit.h): maps sluice_admit_fp (__u32
 * fingerprints, 0 = empty), sluice_admit_mem (struct sluice_source_state)
 * and sluice_admit_fold (__u32 source_fold_hash() of the slot's source) are
 * arrays of this many slots, 3.0 MiB in all. A power of two: the slot is
 * a hash masked by SLUICE_ADMIT_SLOTS - 1. */
#define SLUICE_ADMIT_SLOTS		(1U << 16)

/*
 * Presence filters of sluice_sources and sluice_probation (map sluice_seen,
 * bpf/lib/known.h), two halves of one array of __u64 words: the first for
 * sources promoted into sluice_sources, the second for sources given a
 * probation entry under a policy with a new_sources budget (without one it
 * is neither read nor set: sluice.bpf.c, admit_source). Each half has one
 * bit per SLUICE_KNOWN_BITS_PER_ENTRY slots of sluice_sources' size rounded
 * up to a power of two, and at least as many bits per slot of the probation
 * memory: a rebuild also puts the bits of the sources the memory holds into
 * the probation half (the probation half has 8 times the bits per entry of
 * its smaller table). A clear bit says the source was never put into
 * that table, and a spoofed source's packet skips the table's hash-chain
 * walk, a cache miss in a bucket array of 16 B per entry. 2 x 0.5 B per
 * entry of sluice_sources. The program never clears a bit (a source
 * evicted, reset or promoted out of probation keeps it: a set bit only
 * costs the lookup), so the share of set bits grows with every source ever
 * put there: about 22% of the first half with as many sources as the table
 * holds, 63% with four times that. Every load fills both from the tables,
 * and `sluice reset --all` and `sluice run` rebuild them
 * (Datapath::refreshKnownFilter).
 */
#define SLUICE_KNOWN_BITS_PER_ENTRY	4
#define SLUICE_KNOWN_WORD_BITS		64

static inline __u32 sluice_known_bits(__u32 table_entries)
{
	__u64 bits = 1;

	while (bits < table_entries || bits < SLUICE_ADMIT_SLOTS)
		bits <<= 1;
	bits *= SLUICE_KNOWN_BITS_PER_ENTRY;
	/* A bit index is a 32-bit hash masked by bits - 1. */
	return bits > (1ULL << 31) ? 1U << 31 : (__u32)bits;
}

/* The words of one half. */
static inline __u32 sluice_known_words(__u32 table_entries)
{
	return sluice_known_bits(table_entries) / SLUICE_KNOWN_WORD_BITS;
}

/* Entries of map sluice_seen: both halves. */
static inline __u32 sluice_seen_words(__u32 table_entries)
{
	return 2 * sluice_known_words(table_entries);
}

/* Banned sources tracked at once (map sluice_bans, LRU: when it is full the
 * ban that was touched least recently is forgotten first). */
#define SLUICE_MAX_BANS			65536
/* Fleet-scope sources whose admitted units a node counts for the fleet sync
 * (map sluice_fleet_units, LRU); userspace sizes it min(max_sources, this). */
#define SLUICE_MAX_FLEET_SOURCES	262144
/* Sources over their fleet limit at once (map sluice_fleet_over, LRU). */
#define SLUICE_MAX_FLEET_OVER		65536
/* In-flight fragmented datagrams tracked (first fragment -> later ones). */
#define SLUICE_MAX_FRAGMENTS		65536
/* Entries per allow/deny trie (both generations together). */
#define SLUICE_MAX_CIDRS		262144

/* GCRA bounds that keep every sum in u64 (see bpf/lib/gcra.h). */
#define SLUICE_MAX_SPAN_NS		(1ULL << 62)
/* A bytes limit is charged by frame length, at most this many bytes. */
#define SLUICE_MAX_FRAME_BYTES		65535

/* Pinned under this directory, one sub-directory per interface. */
#define SLUICE_PIN_ROOT		"/sys/fs/bpf/sluice"

enum sluice_limit_kind {
	SLUICE_LIMIT_CONNECTIONS = 1,	/* charged 1 by a TCP SYN without ACK */
	SLUICE_LIMIT_PACKETS = 2,	/* charged 1 by every packet */
	SLUICE_LIMIT_BYTES = 3,		/* charged the frame length */
};

enum sluice_action {
	SLUICE_ACTION_DROP = 0,
	SLUICE_ACTION_MONITOR = 1,	/* count as would-be-limited, pass */
	SLUICE_ACTION_REJECT = 2,	/* SYN: RST+ACK by XDP_TX; others dropped */
	SLUICE_ACTION_RESPOND = 3,	/* SYN: hand to the 429 responder; others dropped */
	SLUICE_ACTION_REDIRECT = 4,	/* XDP_REDIRECT through sluice_redirect */
	SLUICE_ACTION_COUNT
};

enum sluice_key_mode {
	SLUICE_KEY_SOURCE = 0,		/* one bucket set per masked source */
	SLUICE_KEY_GLOBAL = 1,		/* one bucket set for the whole policy */
};

/* sluice_policy.scope: where a policy's per-source limits apply. */
enum sluice_scope {
	SLUICE_SCOPE_HOST = 0,		/* this host's buckets only */
	SLUICE_SCOPE_FLEET = 1,		/* also the fleet total (docs/fleet.md) */
};

enum sluice_verdict {
	SLUICE_VERDICT_PASS = 0,	/* matched no policy */
	SLUICE_VERDICT_ADMITTED = 1,	/* within every limit that charged it */
	SLUICE_VERDICT_LIMITED = 2,	/* over a limit: the action was applied */
	SLUICE_VERDICT_MONITORED = 3,	/* over a limit under action monitor: passed */
	SLUICE_VERDICT_ALLOWED = 4,	/* source on the allow list */
	SLUICE_VERDICT_DENIED = 5,	/* source on the deny list: dropped */
	SLUICE_VERDICT_MALFORMED = 6,	/* unparseable IP packet: dropped */
	SLUICE_VERDICT_FRAGMENT = 7,	/* non-first fragment with no known first: dropped */
	SLUICE_VERDICT_REJECTED = 8,	/* over a limit, action reject: SYN answered with RST */
	SLUICE_VERDICT_REDIRECTED = 9,	/* over a limit, action redirect: XDP_REDIRECT */
	SLUICE_VERDICT_BANNED = 10,	/* source banned under the policy: dropped */
	SLUICE_VERDICT_RESPONDED = 11,	/* over a limit, action respond: passed to the
					 * responder (the SYN and its connection's
					 * later packets) */
	SLUICE_VERDICT_RESPOND_FALLBACK = 12,	/* action respond with no responder
						 * running: SYN answered with RST */
	SLUICE_VERDICT_NEW_SOURCE = 13,	/* a never-seen source over the policy's
					 * new_sources budget: dropped */
	SLUICE_VERDICT_COUNT
};

/* sluice_config.gen[].flags: let the data path skip lookups that cannot hit. */
#define SLUICE_GEN_LISTS_V4	(1U << 0)	/* the IPv4 trie has entries */
#define SLUICE_GEN_LISTS_V6	(1U << 1)
#define SLUICE_GEN_DENY_V4	(1U << 2)	/* ... and some are deny entries */
#define SLUICE_GEN_DENY_V6	(1U << 3)
#define SLUICE_GEN_TCP_POLICY	(1U << 4)	/* some TCP port has a policy */
#define SLUICE_GEN_UDP_POLICY	(1U << 5)

struct sluice_gen_info {
	__u32 flags;
	__u32 policies;			/* informational: policies installed */
};

/* Map sluice_config: one mmapable array entry. */
struct sluice_config {
	__u32 active_gen;		/* 0 or 1; written with one atomic store */
	__u32 cache_epoch;		/* bumped by userspace after a reset or an
					 * apply: entries of sluice_over written
					 * under another epoch are ignored */
	struct sluice_gen_info gen[SLUICE_GENERATIONS];
};

struct sluice_limit {
	__u64 interval_ns;		/* emission interval: time one unit costs */
	__u64 capacity_ns;		/* burst * interval: how far ahead TAT may run */
	__u32 interval_frac;		/* fraction of interval_ns, in 2^-32 ns */
	__u8 kind;			/* enum sluice_limit_kind */
	__u8 pad[3];
	/* The limit as written ("count per period burst N"): the data path
	 * does not read these; they make the installed state self-describing. */
	__u64 count;
	__u64 period_ns;
	__u64 burst;
};

#define SLUICE_POLICY_NAME_LEN	48

/* Map sluice_policies: array, key = gen * SLUICE_MAX_POLICIES + slot. */
struct sluice_policy {
	char name[SLUICE_POLICY_NAME_LEN];	/* NUL-terminated */
	__u32 slot;			/* stable while the name is: indexes counters */
	__u32 state_tag;		/* in source keys; changes when limits change */
	__u8 action;			/* enum sluice_action */
	__u8 key_mode;			/* enum sluice_key_mode */
	__u8 ipv4_prefix;		/* source prefix, 0..32 (for display) */
	__u8 ipv6_prefix;		/* source prefix, 0..128 (for display) */
	__u8 nlimits;			/* limits[0..nlimits) are valid */
	__u8 proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;			/* enum sluice_scope */
	__u8 pad;
	__u32 redirect_ifindex;		/* SLUICE_ACTION_REDIRECT: the target, also
					 * in sluice_redirect (for display) */
	/* The prefixes as masks over the IPv4-mapped or IPv6 address, network
	 * byte order; all zero for key global. Precomputed so the data path
	 * masks with four ANDs. */
	__u32 mask4[4];
	__u32 mask6[4];
	struct sluice_limit limits[SLUICE_MAX_LIMITS];
	/* Ban: 0 = none. Limited units (one per over-limit packet) are charged
	 * to ban_after, a GCRA bucket in the source state; a unit it refuses
	 * bans the source for ban_ns (map sluice_bans). */
	__u64 ban_ns;
	struct sluice_limit ban_after;
	/* new_sources: how fast never-seen sources may start buckets (one
	 * unit each, kind packets); interval_ns 0 = no budget. A never-seen
	 * source it refuses is dropped without any state (map
	 * sluice_new_budget holds the budget's TAT per slot). */
	struct sluice_limit new_sources;
};

/* Map sluice_ports: array, key = sluice_port_key(gen, proto_idx, port),
 * value = policy slot (SLUICE_SLOT_NONE when the port has no policy). */
static inline __u32 sluice_port_key(__u32 gen, __u32 proto_idx, __u32 port)
{
	return (gen * SLUICE_PROTOS + proto_idx) * SLUICE_PORTS + port;
}

/* Map sluice_sources: LRU hash. IPv4 sources are stored IPv4-mapped
 * (::ffff:a.b.c.d), masked to the policy's prefix; all zero for key global. */
struct sluice_source_key {
	__u32 state_tag;
	__u32 addr[4];			/* network byte order */
};

/* One GCRA theoretical arrival time per limit of the policy, and one for
 * the policy's ban_after bucket (limited units). */
struct sluice_source_state {
	__u64 tat_ns[SLUICE_MAX_LIMITS];
	__u64 ban_tat_ns;
};

/*
 * Map sluice_probation: LRU hash, same key and value as sluice_sources. A
 * source's first packet is charged to a fresh entry here; its second packet
 * moves the entry, state and all, into sluice_sources. A flood of spoofed
 * sources that each send one packet churns only this table, so it cannot
 * evict the state of sources that have shown themselves (README "Spoofed
 * sources"). Sized by userspace: sluice_probation_entries(max_sources).
 */
static inline __u32 sluice_probation_entries(__u32 max_sources)
{
	__u32 n = max_sources / SLUICE_PROBATION_DIVISOR;

	return n < SLUICE_MIN_PROBATION ? SLUICE_MIN_PROBATION : n;
}

/* Map sluice_over: per-CPU array of SLUICE_OVER_SLOTS, direct-mapped by a
 * hash of the source key (bpf/lib/overcache.h): "refused by limit `what`
 * until until_ns" or, with what = SLUICE_OVER_BANNED, "banned until". Lets a
 * flooding source be dropped without the per-source LRU lookup. A power of
 * two: the slot is a hash masked by SLUICE_OVER_SLOTS - 1. */
#define SLUICE_OVER_SLOTS		1024
#define SLUICE_OVER_BANNED		SLUICE_MAX_LIMITS

struct sluice_over_entry {
	struct sluice_source_key key;
	__u32 epoch;			/* sluice_config.cache_epoch when written */
	__u64 until_ns;			/* bpf_ktime_get_ns; refused before it */
	__u32 what;			/* limit index, or SLUICE_OVER_BANNED */
	__u32 pad;
	/* jiffies64; refused without a clock read while jiffies is below it,
	 * 0 when every hit must read the clock (lib/overcache.h). */
	__u64 until_jiffies;
};

/*
 * Map sluice_over_fast: per-CPU array of SLUICE_OVER_SLOTS, the same
 * refusals as sluice_over for policies whose action is drop, keyed by what
 * the packet itself says: its source as sent (not masked), family, protocol
 * and port. Probed right after the port lookup, before the policy is read,
 * so a flooding source's packet costs the parse, the port lookup, one
 * inlined array lookup and a counter
 * (bpf/lib/overcache.h). Valid only under the generation and epoch it was
 * written in: every apply flips the one and bumps the other.
 */
#define SLUICE_FAST_SYN_ONLY	0x1	/* the refusing limit charges SYNs only */
#define SLUICE_FAST_IPV6	0x2	/* the source is IPv6 */

struct sluice_fast_entry {
	__u32 addr[4];			/* source, IPv4-mapped, network order */
	__u16 dport;			/* host byte order */
	__u8 l4proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;			/* SLUICE_FAST_* */
	__u32 gen;			/* sluice_config.active_gen when written */
	__u32 epoch;			/* sluice_config.cache_epoch when written */
	__u32 slot;			/* the policy's slot, for its counters */
	__u64 until_ns;			/* as in sluice_over_entry */
	__u64 until_jiffies;		/* as in sluice_over_entry */
};

/* Map sluice_bans: LRU hash, SLUICE_MAX_BANS entries, key = the source's
 * struct sluice_source_key, value = __u64 banned-until (bpf_ktime_get_ns). */

/* Map sluice_fleet_units: LRU hash, key = the source's struct
 * sluice_source_key, only for policies of scope fleet. Units each limit of
 * the policy admitted, counted up by the data path and never reset: the
 * fleet sync (userspace/fleet.cpp) sends the difference since its last read. */
struct sluice_fleet_units {
	__u64 units[SLUICE_MAX_LIMITS];
};

/* Map sluice_fleet_over: LRU hash, SLUICE_MAX_FLEET_OVER entries, key = the
 * source's struct sluice_source_key, value = __u64 over-the-fleet-limit-until
 * (bpf_ktime_get_ns), written by the fleet sync. Until then every packet of
 * the source that a limit charges is over the limit on this node. */

/* Map sluice_redirect: DEVMAP, key = gen * SLUICE_MAX_POLICIES + slot, value =
 * the ifindex of the policy's redirect_to (only for action redirect). */
#define SLUICE_REDIRECT_ENTRIES	(SLUICE_GENERATIONS * SLUICE_MAX_POLICIES)

/* Maps sluice_lists4 / sluice_lists6: LPM tries. The generation is part of
 * the matched prefix: prefixlen = 32 + CIDR length. */
struct sluice_lpm4_key {
	__u32 prefixlen;
	__u32 gen;			/* matched as 4 bytes, before the address */
	__u32 addr;
};

struct sluice_lpm6_key {
	__u32 prefixlen;
	__u32 gen;
	__u32 addr[4];
};

enum sluice_list_kind {
	SLUICE_LIST_ALLOW = 1,
	SLUICE_LIST_DENY = 2,
};

/* Map sluice_frags: LRU hash from a fragmented datagram to the verdict its
 * first fragment got, so later fragments follow it (bpf/sluice.bpf.c). */
struct sluice_frag_key {
	__u32 src[4];
	__u32 dst[4];
	__u32 id;
	__u8 proto;
	__u8 pad[3];
};

struct sluice_frag_state {
	__u32 slot;			/* policy slot, SLUICE_SLOT_NONE if none */
	__u32 verdict;			/* enum sluice_verdict of the first fragment */
};

/* Map sluice_stats: per-CPU array, key = slot * SLUICE_VERDICT_COUNT + verdict. */
struct sluice_counter {
	__u64 packets;
	__u64 bytes;
};

/*
 * Action respond (bpf/lib/respond.h, bpf/responder.bpf.c). An over-limit SYN
 * is recorded in sluice_respond_flows and passed untouched; the sk_lookup
 * program hands that connection to the socket in sluice_responder (the 429
 * responder of `sluice run`), and the connection's later packets are passed
 * while its entry lasts.
 */
#define SLUICE_RESPOND_FLOWS		65536
/* How long a handed-over connection keeps its pass: the responder closes
 * connections after at most a few seconds. */
#define SLUICE_RESPOND_FLOW_NS		(10ULL * 1000000000ULL)
/* Map sluice_responder: SOCKMAP, the responder's listening sockets, one per
 * family (a socket bound to ::1 is IPv6-only). The kernel removes an entry
 * when its socket closes. */
#define SLUICE_RESPONDER_KEY_V4		0
#define SLUICE_RESPONDER_KEY_V6		1
#define SLUICE_RESPONDER_ENTRIES	2

/* Map sluice_respond_flows: LRU hash, key = the connection's 4-tuple
 * (addresses IPv4-mapped, ports in host byte order). */
struct sluice_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
};

struct sluice_flow_state {
	__u64 until_ns;			/* pass and steer it until (bpf_ktime_get_ns) */
	__u32 slot;			/* the policy whose limit it exceeded */
	__u32 gen;			/* ... in this generation */
};

#define SLUICE_STATS_ENTRIES	(SLUICE_MAX_POLICIES * SLUICE_VERDICT_COUNT)

#endif /* SLUICE_ABI_H */
