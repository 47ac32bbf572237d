// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sluice attached by the test itself (through libsluice, not the CLI) to
// interfaces of test namespaces, undone even when a test fails.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "datapath.h"
#include "netns.h"
#include "paths.h"

namespace slit {

// sluice attached (native) to interfaces of namespaces; detached and its pins
// removed on destruction, even when a test fails.
class Attachments {
public:
    ~Attachments()
    {
        for (auto& [ns, iface] : list_) {
            try {
                ns->run([&] { sluice::Datapath::detach(iface); });
            } catch (const std::exception& e) {
                std::fprintf(stderr, "[slit] cleanup: detach %s: %s\n", iface.c_str(), e.what());
            }
            if (access(pinDirOf(iface).c_str(), F_OK) == 0)
                runCmd({"rm", "-rf", pinDirOf(iface)});
            unregisterPinDir(pinDirOf(iface));
        }
        rmdir(SLUICE_PIN_ROOT);  // only succeeds when no interface is left
    }

    sluice::Datapath attach(Netns& ns, const std::string& iface)
    {
        registerPinDir(pinDirOf(iface));
        list_.emplace_back(&ns, iface);
        return ns.run([&] {
            return sluice::Datapath::attach(sluice::AttachOptions{iface, sluice::XdpMode::Native, 4096});
        });
    }

private:
    std::vector<std::pair<Netns*, std::string>> list_;
};

// Lets a veth end receive frames that its peer XDP_TXes or redirects to it:
// an XDP program of its own (sluice with no policy: everything passes). GRO
// alone (`ethtool -K IF gro on`) did not do it on kernel 6.18.
inline void enableXdpReceive(Netns& ns, const std::string& iface, Attachments& att)
{
    sluice::Datapath dp = att.attach(ns, iface);
    dp.install(sluice::Ruleset{});
}

}  // namespace slit
