// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// libFuzzer harness for the config parser (userspace/config.h): TOML text ->
// Config -> the map entries of compileRuleset. Beyond "does not crash" it
// checks:
//   - a config is accepted or refused with sluice::Error (Usage) whose
//     message starts "FILE:LINE:COL:" with LINE inside the text;
//   - an accepted config compiles (compileRuleset), with one port entry per
//     port its policies cover, and compiled again against what the first
//     compile installed keeps every policy's slot and bucket state tag;
//   - an accepted config written back as TOML (toml++'s writer, every
//     policy's limits re-rendered with describeLimit) reads back equal.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "config.h"
#include "fuzz_check.h"
#include "policy.h"
#include "toml_checked.h"

namespace sluice::fuzz {
namespace {

const std::string kName = "fuzz.toml";
constexpr uint64_t kNsPerMillisecond = kNsPerSecond / 1000;

void checkLocation(const std::string& message, const std::string& text)
{
    size_t i = kName.size() + 1;
    long line = 0;
    while (i < message.size() && std::isdigit(static_cast<unsigned char>(message[i])) && line < 1000000000)
        line = line * 10 + (message[i++] - '0');
    size_t lines = 1;
    for (char c : text)
        lines += c == '\n';
    require(i < message.size() && message[i] == ':' && line >= 1 &&
                static_cast<size_t>(line) <= lines,
            "error not at a line of the text (" + std::to_string(lines) + " lines): " + message, text);
}

// redis://[USER:PASSWORD@]HOST:PORT/DB with the user and password escaped.
std::string redisUrl(const RedisEndpoint& ep)
{
    auto escaped = [](const std::string& s) {
        std::string out;
        char buf[4];
        for (unsigned char c : s) {
            std::snprintf(buf, sizeof(buf), "%%%02X", c);
            out += std::isalnum(c) ? std::string(1, static_cast<char>(c)) : std::string(buf);
        }
        return out;
    };
    std::string url = "redis://";
    if (!ep.password.empty())
        url += escaped(ep.user) + ":" + escaped(ep.password) + "@";
    url += ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host;
    return url + ":" + std::to_string(ep.port) + "/" + std::to_string(ep.db);
}

std::string millis(uint64_t ns)
{
    return std::to_string(ns / kNsPerMillisecond) + "ms";
}

toml::array cidrs(const std::vector<Cidr>& list)
{
    toml::array out;
    for (const auto& c : list)
        out.push_back(c.str());
    return out;
}

toml::table policyTable(const Policy& p)
{
    toml::table t;
    t.insert("name", p.name);
    t.insert("proto", protoName(p.proto));
    toml::array ports;
    for (const auto& r : p.ports) {
        if (r.first == r.last)
            ports.push_back(static_cast<int64_t>(r.first));
        else
            ports.push_back(std::to_string(r.first) + "-" + std::to_string(r.last));
    }
    t.insert("ports", std::move(ports));
    for (LimitKind kind : {LimitKind::Connections, LimitKind::Packets, LimitKind::Bytes}) {
        std::string rates;
        for (const auto& l : p.limits)
            if (l.kind == kind)
                rates += (rates.empty() ? "" : "; ") + describeLimit(l);
        if (!rates.empty())
            t.insert(kindName(kind), rates);
    }
    t.insert("key", p.key == KeyMode::Global ? "global" : "source");
    t.insert("ipv4_prefix", static_cast<int64_t>(p.ipv4Prefix));
    t.insert("ipv6_prefix", static_cast<int64_t>(p.ipv6Prefix));
    t.insert("action", actionName(p.action));
    if (p.banAfter) {
        t.insert("ban_after", describeLimit(*p.banAfter));
        t.insert("ban", millis(p.banNs));
    }
    t.insert("scope", scopeName(p.scope));
    if (p.newSources)
        t.insert("new_sources", describeLimit(*p.newSources));
    if (!p.redirectTo.empty())
        t.insert("redirect_to", p.redirectTo);
    return t;
}

std::string written(const Config& c)
{
    toml::table root;
    toml::table sluice;
    toml::array interfaces;
    for (const auto& i : c.interfaces)
        interfaces.push_back(i);
    sluice.insert("interfaces", std::move(interfaces));
    sluice.insert("metrics", c.metrics);
    sluice.insert("max_sources", static_cast<int64_t>(c.maxSources));
    sluice.insert("admin", cidrs(c.admin));
    toml::array adminPorts;
    for (uint16_t port : c.adminPorts)
        adminPorts.push_back(static_cast<int64_t>(port));
    sluice.insert("admin_ports", std::move(adminPorts));
    root.insert("sluice", std::move(sluice));

    for (const auto& [name, list] : {std::pair{"allow", &c.rules.allow}, std::pair{"deny", &c.rules.deny}}) {
        if (list->empty())
            continue;
        toml::array tables;
        for (const auto& cidr : *list)
            tables.push_back(toml::table{{"cidr", cidr.str()}});
        root.insert(name, std::move(tables));
    }
    if (!c.rules.policies.empty()) {
        toml::array policies;
        for (const auto& p : c.rules.policies)
            policies.push_back(policyTable(p));
        root.insert("policy", std::move(policies));
    }
    if (c.fleet) {
        toml::array redis;
        for (const auto& ep : c.fleet->redis)
            redis.push_back(redisUrl(ep));
        root.insert("fleet", toml::table{{"redis", std::move(redis)},
                                         {"node", c.fleet->node},
                                         {"sync_interval", millis(c.fleet->syncIntervalNs)}});
    }
    std::ostringstream out;
    out << toml::toml_formatter(root);
    return out.str();
}

bool sameConfig(const Config& a, const Config& b)
{
    return a.interfaces == b.interfaces && a.metrics == b.metrics && a.maxSources == b.maxSources &&
           a.admin == b.admin && a.adminPorts == b.adminPorts &&
           a.rules.policies == b.rules.policies && a.rules.allow == b.rules.allow &&
           a.rules.deny == b.rules.deny && a.fleet == b.fleet;
}

void checkCompiled(const Config& c, const std::string& text)
{
    CompiledRuleset first;
    require(acceptsOrRefuses([&] { first = compileRuleset(c.rules, {}); }, text, ""),
            "an accepted config does not compile", text);
    require(first.policies.size() == c.rules.policies.size(), "compiled a different number of policies",
            text);
    size_t ports = 0;
    for (const auto& p : c.rules.policies)
        for (const auto& r : p.ports)
            ports += r.last - r.first + 1U;
    require(first.ports.size() == ports, "compiled " + std::to_string(first.ports.size()) +
                                             " port entries for " + std::to_string(ports) + " ports",
            text);

    std::vector<InstalledPolicy> installed;
    for (size_t i = 0; i < c.rules.policies.size(); i++) {
        const Policy& p = c.rules.policies[i];
        installed.push_back({p.name, first.policies[i].slot, first.policies[i].state_tag, p.limits,
                             p.ipv4Prefix, p.ipv6Prefix, p.key, p.scope});
    }
    CompiledRuleset second;
    require(acceptsOrRefuses([&] { second = compileRuleset(c.rules, installed); }, text, ""),
            "an accepted config does not compile over itself", text);
    for (size_t i = 0; i < first.policies.size(); i++)
        require(first.policies[i].slot == second.policies[i].slot &&
                    first.policies[i].state_tag == second.policies[i].state_tag,
                "recompiling an unchanged policy moved its slot or reset its buckets", text);
}

}  // namespace
}  // namespace sluice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sluice;
    std::string text(reinterpret_cast<const char*>(data), size);
    Config config;
    std::string message;
    if (!fuzz::acceptsOrRefuses([&] { config = parseConfig(text, fuzz::kName); }, text,
                                fuzz::kName + ":", &message)) {
        fuzz::checkLocation(message, text);
        return 0;
    }
    fuzz::checkCompiled(config, text);

    std::string again = fuzz::written(config);
    Config reread;
    fuzz::require(fuzz::acceptsOrRefuses([&] { reread = parseConfig(again, fuzz::kName); }, text,
                                         fuzz::kName + ":", &message),
                  "written back as TOML it is refused: " + message + "\n" + again, text);
    fuzz::require(fuzz::sameConfig(config, reread), "written back as TOML it reads differently:\n" + again,
                  text);
    return 0;
}
