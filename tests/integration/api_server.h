// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The real API of the scenario tests: tests/integration/apps/api.py (Flask)
// under gunicorn (Debian's /usr/bin/python3), in a test namespace, and curl
// as its client. The app counts what it serves; stats() asks it over the
// namespace's loopback, which no XDP program sees.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "netns.h"
#include "process.h"

namespace slit {

// Whether Debian's gunicorn, Flask and curl are installed.
bool apiStackInstalled(std::string* missing);

class ApiServer {
public:
    struct Options {
        uint16_t port = 8080;
        std::string log;            // gunicorn's output
        std::string limit;          // API_LIMIT: Flask-Limiter on heavy-task ("" = none)
        double heavySeconds = 0.02; // CPU one heavy-task request burns
        int threads = 4;
    };
    // Starts it ([::]:port, dual-stack) and waits until /health answers
    // (throws after 20 s). Brings the namespace's loopback up.
    ApiServer(const Netns& ns, Options options);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    struct Stats {
        std::map<std::string, int> served;  // "route status" -> requests
        std::map<std::string, int> heavyBySource;  // heavy-task 200s by client address
        double cpuSeconds = 0;              // the worker's user + system time
    };
    Stats stats() const;
    int served(const std::string& route, int status) const;

private:
    const Netns& ns_;
    Options options_;
    std::unique_ptr<ChildProcess> proc_;
};

struct HttpResult {
    int curlExit = -1;   // 0: a response came; 7: connection refused; 28: timeout
    int status = 0;      // HTTP status, 0 without a response
    std::map<std::string, std::string> headers;  // field names lower-cased
    std::string body;
    double seconds = 0;  // curl's time_total
};

// One GET with curl from inside `ns`, from source address `src` (one of the
// namespace's addresses), no keep-alive.
HttpResult httpGet(const Netns& ns, const std::string& src, const std::string& url,
                   Millis timeout = Millis(5000));

// http://addr:port/path with IPv6 addresses bracketed.
std::string urlOf(const std::string& addr, uint16_t port, const std::string& path);

}  // namespace slit
