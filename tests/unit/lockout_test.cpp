// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// No lockout (userspace/lockout.h): which rules cover the operator's SSH
// session or an admin CIDR, the [sluice] admin keys, and SSH_CONNECTION.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config.h"
#include "error.h"
#include "lockout.h"

namespace sluice {
namespace {

std::vector<std::string> lockoutsOf(const std::string& toml, const char* sshConnection)
{
    Config cfg = parseConfig(toml, "test.toml");
    auto protect = adminSources(cfg);
    if (auto ssh = sshSession(sshConnection, nullptr))
        protect.push_back(*ssh);
    return findLockouts(cfg.rules, protect);
}

const std::string kSshPolicy =
    "[[policy]]\nname = \"ssh\"\nproto = \"tcp\"\nports = [22]\nconnections = \"5 per minute\"\n";
const char* kSession = "203.0.113.9 50000 192.0.2.1 22";

TEST(Lockout, DenyCoveringTheSshClientIsFound)
{
    auto found = lockoutsOf("[[deny]]\ncidr = \"203.0.113.0/24\"\n", kSession);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_NE(found[0].find("203.0.113.0/24"), std::string::npos) << found[0];
    EXPECT_NE(found[0].find("203.0.113.9"), std::string::npos) << found[0];
    EXPECT_NE(found[0].find("SSH_CONNECTION"), std::string::npos) << found[0];
}

TEST(Lockout, PolicyOnTheSessionPortIsFoundAndOtherPortsAreNot)
{
    auto found = lockoutsOf(kSshPolicy, kSession);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_NE(found[0].find("policy 'ssh'"), std::string::npos) << found[0];
    EXPECT_TRUE(lockoutsOf(kSshPolicy, "203.0.113.9 50000 192.0.2.1 2222").empty());
}

TEST(Lockout, BanCarryingPolicyIsNamedAsSuch)
{
    auto found = lockoutsOf(kSshPolicy + "ban_after = \"20 per minute\"\nban = \"10 minutes\"\n", kSession);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_NE(found[0].find("with bans"), std::string::npos) << found[0];
}

TEST(Lockout, AllowListedSourcesAndMonitorPoliciesAreSafe)
{
    EXPECT_TRUE(lockoutsOf("[[allow]]\ncidr = \"203.0.113.0/28\"\n[[deny]]\ncidr = \"203.0.0.0/8\"\n" +
                               kSshPolicy,
                           kSession)
                    .empty());
    EXPECT_TRUE(lockoutsOf(kSshPolicy + "action = \"monitor\"\n", kSession).empty());
    EXPECT_TRUE(lockoutsOf("[[deny]]\ncidr = \"198.51.100.0/24\"\n" + kSshPolicy, nullptr).empty())
        << "no SSH session, no admin CIDR: nothing to protect";
}

TEST(Lockout, AdminCidrsOnTheirPorts)
{
    std::string admin = "[sluice]\nadmin = [\"198.51.100.0/24\", \"2001:db8:ad::/48\"]\nadmin_ports = [22, 2222]\n";
    auto found = lockoutsOf(admin + "[[deny]]\ncidr = \"198.51.100.7\"\n[[deny]]\ncidr = \"2001:db8::/32\"\n", nullptr);
    ASSERT_EQ(found.size(), 2u);
    EXPECT_NE(found[0].find("drops part of 198.51.100.0/24"), std::string::npos) << found[0];
    EXPECT_NE(found[1].find("2001:db8:ad::/48"), std::string::npos) << found[1];
    found = lockoutsOf(admin + "[[policy]]\nname = \"alt\"\nproto = \"tcp\"\nports = [\"2000-3000\"]\n"
                               "packets = \"10/second\"\n",
                       nullptr);
    EXPECT_EQ(found.size(), 2u) << "both admin CIDRs on port 2222";
    // Partly allow-listed is not enough for a policy on an admin port.
    found = lockoutsOf("[sluice]\nadmin = [\"198.51.100.0/24\"]\n[[allow]]\ncidr = \"198.51.100.0/25\"\n" +
                           kSshPolicy,
                       nullptr);
    EXPECT_EQ(found.size(), 1u);
}

TEST(Lockout, RefuseNamesTheRuleAndTheWayOut)
{
    Config cfg = parseConfig("[[deny]]\ncidr = \"0.0.0.0/0\"\n", "t.toml");
    try {
        refuseLockouts(cfg.rules, {*sshSession(kSession, nullptr)}, "pass --force");
        FAIL() << "did not refuse";
    } catch (const Error& e) {
        EXPECT_EQ(e.exitCode(), 2);
        std::string msg = e.what();
        EXPECT_NE(msg.find("0.0.0.0/0"), std::string::npos) << msg;
        EXPECT_NE(msg.find("--force"), std::string::npos) << msg;
    }
}

TEST(Lockout, SshEnvironmentForms)
{
    auto s = sshSession("2001:db8::5 41000 2001:db8::1 22", nullptr);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->cidr.str(), "2001:db8::5/128");
    EXPECT_EQ(s->tcpPorts, std::vector<uint16_t>{22});
    s = sshSession(nullptr, "192.0.2.7 41000 2222");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->tcpPorts, std::vector<uint16_t>{2222});
    EXPECT_NE(s->origin.find("SSH_CLIENT"), std::string::npos);
    EXPECT_FALSE(sshSession("", ""));
    EXPECT_THROW(sshSession("garbage", nullptr), Error);
    EXPECT_THROW(sshSession("192.0.2.7 1 192.0.2.1 0", nullptr), Error);
    EXPECT_THROW(sshSession("nothost 1 192.0.2.1 22", nullptr), Error);
}

TEST(Lockout, AdminKeysAreValidated)
{
    Config cfg = parseConfig("[sluice]\ninterfaces = []\n", "t.toml");
    EXPECT_TRUE(cfg.admin.empty());
    EXPECT_EQ(cfg.adminPorts, std::vector<uint16_t>{22});
    EXPECT_THROW(parseConfig("[sluice]\nadmin = [\"300.1.1.1/24\"]\n", "t.toml"), Error);
    EXPECT_THROW(parseConfig("[sluice]\nadmin = [22]\n", "t.toml"), Error);
    EXPECT_THROW(parseConfig("[sluice]\nadmin_ports = []\n", "t.toml"), Error);
    EXPECT_THROW(parseConfig("[sluice]\nadmin_ports = [0]\n", "t.toml"), Error);
}

}  // namespace
}  // namespace sluice
