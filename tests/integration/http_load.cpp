// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "http_load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

namespace slit {

namespace {

// Waits for `events` on fd until the deadline; false on timeout.
bool waitFor(int fd, short events, int64_t deadlineNs) {
    for (;;) {
        int64_t left = (deadlineNs - monoNs()) / 1'000'000;
        if (left <= 0)
            return false;
        pollfd p{fd, events, 0};
        int r = poll(&p, 1, int(left));
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

}  // namespace

Probe quickGet(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
               const std::string& path, Millis timeout) {
    Probe pr;
    const int64_t start = monoNs(), deadline = start + int64_t(timeout.count()) * 1'000'000;
    const bool v6 = isV6(dst);
    int fd = ns.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    if (fd < 0) {
        pr.err = errno;
        return pr;
    }
    sockaddr_storage local{}, peer{};
    socklen_t len;
    if (v6) {
        auto& l = reinterpret_cast<sockaddr_in6&>(local);
        auto& r = reinterpret_cast<sockaddr_in6&>(peer);
        l.sin6_family = r.sin6_family = AF_INET6;
        inet_pton(AF_INET6, src.c_str(), &l.sin6_addr);
        inet_pton(AF_INET6, dst.c_str(), &r.sin6_addr);
        r.sin6_port = htons(port);
        len = sizeof(sockaddr_in6);
    } else {
        auto& l = reinterpret_cast<sockaddr_in&>(local);
        auto& r = reinterpret_cast<sockaddr_in&>(peer);
        l.sin_family = r.sin_family = AF_INET;
        inet_pton(AF_INET, src.c_str(), &l.sin_addr);
        inet_pton(AF_INET, dst.c_str(), &r.sin_addr);
        r.sin_port = htons(port);
        len = sizeof(sockaddr_in);
    }
    auto fail = [&](int err) {
        pr.err = err;
        pr.seconds = double(monoNs() - start) / 1e9;
        close(fd);
        return pr;
    };
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), len))
        return fail(errno);
    if (connect(fd, reinterpret_cast<sockaddr*>(&peer), len) && errno != EINPROGRESS)
        return fail(errno);
    if (!waitFor(fd, POLLOUT, deadline))
        return fail(ETIMEDOUT);
    int soErr = 0;
    socklen_t el = sizeof soErr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &el);
    if (soErr)
        return fail(soErr);
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size()))
        return fail(errno ? errno : EIO);
    std::string got;
    char buf[2048];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            got.append(buf, size_t(n));
            continue;
        }
        if (n == 0)
            break;
        if (errno == EAGAIN || errno == EINTR) {
            if (!waitFor(fd, POLLIN, deadline))
                return fail(ETIMEDOUT);
            continue;
        }
        if (got.empty())
            return fail(errno);
        break;  // a reset after the answer: the answer counts
    }
    close(fd);
    pr.seconds = double(monoNs() - start) / 1e9;
    if (got.rfind("HTTP/1.", 0) == 0 && got.size() > 12)
        pr.status = std::atoi(got.c_str() + 9);
    else
        pr.err = EPROTO;
    return pr;
}

std::string outcomeOf(const Probe& p) {
    if (p.status)
        return std::to_string(p.status);
    if (p.err == ECONNREFUSED || p.err == ECONNRESET)
        return "refused";
    if (p.err == ETIMEDOUT)
        return "timeout";
    return "error";
}

HttpFlood::HttpFlood(const Netns& ns, std::vector<std::string> sources, std::string dst, uint16_t port,
                     std::string path, int threads, int maxRequests, Millis limit) {
    const int64_t end = monoNs() + int64_t(limit.count()) * 1'000'000;
    for (int t = 0; t < threads; t++)
        threads_.emplace_back([=, this, &ns] {
            Outcomes mine;
            for (size_t i = size_t(t); !stop_ && monoNs() < end && sent_++ < maxRequests; i++) {
                Probe p = quickGet(ns, sources[i % sources.size()], dst, port, path, Millis(2000));
                mine[outcomeOf(p)]++;
            }
            std::lock_guard lock(mu_);
            for (const auto& [k, v] : mine)
                outcomes_[k] += v;
        });
}

HttpFlood::~HttpFlood() { stop(); }

Outcomes HttpFlood::stop() {
    stop_ = true;
    for (auto& t : threads_)
        if (t.joinable())
            t.join();
    std::lock_guard lock(mu_);
    return outcomes_;
}

double LegitResult::p99() const {
    if (latencies.empty())
        return 0;
    std::vector<double> v = latencies;
    std::sort(v.begin(), v.end());
    size_t idx = size_t(std::ceil(0.99 * double(v.size()))) - 1;
    return v[std::min(idx, v.size() - 1)];
}

LegitResult runLegit(const Netns& ns, const std::string& src, const std::string& dst, uint16_t port,
                     const std::string& path, int count, Millis interval) {
    LegitResult r;
    int64_t next = monoNs();
    for (int i = 0; i < count; i++) {
        Probe p = quickGet(ns, src, dst, port, path, Millis(5000));
        r.sent++;
        r.outcomes[outcomeOf(p)]++;
        if (p.status == 200) {
            r.ok++;
            r.latencies.push_back(p.seconds);
        }
        next += int64_t(interval.count()) * 1'000'000;
        int64_t wait = next - monoNs();
        if (wait > 0)
            std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
    }
    return r;
}

int FloodReport::legitSent() const {
    int n = 0;
    for (const auto& l : legit)
        n += l.sent;
    return n;
}

int FloodReport::legitOk() const {
    int n = 0;
    for (const auto& l : legit)
        n += l.ok;
    return n;
}

double FloodReport::legitP99() const {
    LegitResult all;
    for (const auto& l : legit)
        all.latencies.insert(all.latencies.end(), l.latencies.begin(), l.latencies.end());
    return all.p99();
}

FloodReport runFlood(const Netns& clients, const ApiServer& api, const FloodPlan& plan) {
    FloodReport report;
    double cpuBefore = api.stats().cpuSeconds;
    const int64_t start = monoNs();
    Millis bound(plan.legitRequests * plan.legitInterval.count() + 10000);
    HttpFlood attack(clients, plan.attackSources, plan.dst, plan.port, plan.path, plan.attackThreads,
                     plan.attackMaxRequests, bound);
    report.legit.resize(plan.legitSources.size());
    std::vector<std::thread> legit;
    for (size_t i = 0; i < plan.legitSources.size(); i++)
        legit.emplace_back([&, i] {
            report.legit[i] = runLegit(clients, plan.legitSources[i], plan.dst, plan.port, plan.path,
                                       plan.legitRequests, plan.legitInterval);
        });
    for (auto& t : legit)
        t.join();
    report.attack = attack.stop();
    report.seconds = double(monoNs() - start) / 1e9;
    report.appAfter = api.stats();
    report.appCpuSeconds = report.appAfter.cpuSeconds - cpuBefore;
    return report;
}

}  // namespace slit
