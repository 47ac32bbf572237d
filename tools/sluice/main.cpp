// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sluice, the admin CLI. Stateless: every verb opens the pinned maps of the
// interface it names (DESIGN.md §1). Errors are printed here, once; exit 0
// on success, 1 on a runtime error, 2 on a usage or config error.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <limits>
#include <thread>

#include "config.h"
#include "daemon.h"
#include "datapath.h"
#include "error.h"
#include "interface_lock.h"
#include "format.h"
#include "caps.h"
#include "lockout.h"
#include "metrics.h"
#include "rate.h"

namespace sluice::cli {
namespace {

constexpr int kUsageExit = 2;

void print(const Json& j)
{
    std::cout << j.dump(2) << "\n";
}

// The interfaces a verb acts on: the one named, or every attached one.
std::vector<std::string> targets(const std::string& iface)
{
    if (!iface.empty())
        return {iface};
    auto all = Datapath::pinnedInterfaces();
    if (all.empty())
        throwUsage("sluice is not attached anywhere: run `sluice attach IFACE` first");
    return all;
}

// ---- attach, detach, status ------------------------------------------------

struct AttachArgs {
    std::string iface, config, mode = "auto";
    uint32_t maxSources = 0;
    bool force = false;
};

// The operator's SSH session and the config's admin CIDRs must stay
// reachable (lockout.h); --force skips the check.
void checkLockout(const Config& cfg, bool force)
{
    if (force)
        return;
    refuseLockouts(cfg.rules, protectedSources(cfg), "pass --force to install it anyway");
}

// attach, detach and run load, attach or detach XDP programs: CAP_NET_ADMIN
// for the link, CAP_SYS_ADMIN for mounting bpffs and
// libxdp's program queries (it also covers CAP_BPF's checks).
const std::vector<Capability> kAttachCaps = {Capability::NetAdmin, Capability::SysAdmin};

void attachCmd(const AttachArgs& a)
{
    auto mode = xdpModeFromName(a.mode);
    if (!mode)
        throwUsage("--mode must be auto, native or generic");
    std::optional<Config> cfg;
    if (!a.config.empty()) {
        cfg = loadConfig(a.config);  // before attaching: a bad config attaches nothing
        checkLockout(*cfg, a.force);
    }
    uint32_t maxSources = a.maxSources ? a.maxSources : cfg ? cfg->maxSources : SLUICE_DEFAULT_MAX_SOURCES;
    Datapath dp = Datapath::attach({a.iface, *mode, maxSources});
    if (cfg) {
        try {
            dp.install(cfg->rules);
        } catch (const Error&) {
            // Attach is all or nothing, but pins it found are state it
            // did not make: a failed install leaves them.
            Datapath::detach(a.iface, dp.attachInfo().overPins ? Datapath::Pins::Keep : Datapath::Pins::Remove);
            throw;
        }
    }
    const AttachInfo& info = dp.attachInfo();
    std::cout << "attached to " << a.iface << " (" << xdpModeName(info.mode) << " mode; " << info.note << ")";
    if (cfg)
        std::cout << " with " << cfg->rules.policies.size() << " policies from " << a.config;
    std::cout << "\n";
}

void detachCmd(const std::string& iface)
{
    // Not from under a daemon, which would keep reporting the interface as
    // its own, unprotected, until it stops.
    InterfaceLock notManaged = lockInterface(iface);
    DetachResult r = Datapath::detach(iface);
    std::cout << (r.programDetached ? "detached from " + iface : "removed the state of " + iface);
    if (!r.note.empty())
        std::cout << " (" << r.note << ")";
    std::cout << "\n";
}

void statusCmd(const std::string& iface, bool json)
{
    Json out = Json::array();
    Table t({"INTERFACE", "MODE", "DISPATCHER", "TICK", "POLICIES", "SOURCES", "CAPACITY", "RESPONDER", "NOTE"});
    for (const auto& name : iface.empty() ? Datapath::pinnedInterfaces() : std::vector<std::string>{iface}) {
        Datapath dp = Datapath::open(name);
        const AttachInfo& info = dp.attachInfo();
        size_t policies = dp.installedPolicies().size(), tracked = dp.trackedSources();
        uint32_t capacity = dp.sourceCapacity();
        // How many never-promoted sources still pay the table's lookup.
        Json filter = nullptr;
        if (auto f = dp.knownFilter())
            filter = Json{{"bits", f->bits}, {"set", f->set}, {"probation_set", f->probationSet}, {"on", f->on}};
        bool responder = dp.responderRunning();
        auto installed = dp.installed().policies;
        bool respond = std::any_of(installed.begin(), installed.end(),
                                   [](const Policy& p) { return p.action == Action::Respond; });
        std::string note = info.note;
        if (respond && !responder)
            note += std::string(note.empty() ? "" : "; ") +
                    "no responder: action respond falls back to reject (start `sluice run`)";
        // The tick sets how a cached refusal ends (README "Rate semantics").
        std::string tick = "-";
        if (info.tickHz)
            tick = *info.tickHz ? formatTick(*info.tickHz) : "none";
        out.push_back(Json{{"interface", name},
                           {"mode", xdpModeName(info.mode)},
                           {"dispatcher", info.dispatcher},
                           {"tick_hz", info.tickHz ? Json(*info.tickHz) : Json(nullptr)},
                           {"policies", policies},
                           {"tracked_sources", tracked},
                           {"source_capacity", capacity},
                           {"source_filter", filter},
                           {"responder", responder},
                           {"respond_fallback", respond && !responder},
                           {"note", note}});
        t.add({name, xdpModeName(info.mode), info.dispatcher ? "yes" : "no", tick, std::to_string(policies),
               std::to_string(tracked), std::to_string(capacity), responder ? "running" : "not running", note});
    }
    if (json)
        print(out);
    else
        std::cout << (out.empty() ? "sluice is not attached to any interface\n" : t.str());
}

// ---- apply and ad-hoc edits ------------------------------------------------

void applyCmd(const std::string& iface, const std::string& path, bool dryRun, bool force)
{
    Config cfg = loadConfig(path);
    checkLockout(cfg, force);
    Datapath dp = Datapath::open(iface);
    auto changes = describeChanges(dp.installed(), cfg.rules);
    // Changes are printed once they are sure: after the install, or after
    // the install's own checks for a dry run.
    if (dryRun)
        dp.validate(cfg.rules);
    else
        dp.install(cfg.rules);
    for (const auto& c : changes)
        std::cout << c << "\n";
    if (changes.empty())
        std::cout << "no changes\n";
    if (dryRun) {
        std::cout << "dry run: nothing applied\n";
        return;
    }
    std::cout << "applied " << path << " to " << iface << ": " << cfg.rules.policies.size() << " policies, "
              << cfg.rules.allow.size() << " allow, " << cfg.rules.deny.size() << " deny\n";
}

// Reads, edits and re-installs the live ruleset of each target interface.
// Every interface's edit is checked before any is installed: an edit one
// interface refuses changes none.
template <typename Edit>
void editRules(const std::string& iface, Edit edit)
{
    std::vector<std::pair<Datapath, Ruleset>> edits;
    for (const auto& name : targets(iface)) {
        Datapath dp = Datapath::open(name);
        Ruleset r = dp.installed();
        edit(r);
        dp.validate(r);
        edits.emplace_back(std::move(dp), std::move(r));
    }
    for (auto& [dp, r] : edits)
        dp.install(r);
}

struct PolicyArgs {
    std::string iface, name, proto = "tcp", ports, connections, packets, bytes, action = "drop", key = "source";
    std::string scope = "host", banAfter, ban, newSources, redirectTo;
    int ipv4Prefix = 32, ipv6Prefix = 64;
};

Policy policyFromArgs(const PolicyArgs& a)
{
    Policy p;
    p.name = a.name;
    if (a.proto != "tcp" && a.proto != "udp")
        throwUsage("--proto must be tcp or udp");
    p.proto = a.proto == "tcp" ? Proto::Tcp : Proto::Udp;
    p.ports = parsePortList(a.ports);
    auto addLimits = [&](const std::string& text, LimitKind kind, const char* option) {
        if (text.empty())
            return;
        SourceLocation where;
        where.file = option;
        for (const auto& l : parseRates(text, kind, where))
            p.limits.push_back(l);
    };
    addLimits(a.connections, LimitKind::Connections, "--connections");
    addLimits(a.packets, LimitKind::Packets, "--packets");
    addLimits(a.bytes, LimitKind::Bytes, "--bytes");
    if (p.limits.empty())
        throwUsage("a policy needs --connections, --packets or --bytes");
    auto action = actionFromName(a.action);
    if (!action)
        throwUsage("--action must be drop, reject, respond, redirect or monitor, not '" + a.action + "'");
    p.action = *action;
    p.redirectTo = a.redirectTo;
    // One rate counted in packets, as the config's ban_after and new_sources.
    auto oneRate = [](const std::string& text, const char* option) {
        SourceLocation where;
        where.file = option;
        auto rates = parseRates(text, LimitKind::Packets, where);
        if (rates.size() != 1)
            throwUsage(std::string(option) + " takes one rate, not " + std::to_string(rates.size()));
        return rates.front();
    };
    if (!a.banAfter.empty())
        p.banAfter = oneRate(a.banAfter, "--ban-after");
    if (!a.ban.empty()) {
        SourceLocation where;
        where.file = "--ban";
        p.banNs = parseDurationNs(a.ban, where);
    }
    if (!a.newSources.empty())
        p.newSources = oneRate(a.newSources, "--new-sources");
    if (a.key != "source" && a.key != "global")
        throwUsage("--key must be source or global");
    p.key = a.key == "global" ? KeyMode::Global : KeyMode::Source;
    if (a.ipv4Prefix < 0 || a.ipv4Prefix > 32 || a.ipv6Prefix < 0 || a.ipv6Prefix > 128)
        throwUsage("--ipv4-prefix must be 0-32 and --ipv6-prefix 0-128");
    p.ipv4Prefix = static_cast<uint8_t>(a.ipv4Prefix);
    p.ipv6Prefix = static_cast<uint8_t>(a.ipv6Prefix);
    if (a.scope != "host" && a.scope != "fleet")
        throwUsage("--scope must be host or fleet");
    p.scope = a.scope == "fleet" ? Scope::Fleet : Scope::Host;
    return p;
}

void policyListCmd(const std::string& iface, bool json)
{
    Json out = Json::object();
    for (const auto& name : targets(iface)) {
        Ruleset r = Datapath::open(name).installed();
        if (json) {
            out[name] = toJson(r)["policies"];
        } else {
            std::cout << name << ":\n" << policyTable(r);
        }
    }
    if (json)
        print(out);
}

void policyAddCmd(const PolicyArgs& a)
{
    Policy p = policyFromArgs(a);
    editRules(a.iface, [&](Ruleset& r) {
        auto same = std::find_if(r.policies.begin(), r.policies.end(), [&](const Policy& o) { return o.name == p.name; });
        if (same != r.policies.end())
            throwUsage("a policy named '" + p.name + "' exists; remove it first or use `sluice apply`");
        r.policies.push_back(p);
    });
    std::cout << "added policy " << p.name << "\n";
}

void policyRemoveCmd(const std::string& iface, const std::string& name)
{
    editRules(iface, [&](Ruleset& r) {
        auto it = std::find_if(r.policies.begin(), r.policies.end(), [&](const Policy& p) { return p.name == name; });
        if (it == r.policies.end())
            throwUsage("no policy named '" + name + "'");
        r.policies.erase(it);
    });
    std::cout << "removed policy " << name << "\n";
}

enum class ListKind { Allow, Deny };

void listEditCmd(ListKind kind, bool add, const std::string& iface, const std::string& text)
{
    Cidr cidr = Cidr::parse(text);
    const std::string name = kind == ListKind::Allow ? "allow" : "deny";
    bool already = false;
    editRules(iface, [&](Ruleset& r) {
        auto& list = kind == ListKind::Allow ? r.allow : r.deny;
        auto it = std::find(list.begin(), list.end(), cidr);
        if (add && it == list.end())
            list.push_back(cidr);
        else if (add)
            already = true;
        else if (it == list.end())
            throwUsage(cidr.str() + " is not on the " + name + " list");
        else
            list.erase(it);
    });
    if (already)
        std::cout << cidr.str() << " is already on the " << name << " list\n";
    else
        std::cout << (add ? "added " : "removed ") << cidr.str() << (add ? " to the " : " from the ") << name
                  << " list\n";
}

void listShowCmd(ListKind kind, const std::string& iface, bool json)
{
    Json out = Json::object();
    for (const auto& name : targets(iface)) {
        Ruleset r = Datapath::open(name).installed();
        const auto& list = kind == ListKind::Allow ? r.allow : r.deny;
        Json items = Json::array();
        for (const auto& c : list)
            items.push_back(c.str());
        out[name] = items;
        if (!json) {
            std::cout << name << ":\n";
            for (const auto& c : list)
                std::cout << "  " << c.str() << "\n";
        }
    }
    if (json)
        print(out);
}

// ---- stats, top, inspect, reset ---------------------------------------------

volatile std::sig_atomic_t stopWatching = 0;

void statsCmd(const std::string& iface, bool json, unsigned watchSeconds)
{
    auto snapshot = [&]() {
        std::map<std::string, std::vector<SlotCounters>> all;
        for (const auto& name : targets(iface))
            all[name] = Datapath::open(name).counters();
        return all;
    };
    if (!watchSeconds) {
        Json out = Json::object();
        for (const auto& [name, counters] : snapshot()) {
            Json list = Json::array();
            for (const auto& c : counters)
                list.push_back(toJson(c));
            out[name] = list;
            if (!json)
                std::cout << name << ":\n" << countersTable(counters);
        }
        if (json)
            print(out);
        return;
    }
    std::signal(SIGINT, [](int) { stopWatching = 1; });
    std::signal(SIGTERM, [](int) { stopWatching = 1; });
    auto before = snapshot();
    std::cout << "\033[H\033[2J" << "sluice stats: the first rates come in " << watchSeconds
              << "s (Ctrl-C to stop)\n";
    std::cout.flush();
    while (!stopWatching) {
        for (unsigned i = 0; i < watchSeconds * 10 && !stopWatching; i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (stopWatching)
            break;
        auto now = snapshot();
        std::cout << "\033[H\033[2J";  // redraw in place
        for (const auto& [name, counters] : now) {
            Table t({"POLICY", "VERDICT", "PACKETS/S", "BYTES/S", "TOTAL PACKETS"});
            for (const auto& c : counters) {
                const SlotCounters* old = nullptr;
                for (const auto& o : before[name])
                    if (o.slot == c.slot && o.policy == c.policy)
                        old = &o;
                for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++) {
                    if (!c.verdicts[v].packets)
                        continue;
                    uint64_t dp = c.verdicts[v].packets - (old ? old->verdicts[v].packets : 0);
                    uint64_t db = c.verdicts[v].bytes - (old ? old->verdicts[v].bytes : 0);
                    t.add({c.policy.empty() ? "(no policy)" : c.policy, verdictName(v),
                           std::to_string(dp / watchSeconds), std::to_string(db / watchSeconds),
                           std::to_string(c.verdicts[v].packets)});
                }
            }
            std::cout << name << " (every " << watchSeconds << "s, Ctrl-C to stop):\n" << t.str();
        }
        std::cout.flush();
        before = std::move(now);
    }
}

// The heaviest sources now. sluice keeps no per-source packet counters (they
// would cost every packet a second map write): what it has is each bucket's
// GCRA theoretical arrival time (TAT). Two batched reads of the table,
// `interval` apart, show how far each TAT moved (units admitted meanwhile)
// and whether the bucket is empty now (the next unit would be limited).
// See README.md "Metrics" for what "heaviest" means.
struct TopArgs {
    std::string policy, by = "limited";
    unsigned n = 20;
    double interval = 0.5;
};

std::string percent(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.0f%%", v * 100);
    return buf;
}

std::string units(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, v >= 100 || v == 0 ? "%.0f" : "%.1f", v);
    return buf;
}

void topCmd(const std::string& iface, const TopArgs& a, bool json)
{
    if (a.interval < 0 || a.interval > 60)
        throwUsage("--interval must be 0..60 seconds");
    TopOrder order = a.by == "passed" ? TopOrder::Passed : TopOrder::Limited;
    struct Sample {
        std::string iface;
        std::vector<InstalledPolicy> policies;
        std::vector<SourceEntry> before, after;
        uint64_t beforeNs = 0, afterNs = 0;
    };
    std::vector<Sample> samples;
    for (const auto& name : targets(iface)) {
        Sample s;
        s.iface = name;
        s.policies = Datapath::open(name).installedPolicies();
        if (!a.policy.empty() && std::none_of(s.policies.begin(), s.policies.end(),
                                              [&](const InstalledPolicy& p) { return p.name == a.policy; }))
            throwUsage("no policy named '" + a.policy + "' on " + name);
        samples.push_back(std::move(s));
    }
    if (a.interval > 0) {
        uint64_t start = Datapath::nowNs();
        for (auto& s : samples) {
            s.beforeNs = Datapath::nowNs();
            s.before = readSourceTable(s.iface);
        }
        // The second read walks the table in the order the first did, so
        // each source is seen again one read later: only the rest of the
        // interval needs waiting (a big table needs no wait at all).
        double took = double(Datapath::nowNs() - start) / 1e9;
        if (a.interval > took)
            std::this_thread::sleep_for(std::chrono::duration<double>(a.interval - took));
    }
    for (auto& s : samples) {
        s.afterNs = Datapath::nowNs();
        s.after = readSourceTable(s.iface);
    }

    Json out = Json::object();
    for (const auto& s : samples) {
        auto top = rankSources(s.policies, s.before, s.beforeNs, s.after, s.afterNs, order, a.n, a.policy);
        double span = a.interval > 0 ? double(s.afterNs - s.beforeNs) / 1e9 : 0;
        Json list = Json::array();
        Table t({"POLICY", "SOURCE", "STATE", "LIMIT", "PASSED/S", "OF LIMIT", "REMAINING", "RETRY AFTER",
                 "TAT AHEAD"});
        for (const auto& e : top) {
            Json limits = Json::array();
            for (const auto& l : e.limits) {
                Json j{{"kind", kindName(l.limit.kind)},
                       {"limit", describeLimit(l.limit)},
                       {"remaining", l.remaining},
                       {"retry_after_ns", l.retryAfterNs},
                       {"tat_ahead_ns", l.aheadNs}};
                if (span > 0) {
                    j["passed_units"] = l.passedUnits;
                    j["passed_per_second"] = l.passedUnits / span;
                    j["share_of_limit"] = l.usage;
                }
                limits.push_back(j);
                bool firstRow = &l == &e.limits.front();
                t.add({firstRow ? e.policy : "", firstRow ? sourceName(e.source, e.prefix) : "",
                       firstRow ? (e.limited ? "limited" : "ok") : "",
                       kindName(l.limit.kind) + " " + describeLimit(l.limit),
                       span > 0 ? units(l.passedUnits / span) : "-", span > 0 ? percent(l.usage) : "-",
                       std::to_string(l.remaining), l.retryAfterNs ? formatDuration(l.retryAfterNs) : "now",
                       formatDuration(l.aheadNs)});
            }
            list.push_back(Json{{"policy", e.policy},
                                {"source", e.source.str()},
                                {"prefix", e.prefix},
                                {"limited", e.limited},
                                {"fill", e.fill},
                                {"limits", limits}});
        }
        out[s.iface] = Json{{"interval_seconds", span},
                            {"order", a.by},
                            {"tracked_sources", s.after.size()},
                            {"sources", list}};
        if (!json) {
            std::cout << s.iface << ": " << s.after.size() << " tracked sources";
            if (span > 0) {
                char buf[64];
                snprintf(buf, sizeof buf, "%.2f", span);
                std::cout << ", rates over the last " << buf << "s";
            }
            std::cout << ", heaviest by " << a.by << "\n"
                      << (!top.empty()       ? t.str()
                          : a.policy.empty() ? "no tracked sources\n"
                                             : "no tracked sources under policy " + a.policy + "\n");
        }
    }
    if (json)
        print(out);
}

void inspectCmd(const std::string& iface, const std::string& addrText, bool json)
{
    Address addr = Address::parse(addrText);
    Datapath dp = Datapath::open(iface);
    // The lists come before any bucket, and allow wins over deny (README
    // "Allow/deny"): a listed source's buckets do not decide its packets.
    const Ruleset rules = dp.installed();
    const Cidr host = Cidr::parse(addrText);
    auto findIn = [&](const std::vector<Cidr>& list) {
        return std::find_if(list.begin(), list.end(), [&](const Cidr& c) { return c.contains(host); });
    };
    std::string list, listCidr;
    if (auto a = findIn(rules.allow); a != rules.allow.end())
        list = "allow", listCidr = a->str();
    else if (auto d = findIn(rules.deny); d != rules.deny.end())
        list = "deny", listCidr = d->str();
    const Json listed = list.empty() ? Json(nullptr) : Json{{"list", list}, {"cidr", listCidr}};
    Json out = Json::array();
    std::vector<SourceState> found;
    for (const auto& p : dp.installedPolicies()) {
        if (auto st = dp.source(p.name, addr)) {
            found.push_back(*st);
            out.push_back(toJson(*st));
        } else {
            out.push_back(Json{{"policy", p.name}, {"source", addrText}, {"limits", nullptr}});
        }
        out.back()["listed"] = listed;
    }
    if (json) {
        print(out);
        return;
    }
    if (list == "allow")
        std::cout << addrText << " is on the allow list (" << listCidr << "): never limited on " << iface << "\n";
    else if (list == "deny")
        std::cout << addrText << " is on the deny list (" << listCidr << "): every packet of it is dropped on "
                  << iface << "\n";
    if (!found.empty())
        std::cout << sourceTable(found);
    else if (list.empty())
        std::cout << addrText << " has no bucket state on " << iface << ": every limit is full\n";
    for (const auto& st : found)
        if (st.bannedUntilNs)
            std::cout << sourceName(st.key, st.prefix) << " is banned under " << st.policy << " for another "
                      << formatDuration(st.banRemainingNs) << ": every packet of it there is dropped "
                      << "(`sluice reset " << iface << " " << addrText << "` lifts the ban)\n";
}

void resetCmd(const std::string& iface, const std::string& addr, bool all)
{
    if (all == !addr.empty())
        throwUsage("give either an ADDRESS or --all");
    Datapath dp = Datapath::open(iface);
    const ResetCount n = all ? dp.resetAll() : dp.resetSource(Address::parse(addr));
    std::cout << "forgot " << n.states << " bucket state" << (n.states == 1 ? "" : "s") << ", lifted " << n.bans
              << " ban" << (n.bans == 1 ? "" : "s") << "\n";
}

// ---- the command line ----------------------------------------------------

constexpr const char* kModeHelp =
    "XDP mode: auto (the default: native where the driver has it, else generic), native or generic";

int run(int argc, char** argv)
{
    CLI::App app{"sluice: kernel-level API rate limiter (XDP). Limits use Flask-Limiter's rate grammar."};
    app.require_subcommand(1);
    app.footer("Run `sluice VERB --help` for a verb's options and an example.");
    bool json = false;
    std::string iface;

    AttachArgs attachArgs;
    auto* attach = app.add_subcommand("attach", "Load sluice and attach it to an interface");
    attach->add_option("IFACE", attachArgs.iface, "Interface")->required();
    attach->add_option("--config", attachArgs.config, "Install the policies of this TOML config");
    attach->add_option("--mode", attachArgs.mode, kModeHelp)
        ->check(CLI::IsMember({"auto", "native", "generic"}));
    attach->add_option("--max-sources", attachArgs.maxSources,
                       "Per-source table size, 1.." + std::to_string(kMaxSources) + " (default: config or 1000000)")
        ->check(CLI::Range(uint32_t(1), kMaxSources));
    attach->add_flag("--force", attachArgs.force,
                     "Install the config even if it could deny or limit this SSH session or an admin CIDR");
    attach->footer("Example: sluice attach eth0 --config /etc/sluice/sluice.toml");

    auto* detach = app.add_subcommand("detach", "Detach sluice from an interface and remove its state");
    detach->add_option("IFACE", iface, "Interface")->required();
    detach->footer("Example: sluice detach eth0");

    auto* status = app.add_subcommand("status", "Where sluice is attached, how, and how full its tables are");
    status->add_option("IFACE", iface, "Interface (default: all)");
    status->add_flag("--json", json, "JSON output");
    status->footer("Example: sluice status --json");

    std::string configPath;
    bool dryRun = false, force = false;
    auto* apply = app.add_subcommand("apply", "Replace the live policies with a config's, atomically");
    apply->add_option("IFACE", iface, "Interface")->required();
    apply->add_option("--config", configPath, "TOML config")->required();
    apply->add_flag("--dry-run", dryRun, "Print what would change and change nothing");
    apply->add_flag("--force", force,
                    "Apply even if the config could deny or limit this SSH session or an admin CIDR");
    apply->footer("Example: sluice apply eth0 --config /etc/sluice/sluice.toml --dry-run");

    auto* policy = app.add_subcommand("policy", "List, add or remove live policies");
    policy->require_subcommand(1);
    policy->footer("Example: sluice policy add --name login --proto tcp --ports 443 --connections \"5 per minute\"");
    auto* policyList = policy->add_subcommand("list", "List the live policies");
    policyList->add_option("--iface", iface, "Interface (default: all)");
    policyList->add_flag("--json", json, "JSON output");
    PolicyArgs policyArgs;
    auto* policyAdd = policy->add_subcommand("add", "Add a policy to the live set");
    policyAdd->add_option("--iface", policyArgs.iface, "Interface (default: all)");
    policyAdd->add_option("--name", policyArgs.name, "Policy name")->required();
    policyAdd->add_option("--proto", policyArgs.proto, "tcp or udp")->check(CLI::IsMember({"tcp", "udp"}));
    policyAdd->add_option("--ports", policyArgs.ports, "Ports and ranges: 80,8000-8099")->required();
    policyAdd->add_option("--connections", policyArgs.connections, "Rate of new TCP connections: \"5 per minute\"");
    policyAdd->add_option("--packets", policyArgs.packets, "Rate of packets: \"50/second burst 100\"");
    policyAdd->add_option("--bytes", policyArgs.bytes, "Rate of bytes: \"10 MB/second\"");
    policyAdd->add_option("--action", policyArgs.action,
                          "drop, reject (TCP: RST), respond (TCP: HTTP 429, needs `sluice run`), redirect "
                          "(with --redirect-to) or monitor");
    policyAdd->add_option("--redirect-to", policyArgs.redirectTo,
                          "Action redirect: the interface the excess is sent out of");
    policyAdd->add_option("--ban-after", policyArgs.banAfter,
                          "With --ban: a rate of limited packets; the one it refuses bans the source: "
                          "\"20 per minute\"");
    policyAdd->add_option("--ban", policyArgs.ban, "With --ban-after: how long a ban lasts: \"10 minutes\"");
    policyAdd->add_option("--new-sources", policyArgs.newSources,
                          "How fast never-seen sources may start buckets; the rest are dropped: "
                          "\"1000 per second\"");
    policyAdd->add_option("--key", policyArgs.key, "source or global");
    policyAdd->add_option("--ipv4-prefix", policyArgs.ipv4Prefix, "Bucket per IPv4 prefix (default 32)");
    policyAdd->add_option("--ipv6-prefix", policyArgs.ipv6Prefix, "Bucket per IPv6 prefix (default 64)");
    policyAdd->add_option("--scope", policyArgs.scope,
                          "host (default) or fleet: shared through Redis by a `sluice run` with [fleet] "
                          "(docs/fleet.md); without one, fleet means the local limits only")
        ->check(CLI::IsMember({"host", "fleet"}));
    policyAdd->footer("Example: sluice policy add --name login --proto tcp --ports 443 --connections \"5 per minute\"");
    std::string policyName;
    auto* policyRemove = policy->add_subcommand("remove", "Remove a policy from the live set");
    policyRemove->add_option("--iface", iface, "Interface (default: all)");
    policyRemove->add_option("NAME", policyName, "Policy name")->required();
    policyRemove->footer("Example: sluice policy remove login");
    policyList->footer("Example: sluice policy list --json");

    std::string cidr;
    auto listCommands = [&](const char* name, const char* what) {
        auto* cmd = app.add_subcommand(name, what);
        cmd->require_subcommand(1);
        cmd->footer(std::string("Example: sluice ") + name + " add 192.0.2.0/24 --iface eth0");
        for (const char* verb : {"add", "remove"}) {
            auto* sub = cmd->add_subcommand(verb, std::string(verb) + " a CIDR");
            sub->add_option("CIDR", cidr, "Address or CIDR: 192.0.2.0/24, 2001:db8::/32")->required();
            sub->add_option("--iface", iface, "Interface (default: all)");
            sub->footer(std::string("Example: sluice ") + name + " " + verb + " 192.0.2.0/24");
        }
        auto* list = cmd->add_subcommand("list", "List the entries");
        list->add_option("--iface", iface, "Interface (default: all)");
        list->add_flag("--json", json, "JSON output");
        list->footer(std::string("Example: sluice ") + name + " list --json");
        return cmd;
    };
    auto* allow = listCommands("allow", "Sources that are never limited");
    auto* deny = listCommands("deny", "Sources that are always dropped");

    unsigned watch = 0;
    auto* stats = app.add_subcommand("stats", "Packets and bytes by policy and verdict");
    stats->add_option("IFACE", iface, "Interface (default: all)");
    auto* statsJson = stats->add_flag("--json", json, "JSON output");
    // --watch redraws a table in place with terminal escapes: no JSON.
    stats->add_option("--watch", watch, "Redraw every SECONDS with per-second rates (Ctrl-C stops)")
        ->excludes(statsJson);
    stats->footer("Example: sluice stats eth0 --watch 1");

    TopArgs topArgs;
    auto* top = app.add_subcommand("top", "The heaviest sources now: limited ones first, or by units passed");
    top->add_option("IFACE", iface, "Interface (default: all)");
    top->add_option("--policy", topArgs.policy, "Only this policy");
    // -n 0 listed nothing under "N tracked sources".
    top->add_option("-n", topArgs.n, "How many (default 20)")
        ->check(CLI::Range(1u, std::numeric_limits<unsigned>::max()));
    top->add_option("--by", topArgs.by, "limited (default: sources being limited now first) or passed")
        ->check(CLI::IsMember({"limited", "passed"}));
    top->add_option("--interval", topArgs.interval,
                    "Seconds between the two reads of the table that rates come from (default 0.5; "
                    "0: one read, bucket state only)");
    top->add_flag("--json", json, "JSON output");
    top->footer("Example: sluice top eth0 --policy api-default -n 10 --by passed");

    std::string address;
    auto* inspect = app.add_subcommand("inspect", "A source's buckets: what remains and when the next unit comes");
    inspect->add_option("IFACE", iface, "Interface")->required();
    inspect->add_option("ADDRESS", address, "Source address")->required();
    inspect->add_flag("--json", json, "JSON output");
    inspect->footer("Example: sluice inspect eth0 203.0.113.7");

    bool all = false;
    auto* reset = app.add_subcommand("reset", "Forget a source's bucket state and lift its bans (or everyone's)");
    reset->add_option("IFACE", iface, "Interface")->required();
    reset->add_option("ADDRESS", address, "Source address");
    reset->add_flag("--all", all, "Every source");
    reset->footer("Example: sluice reset eth0 203.0.113.7");

    DaemonOptions daemon;
    std::string daemonMode = "auto";
    auto* runCmd = app.add_subcommand("run", "Daemon: attach the configured interfaces, reload on SIGHUP or file change");
    runCmd->add_option("--config", daemon.configPath, "TOML config")->required();
    runCmd->add_flag("--keep-on-exit", daemon.keepOnExit, "Leave sluice attached when stopped");
    runCmd->add_option("--mode", daemonMode, kModeHelp)
        ->check(CLI::IsMember({"auto", "native", "generic"}));
    runCmd->add_flag("--force", daemon.force,
                     "Install configs (at start and on every reload) even if they could deny or limit "
                     "this SSH session or an admin CIDR");
    runCmd->add_option("--interface", daemon.interfaces,
                       "Protect this interface instead of the config's [sluice] interfaces (repeatable)");
    runCmd->footer("Example: sluice run --config /etc/sluice/sluice.toml\n"
                   "         sluice run --config examples/api.toml --interface ens3");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : kUsageExit;
    }

    if (attach->parsed() || detach->parsed() || runCmd->parsed())
        requireCapabilities(attach->parsed() ? "attach" : detach->parsed() ? "detach" : "run", kAttachCaps);
    if (attach->parsed())
        attachCmd(attachArgs);
    else if (detach->parsed())
        detachCmd(iface);
    else if (status->parsed())
        statusCmd(iface, json);
    else if (apply->parsed())
        applyCmd(iface, configPath, dryRun, force);
    else if (policyList->parsed())
        policyListCmd(iface, json);
    else if (policyAdd->parsed())
        policyAddCmd(policyArgs);
    else if (policyRemove->parsed())
        policyRemoveCmd(iface, policyName);
    else if (allow->parsed() || deny->parsed()) {
        CLI::App* cmd = allow->parsed() ? allow : deny;
        ListKind kind = allow->parsed() ? ListKind::Allow : ListKind::Deny;
        if (cmd->get_subcommand("list")->parsed())
            listShowCmd(kind, iface, json);
        else
            listEditCmd(kind, cmd->get_subcommand("add")->parsed(), iface, cidr);
    } else if (stats->parsed())
        statsCmd(iface, json, watch);
    else if (top->parsed())
        topCmd(iface, topArgs, json);
    else if (inspect->parsed())
        inspectCmd(iface, address, json);
    else if (reset->parsed())
        resetCmd(iface, address, all);
    else if (runCmd->parsed()) {
        daemon.mode = *xdpModeFromName(daemonMode);
        return runDaemon(daemon);
    }
    return 0;
}

}  // namespace
}  // namespace sluice::cli

int main(int argc, char** argv)
{
    try {
        return sluice::cli::run(argc, argv);
    } catch (const sluice::Error& e) {
        std::cerr << "sluice: " << e.what() << "\n";
        return e.exitCode();
    } catch (const std::exception& e) {
        std::cerr << "sluice: " << e.what() << "\n";
        return 1;
    }
}
