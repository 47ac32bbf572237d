// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// `sluice run`: the long-running controller. It attaches sluice to the
// configured interfaces (adopting live ones, so a restart resets no bucket),
// keeps the installed ruleset in step with the config file (SIGHUP or a change
// of the file), and on SIGTERM/SIGINT detaches, or with --keep-on-exit leaves
// the programs and pins in place so protection continues while it is down.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datapath.h"
#include "responder.h"

namespace sluice {

struct DaemonOptions {
    std::string configPath;
    bool keepOnExit = false;
    XdpMode mode = XdpMode::Auto;  // for interfaces it attaches, not ones it adopts
    // --force: skip the lockout check (lockout.h) at start and on reloads.
    // Without it a config that could lock out the operator is refused: at
    // start with exit 2, on a reload by keeping the running config.
    bool force = false;
    // --interface: these replace the config's `[sluice] interfaces`, at
    // start and at every reload (one config file for hosts whose NICs differ).
    std::vector<std::string> interfaces;
};

// What the running daemon has done so far, for /metrics.
struct DaemonStats {
    uint64_t reloadsOk = 0;
    uint64_t reloadsFailed = 0;
    // Rebuilds of a managed interface's source filter (it was due:
    // KnownFilterState::wantsRebuild).
    uint64_t sourceFilterRebuilds = 0;
    // sluice's program found taken off a managed interface and attached
    // again (at a check or a reload).
    uint64_t reattaches = 0;
    std::vector<std::string> interfaces;  // managed now, in config order
    // The 429 responder of action respond; when it is not running, respond
    // policies fall back to reject.
    bool responderRunning = false;
    ResponderStats responder;
};

// A consistent snapshot of this process's daemon; safe from any thread.
// All zero and empty before runDaemon starts.
DaemonStats daemonStats();

// Runs until SIGTERM or SIGINT and returns the process exit code: 0 after a
// clean stop, 1 on a runtime error, 2 when the config is bad or could lock
// out the operator at start (then nothing was changed). Logs one line per
// event to stderr. Blocks SIGHUP, SIGTERM and SIGINT in the calling thread
// and leaves them blocked: call it before starting other threads, which then
// inherit the mask (a thread that did not would take the signals with their
// default action).
int runDaemon(const DaemonOptions& options);

}  // namespace sluice
