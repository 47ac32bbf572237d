// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "lockout.h"

#include <cstdlib>
#include <sstream>

#include "config.h"
#include "error.h"

namespace sluice {
namespace {

std::vector<std::string> fields(const std::string& text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string f; in >> f;)
        out.push_back(f);
    return out;
}

uint16_t portField(const std::string& text, const std::string& var, const std::string& value)
{
    auto ports = parsePortList(text);  // throws for 0, > 65535 and garbage
    if (ports.size() != 1 || ports[0].first != ports[0].last)
        throwUsage(var + "='" + value + "': '" + text + "' is not a port");
    return ports[0].first;
}

bool overlaps(const Cidr& a, const Cidr& b)
{
    return a.contains(b) || b.contains(a);
}

bool allowListed(const Ruleset& rules, const Cidr& c)
{
    for (const auto& a : rules.allow)
        if (a.contains(c))
            return true;
    return false;
}

std::string describeSource(const ProtectedSource& p)
{
    return p.cidr.str() + ", " + p.origin;
}

}  // namespace

std::optional<ProtectedSource> sshSession(const char* sshConnection, const char* sshClient)
{
    // SSH_CONNECTION has the server's address and port too; SSH_CLIENT is
    // the older variable, set by the same servers.
    const bool useConnection = sshConnection && *sshConnection;
    const char* raw = useConnection ? sshConnection : sshClient;
    if (!raw || !*raw)
        return std::nullopt;
    std::string var = useConnection ? "SSH_CONNECTION" : "SSH_CLIENT";
    std::string value = raw;
    auto f = fields(value);
    if (f.size() != (useConnection ? 4U : 3U))
        throwUsage(var + "='" + value + "' is not \"" +
                   (useConnection ? "CLIENT CPORT SERVER SPORT" : "CLIENT CPORT SPORT") +
                   "\": cannot tell which address must not be locked out (unset it or pass --force)");
    ProtectedSource p;
    std::string client = f[0];
    // OpenSSH writes IPv6 clients without brackets; some wrappers add them.
    if (client.size() > 2 && client.front() == '[' && client.back() == ']')
        client = client.substr(1, client.size() - 2);
    try {
        p.cidr = Cidr::parse(client);
    } catch (const Error&) {
        throwUsage(var + "='" + value + "': '" + f[0] + "' is not an IP address");
    }
    try {
        p.tcpPorts.push_back(portField(f.back(), var, value));
    } catch (const Error& e) {
        throwUsage(var + "='" + value + "': the server port: " + e.what());
    }
    p.origin = "the source of this SSH session (" + var + ")";
    return p;
}

std::optional<ProtectedSource> sshSessionFromEnvironment()
{
    return sshSession(std::getenv("SSH_CONNECTION"), std::getenv("SSH_CLIENT"));
}

std::vector<ProtectedSource> adminSources(const Config& config)
{
    std::vector<ProtectedSource> out;
    for (const auto& c : config.admin)
        out.push_back({c, config.adminPorts, "an admin CIDR ([sluice] admin)"});
    return out;
}

std::vector<ProtectedSource> protectedSources(const Config& config)
{
    std::vector<ProtectedSource> out = adminSources(config);
    if (auto ssh = sshSessionFromEnvironment())
        out.push_back(*ssh);
    return out;
}

std::vector<std::string> findLockouts(const Ruleset& rules,
                                      const std::vector<ProtectedSource>& protect)
{
    std::vector<std::string> out;
    for (const auto& p : protect) {
        for (const auto& d : rules.deny) {
            if (!overlaps(d, p.cidr))
                continue;
            // Overlapping CIDRs nest: the smaller one is what the deny drops.
            const Cidr& dropped = d.contains(p.cidr) ? p.cidr : d;
            if (allowListed(rules, dropped))
                continue;
            out.push_back("[[deny]] " + d.str() + " drops " +
                          (dropped == p.cidr ? "" : "part of ") + describeSource(p));
        }
        if (allowListed(rules, p.cidr))
            continue;
        for (const auto& pol : rules.policies) {
            if (pol.proto != Proto::Tcp || pol.action == Action::Monitor)
                continue;
            for (uint16_t port : p.tcpPorts) {
                bool covered = false;
                for (const auto& r : pol.ports)
                    covered = covered || (r.first <= port && port <= r.last);
                if (!covered)
                    continue;
                out.push_back("policy '" + pol.name + "' (tcp ports " + describePorts(pol.ports) +
                              ", action " + actionName(pol.action) +
                              (pol.banAfter ? ", with bans" : "") + ") can limit " +
                              describeSource(p) + ", on tcp port " + std::to_string(port));
            }
        }
    }
    return out;
}

void refuseLockouts(const Ruleset& rules, const std::vector<ProtectedSource>& protect,
                    const std::string& forceHint)
{
    auto found = findLockouts(rules, protect);
    if (found.empty())
        return;
    std::string msg = "refusing a ruleset that could lock out the operator:";
    for (const auto& f : found)
        msg += "\n  " + f;
    msg += "\nput the address on the allow list ([[allow]] cidr = \"...\"), or " + forceHint;
    throwUsage(msg);
}

}  // namespace sluice
