// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// libFuzzer harness for the rate and duration grammars (userspace/rate.h).
// Each input is one string, read as a connections, packets and bytes rate
// and as a duration. Beyond "does not crash" it checks:
//   - a string is accepted or refused with sluice::Error (Usage) whose
//     location is on the string's line, at a column inside it or just past it;
//   - accepted limits are 1..SLUICE_MAX_LIMITS, of the kind asked for, fit
//     the data path (compileLimit), and re-rendered with describeLimit and
//     parsed again give the same limits;
//   - words are case-insensitive: the upper-cased string gives the same;
//   - connections and packets share one grammar: both accept or both refuse;
//   - a duration is > 0, whole milliseconds, and "N ms" parses back to it.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "policy.h"
#include "rate.h"

namespace sluice::fuzz {
namespace {

constexpr uint64_t kNsPerMillisecond = kNsPerSecond / 1000;
// Where the string is said to come from: a line and column other than 1:1,
// so that an error that ignores them shows.
const SourceLocation kWhere{"fuzz.toml", 7, 12};

void checkLocation(const std::string& message, const std::string& input)
{
    // "fuzz.toml:7:COL: ..."
    std::string prefix = kWhere.file + ":" + std::to_string(kWhere.line) + ":";
    require(message.rfind(prefix, 0) == 0, "error not on the string's line: " + message, input);
    size_t digits = prefix.size();
    int column = 0;
    while (digits < message.size() && std::isdigit(static_cast<unsigned char>(message[digits])) &&
           column < 1000000)
        column = column * 10 + (message[digits++] - '0');
    require(digits < message.size() && message[digits] == ':',
            "error without a column: " + message, input);
    require(column >= kWhere.column && column <= kWhere.column + static_cast<int>(input.size()),
            "error column " + std::to_string(column) + " outside the string: " + message, input);
}

std::string rendered(const std::vector<Limit>& limits)
{
    std::string s;
    for (const auto& l : limits)
        s += (s.empty() ? "" : "; ") + describeLimit(l);
    return s;
}

std::string upper(std::string s)
{
    for (char& c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// The limits `text` gives as `kind`, or an empty vector when it is refused.
std::vector<Limit> rates(const std::string& text, LimitKind kind, const std::string& input)
{
    std::vector<Limit> out;
    std::string message;
    bool ok = acceptsOrRefuses([&] { out = parseRates(text, kind, kWhere); }, input,
                               kWhere.file + ":", &message);
    if (!ok) {
        checkLocation(message, text);
        return {};
    }
    require(!out.empty() && out.size() <= SLUICE_MAX_LIMITS,
            "accepted with " + std::to_string(out.size()) + " limits", input);
    for (const auto& l : out) {
        require(l.kind == kind, "a limit of another kind", input);
        require(l.count > 0, "a limit of 0", input);
        require(l.periodNs > 0 && l.periodNs % kNsPerSecond == 0,
                "a period that is not whole seconds: " + std::to_string(l.periodNs), input);
        require(acceptsOrRefuses([&] { compileLimit(l); }, input, "limit '"),
                "accepted a limit the data path refuses: " + describeLimit(l), input);
    }
    return out;
}

void checkRates(const std::string& text, LimitKind kind)
{
    std::vector<Limit> limits = rates(text, kind, text);
    if (limits.empty())
        return;
    std::string again = rendered(limits);
    require(rates(again, kind, text) == limits, "re-rendered as '" + again + "' it parses differently",
            text);
    require(rates(upper(text), kind, text) == limits, "upper-cased it parses differently", text);
}

void checkDuration(const std::string& text)
{
    uint64_t ns = 0;
    std::string message;
    if (!acceptsOrRefuses([&] { ns = parseDurationNs(text, kWhere); }, text, kWhere.file + ":",
                          &message)) {
        checkLocation(message, text);
        return;
    }
    require(ns > 0 && ns % kNsPerMillisecond == 0,
            "a duration that is not whole milliseconds: " + std::to_string(ns), text);
    std::string again = std::to_string(ns / kNsPerMillisecond) + "ms";
    uint64_t back = 0;
    require(acceptsOrRefuses([&] { back = parseDurationNs(again, kWhere); }, text, kWhere.file + ":"),
            "re-rendered as '" + again + "' it is refused", text);
    require(back == ns, "re-rendered as '" + again + "' it parses differently", text);
}

}  // namespace
}  // namespace sluice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sluice;
    std::string text(reinterpret_cast<const char*>(data), size);
    for (LimitKind kind : {LimitKind::Connections, LimitKind::Packets, LimitKind::Bytes})
        fuzz::checkRates(text, kind);

    auto conn = fuzz::rates(text, LimitKind::Connections, text);
    auto pkt = fuzz::rates(text, LimitKind::Packets, text);
    fuzz::require(conn.size() == pkt.size(), "connections and packets disagree", text);
    for (size_t i = 0; i < conn.size(); i++)
        fuzz::require(conn[i].count == pkt[i].count && conn[i].periodNs == pkt[i].periodNs &&
                          conn[i].burst == pkt[i].burst,
                      "connections and packets give different limits", text);

    fuzz::checkDuration(text);
    return 0;
}
