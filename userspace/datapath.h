// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The C++ face of the XDP data path: load, attach (libxdp), pin, install a
// ruleset atomically, read counters and per-source state. Every libbpf and
// libxdp object is owned by an RAII member; errors are thrown as sluice::Error
// with what failed and what to do.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy.h"

namespace sluice {

enum class XdpMode { Auto, Native, Generic };

std::string xdpModeName(XdpMode mode);
std::optional<XdpMode> xdpModeFromName(const std::string& name);

struct AttachOptions {
    std::string iface;
    XdpMode mode = XdpMode::Auto;
    uint32_t maxSources = SLUICE_DEFAULT_MAX_SOURCES;
};

// How the program ended up attached.
struct AttachInfo {
    XdpMode mode = XdpMode::Auto;  // Native or Generic after attach
    bool dispatcher = false;       // libxdp multi-program dispatcher in use
    std::string note;              // e.g. why the dispatcher was not used
    // The tick the loaded program runs with (its CONFIG_HZ): 0 when it was
    // loaded without a kernel config, so cached refusals read the clock;
    // nullopt when the program could not be read.
    std::optional<uint32_t> tickHz;
    // attach reused state pinned there before it (a program taken off by
    // hand, or while no daemon ran): an undo must leave those pins.
    bool overPins = false;
};

// Counters of one policy slot, summed over CPUs.
struct SlotCounters {
    uint32_t slot = 0;
    std::string policy;  // "" for slot 0 (traffic matching no policy)
    std::array<sluice_counter, SLUICE_VERDICT_COUNT> verdicts{};
};

struct LimitState {
    Limit limit;
    uint64_t remaining = 0;     // units admitted now
    uint64_t retryAfterNs = 0;  // until the next unit is admitted (0: now)
    uint64_t tatNs = 0;
};

struct SourceState {
    std::string policy;
    Address key;  // the masked source the bucket belongs to
    uint8_t prefix = 0;  // the policy's prefix for key's family (0 under key global)
    std::vector<LimitState> limits;
    // A ban in force: when it ends (Datapath::nowNs() clock) and how long
    // that is from now; 0 when the source is not banned.
    uint64_t bannedUntilNs = 0;
    uint64_t banRemainingNs = 0;
};

std::string verdictName(uint32_t verdict);

// A TCP connection as the data path keys it (action respond).
struct Flow {
    Address src;
    uint16_t sport = 0;
    Address dst;
    uint16_t dport = 0;
};

// A connection the data path handed to the responder: the policy whose
// limit it exceeded and its source's buckets under it now.
struct RespondedConnection {
    std::string policy;
    std::vector<LimitState> limits;
};

struct DetachResult {
    bool programDetached = false;
    bool pinsRemoved = false;
    std::string note;  // set when only part could be done
};

// The presence filters of the per-source table and of the probation table
// (map sluice_seen, bpf/lib/known.h).
struct KnownFilterState {
    uint64_t bits = 0;          // the size of each
    uint64_t set = 0;           // a source never promoted whose bit is set pays the table's lookup
    uint64_t probationSet = 0;  // one never on probation whose bit is set pays the probation lookup
    bool on = false;            // filled, and used by the program

    // Worth a rebuild (Datapath::refreshKnownFilter): off, which a rebuild
    // that failed half-way leaves them, or one so full of the bits of
    // sources that have left its table (bits are never cleared as they
    // leave) that a new source pays that table's lookup kRebuildPercent
    // times in a hundred. The table's own sources set at most 1 - e^(-1/4)
    // = 22% of its filter (SLUICE_KNOWN_BITS_PER_ENTRY bits per entry), the
    // probation table's and the probation memory's together at most 23%
    // (each half has at least as many bits per memory slot), so neither is
    // due right after a rebuild.
    static constexpr uint64_t kRebuildPercent = 40;
    bool wantsRebuild() const
    {
        return bits > 0 && (!on || std::max(set, probationSet) * 100 >= bits * kRebuildPercent);
    }
};

// What a reset removed: bucket states (probation entries among them)
// forgotten, bans lifted.
struct ResetCount {
    size_t states = 0;
    size_t bans = 0;
};

class Datapath {
public:
    // Loads the program, pins its maps under SLUICE_PIN_ROOT/IFACE and
    // attaches it. If a sluice program is already pinned for IFACE, its maps
    // are reused (state kept). Throws when the interface is unknown, the
    // caller lacks privileges, or the kernel refuses the program (with the
    // verifier log's last lines).
    static Datapath attach(const AttachOptions& options);

    // Opens the live maps of an attached interface from its pins.
    static Datapath open(const std::string& iface);

    // Loads without attaching or pinning: for BPF_PROG_TEST_RUN. overCache
    // false turns the over-limit cache off (bpf/lib/overcache.h), so
    // `make bench-prog` can measure with and without it in one run.
    static Datapath loadUnattached(uint32_t maxSources = 4096, bool overCache = true);

    // Detaches sluice from IFACE and removes its pins (with Pins::Keep only
    // the program: an attach that fails over pins it found leaves them as
    // they were). Throws if nothing is attached or pinned there. When IFACE
    // is not visible in this network namespace, only the pins are removed,
    // and the result says so.
    enum class Pins { Remove, Keep };
    static DetachResult detach(const std::string& iface, Pins pins = Pins::Remove);

    Datapath(Datapath&&) noexcept;
    Datapath& operator=(Datapath&&) noexcept;
    ~Datapath();

    const std::string& iface() const;
    const AttachInfo& attachInfo() const;
    // Whether sluice's program is attached to the interface now (attachInfo
    // is as found when this Datapath was made).
    bool programAttached() const;
    int progFd() const;  // -1 when opened from pins without the program
    // A map of the program by name (e.g. "sluice_fleet_units"); throws if
    // there is none. The fd stays owned by this Datapath.
    int mapFd(const std::string& name) const;

    // Validates and compiles `rules`, writes the inactive generation, then
    // flips to it. On any error nothing visible to the data path changes.
    void install(const Ruleset& rules);
    // Puts back what this Datapath's last install() replaced, exactly: the
    // previous generation is still intact, so flipping back to it keeps
    // every policy's state tag and so its buckets (installing the old rules
    // again would give policies whose limits changed twice new tags, and
    // fresh buckets). For a reload that failed on another interface. Throws
    // Error(Runtime) when there is nothing to undo or anything was installed
    // or reset since; then install the old rules instead.
    void undoInstall();
    // install's checks alone, writing nothing: a dry run refuses what
    // install would (e.g. a redirect_to interface that does not exist).
    void validate(const Ruleset& rules) const;
    // The active generation, read back from the maps.
    Ruleset installed() const;
    std::vector<InstalledPolicy> installedPolicies() const;

    std::vector<SlotCounters> counters() const;

    // A source's bucket state under a policy, nullopt if it has none.
    std::optional<SourceState> source(const std::string& policy, const Address& addr) const;
    // Forget a source's state and lift its bans under every policy.
    ResetCount resetSource(const Address& addr);
    ResetCount resetAll();
    size_t trackedSources() const;
    uint32_t sourceCapacity() const;  // max_sources
    // The presence filters of the per-source and probation tables (map
    // sluice_seen, bpf/lib/known.h); nullopt when the program has none
    // (another sluice version, or no program pinned).
    std::optional<KnownFilterState> knownFilter() const;
    // Rebuilds the presence filters from the tables and the probation
    // memory, clearing the bits of sources no longer there. Every load
    // fills them; resetAll rebuilds them; `sluice run` rebuilds them when
    // they wantsRebuild(). Meanwhile the program looks every source up.
    // Rebuilds of one pinned data path take turns. Throws when the program
    // has no filters.
    void refreshKnownFilter();
    // Sources banned now (entries of the ban map not yet expired), and the
    // bans it holds (SLUICE_MAX_BANS).
    size_t bannedSources() const;
    uint32_t banCapacity() const;
    // Entries the LRU maps get beyond what sluice promises they hold
    // (sluice_abi.h, sluice_lru_slack), and the promise of one: its
    // max_entries less the slack.
    static uint32_t lruSlack();
    static uint32_t lruCapacity(int mapFd, const std::string& table);
    // The kernel config the BPF object is opened with (libbpf's .kconfig):
    // nullptr lets libbpf read the kernel's own; "CONFIG_HZ=0" where it cannot.
    static const char* kconfigOverride();
    // Every tracked source of the installed policies (for `top`).
    std::vector<SourceState> allSources() const;
    // Action respond. The responder's listening sockets (IPv4, IPv6) go into
    // the sluice_responder socket map; the kernel removes each when it closes.
    void setResponder(int socket4Fd, int socket6Fd);
    void clearResponder();
    // Whether responder sockets are in the map now: when not, respond
    // policies fall back to reject.
    bool responderRunning() const;
    // nullopt when the data path did not hand FLOW over (or its record
    // expired, or its policy is gone).
    std::optional<RespondedConnection> respondedConnection(const Flow& flow) const;

    // The pin directory of IFACE (SLUICE_PIN_ROOT/IFACE).
    static std::string pinDirectory(const std::string& iface);
    // Interfaces with sluice state pinned under SLUICE_PIN_ROOT.
    static std::vector<std::string> pinnedInterfaces();
    // The max_sources of the source table pinned for IFACE, which an attach
    // over those pins must ask for to reuse them; nullopt without one.
    static std::optional<uint32_t> pinnedMaxSources(const std::string& iface);

    // Monotonic clock the data path uses (bpf_ktime_get_ns).
    static uint64_t nowNs();

    struct Impl;

private:
    explicit Datapath(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Mounts bpffs at /sys/fs/bpf when it is not mounted.
void ensureBpffs();

}  // namespace sluice
