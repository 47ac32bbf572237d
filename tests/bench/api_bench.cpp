// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The same flood against the same Flask app, protected three ways, one
// after the other in one run: not at all, by Flask-Limiter inside the app
// ("5 per minute" on the route, memory storage, keyed by client address),
// and by sluice (the same limit per source, action respond, the app left
// alone). For each: the legitimate clients' success rate and p99 latency,
// the app's CPU seconds, and what the attackers got. `make bench-api`
// (root); figures go to BENCHMARKS.md. Bounded: each round is the
// legitimate schedule (5 requests, one per 3 s per client) plus at most 10 s.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "api_server.h"
#include "http_load.h"
#include "netns.h"
#include "paths.h"
#include "sluice_run.h"

using namespace slit;

namespace {

constexpr uint16_t kPort = 8080;
const char* const kLimit = "5 per minute";

struct Round {
    std::string name;
    FloodReport report;
    int attackServed = 0;
};

Round runRound(const std::string& name, Testbed& bed, Testbed::Link& link, const std::string& appLimit,
               bool withSluice, const std::string& dir) {
    ApiServer::Options app;
    app.port = kPort;
    app.log = dir + "/gunicorn-" + std::to_string(getpid()) + ".log";
    app.limit = appLimit;
    ApiServer api(bed.receiver(), app);
    std::unique_ptr<SluiceRun> run;
    if (withSluice) {
        run = std::make_unique<SluiceRun>(bed.receiver(), std::vector<std::string>{link.receiverIf});
        run->writeConfig("[sluice]\ninterfaces = [\"" + link.receiverIf +
                         "\"]\nmax_sources = 65536\n\n[[policy]]\nname = \"heavy-task\"\nproto = \"tcp\"\n"
                         "ports = [8080]\nconnections = \"" + std::string(kLimit) + "\"\naction = \"respond\"\n");
        if (!run->start())
            throw std::runtime_error("sluice run did not start:\n" + run->log());
    }
    FloodPlan plan;
    plan.legitSources = {link.client4[0], link.client4[1]};
    plan.attackSources.assign(link.client4.begin() + 2, link.client4.end());
    plan.dst = link.receiver4;
    plan.legitRequests = 5;  // within "5 per minute": one every 3 s
    plan.legitInterval = Millis(3000);
    Round r{name, runFlood(*link.client, api, plan), 0};
    for (const auto& src : plan.attackSources)
        r.attackServed += r.report.appAfter.heavyBySource[src];
    return r;
}

std::string outcomes(const Outcomes& o) {
    std::string s;
    for (const auto& [k, v] : o)
        s += (s.empty() ? "" : ", ") + std::to_string(v) + " " + k;
    return s;
}

}  // namespace

int main() {
    try {
        char tmpl[] = "/tmp/sluice-api-bench-XXXXXX";
        if (!mkdtemp(tmpl))
            throw std::runtime_error("mkdtemp failed");
        std::string dir = tmpl;
        Testbed bed;
        Testbed::Link& link = bed.addClient(14, 0);
        std::vector<Round> rounds;
        rounds.push_back(runRound("unprotected", bed, link, "", false, dir));
        rounds.push_back(runRound("Flask-Limiter (in the app)", bed, link, kLimit, false, dir));
        rounds.push_back(runRound("sluice (respond)", bed, link, "", true, dir));
        runCmd({"rm", "-rf", dir});

        std::printf("Flood: 12 attacker addresses, 16 threads, new connection per request, as fast as answers "
                    "come; 2 legitimate clients, 5 requests each (within the limit), one per 3 s; limit \"%s\" per source on "
                    "/api/v1/heavy-task (20 ms of CPU per request).\n\n",
                    kLimit);
        std::printf("| protection | legitimate success | legitimate p99 | app CPU | attack requests answered | "
                    "attack requests the app served |\n|---|---|---|---|---|---|\n");
        for (const auto& r : rounds) {
            const FloodReport& f = r.report;
            std::printf("| %s | %d/%d (%.1f%%) | %.3f s | %.2f s in %.1f s (%.0f%% of one CPU) | %s | %d |\n",
                        r.name.c_str(), f.legitOk(), f.legitSent(), 100.0 * f.legitOk() / f.legitSent(),
                        f.legitP99(), f.appCpuSeconds, f.seconds, 100.0 * f.appCpuSeconds / f.seconds,
                        outcomes(f.attack).c_str(), r.attackServed);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "api_bench: %s\n", e.what());
        return 1;
    }
}
