// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// HTTP clients for the scenario tests and the API benchmark: one request on
// a fresh connection from a chosen source address (raw sockets, much
// cheaper than a curl process per request), a flood of them from several
// threads, and a paced legitimate client that records its success and
// latency. Everything bounded in count and time.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api_server.h"
#include "netns.h"

namespace slit {

struct Probe {
    int status = 0;      // HTTP status; 0 without a response
    int err = 0;         // errno of a failed connect/send/recv (ECONNREFUSED, ETIMEDOUT, ...)
    double seconds = 0;  // connect to the end of the response
};

// GET `path` on a new connection from src to [dst]:port, `Connection: close`,
// reading to EOF, all within `timeout`.
Probe quickGet(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
               const std::string& path, Millis timeout = Millis(3000));

// Results by outcome: "200", "429", "refused", "timeout", "error".
using Outcomes = std::map<std::string, int>;
std::string outcomeOf(const Probe& p);

// `threads` loops sending quickGet from `sources` (round robin per thread)
// as fast as they get answers, until stop(), `maxRequests` or `limit`.
class HttpFlood {
public:
    HttpFlood(const Netns& ns, std::vector<std::string> sources, std::string dst, uint16_t port,
              std::string path, int threads, int maxRequests, Millis limit);
    ~HttpFlood();
    HttpFlood(const HttpFlood&) = delete;
    HttpFlood& operator=(const HttpFlood&) = delete;
    Outcomes stop();  // joins and returns what it got

private:
    std::atomic<bool> stop_{false};
    std::atomic<int> sent_{0};
    std::mutex mu_;
    Outcomes outcomes_;
    std::vector<std::thread> threads_;
};

// A legitimate client: one request every `interval` from `src`, `count`
// times. run() blocks until done.
struct LegitResult {
    int sent = 0, ok = 0;  // ok: HTTP 200
    std::vector<double> latencies;  // seconds, of the 200s
    Outcomes outcomes;
    double successRate() const { return sent ? double(ok) / sent : 0; }
    double p99() const;
};
LegitResult runLegit(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
                     const std::string& path, int count, Millis interval);

// An attack and legitimate clients against an ApiServer at the same time.
struct FloodPlan {
    std::vector<std::string> legitSources, attackSources;
    std::string dst;
    uint16_t port = 8080;
    std::string path = "/api/v1/heavy-task";
    int legitRequests = 4;        // per legitimate source
    Millis legitInterval{3000};
    int attackThreads = 16;
    int attackMaxRequests = 200000;
};
struct FloodReport {
    std::vector<LegitResult> legit;  // one per legitimate source
    Outcomes attack;
    double appCpuSeconds = 0;        // the app's CPU while it lasted
    double seconds = 0;              // how long it lasted
    ApiServer::Stats appAfter;
    int legitSent() const;
    int legitOk() const;
    double legitP99() const;         // over every legitimate source's 200s
};
// Starts the attack, runs the legitimate clients (in parallel threads) to
// their end, stops the attack. Bounded by the legitimate schedule + 10 s.
FloodReport runFlood(const Netns& clients, const ApiServer& api, const FloodPlan& plan);

}  // namespace slit
