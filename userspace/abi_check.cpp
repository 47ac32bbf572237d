// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Compile-time checks that the C++ side sees bpf/sluice_abi.h with the layout
// the BPF program was compiled with. A change to the ABI that moves a field
// the data path reads fails the build here instead of corrupting maps.
#include <cstddef>

extern "C" {
#include "sluice_abi.h"
}

namespace sluice {

static_assert(sizeof(sluice_config) == 24);
static_assert(offsetof(sluice_config, active_gen) == 0);
static_assert(offsetof(sluice_config, gen) == 8);
static_assert(offsetof(sluice_config, cache_epoch) == 4);
static_assert(sizeof(sluice_gen_info) == 8);

static_assert(sizeof(sluice_limit) == 48);
static_assert(offsetof(sluice_limit, interval_ns) == 0);
static_assert(offsetof(sluice_limit, capacity_ns) == 8);
static_assert(offsetof(sluice_limit, interval_frac) == 16);
static_assert(offsetof(sluice_limit, kind) == 20);
static_assert(offsetof(sluice_limit, count) == 24);

static_assert(sizeof(sluice_policy) == 400);
static_assert(offsetof(sluice_policy, redirect_ifindex) == 64);
static_assert(offsetof(sluice_policy, slot) == 48);
static_assert(offsetof(sluice_policy, state_tag) == 52);
static_assert(offsetof(sluice_policy, action) == 56);
static_assert(offsetof(sluice_policy, nlimits) == 60);
static_assert(offsetof(sluice_policy, proto) == 61);
static_assert(offsetof(sluice_policy, scope) == 62);
static_assert(offsetof(sluice_policy, mask4) == 68);
static_assert(offsetof(sluice_policy, mask6) == 84);
static_assert(offsetof(sluice_policy, limits) == 104);
static_assert(offsetof(sluice_policy, ban_ns) == 296);
static_assert(offsetof(sluice_policy, ban_after) == 304);
static_assert(offsetof(sluice_policy, new_sources) == 352);
static_assert(sizeof(sluice_policy) % 8 == 0, "array stride must equal the struct size");

static_assert(sizeof(sluice_source_key) == 20);
static_assert(offsetof(sluice_source_key, addr) == 4);
static_assert(sizeof(sluice_source_state) == 8 * SLUICE_MAX_LIMITS + 8);
static_assert(offsetof(sluice_source_state, ban_tat_ns) == 8 * SLUICE_MAX_LIMITS);

static_assert(sizeof(sluice_over_entry) == 48);
static_assert(offsetof(sluice_over_entry, epoch) == 20);
static_assert(offsetof(sluice_over_entry, until_ns) == 24);
static_assert(sizeof(sluice_fast_entry) == 48);
static_assert(offsetof(sluice_fast_entry, dport) == 16);
static_assert(offsetof(sluice_fast_entry, gen) == 20);
static_assert(offsetof(sluice_fast_entry, until_ns) == 32);
static_assert(offsetof(sluice_fast_entry, until_jiffies) == 40);
static_assert(offsetof(sluice_over_entry, what) == 32);
static_assert(offsetof(sluice_over_entry, until_jiffies) == 40);
// over_slot() masks by SLUICE_OVER_SLOTS - 1.
static_assert((SLUICE_OVER_SLOTS & (SLUICE_OVER_SLOTS - 1)) == 0);
static_assert(SLUICE_OVER_BANNED >= SLUICE_MAX_LIMITS);
static_assert(sizeof(sluice_fleet_units) == 8 * SLUICE_MAX_LIMITS);
static_assert(SLUICE_SCOPE_HOST == 0 && SLUICE_SCOPE_FLEET == 1);
static_assert(SLUICE_MAX_FLEET_OVER <= SLUICE_MAX_FLEET_SOURCES);
static_assert(SLUICE_PROBATION_DIVISOR == 8 && SLUICE_MIN_PROBATION == 1024);
// admit_slot() masks by SLUICE_ADMIT_SLOTS - 1.
static_assert((SLUICE_ADMIT_SLOTS & (SLUICE_ADMIT_SLOTS - 1)) == 0);

static_assert(sizeof(sluice_lpm4_key) == 12);
static_assert(offsetof(sluice_lpm4_key, addr) == 8);
static_assert(sizeof(sluice_lpm6_key) == 24);
static_assert(offsetof(sluice_lpm6_key, addr) == 8);

static_assert(sizeof(sluice_frag_key) == 40);
static_assert(offsetof(sluice_frag_key, id) == 32);
static_assert(sizeof(sluice_frag_state) == 8);
static_assert(sizeof(sluice_counter) == 16);

static_assert(SLUICE_PORT_ENTRIES == 2 * 2 * 65536);
// Issue #4: a config of 10,000 policies applies (slot 0 is "no policy").
static_assert(SLUICE_MAX_POLICIES - 1 >= 10000);
static_assert(SLUICE_STATS_ENTRIES == SLUICE_MAX_POLICIES * SLUICE_VERDICT_COUNT);
static_assert(SLUICE_VERDICT_REJECTED == 8 && SLUICE_VERDICT_REDIRECTED == 9 &&
              SLUICE_VERDICT_BANNED == 10 && SLUICE_VERDICT_RESPONDED == 11 &&
              SLUICE_VERDICT_RESPOND_FALLBACK == 12 && SLUICE_VERDICT_NEW_SOURCE == 13 &&
              SLUICE_VERDICT_COUNT == 14);

static_assert(sizeof(sluice_flow_key) == 36);
static_assert(offsetof(sluice_flow_key, dst) == 16);
static_assert(offsetof(sluice_flow_key, sport) == 32);
static_assert(offsetof(sluice_flow_key, dport) == 34);
static_assert(sizeof(sluice_flow_state) == 16);
static_assert(offsetof(sluice_flow_state, slot) == 8);
static_assert(SLUICE_REDIRECT_ENTRIES == SLUICE_GENERATIONS * SLUICE_MAX_POLICIES);

}  // namespace sluice
