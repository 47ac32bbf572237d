// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// build/sluice-flood as the integration tests run it: inside a link's
// client namespace, out of its veth end, into the receiver's end (whose MAC
// it needs), bounded by the --count and --duration the caller gives.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "netns.h"
#include "paths.h"
#include "process.h"

namespace slit {

inline std::string floodBinary() { return buildDir() + "/sluice-flood"; }

// The MAC address of IFACE in NS, from `ip -o link show`.
inline std::string macOf(const Netns& ns, const std::string& iface) {
    std::string out = ns.ip({"-o", "link", "show", iface});
    auto at = out.find("link/ether ");
    if (at == std::string::npos)
        throw std::runtime_error("no MAC address for " + iface + " in: " + out);
    return out.substr(at + 11, 17);
}

// Starts sluice-flood from link.client to the receiver's veth; `args` adds
// the rest (--dst, --count, --duration, ...). Output goes to `log`.
inline std::unique_ptr<ChildProcess> startFlood(const Netns& receiver, const Testbed::Link& link,
                                                const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> argv = {floodBinary(), "--netns", link.client->name(), "--dev", link.clientIf,
                                     "--dst-mac", macOf(receiver, link.receiverIf)};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<ChildProcess>(nullptr, argv, log);
}

}  // namespace slit
