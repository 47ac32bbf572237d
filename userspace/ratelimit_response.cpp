// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "ratelimit_response.h"

#include <algorithm>

namespace sluice {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000ULL;

// Whole seconds, rounded up: a client that waits this long finds a unit.
uint64_t ceilSeconds(uint64_t ns)
{
    return ns / kNsPerSecond + (ns % kNsPerSecond != 0);
}

// A quoted string both as an RFC 8941 sf-string and as JSON: in both only
// '"' and '\' need a backslash, and policy names and limit texts are
// printable ASCII (config.cpp).
std::string quoted(const std::string& s)
{
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

// Each limit is one policy item; a policy with several gets "name/2", ...
std::string itemName(const std::string& policy, size_t index)
{
    return index == 0 ? policy : policy + "/" + std::to_string(index + 1);
}

std::string response(uint64_t retryAfterS, const std::string& extraFields, const std::string& message)
{
    std::string body = "{\"error\": \"ratelimit exceeded\", \"message\": " + quoted(message) + "}";
    return "HTTP/1.1 429 Too Many Requests\r\n"
           "Content-Type: application/json\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n"
           "Retry-After: " + std::to_string(retryAfterS) + "\r\n" +
           extraFields +
           "Connection: close\r\n"
           "\r\n" + body;
}

}  // namespace

std::string tooManyRequestsResponse(const RespondedConnection& conn)
{
    if (conn.limits.empty())
        return tooManyRequestsResponse();
    // The binding limit: the longest wait; among equal waits, the first.
    size_t worst = 0;
    for (size_t i = 1; i < conn.limits.size(); i++)
        if (conn.limits[i].retryAfterNs > conn.limits[worst].retryAfterNs)
            worst = i;
    const LimitState& w = conn.limits[worst];
    // The refusal happened already: even a bucket that has refilled by now
    // is reported as "retry in 1 s", never 0.
    uint64_t retry = std::max<uint64_t>(1, ceilSeconds(w.retryAfterNs));

    std::string policyField = "RateLimit-Policy: ";
    for (size_t i = 0; i < conn.limits.size(); i++) {
        const Limit& l = conn.limits[i].limit;
        if (i)
            policyField += ", ";
        policyField += quoted(itemName(conn.policy, i)) + ";q=" + std::to_string(l.count) +
                       ";w=" + std::to_string(std::max<uint64_t>(1, ceilSeconds(l.periodNs)));
    }
    std::string fields = policyField + "\r\n" + "RateLimit: " + quoted(itemName(conn.policy, worst)) +
                         ";r=" + std::to_string(w.remaining) + ";t=" + std::to_string(retry) + "\r\n";
    Limit shown = w.limit;
    shown.burst = 0;  // Flask-Limiter's wording: "5 per 1 minute"
    return response(retry, fields, describeLimit(shown));
}

std::string tooManyRequestsResponse()
{
    return response(1, "", "too many requests");
}

}  // namespace sluice
