// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "format.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace sluice::cli {

std::string Table::str() const
{
    std::vector<size_t> width;
    for (const auto& row : rows_)
        for (size_t i = 0; i < row.size(); i++) {
            width.resize(std::max(width.size(), row.size()));
            width[i] = std::max(width[i], row[i].size());
        }
    std::string out;
    for (const auto& row : rows_) {
        std::string line;
        for (size_t i = 0; i < row.size(); i++) {
            line += row[i];
            if (i + 1 < row.size())
                line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

std::string formatDuration(uint64_t ns)
{
    uint64_t s = ns / kNsPerSecond;
    char buf[64];
    if (s < 60)
        snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ns) / 1e9);
    else if (s < 3600)
        snprintf(buf, sizeof(buf), "%llum%02llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, sizeof(buf), "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(buf, sizeof(buf), "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
    return buf;
}

std::string sourceName(const Address& key, uint8_t prefix)
{
    return prefix < (key.isV4 ? 32 : 128) ? Cidr{key, prefix}.str() : key.str();
}

std::string formatTick(uint32_t hz)
{
    char buf[32];
    if (1000 % hz == 0)
        snprintf(buf, sizeof(buf), "%ums", 1000 / hz);
    else
        snprintf(buf, sizeof(buf), "%.1fms", 1000.0 / hz);
    return buf;
}

namespace {

std::string limitsText(const std::vector<Limit>& limits)
{
    std::string s;
    for (const auto& l : limits) {
        if (!s.empty())
            s += "; ";
        s += kindName(l.kind) + " " + describeLimit(l);
    }
    return s;
}

Json limitJson(const Limit& l)
{
    return Json{{"kind", kindName(l.kind)},       {"count", l.count},
                {"period_ns", l.periodNs},         {"burst", l.effectiveBurst()},
                {"text", describeLimit(l)}};
}

}  // namespace

Json toJson(const Policy& p)
{
    Json limits = Json::array();
    for (const auto& l : p.limits)
        limits.push_back(limitJson(l));
    Json ports = Json::array();
    for (const auto& r : p.ports)
        ports.push_back(Json{{"first", r.first}, {"last", r.last}});
    return Json{{"name", p.name},
                {"proto", protoName(p.proto)},
                {"ports", ports},
                {"limits", limits},
                {"action", actionName(p.action)},
                {"key", p.key == KeyMode::Global ? "global" : "source"},
                {"ipv4_prefix", p.ipv4Prefix},
                {"ipv6_prefix", p.ipv6Prefix},
                {"scope", scopeName(p.scope)},
                {"redirect_to", p.redirectTo.empty() ? Json(nullptr) : Json(p.redirectTo)},
                {"ban", p.banAfter ? Json{{"after", limitJson(*p.banAfter)}, {"for_ns", p.banNs}} : Json(nullptr)},
                {"new_sources", p.newSources ? limitJson(*p.newSources) : Json(nullptr)}};
}

Json toJson(const Ruleset& r)
{
    Json policies = Json::array(), allow = Json::array(), deny = Json::array();
    for (const auto& p : r.policies)
        policies.push_back(toJson(p));
    for (const auto& c : r.allow)
        allow.push_back(c.str());
    for (const auto& c : r.deny)
        deny.push_back(c.str());
    return Json{{"policies", policies}, {"allow", allow}, {"deny", deny}};
}

Json toJson(const SlotCounters& c)
{
    Json verdicts = Json::object();
    for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++)
        verdicts[verdictName(v)] = Json{{"packets", c.verdicts[v].packets}, {"bytes", c.verdicts[v].bytes}};
    return Json{{"policy", c.policy.empty() ? Json(nullptr) : Json(c.policy)}, {"verdicts", verdicts}};
}

Json toJson(const SourceState& s)
{
    Json limits = Json::array();
    for (const auto& l : s.limits) {
        Json j = limitJson(l.limit);
        j["remaining"] = l.remaining;
        j["retry_after_ns"] = l.retryAfterNs;
        limits.push_back(j);
    }
    Json j{{"policy", s.policy}, {"source", s.key.str()}, {"prefix", s.prefix}, {"limits", limits}};
    j["banned"] = s.bannedUntilNs != 0;
    j["ban_remaining_ns"] = s.banRemainingNs;
    return j;
}

std::string policyTable(const Ruleset& r)
{
    Table t({"POLICY", "PROTO", "PORTS", "LIMITS", "ACTION", "KEY", "BAN", "NEW SOURCES"});
    for (const auto& p : r.policies) {
        std::string key = p.key == KeyMode::Global
                              ? "global"
                              : "source /" + std::to_string(p.ipv4Prefix) + " /" + std::to_string(p.ipv6Prefix);
        std::string action = actionName(p.action);
        if (!p.redirectTo.empty())
            action += " to " + p.redirectTo;
        std::string ban = p.banAfter ? "after " + describeLimit(*p.banAfter) + ", for " + formatDuration(p.banNs) : "-";
        std::string newSources = p.newSources ? describeLimit(*p.newSources) : "-";
        t.add({p.name, protoName(p.proto), describePorts(p.ports), limitsText(p.limits), action, key, ban,
               newSources});
    }
    return r.policies.empty() ? "no policies\n" : t.str();
}

std::string listTable(const Ruleset& r)
{
    Table t({"LIST", "CIDR"});
    for (const auto& c : r.allow)
        t.add({"allow", c.str()});
    for (const auto& c : r.deny)
        t.add({"deny", c.str()});
    return r.allow.empty() && r.deny.empty() ? "no allow or deny entries\n" : t.str();
}

std::string countersTable(const std::vector<SlotCounters>& counters)
{
    Table t({"POLICY", "VERDICT", "PACKETS", "BYTES"});
    for (const auto& c : counters)
        for (uint32_t v = 0; v < SLUICE_VERDICT_COUNT; v++)
            if (c.verdicts[v].packets)
                t.add({c.policy.empty() ? "(no policy)" : c.policy, verdictName(v),
                       std::to_string(c.verdicts[v].packets), std::to_string(c.verdicts[v].bytes)});
    return t.str();
}

std::string sourceTable(const std::vector<SourceState>& sources)
{
    Table t({"SOURCE", "POLICY", "LIMIT", "REMAINING", "NEXT UNIT IN"});
    for (const auto& s : sources)
        for (const auto& l : s.limits)
            t.add({sourceName(s.key, s.prefix), s.policy, kindName(l.limit.kind) + " " + describeLimit(l.limit),
                   std::to_string(l.remaining), l.retryAfterNs ? formatDuration(l.retryAfterNs) : "now"});
    return t.str();
}

std::vector<std::string> describeChanges(const Ruleset& current, const Ruleset& next)
{
    std::vector<std::string> out;
    std::map<std::string, const Policy*> before;
    for (const auto& p : current.policies)
        before[p.name] = &p;
    std::set<std::string> seen;
    for (const auto& p : next.policies) {
        seen.insert(p.name);
        auto it = before.find(p.name);
        if (it == before.end()) {
            out.push_back("+ policy " + p.name + ": " + protoName(p.proto) + " " + describePorts(p.ports) + ", " +
                          limitsText(p.limits) + ", " + actionName(p.action));
            continue;
        }
        const Policy& o = *it->second;
        if (o == p)
            continue;
        std::string what;
        auto note = [&](const std::string& s) { what += (what.empty() ? "" : ", ") + s; };
        if (o.proto != p.proto || o.ports != p.ports)
            note("ports " + protoName(o.proto) + " " + describePorts(o.ports) + " -> " + protoName(p.proto) + " " +
                 describePorts(p.ports));
        if (o.limits != p.limits)
            note("limits " + limitsText(o.limits) + " -> " + limitsText(p.limits) + " (buckets reset)");
        if (o.action != p.action)
            note("action " + actionName(o.action) + " -> " + actionName(p.action));
        if (o.key != p.key || o.ipv4Prefix != p.ipv4Prefix || o.ipv6Prefix != p.ipv6Prefix)
            note("key or prefixes changed (buckets reset)");
        if (o.scope != p.scope)
            note("scope " + scopeName(o.scope) + " -> " + scopeName(p.scope));
        if (o.redirectTo != p.redirectTo)
            note("redirect_to '" + o.redirectTo + "' -> '" + p.redirectTo + "'");
        if (o.banAfter != p.banAfter || o.banNs != p.banNs)
            note(std::string("ban ") + (o.banNs ? "changed" : "added") + (p.banNs ? "" : " -> none"));
        if (o.newSources != p.newSources)
            note("new_sources " + (o.newSources ? limitsText({*o.newSources}) : std::string("none")) +
                 " -> " + (p.newSources ? limitsText({*p.newSources}) : std::string("none")));
        out.push_back("~ policy " + p.name + ": " + what);
    }
    for (const auto& p : current.policies)
        if (!seen.count(p.name))
            out.push_back("- policy " + p.name);
    auto lists = [&](const std::vector<Cidr>& a, const std::vector<Cidr>& b, const std::string& name) {
        std::set<std::string> as, bs;
        for (const auto& c : a)
            as.insert(c.str());
        for (const auto& c : b)
            bs.insert(c.str());
        for (const auto& c : bs)
            if (!as.count(c))
                out.push_back("+ " + name + " " + c);
        for (const auto& c : as)
            if (!bs.count(c))
                out.push_back("- " + name + " " + c);
    };
    lists(current.allow, next.allow, "allow");
    lists(current.deny, next.deny, "deny");
    return out;
}

}  // namespace sluice::cli
