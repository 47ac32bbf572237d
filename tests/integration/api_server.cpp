// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "api_server.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "paths.h"

namespace slit {

namespace {

bool executable(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IXUSR);
}

}  // namespace

bool apiStackInstalled(std::string* missing) {
    std::vector<std::string> gone;
    if (!executable("/usr/bin/python3"))
        gone.push_back("/usr/bin/python3");
    else if (runCmd({"/usr/bin/python3", "-c", "import flask, flask_limiter, gunicorn"}).status != 0)
        gone.push_back("python3-flask python3-flask-limiter gunicorn");
    if (!executable("/usr/bin/curl"))
        gone.push_back("curl");
    if (missing) {
        missing->clear();
        for (const auto& g : gone)
            *missing += (missing->empty() ? "" : " ") + g;
    }
    return gone.empty();
}

std::string urlOf(const std::string& addr, uint16_t port, const std::string& path) {
    return "http://" + (isV6(addr) ? "[" + addr + "]" : addr) + ":" + std::to_string(port) + path;
}

ApiServer::ApiServer(const Netns& ns, Options options) : ns_(ns), options_(std::move(options)) {
    ns_.ip({"link", "set", "lo", "up"});
    std::vector<std::string> args = {
        "/usr/bin/env",
        "API_LIMIT=" + options_.limit,
        "API_HEAVY_SECONDS=" + std::to_string(options_.heavySeconds),
        "/usr/bin/python3", "-m", "gunicorn",
        "--chdir", sourceDir() + "/tests/integration/apps",
        "--bind", "[::]:" + std::to_string(options_.port),
        "--workers", "1", "--threads", std::to_string(options_.threads),
        // A request over keep-alive must not pin a thread past the test.
        "--keep-alive", "1", "--graceful-timeout", "1",
        "api:app"};
    proc_ = std::make_unique<ChildProcess>(&ns_, args, options_.log);
    const int64_t end = monoNs() + 20'000'000'000LL;
    while (monoNs() < end) {
        HttpResult r = httpGet(ns_, "127.0.0.1", urlOf("127.0.0.1", options_.port, "/health"), Millis(1000));
        if (r.status == 200)
            return;
        if (proc_->wait(Millis(100)))
            break;  // it exited: its log says why
    }
    std::string log = readFile(options_.log);
    proc_.reset();
    throw std::runtime_error("gunicorn did not serve /health within 20 s; its log:\n" + log);
}

ApiServer::~ApiServer() {
    if (proc_) {
        proc_->signal(SIGTERM);
        if (!proc_->wait(Millis(3000)))
            proc_->signal(SIGKILL);
    }
}

ApiServer::Stats ApiServer::stats() const {
    HttpResult r = httpGet(ns_, "127.0.0.1", urlOf("127.0.0.1", options_.port, "/stats"));
    if (r.status != 200)
        throw std::runtime_error("GET /stats from the app failed (curl exit " + std::to_string(r.curlExit) +
                                 ", status " + std::to_string(r.status) + ")");
    auto j = nlohmann::json::parse(r.body);
    Stats s;
    for (const auto& [k, v] : j.at("served").items())
        s.served[k] = v.get<int>();
    for (const auto& [k, v] : j.at("heavy_task_by_source").items())
        s.heavyBySource[k] = v.get<int>();
    s.cpuSeconds = j.at("cpu_seconds").get<double>();
    return s;
}

int ApiServer::served(const std::string& route, int status) const {
    auto s = stats();
    auto it = s.served.find(route + " " + std::to_string(status));
    return it == s.served.end() ? 0 : it->second;
}

HttpResult httpGet(const Netns& ns, const std::string& src, const std::string& url, Millis timeout) {
    // -i: the head and the body on stdout; -w: what curl measured, after it.
    const std::string marker = "\n@@curl@@";
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", timeout.count() / 1000.0);
    CmdResult c = runCmd({"nsenter", "--net=" + ns.path(), "/usr/bin/curl", "-s", "-i", "--http1.1",
                          "--interface", src, "-m", seconds, "-H", "Connection: close", "-w",
                          marker + "%{http_code} %{time_total}", url});
    HttpResult r;
    r.curlExit = c.status;
    size_t at = c.out.rfind(marker);
    if (at == std::string::npos)
        return r;
    std::sscanf(c.out.c_str() + at + marker.size(), "%d %lf", &r.status, &r.seconds);
    std::string resp = c.out.substr(0, at);
    size_t headEnd = resp.find("\r\n\r\n");
    if (headEnd == std::string::npos)
        return r;
    r.body = resp.substr(headEnd + 4);
    size_t pos = resp.find("\r\n");
    while (pos != std::string::npos && pos < headEnd) {
        size_t next = resp.find("\r\n", pos + 2);
        std::string line = resp.substr(pos + 2, next - pos - 2);
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char ch) { return std::tolower(ch); });
            size_t v = line.find_first_not_of(' ', colon + 1);
            r.headers[name] = v == std::string::npos ? "" : line.substr(v);
        }
        pos = next;
    }
    return r;
}

}  // namespace slit
