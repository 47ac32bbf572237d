// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// How much a flood of over-limit connections costs action respond's
// responder: connections answered with 429 per second, and the daemon's
// memory and CPU. `sluice run` protects a port of a test namespace with
// "1 per hour" under action respond; client threads in another namespace
// open connections from several addresses, send a request, read the 429 and
// close, as fast as they can. Bounded by count and time. Not a test: the
// figures go to BENCHMARKS.md. `make bench-responder` (root).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "netns.h"
#include "paths.h"
#include "sluice_run.h"

using namespace slit;

namespace {

constexpr uint16_t kPort = 8080;

struct ProcUsage {
    long rssKiB = 0, peakKiB = 0;
    double cpuSeconds = 0;
};

ProcUsage usageOf(pid_t pid) {
    ProcUsage u;
    std::istringstream status(readFile("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0)
            u.rssKiB = std::stol(line.substr(6));
        if (line.rfind("VmHWM:", 0) == 0)
            u.peakKiB = std::stol(line.substr(6));
    }
    // /proc/PID/stat: utime and stime are fields 14 and 15, after "(comm)".
    std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; i++) {
        if (i == 14)
            utime = std::stoul(field);
        if (i == 15)
            stime = std::stoul(field);
    }
    u.cpuSeconds = double(utime + stime) / double(sysconf(_SC_CLK_TCK));
    return u;
}

// One connection: connect, request, read to EOF; true if it was a 429.
bool oneRequest(const Netns& ns, const std::string& src, const std::string& dst) {
    int fd = ns.socket(AF_INET, SOCK_STREAM);
    if (fd < 0)
        return false;
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in local{}, peer{};
    local.sin_family = peer.sin_family = AF_INET;
    inet_pton(AF_INET, src.c_str(), &local.sin_addr);
    inet_pton(AF_INET, dst.c_str(), &peer.sin_addr);
    peer.sin_port = htons(kPort);
    bool ok = false;
    static const char kReq[] = "GET /api/v1/heavy-task HTTP/1.1\r\nHost: bench\r\n\r\n";
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0 &&
        connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer) == 0 &&
        send(fd, kReq, sizeof kReq - 1, MSG_NOSIGNAL) == ssize_t(sizeof kReq - 1)) {
        char buf[1024];
        std::string got;
        ssize_t n;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
            got.append(buf, size_t(n));
        ok = got.rfind("HTTP/1.1 429 ", 0) == 0;
    }
    close(fd);
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    int total = 20000, threads = 16;
    double seconds = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--connections")
            total = std::stoi(argv[i + 1]);
        else if (a == "--threads")
            threads = std::stoi(argv[i + 1]);
        else if (a == "--seconds")
            seconds = std::stod(argv[i + 1]);
    }
    try {
        Testbed bed;
        Testbed::Link& link = bed.addClient(4, 0);
        SluiceRun run(bed.receiver(), {link.receiverIf});
        run.writeConfig("[sluice]\ninterfaces = [\"" + link.receiverIf +
                        "\"]\n\n[[policy]]\nname = \"api\"\nproto = \"tcp\"\nports = [" + std::to_string(kPort) +
                        "]\nconnections = \"1 per hour\"\naction = \"respond\"\n");
        if (!run.start()) {
            std::fprintf(stderr, "sluice run did not start:\n%s", run.log().c_str());
            return 1;
        }
        ProcUsage before = usageOf(run.pid());
        std::atomic<int> next{0}, answered{0}, failed{0};
        const int64_t start = monoNs(), end = start + int64_t(seconds * 1e9);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; t++)
            pool.emplace_back([&, t] {
                const std::string& src = link.client4[size_t(t) % link.client4.size()];
                while (next++ < total && monoNs() < end)
                    (oneRequest(*link.client, src, link.receiver4) ? answered : failed)++;
            });
        for (auto& th : pool)
            th.join();
        double elapsed = double(monoNs() - start) / 1e9;
        ProcUsage after = usageOf(run.pid());
        std::printf("responder under a flood of over-limit connections (%d client threads, %zu sources)\n",
                    threads, link.client4.size());
        std::printf("  connections answered 429: %d, failed: %d, in %.2f s\n", answered.load(), failed.load(),
                    elapsed);
        std::printf("  answered per second: %.0f\n", answered / elapsed);
        std::printf("  sluice run CPU: %.2f s (%.1f us per answered connection)\n",
                    after.cpuSeconds - before.cpuSeconds,
                    answered ? (after.cpuSeconds - before.cpuSeconds) * 1e6 / answered : 0.0);
        std::printf("  sluice run RSS: %ld KiB before, %ld KiB after, peak %ld KiB\n", before.rssKiB, after.rssKiB,
                    after.peakKiB);
        return failed > total / 100 ? 1 : 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "responder_bench: %s\n", e.what());
        return 1;
    }
}
