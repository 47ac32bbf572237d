// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "fleet.h"

#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include <bpf/bpf.h>
#include <hiredis/hiredis.h>

#include "datapath.h"
#include "error.h"
#include "map_batch.h"

namespace sluice {

// ---- configuration -------------------------------------------------------------

std::string RedisEndpoint::str() const
{
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

// RFC 1123's longest host name.
constexpr size_t kMaxHostName = 253;

bool allDigits(std::string_view s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// %XX escapes in the user and password part of a URL.
std::string percentDecoded(const std::string& text, const std::string& url)
{
    std::string out;
    for (size_t i = 0; i < text.size(); i++) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size() || !isxdigit(static_cast<unsigned char>(text[i + 1])) ||
            !isxdigit(static_cast<unsigned char>(text[i + 2])))
            throwUsage("redis URL '" + url + "': '%' must start a %XX escape");
        out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
        i += 2;
    }
    return out;
}

}  // namespace

RedisEndpoint parseRedisUrl(const std::string& url)
{
    // The password never goes into a message: the URL is shown without it.
    std::string shown = url;
    const std::string scheme = "redis://";
    if (url.rfind(scheme, 0) != 0)
        throwUsage("redis URL '" + shown + "' must start with redis:// (e.g. redis://:PASSWORD@10.0.0.5:6379)");
    std::string rest = url.substr(scheme.size());
    RedisEndpoint ep;
    if (auto at = rest.rfind('@'); at != std::string::npos) {
        std::string userinfo = rest.substr(0, at);
        shown = scheme + "***@" + rest.substr(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string::npos)
            throwUsage("redis URL '" + shown + "': write the password after a colon, redis://:PASSWORD@HOST "
                       "(or redis://USER:PASSWORD@HOST)");
        ep.user = percentDecoded(userinfo.substr(0, colon), shown);
        ep.password = percentDecoded(userinfo.substr(colon + 1), shown);
        if (ep.password.empty())
            throwUsage("redis URL '" + shown + "': the password after ':' is empty");
        rest = rest.substr(at + 1);
    }
    if (auto slash = rest.find('/'); slash != std::string::npos) {
        std::string db = rest.substr(slash + 1);
        if (!allDigits(db) || db.size() > 5 || std::stoul(db) > 65535)
            throwUsage("redis URL '" + shown + "': the database after '/' must be a number, not '" + db + "'");
        ep.db = static_cast<unsigned>(std::stoul(db));
        rest = rest.substr(0, slash);
    }
    std::string port;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos)
            throwUsage("redis URL '" + shown + "': an IPv6 address needs a closing ']'");
        ep.host = rest.substr(1, close - 1);
        std::string after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                throwUsage("redis URL '" + shown + "': expected ':PORT' after ']'");
            port = after.substr(1);
        }
        in6_addr a6{};
        if (inet_pton(AF_INET6, ep.host.c_str(), &a6) != 1)
            throwUsage("redis URL '" + shown + "': '" + ep.host + "' is not an IPv6 address");
    } else {
        if (std::count(rest.begin(), rest.end(), ':') > 1)
            throwUsage("redis URL '" + shown + "': an IPv6 address needs brackets, as in redis://[::1]:6379");
        auto colon = rest.find(':');
        ep.host = rest.substr(0, colon);
        if (colon != std::string::npos)
            port = rest.substr(colon + 1);
    }
    if (ep.host.empty())
        throwUsage("redis URL '" + shown + "' has no host");
    // A host name (RFC 1123, plus '_' as container names have) or an IPv4
    // address: nothing that would break a log line or a written config.
    bool bracketed = rest.front() == '[';
    if (!bracketed && (ep.host.size() > kMaxHostName ||
                       !std::all_of(ep.host.begin(), ep.host.end(), [](char ch) {
                           return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' ||
                                  ch == '.' || ch == '_';
                       })))
        throwUsage("redis URL '" + shown + "': the host must be a name of up to " +
                   std::to_string(kMaxHostName) + " letters, digits, '-', '_' and '.', an IPv4 "
                   "address, or an IPv6 address in brackets");
    if (!port.empty() || (rest.find(':') != std::string::npos && rest.front() != '[')) {
        if (!allDigits(port) || port.size() > 5 || std::stoul(port) < 1 || std::stoul(port) > 65535)
            throwUsage("redis URL '" + shown + "': the port must be 1..65535, not '" + port + "'");
        ep.port = static_cast<uint16_t>(std::stoul(port));
    }
    return ep;
}

// ---- the pure parts --------------------------------------------------------------

uint64_t fleetOverUntilNs(uint64_t count, uint64_t periodNs, uint64_t nowRealNs, uint64_t current,
                          uint64_t previous)
{
    if (!count || !periodNs)
        return 0;
    uint64_t windowStart = nowRealNs / periodNs * periodNs;
    double p = static_cast<double>(periodNs);
    double f = static_cast<double>(nowRealNs - windowStart) / p;
    double c = static_cast<double>(count);
    double estimate = static_cast<double>(current) + static_cast<double>(previous) * (1.0 - f);
    if (estimate < c)
        return 0;
    double until;
    if (current >= count) {
        // Not before the next window, where this one weighs
        // current * (1 - f') and must fall below count.
        until = static_cast<double>(windowStart + periodNs) + p * (1.0 - c / static_cast<double>(current));
    } else {
        // In this window, when the previous one's share falls below what is left.
        until = static_cast<double>(windowStart) +
                p * (1.0 - (c - static_cast<double>(current)) / static_cast<double>(previous));
    }
    // One nanosecond past the point where the estimate equals count.
    uint64_t out = static_cast<uint64_t>(std::ceil(until)) + 1;
    return std::max(out, nowRealNs + 1);
}

size_t fleetShardOf(std::string_view key, size_t shards)
{
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : key) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return shards ? static_cast<size_t>(h % shards) : 0;
}

namespace {

char kindLetter(LimitKind kind)
{
    switch (kind) {
    case LimitKind::Connections: return 'c';
    case LimitKind::Packets: return 'p';
    case LimitKind::Bytes: return 'b';
    }
    return '?';
}

// The key of a limit of a source without its window: what shards it.
std::string fleetKeyBase(const std::string& policy, const Limit& limit, const Address& source)
{
    // The period in seconds when it is whole (it always is from the rate
    // grammar), else in ns: keys stay short, Redis holds one per source.
    std::string period = limit.periodNs % kNsPerSecond == 0 ? std::to_string(limit.periodNs / kNsPerSecond) + "s"
                                                             : std::to_string(limit.periodNs) + "ns";
    return "sluice:" + policy + ":" + kindLetter(limit.kind) + std::to_string(limit.count) + "/" + period + ":" +
           source.str();
}

}  // namespace

std::string fleetKey(const std::string& policy, const Limit& limit, const Address& source,
                     uint64_t window)
{
    return fleetKeyBase(policy, limit, source) + ":" + std::to_string(window);
}

// ---- stats ------------------------------------------------------------------------

namespace {

std::mutex statsMutex;
FleetStats stats;

void logLine(const std::string& text)
{
    std::string line = "sluice: " + text + "\n";
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

uint64_t realNowNs()
{
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * kNsPerSecond + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

FleetStats fleetStats()
{
    std::lock_guard lock(statsMutex);
    return stats;
}

// ---- the engine -------------------------------------------------------------------

namespace {

// Per item i: KEYS[i] = the key of a limit of a source without its window;
// ARGV[3i-2..3i] = units to add, the window, the key's lifetime in ms. Adds
// to the window's counter (a new one gets its lifetime) and returns, per
// item, its total and the previous window's. A script, so that a batch is
// one command, one round trip, and atomic.
constexpr const char* kScript = R"lua(
local out = {}
for i = 1, #KEYS do
  local d = tonumber(ARGV[3 * i - 2])
  local w = tonumber(ARGV[3 * i - 1])
  local cur = KEYS[i] .. ':' .. w
  local c
  if d > 0 then
    c = redis.call('INCRBY', cur, d)
    if c == d then redis.call('PEXPIRE', cur, ARGV[3 * i]) end
  else
    c = tonumber(redis.call('GET', cur) or '0')
  end
  out[#out + 1] = c
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i] .. ':' .. (w - 1)) or '0')
end
return out
)lua";

// Items per script call: a big batch holds Redis (single-threaded) for a
// while; 512 keeps a call well under a millisecond.
constexpr size_t kItemsPerCall = 512;
// A key lives two periods (it is the previous window during the second)
// plus this margin for clock skew between nodes.
constexpr uint64_t kKeyMarginMs = 5000;
// The sorted set of nodes (score: last sync, Unix ms) on shard 0.
constexpr const char* kNodesKey = "sluice:nodes";
// A node that has not synced for this long is no longer counted.
constexpr uint64_t kNodeTimeoutMs = 10000;
// How long after its last unit on this node a source is still asked about.
constexpr uint64_t kRecentNs = 2'000'000'000;
// A shard that failed is retried at most this often.
constexpr int64_t kRetryNs = 1'000'000'000;

struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;
struct ContextFree {
    void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;

// Bytes of a reply in RESP2, as it came over the wire.
uint64_t respBytes(const redisReply* r)
{
    auto digits = [](long long v) { return std::to_string(v).size(); };
    switch (r->type) {
    case REDIS_REPLY_INTEGER: return 3 + digits(r->integer);
    case REDIS_REPLY_NIL: return 5;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR: return 3 + r->len;
    case REDIS_REPLY_STRING: return 5 + digits(static_cast<long long>(r->len)) + r->len;
    case REDIS_REPLY_ARRAY: {
        uint64_t n = 3 + digits(static_cast<long long>(r->elements));
        for (size_t i = 0; i < r->elements; i++)
            n += respBytes(r->element[i]);
        return n;
    }
    }
    return 0;
}

timeval toTimeval(uint64_t ns)
{
    return timeval{static_cast<time_t>(ns / kNsPerSecond), static_cast<suseconds_t>(ns % kNsPerSecond / 1000)};
}

// One limit of one source, summed over the interfaces that saw it.
struct Item {
    const InstalledPolicy* policy = nullptr;
    unsigned limit = 0;
    uint64_t delta = 0;
    std::string base;  // fleetKeyBase
    uint64_t current = 0, previous = 0;
};

struct SourceKeyHash {
    size_t operator()(const sluice_source_key& k) const
    {
        uint64_t h = k.state_tag;
        for (uint32_t w : k.addr)
            h = h * 0x9e3779b97f4a7c15ULL + w;
        return static_cast<size_t>(h ^ (h >> 29));
    }
};
struct SourceKeyEq {
    bool operator()(const sluice_source_key& a, const sluice_source_key& b) const
    {
        return std::memcmp(&a, &b, sizeof a) == 0;
    }
};

// Every entry of the units map.
std::vector<std::pair<sluice_source_key, sluice_fleet_units>> readUnits(int fd)
{
    std::vector<std::pair<sluice_source_key, sluice_fleet_units>> out;
    forEachBatch<sluice_source_key, sluice_fleet_units>(
        fd, "the fleet units map (sluice_fleet_units)",
        [&](const sluice_source_key* k, const sluice_fleet_units* v, uint32_t n) {
            for (uint32_t i = 0; i < n; i++)
                out.emplace_back(k[i], v[i]);
        });
    return out;
}

Address addressOf(const sluice_source_key& key)
{
    Address a;
    std::memcpy(a.bytes.data(), key.addr, 16);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    a.isV4 = std::memcmp(a.bytes.data(), mapped, 12) == 0;
    return a;
}

}  // namespace

struct FleetEngine::Impl {
    struct Shard {
        RedisEndpoint ep;
        ContextPtr ctx;
        std::string sha;
        bool up = false;
        bool everUp = false;
        uint64_t errors = 0;
        int64_t retryAtNs = 0;
        std::string lastError;
    };
    std::vector<Shard> shards;
    // Per interface and source: the units last sent (or baselined), and
    // when the source last had new units here (0: not since the baseline).
    struct Tracked {
        std::array<uint64_t, SLUICE_MAX_LIMITS> units{};
        uint64_t activeNs = 0;
        uint64_t seenRound = 0;
    };
    using Sources = std::unordered_map<sluice_source_key, Tracked, SourceKeyHash, SourceKeyEq>;
    std::unordered_map<std::string, Sources> sent;  // by interface
    uint64_t fallbacks = 0;
    uint64_t nodes = 0;
    uint64_t syncs = 0, errors = 0, sourcesSyncedTotal = 0;
    uint64_t buckets[FleetStats::kBucketCount] = {};
    double durationSum = 0;
    uint64_t durationCount = 0;
};

FleetEngine::FleetEngine(FleetConfig config) : config_(std::move(config)), impl_(std::make_unique<Impl>())
{
    for (const auto& ep : config_.redis) {
        Impl::Shard s;
        s.ep = ep;
        impl_->shards.push_back(std::move(s));
    }
}

FleetEngine::~FleetEngine() = default;

namespace {

// A command's reply, or the error that stands for it.
ReplyPtr command(redisContext* c, const std::vector<std::string>& args, std::string& error)
{
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    ReplyPtr r(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!r) {
        error = c->errstr[0] ? c->errstr : "connection lost";
        return nullptr;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        error = std::string(r->str, r->len);
        return nullptr;
    }
    return r;
}

// Connects, authenticates, selects the database, names the connection and
// loads the script. Returns "" or what failed.
std::string connectShard(FleetEngine::Impl::Shard& s, const FleetConfig& config)
{
    s.ctx.reset();
    uint64_t connectNs = std::clamp<uint64_t>(config.syncIntervalNs, 100'000'000, 1'000'000'000);
    uint64_t commandNs = std::max<uint64_t>(1'000'000'000, 2 * config.syncIntervalNs);
    ContextPtr c(redisConnectWithTimeout(s.ep.host.c_str(), s.ep.port, toTimeval(connectNs)));
    if (!c)
        return "out of memory";
    if (c->err)
        return std::string("cannot connect: ") + c->errstr;
    if (redisSetTimeout(c.get(), toTimeval(commandNs)) != REDIS_OK)
        return "cannot set the command timeout";
    std::string error;
    if (!s.ep.password.empty()) {
        std::vector<std::string> auth = {"AUTH"};
        if (!s.ep.user.empty())
            auth.push_back(s.ep.user);
        auth.push_back(s.ep.password);
        if (!command(c.get(), auth, error))
            return "AUTH failed: " + error;
    }
    if (s.ep.db && !command(c.get(), {"SELECT", std::to_string(s.ep.db)}, error))
        return "SELECT " + std::to_string(s.ep.db) + " failed: " + error;
    if (!command(c.get(), {"CLIENT", "SETNAME", "sluice-" + config.node}, error))
        return "CLIENT SETNAME failed: " + error;
    ReplyPtr sha = command(c.get(), {"SCRIPT", "LOAD", kScript}, error);
    if (!sha)
        return "SCRIPT LOAD failed: " + error;
    if (sha->type != REDIS_REPLY_STRING)
        return "SCRIPT LOAD answered something else than a hash";
    s.sha.assign(sha->str, sha->len);
    s.ctx = std::move(c);
    return "";
}

}  // namespace

void FleetEngine::baseline(const std::vector<FleetTarget>& targets)
{
    for (const auto& t : targets)
        for (const auto& [key, units] : readUnits(t.unitsFd)) {
            std::array<uint64_t, SLUICE_MAX_LIMITS> a{};
            std::copy(std::begin(units.units), std::end(units.units), a.begin());
            impl_->sent[t.iface][key] = Impl::Tracked{a, 0, impl_->syncs};
        }
}

FleetRound FleetEngine::round(const std::vector<FleetTarget>& targets, bool publish)
{
    auto started = std::chrono::steady_clock::now();
    FleetRound out;
    Impl& im = *impl_;
    const uint64_t nowReal = realNowNs();
    const uint64_t nowMono = Datapath::nowNs();
    const size_t nshards = im.shards.size();

    // 1. What each source was admitted since the last round, per limit,
    // summed over the interfaces. A source that had units here recently is
    // asked about even without new ones: units other nodes admit then reach
    // this node's verdict within a round, not only after its own next unit.
    const uint64_t roundNo = im.syncs + 1;
    const uint64_t recentNs = std::max<uint64_t>(kRecentNs, 2 * config_.syncIntervalNs);
    struct Contribution {
        size_t item;
        size_t target;
        sluice_source_key key;
        Impl::Tracked* tracked;
        unsigned limit;
        uint64_t value;  // the counter, committed when the shard answers
        bool commit;
    };
    std::vector<Item> items;
    std::unordered_map<std::string, size_t> itemOf;
    std::vector<Contribution> contributions;
    for (size_t ti = 0; ti < targets.size(); ti++) {
        const FleetTarget& t = targets[ti];
        std::unordered_map<uint32_t, const InstalledPolicy*> byTag;
        for (const auto& p : t.policies)
            if (p.scope == Scope::Fleet)
                byTag[p.stateTag] = &p;
        Impl::Sources& sent = im.sent[t.iface];
        auto entries = readUnits(t.unitsFd);
        items.reserve(items.size() + entries.size());
        for (const auto& [key, units] : entries) {
            auto pit = byTag.find(key.state_tag);
            if (pit == byTag.end())
                continue;  // a policy since removed, or no longer fleet
            const InstalledPolicy& p = *pit->second;
            Impl::Tracked& tr = sent[key];
            tr.seenRound = roundNo;
            std::array<uint64_t, SLUICE_MAX_LIMITS> delta{};
            bool any = false;
            for (unsigned li = 0; li < SLUICE_MAX_LIMITS; li++) {
                // A counter below what was sent: its entry was evicted and
                // made again since; all it holds is new.
                delta[li] = units.units[li] >= tr.units[li] ? units.units[li] - tr.units[li] : units.units[li];
                any = any || delta[li];
            }
            if (any)
                tr.activeNs = nowMono;
            if (!tr.activeNs || nowMono - tr.activeNs > recentNs)
                continue;
            Address source = addressOf(key);
            for (unsigned li = 0; li < p.limits.size() && li < SLUICE_MAX_LIMITS; li++) {
                std::string base = fleetKeyBase(p.name, p.limits[li], source);
                auto [at, fresh] = itemOf.try_emplace(std::move(base), items.size());
                if (fresh) {
                    Item it;
                    it.policy = &p;
                    it.limit = li;
                    it.base = at->first;
                    items.push_back(std::move(it));
                }
                items[at->second].delta += delta[li];
                contributions.push_back({at->second, ti, key, &tr, li, units.units[li], delta[li] != 0});
            }
        }
    }
    // Sources gone from the maps (evicted, reset, interface dropped) are forgotten.
    for (auto it = im.sent.begin(); it != im.sent.end();) {
        bool wanted = std::any_of(targets.begin(), targets.end(),
                                  [&](const FleetTarget& t) { return t.iface == it->first; });
        if (!wanted) {
            it = im.sent.erase(it);
            continue;
        }
        std::erase_if(it->second, [&](const auto& kv) { return kv.second.seenRound != roundNo; });
        ++it;
    }

    // 2. One pipelined round trip per shard: the node's heartbeat (shard 0)
    // and the items, in script calls of kItemsPerCall.
    std::vector<std::vector<Item*>> byShard(nshards);
    std::vector<size_t> shardOf(items.size());
    for (size_t i = 0; i < items.size(); i++) {
        shardOf[i] = fleetShardOf(items[i].base, nshards);
        byShard[shardOf[i]].push_back(&items[i]);
    }
    std::vector<bool> ok(nshards, false);
    std::vector<size_t> pending(nshards, 0);
    const int64_t monoNow = static_cast<int64_t>(nowMono);
    auto fail = [&](size_t si, const std::string& why) {
        Impl::Shard& s = im.shards[si];
        s.ctx.reset();
        s.errors++;
        im.errors++;
        s.retryAtNs = monoNow + kRetryNs;
        // Logged when it goes down and when the reason changes, not every round.
        if (s.up)
            im.fallbacks++;
        if (s.up || s.lastError != why)
            logLine("fleet: redis " + s.ep.str() + ": " + why +
                    "; its sources fall back to local limits until it is back");
        s.lastError = why;
        s.up = false;
        out.shardsFailed++;
    };
    const uint64_t nowMs = nowReal / 1'000'000;
    for (size_t si = 0; si < nshards; si++) {
        Impl::Shard& s = im.shards[si];
        if (!s.ctx) {
            if (monoNow < s.retryAtNs) {
                out.shardsFailed++;
                continue;
            }
            if (std::string why = connectShard(s, config_); !why.empty()) {
                fail(si, why);
                continue;
            }
        }
        auto append = [&](const std::vector<std::string>& args) {
            std::vector<const char*> argv;
            std::vector<size_t> lens;
            for (const auto& a : args) {
                argv.push_back(a.data());
                lens.push_back(a.size());
            }
            char* cmd = nullptr;
            int len = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), lens.data());
            if (len < 0)
                throwRuntime("fleet: cannot format a Redis command");
            redisAppendFormattedCommand(s.ctx.get(), cmd, static_cast<size_t>(len));
            redisFreeCommand(cmd);
            out.bytesOut += static_cast<uint64_t>(len);
            out.commands++;
            pending[si]++;
        };
        if (si == 0) {
            append({"ZADD", kNodesKey, std::to_string(nowMs), config_.node});
            append({"ZREMRANGEBYSCORE", kNodesKey, "-inf", std::to_string(nowMs - kNodeTimeoutMs)});
            append({"ZCARD", kNodesKey});
        }
        const auto& list = byShard[si];
        for (size_t at = 0; at < list.size(); at += kItemsPerCall) {
            size_t n = std::min(kItemsPerCall, list.size() - at);
            std::vector<std::string> args = {"EVALSHA", s.sha, std::to_string(n)};
            args.reserve(3 + 4 * n);
            for (size_t i = 0; i < n; i++)
                args.push_back(list[at + i]->base);
            for (size_t i = 0; i < n; i++) {
                const Item& it = *list[at + i];
                const Limit& l = it.policy->limits[it.limit];
                args.push_back(std::to_string(it.delta));
                args.push_back(std::to_string(nowReal / l.periodNs));
                args.push_back(std::to_string(2 * (l.periodNs / 1'000'000) + kKeyMarginMs));
            }
            append(args);
        }
    }
    // Everything is written before any reply is read: the shards work in
    // parallel.
    for (size_t si = 0; si < nshards; si++) {
        Impl::Shard& s = im.shards[si];
        if (!s.ctx || !pending[si])
            continue;
        int done = 0;
        while (!done)
            if (redisBufferWrite(s.ctx.get(), &done) != REDIS_OK) {
                fail(si, std::string("write failed: ") + s.ctx->errstr);
                break;
            }
    }
    for (size_t si = 0; si < nshards; si++) {
        Impl::Shard& s = im.shards[si];
        if (!s.ctx || !pending[si])
            continue;
        const auto& list = byShard[si];
        size_t item = 0;
        std::string why;
        for (size_t r = 0; r < pending[si] && why.empty(); r++) {
            void* raw = nullptr;
            if (redisGetReply(s.ctx.get(), &raw) != REDIS_OK) {
                why = std::string("no answer: ") + (s.ctx->errstr[0] ? s.ctx->errstr : "connection lost");
                break;
            }
            ReplyPtr reply(static_cast<redisReply*>(raw));
            out.bytesIn += respBytes(reply.get());
            if (reply->type == REDIS_REPLY_ERROR) {
                why = "error: " + std::string(reply->str, reply->len);
                break;
            }
            if (si == 0 && r < 3) {
                if (r == 2 && reply->type == REDIS_REPLY_INTEGER)
                    im.nodes = static_cast<uint64_t>(reply->integer);
                continue;
            }
            if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
                why = "unexpected answer to the sync script";
                break;
            }
            for (size_t e = 0; e + 1 < reply->elements && item < list.size(); e += 2, item++) {
                list[item]->current = static_cast<uint64_t>(std::max(0LL, reply->element[e]->integer));
                list[item]->previous = static_cast<uint64_t>(std::max(0LL, reply->element[e + 1]->integer));
            }
        }
        if (!why.empty()) {
            fail(si, why);
            continue;
        }
        ok[si] = true;
        if (!s.up) {
            logLine("fleet: redis " + s.ep.str() + " is " + (s.everUp ? "back" : "up") +
                    ": fleet limits apply to its sources");
            s.up = true;
            s.everUp = true;
            s.lastError.clear();
        }
    }

    // 3. Commit what the shards took, and mark the sources over the fleet
    // limit on every interface that saw them.
    for (size_t si = 0; si < nshards; si++)
        if (ok[si])
            out.items += byShard[si].size();
    std::vector<uint64_t> untilOf(items.size(), 0);
    for (size_t i = 0; i < items.size(); i++) {
        if (!ok[shardOf[i]])
            continue;
        const Item& it = items[i];
        const Limit& l = it.policy->limits[it.limit];
        uint64_t until = fleetOverUntilNs(l.count, l.periodNs, nowReal, it.current, it.previous);
        untilOf[i] = until ? nowMono + (until - nowReal) : 0;
    }
    std::map<std::pair<size_t, std::string>, std::pair<sluice_source_key, uint64_t>> overs;
    for (const Contribution& c : contributions) {
        if (!ok[shardOf[c.item]])
            continue;
        if (c.commit)
            c.tracked->units[c.limit] = c.value;
        if (!untilOf[c.item])
            continue;
        std::string k(reinterpret_cast<const char*>(&c.key), sizeof c.key);
        auto& slot = overs[{c.target, k}];
        slot.first = c.key;
        slot.second = std::max(slot.second, untilOf[c.item]);
    }
    for (const auto& [where, entry] : overs) {
        const FleetTarget& t = targets[where.first];
        uint64_t until = entry.second;
        // A later until already there (another limit, an earlier round) stays.
        uint64_t old = 0;
        if (bpf_map_lookup_elem(t.overFd, &entry.first, &old) == 0 && old >= until)
            continue;
        if (int err = bpf_map_update_elem(t.overFd, &entry.first, &until, BPF_ANY))
            logLine("fleet: cannot mark a source over the fleet limit on " + t.iface + ": " + errnoText(err));
    }
    out.over = overs.size();

    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    im.syncs++;
    im.sourcesSyncedTotal += out.items;
    for (size_t b = 0; b < FleetStats::kBucketCount; b++)
        if (seconds <= FleetStats::kBuckets[b])
            im.buckets[b]++;
    im.durationSum += seconds;
    im.durationCount++;
    if (publish) {
        std::lock_guard lock(statsMutex);
        stats.enabled = true;
        stats.node = config_.node;
        stats.syncs = im.syncs;
        stats.syncErrors = im.errors;
        stats.fallbacks = im.fallbacks;
        stats.sourcesSynced = out.items;
        stats.sourcesSyncedTotal = im.sourcesSyncedTotal;
        stats.sourcesOver = out.over;
        stats.nodes = im.nodes;
        std::copy(std::begin(im.buckets), std::end(im.buckets), stats.durationBuckets);
        stats.durationSum = im.durationSum;
        stats.durationCount = im.durationCount;
        stats.shards.clear();
        stats.fallback = false;
        for (const auto& s : im.shards) {
            stats.shards.push_back({s.ep.str(), s.up, s.errors});
            stats.fallback = stats.fallback || !s.up;
        }
    }
    return out;
}

// ---- the daemon's thread -------------------------------------------------------

struct FleetSync::Impl {
    FleetEngine engine;
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    std::vector<std::string> interfaces;
    std::map<std::string, Datapath> open;  // this thread's own handles
    std::map<std::string, std::string> openErrors;
    std::thread thread;

    explicit Impl(FleetConfig config) : engine(std::move(config)) {}

    std::vector<FleetTarget> targets()
    {
        std::vector<std::string> want;
        {
            std::lock_guard lock(mu);
            want = interfaces;
        }
        for (auto it = open.begin(); it != open.end();)
            it = std::find(want.begin(), want.end(), it->first) == want.end() ? open.erase(it) : std::next(it);
        std::vector<FleetTarget> out;
        for (const auto& iface : want) {
            auto it = open.find(iface);
            if (it == open.end()) {
                try {
                    Datapath dp = Datapath::open(iface);
                    it = open.emplace(iface, std::move(dp)).first;
                    openErrors.erase(iface);
                } catch (const std::exception& e) {
                    if (openErrors[iface] != e.what())
                        logLine("fleet: cannot open " + iface + ": " + e.what());
                    openErrors[iface] = e.what();
                    continue;
                }
                // Units counted before this node synced them (a daemon
                // restarted on live maps) are not sent again.
                FleetTarget t{iface, it->second.mapFd("sluice_fleet_units"),
                              it->second.mapFd("sluice_fleet_over"), {}};
                engine.baseline({t});
            }
            // Race: a reload may flip the generation while this reads it;
            // a torn read costs at most one round of unknown state tags
            // (their sources are skipped, and sent the next round).
            out.push_back(FleetTarget{iface, it->second.mapFd("sluice_fleet_units"),
                                      it->second.mapFd("sluice_fleet_over"),
                                      it->second.installedPolicies()});
        }
        return out;
    }

    void run()
    {
        const auto interval = std::chrono::nanoseconds(engine.config().syncIntervalNs);
        auto next = std::chrono::steady_clock::now();
        for (;;) {
            {
                std::unique_lock lock(mu);
                if (cv.wait_until(lock, next, [&] { return stop; }))
                    return;
            }
            try {
                engine.round(targets());
            } catch (const std::exception& e) {
                logLine(std::string("fleet: sync round failed: ") + e.what());
            }
            // A late round does not make the next ones come faster.
            next = std::max(next + interval, std::chrono::steady_clock::now());
        }
    }
};

FleetSync::FleetSync(FleetConfig config, std::vector<std::string> interfaces)
    : impl_(std::make_unique<Impl>(std::move(config)))
{
    impl_->interfaces = std::move(interfaces);
    {
        std::lock_guard lock(statsMutex);
        stats = FleetStats{};
        stats.enabled = true;
        stats.node = impl_->engine.config().node;
        for (const auto& ep : impl_->engine.config().redis)
            stats.shards.push_back({ep.str(), false, 0});
        stats.fallback = true;  // until the first round reaches Redis
    }
    std::string list;
    for (const auto& ep : impl_->engine.config().redis)
        list += (list.empty() ? "" : ", ") + ep.str();
    logLine("fleet: node " + impl_->engine.config().node + " syncing every " +
            std::to_string(impl_->engine.config().syncIntervalNs / 1'000'000) + " ms with redis " + list);
    impl_->thread = std::thread([this] { impl_->run(); });
}

FleetSync::~FleetSync()
{
    {
        std::lock_guard lock(impl_->mu);
        impl_->stop = true;
    }
    impl_->cv.notify_all();
    impl_->thread.join();
    std::lock_guard lock(statsMutex);
    stats = FleetStats{};
}

void FleetSync::setInterfaces(std::vector<std::string> interfaces)
{
    std::lock_guard lock(impl_->mu);
    impl_->interfaces = std::move(interfaces);
}

const FleetConfig& FleetSync::config() const { return impl_->engine.config(); }

}  // namespace sluice
