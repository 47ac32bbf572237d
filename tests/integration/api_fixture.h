// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The fixture of the tests that protect the real API: a testbed with one
// client namespace, the Flask app under gunicorn in the receiver namespace
// on port 8080, and a `sluice run` (not started: the test writes its config
// and starts it). Everything is undone when the test ends, failed or not.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "api_server.h"
#include "attachments.h"
#include "datapath.h"
#include "netns.h"
#include "paths.h"
#include "sluice_run.h"

namespace slit {

class ApiFixture : public ::testing::Test {
protected:
    static constexpr uint16_t kApiPort = 8080;
    static constexpr const char* kPolicy = "heavy-task";

    // Call from SetUp: a client namespace with n4 IPv4 and n6 IPv6 sources.
    void setUpApi(int n4, int n6) {
        if (::access(sluiceBinary().c_str(), X_OK) != 0)
            GTEST_SKIP() << sluiceBinary() << " is not built";
        std::string missing;
        if (!apiStackInstalled(&missing))
            GTEST_SKIP() << "not installed: " << missing << " (tools/install-deps.sh installs them)";
        link_ = &bed_.addClient(n4, n6);
        // RSTs (reject, respond's fallback) leave by XDP_TX: the client's veth
        // needs an XDP program to receive them (attachments.h).
        enableXdpReceive(*link_->client, link_->clientIf, peers_);
        run_ = std::make_unique<SluiceRun>(bed_.receiver(), std::vector<std::string>{link_->receiverIf});
        ApiServer::Options app;
        app.port = kApiPort;
        app.log = run_->dir() + "/gunicorn.log";
        api_ = std::make_unique<ApiServer>(bed_.receiver(), app);
    }

    void TearDown() override {
        if (HasFailure() && run_)
            std::fprintf(stderr, "[slit] sluice run log:\n%s", run_->log().c_str());
    }

    // A config with one policy named kPolicy on kApiPort; `body` holds its
    // limits and action, one `key = value` per line.
    std::string policyConfig(const std::string& body) const {
        return "[sluice]\ninterfaces = [\"" + link_->receiverIf + "\"]\nmax_sources = 65536\n\n[[policy]]\n"
               "name = \"" + std::string(kPolicy) + "\"\nproto = \"tcp\"\nports = [" +
               std::to_string(kApiPort) + "]\n" + body;
    }

    // Packets the data path counted under kPolicy with `verdict`.
    uint64_t counted(uint32_t verdict) {
        return bed_.receiver().run([&] {
            auto dp = sluice::Datapath::open(link_->receiverIf);
            uint64_t n = 0;
            for (const auto& sc : dp.counters())
                if (sc.policy == kPolicy)
                    n += sc.verdicts.at(verdict).packets;
            return n;
        });
    }

    Testbed bed_;
    Attachments peers_;
    Testbed::Link* link_ = nullptr;
    std::unique_ptr<SluiceRun> run_;
    std::unique_ptr<ApiServer> api_;
};

}  // namespace slit
