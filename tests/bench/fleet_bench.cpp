// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The fleet sync's cost per node (docs/fleet.md, BENCHMARKS.md): Redis
// commands and bytes per second, the sync thread's CPU, Redis's own CPU and
// memory per source, with 1k and 100k sources active in every round (the
// worst case: each has new units every sync interval).
//
// One node's real sync engine (userspace/fleet.cpp) against a real
// redis-server it starts on 127.0.0.1 (a free port, a temporary dir, killed
// at exit). The data path is loaded without attaching (no traffic): the
// benchmark writes the unit counters into sluice_fleet_units itself, between
// rounds and outside the timed part, as the XDP program would. Root needed
// (BPF maps). Not part of `make test`: run `make bench-fleet`.
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "datapath.h"
#include "error.h"
#include "fleet.h"

using namespace sluice;

namespace {

constexpr uint64_t kIntervalNs = 100'000'000;  // the default sync_interval

uint64_t threadCpuNs()
{
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return uint64_t(ts.tv_sec) * kNsPerSecond + uint64_t(ts.tv_nsec);
}

uint16_t freePort()
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

class Redis {
public:
    Redis()
    {
        char tmpl[] = "/tmp/sluice-fleet-bench-XXXXXX";
        if (!mkdtemp(tmpl))
            throwRuntime("mkdtemp failed");
        dir_ = tmpl;
        port_ = freePort();
        pid_ = fork();
        if (pid_ == 0) {
            std::string port = std::to_string(port_), log = dir_ + "/redis.log";
            execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--dir", dir_.c_str(), "--logfile", log.c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        for (int i = 0; i < 100 && !ctx_; i++) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            redisContext* c = redisConnect("127.0.0.1", port_);
            if (c && !c->err)
                ctx_ = c;
            else if (c)
                redisFree(c);
        }
        if (!ctx_)
            throwRuntime("redis-server did not start");
    }
    ~Redis()
    {
        if (ctx_)
            redisFree(ctx_);
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        std::string rm = "rm -rf " + dir_;
        (void)!system(rm.c_str());
    }
    uint16_t port() const { return port_; }

    // A field of INFO, as a number.
    double info(const char* field)
    {
        auto* r = static_cast<redisReply*>(redisCommand(ctx_, "INFO"));
        double v = 0;
        if (r && r->type == REDIS_REPLY_STRING) {
            std::string text(r->str, r->len), key = std::string(field) + ":";
            size_t at = text.find(key);
            if (at != std::string::npos)
                v = std::stod(text.substr(at + key.size()));
        }
        freeReplyObject(r);
        return v;
    }
    void flush() { freeReplyObject(redisCommand(ctx_, "FLUSHALL")); }

private:
    std::string dir_;
    uint16_t port_ = 0;
    pid_t pid_ = -1;
    redisContext* ctx_ = nullptr;
};

struct Result {
    size_t sources = 0;
    int rounds = 0;
    double commandsPerSec = 0, bytesOutPerSec = 0, bytesInPerSec = 0;
    double syncCpuMsPerRound = 0, syncWallMsPerRound = 0, syncCpuShare = 0;
    double redisCpuShare = 0, redisBytesPerSource = 0;
};

Result run(Redis& redis, size_t sources, int rounds)
{
    redis.flush();
    Datapath dp = Datapath::loadUnattached(static_cast<uint32_t>(sources + 1024));
    Ruleset rules;
    Policy p;
    p.name = "heavy-task";
    p.proto = Proto::Tcp;
    p.ports = {{8080, 8080}};
    // Never over: the cost of counting, not of marking.
    p.limits = {Limit{LimitKind::Connections, 1'000'000'000, 60 * kNsPerSecond, 0}};
    p.scope = Scope::Fleet;
    rules.policies = {p};
    dp.install(rules);
    auto installed = dp.installedPolicies();
    FleetTarget target{"bench", dp.mapFd("sluice_fleet_units"), dp.mapFd("sluice_fleet_over"), installed};

    std::vector<sluice_source_key> keys(sources);
    std::vector<sluice_fleet_units> values(sources);
    for (size_t i = 0; i < sources; i++) {
        keys[i].state_tag = installed.at(0).stateTag;
        keys[i].addr[2] = htonl(0xffff);
        keys[i].addr[3] = htonl(0x0a000000u + uint32_t(i));  // 10.0.0.0 + i
    }
    auto bump = [&](uint64_t n) {
        for (auto& v : values)
            v.units[0] = n;
        uint32_t count = static_cast<uint32_t>(sources);
        if (int err = bpf_map_update_batch(target.unitsFd, keys.data(), values.data(), &count, nullptr))
            throwSys("bpf_map_update_batch", err);
    };

    FleetConfig config;
    config.redis = {parseRedisUrl("redis://127.0.0.1:" + std::to_string(redis.port()))};
    config.node = "bench-1";
    config.syncIntervalNs = kIntervalNs;
    FleetEngine engine(config);
    engine.baseline({target});

    Result r;
    r.sources = sources;
    r.rounds = rounds;
    double memBefore = redis.info("used_memory");
    uint64_t commands = 0, bytesOut = 0, bytesIn = 0, cpuNs = 0, wallNs = 0;
    double redisCpu0 = redis.info("used_cpu_user") + redis.info("used_cpu_sys");
    for (int round = 1; round <= rounds; round++) {
        bump(uint64_t(round));
        uint64_t c0 = threadCpuNs();
        auto w0 = std::chrono::steady_clock::now();
        FleetRound fr = engine.round({target}, false);
        wallNs += uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - w0).count());
        cpuNs += threadCpuNs() - c0;
        if (fr.shardsFailed || fr.items != sources)
            throwRuntime("round " + std::to_string(round) + " synced " + std::to_string(fr.items) + " of " +
                         std::to_string(sources) + " sources");
        commands += fr.commands;
        bytesOut += fr.bytesOut;
        bytesIn += fr.bytesIn;
    }
    double redisCpu = redis.info("used_cpu_user") + redis.info("used_cpu_sys") - redisCpu0;
    double perSec = double(kNsPerSecond) / double(kIntervalNs) / rounds;  // per round -> per second
    r.commandsPerSec = double(commands) * perSec;
    r.bytesOutPerSec = double(bytesOut) * perSec;
    r.bytesInPerSec = double(bytesIn) * perSec;
    r.syncCpuMsPerRound = double(cpuNs) / 1e6 / rounds;
    r.syncWallMsPerRound = double(wallNs) / 1e6 / rounds;
    r.syncCpuShare = double(cpuNs) / rounds / double(kIntervalNs);
    r.redisCpuShare = redisCpu * 1e9 / rounds / double(kIntervalNs);
    r.redisBytesPerSource = (redis.info("used_memory") - memBefore) / double(sources);
    return r;
}

}  // namespace

int main(int argc, char** argv)
{
    try {
        std::vector<size_t> sizes = {1000, 100000};
        if (argc > 1)
            sizes = {std::stoul(argv[1])};
        Redis redis;
        std::printf("| active sources | rounds | Redis commands/s | bytes/s to Redis | bytes/s from Redis | "
                    "sync CPU per round | sync wall per round | sync CPU (share of a core) | "
                    "Redis CPU (share of a core) | Redis memory per source |\n");
        std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
        for (size_t n : sizes) {
            Result r = run(redis, n, n >= 50000 ? 10 : 50);
            std::printf("| %zu | %d | %.0f | %.0f | %.0f | %.2f ms | %.2f ms | %.1f%% | %.1f%% | %.0f B |\n",
                        r.sources, r.rounds, r.commandsPerSec, r.bytesOutPerSec, r.bytesInPerSec,
                        r.syncCpuMsPerRound, r.syncWallMsPerRound, 100 * r.syncCpuShare, 100 * r.redisCpuShare,
                        r.redisBytesPerSource);
            std::fflush(stdout);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fleet_bench: %s\n", e.what());
        return 1;
    }
}
