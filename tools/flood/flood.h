// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sluice-flood's engine: loads bpf/flood.bpf.c for one template frame and
// source pool, and transmits with BPF_PROG_TEST_RUN + live frames (XDP_TX out
// of the bound device), bounded by a frame count and a duration, optionally
// paced per batch.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frame.h"

namespace flood {

enum class SourceMode { Fixed, Pool, Random };
enum class CsumMode { Incremental, Full };

struct Options {
    std::string dev;
    FrameSpec frame;           // frame.src: the fixed address, or the pool's first
    SourceMode sources = SourceMode::Fixed;
    uint32_t poolSize = 1;     // SourceMode::Pool
    Prefix prefix;             // SourceMode::Random (and the bound of a pool)
    CsumMode csum = CsumMode::Incremental;
    uint64_t count = 0;        // upper bound on frames, > 0
    double durationSec = 0;    // upper bound on time, > 0
    uint64_t ratePps = 0;      // 0: as fast as possible
    uint32_t batch = 64;       // frames per kernel batch (and per pacing step)
};

struct Result {
    uint64_t frames = 0;       // frames the program ran on (each one XDP_TX'd)
    double seconds = 0;        // wall time of the send loop
    double pps = 0;
    double mbps = 0;           // frame bytes, without preamble and FCS
    bool stopped = false;      // interrupted (SIGINT/SIGTERM)
    std::string endedBy;       // "count", "duration" or "signal"
    // The device's own counters of frames it handed to its peer (veth:
    // tx_queue_*_xdp_xmit[_errors]); -1 when the driver has none.
    int64_t xmit = -1, xmitErrors = -1;
    uint64_t kernelNsPerFrame = 0;  // the last test run's average
};

class Flood {
public:
    // Validates options, builds the frame, loads the program. Throws
    // UsageError for bad options, std::runtime_error for system failures.
    explicit Flood(const Options& options);
    ~Flood();
    Flood(const Flood&) = delete;
    Flood& operator=(const Flood&) = delete;

    // Sends; `stop` (if given) is polled between kernel calls.
    Result run(const std::atomic<bool>* stop = nullptr);

    // Runs the program once on `in` without live frames (nothing is sent)
    // and returns the frame as it would leave: for tests of the rewrite.
    std::vector<uint8_t> rewriteOnce(const std::vector<uint8_t>& in);

    const Frame& frame() const { return frame_; }
    const Options& options() const { return opt_; }
    std::string describeSources() const;
    // Why each kernel call pays an RCU grace period, if it does ("" if not).
    const std::string& slowCallNote() const { return parkNote_; }

private:
    struct Impl;
    Options opt_;
    Frame frame_;
    int ifindex_ = 0;
    std::string parkNote_;
    std::unique_ptr<Impl> impl_;
};

// The device's MAC address (in the current network namespace).
Mac deviceMac(const std::string& dev);

// Moves the process (single-threaded at that point) into /run/netns/NAME.
void enterNetns(const std::string& name);

}  // namespace flood
