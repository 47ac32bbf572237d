// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sluice against Flask-Limiter's own parser (the Python `limits` package), on
// a fixed corpus of ~2400 rate strings with limits' answers recorded in
// tests/unit/data/flask_rates.json by gen_flask_rates.py. Every string is
// sorted into one of these, and parseRates(..., Packets) must do as it says:
//   agree       limits accepts, inside sluice's domain: the same limits
//   divergence  limits accepts, rate.h refuses on purpose (count 0,
//               multiplier 0, more than SLUICE_MAX_LIMITS, beyond 64 bits or
//               the data path's arithmetic, non-ASCII): an Error(Usage)
//   quirk       limits accepts through its regular expression's looseness,
//               which rate.h does not list: an Error(Usage)
//   extension   limits refuses, sluice's extensions (weeks, burst, r/s r/m):
//               the limits the generator recorded
//   reject      limits refuses: an Error(Usage)
// All strings are checked and every mismatch is reported, not the first only.
#include <gtest/gtest.h>

#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "policy.h"
#include "rate.h"
#include "source_root.h"

namespace sluice {
namespace {

constexpr const char* kGolden = "tests/unit/data/flask_rates.json";
constexpr const char* kGenerator = "tests/unit/data/gen_flask_rates.py";
constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-limits

// The string as a C literal, so that tabs and non-ASCII bytes show.
std::string quoted(const std::string& s)
{
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "\\x%02x", c);
            out += hex;
        }
    }
    return out + "\"";
}

// A decimal string as 64 bits; nullopt beyond.
std::optional<uint64_t> decimal(const std::string& s)
{
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return std::nullopt;
        uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return std::nullopt;
        v = v * 10 + d;
    }
    return s.empty() ? std::nullopt : std::optional<uint64_t>(v);
}

std::optional<uint64_t> times(std::optional<uint64_t> a, uint64_t b)
{
    if (!a || (b && *a > UINT64_MAX / b))
        return std::nullopt;
    return *a * b;
}

// One limit as limits gives it.
struct FlaskLimit {
    std::string amount;     // decimal, may exceed 64 bits
    std::string multiples;  // decimal, >= 1 (limits reads a written 0 as 1)
    uint64_t seconds = 0;   // the unit's
    std::string written;    // the multiplier as written, "" when absent
};

struct Entry {
    std::string s;
    std::string tag;
    std::optional<std::vector<FlaskLimit>> limits;  // nullopt: limits raised
    std::optional<std::vector<Limit>> ext;          // sluice's extensions only
};

std::vector<Entry> loadGolden(size_t& metaCount)
{
    std::ifstream in(sourceRoot(kGolden) + "/" + kGolden);
    if (!in)
        throw std::runtime_error(std::string("cannot open ") + kGolden);
    nlohmann::json j = nlohmann::json::parse(in);
    metaCount = j.at("meta").at("count").get<size_t>();
    std::vector<Entry> out;
    for (const auto& e : j.at("entries")) {
        Entry entry;
        entry.s = e.at("s").get<std::string>();
        entry.tag = e.at("tag").get<std::string>();
        if (!e.at("limits").is_null()) {
            entry.limits.emplace();
            for (const auto& l : e.at("limits"))
                entry.limits->push_back({l.at(0).get<std::string>(), l.at(1).get<std::string>(),
                                         l.at(2).get<uint64_t>(), l.at(3).get<std::string>()});
        }
        if (e.contains("ext")) {
            entry.ext.emplace();
            for (const auto& l : e.at("ext"))
                entry.ext->push_back({LimitKind::Packets, l.at(0).get<uint64_t>(),
                                      l.at(1).get<uint64_t>() * kNsPerSecond,
                                      l.at(2).get<uint64_t>()});
        }
        out.push_back(std::move(entry));
    }
    return out;
}

std::string describe(const std::vector<Limit>& limits)
{
    std::string out = "[";
    for (const auto& l : limits)
        out += (out.size() > 1 ? ", " : "") + describeLimit(l) + " (" +
               std::to_string(l.periodNs) + " ns)";
    return out + "]";
}

std::string describe(const std::vector<FlaskLimit>& limits)
{
    std::string out = "[";
    for (const auto& l : limits)
        out += (out.size() > 1 ? ", " : "") + l.amount + " per " + l.multiples + " x " +
               std::to_string(l.seconds) + " s" +
               (l.written.empty() ? "" : " (multiplier written '" + l.written + "')");
    return out + "]";
}

enum class Expect { Agree, Divergence, Quirk, Extension, Reject };

const char* name(Expect e)
{
    switch (e) {
    case Expect::Agree: return "agree";
    case Expect::Divergence: return "divergence";
    case Expect::Quirk: return "quirk";
    case Expect::Extension: return "extension";
    case Expect::Reject: return "reject";
    }
    return "?";
}

bool containsGluedPer(const std::string& s)
{
    for (size_t i = 0; i + 3 < s.size(); i++)
        if (std::tolower(static_cast<unsigned char>(s[i])) == 'p' &&
            std::tolower(static_cast<unsigned char>(s[i + 1])) == 'e' &&
            std::tolower(static_cast<unsigned char>(s[i + 2])) == 'r' &&
            std::isalpha(static_cast<unsigned char>(s[i + 3])))
            return true;
    return false;
}

struct Verdict {
    Expect expect;
    std::string why;                  // for divergences and quirks
    std::vector<Limit> want;          // for agree and extension
};

// What sluice must do with an entry, from limits' answer and rate.h alone.
Verdict classify(const Entry& e)
{
    if (!e.limits) {
        if (e.ext)
            return {Expect::Extension, "", *e.ext};
        return {Expect::Reject, "", {}};
    }
    const auto& flask = *e.limits;
    // rate.h: "the first non-ASCII byte is always the error itself" (limits
    // takes Unicode spaces, and 'ſ' for the plural 's').
    for (unsigned char c : e.s)
        if (c >= 0x80)
            return {Expect::Divergence, "non-ASCII", {}};
    if (flask.size() > SLUICE_MAX_LIMITS)
        return {Expect::Divergence, "more than SLUICE_MAX_LIMITS limits", {}};
    std::vector<Limit> want;
    for (const auto& f : flask) {
        auto count = decimal(f.amount);
        if (count && *count == 0)
            return {Expect::Divergence, "a count of 0", {}};
        if (!f.written.empty() && f.written.find_first_not_of('0') == std::string::npos)
            return {Expect::Divergence, "a multiplier of 0", {}};
        auto periodNs = times(times(decimal(f.multiples), f.seconds), kNsPerSecond);
        if (!count || !periodNs)
            return {Expect::Divergence, "a number beyond 64 bits", {}};
        Limit l{LimitKind::Packets, *count, *periodNs, 0};
        try {
            compileLimit(l);
        } catch (const Error&) {
            return {Expect::Divergence, "beyond the data path's arithmetic (compileLimit)", {}};
        }
        want.push_back(l);
    }
    // Not in rate.h: limits' regular expression is looser than its grammar.
    for (unsigned char c : e.s)
        if (c >= 0x1c && c <= 0x1f)
            return {Expect::Quirk, "Python's \\s takes \\x1c-\\x1f as spaces", {}};
    if (e.s.find(':') != std::string::npos)
        return {Expect::Quirk, "limits' typo '(:?' takes a ':' before a separator", {}};
    if (containsGluedPer(e.s))
        return {Expect::Quirk, "limits takes 'per' glued to the unit ('10persecond')", {}};
    return {Expect::Agree, "", want};
}

TEST(FlaskRates, SluiceAgreesWithFlaskLimiter)
{
    size_t metaCount = 0;
    std::vector<Entry> entries;
    ASSERT_NO_THROW(entries = loadGolden(metaCount)) << "run gen_flask_rates.py";
    ASSERT_EQ(entries.size(), metaCount) << kGolden << " is truncated";

    std::map<std::string, int> counts;  // "category" and "category: why"
    int mismatches = 0;
    for (const Entry& e : entries) {
        Verdict v = classify(e);
        counts[name(v.expect)]++;
        if (!v.why.empty())
            counts[std::string(name(v.expect)) + ": " + v.why]++;

        std::optional<std::vector<Limit>> got;
        std::string error;
        try {
            got = parseRates(e.s, LimitKind::Packets);
        } catch (const Error& err) {
            error = err.kind() == ErrorKind::Usage ? err.what()
                                                   : std::string("Error(Runtime): ") + err.what();
        } catch (const std::exception& err) {
            error = std::string("not a sluice::Error: ") + err.what();
        }
        bool rejected = !got && error.rfind("not a sluice::Error", 0) != 0 &&
                        error.rfind("Error(Runtime)", 0) != 0;

        std::string flask = e.limits ? describe(*e.limits) : "raises";
        std::string sluiceSays = got ? describe(*got) : "throws " + error;
        std::string context = quoted(e.s) + " [" + e.tag + ", " + name(v.expect) +
                              (v.why.empty() ? "" : ": " + v.why) + "]\n  limits: " + flask +
                              "\n  sluice: " + sluiceSays;
        bool ok = false;
        switch (v.expect) {
        case Expect::Agree:
        case Expect::Extension:
            ok = got && *got == v.want;
            if (ok)
                for (const auto& l : *got)
                    ok = ok && l.kind == LimitKind::Packets;
            if (!ok)
                context += "\n  wanted: " + describe(v.want);
            break;
        case Expect::Divergence:
        case Expect::Quirk:
        case Expect::Reject:
            ok = rejected;
            break;
        }
        if (!ok) {
            mismatches++;
            ADD_FAILURE() << "mismatch: " << context;
        }
    }

    std::string summary;
    for (const auto& [what, n] : counts)
        summary += "  " + what + ": " + std::to_string(n) + "\n";
    std::cout << entries.size() << " strings, " << mismatches << " mismatches\n" << summary;
    EXPECT_EQ(mismatches, 0);
    // A corpus that lost a category would pass without testing it.
    for (Expect e : {Expect::Agree, Expect::Divergence, Expect::Quirk, Expect::Extension,
                     Expect::Reject})
        EXPECT_GE(counts[name(e)], 15) << "too few strings in category " << name(e);
}

// limits' answers in the golden file are still those of the installed
// limits, and the file is what the generator builds.
TEST(FlaskRates, GoldenFileMatchesInstalledLimits)
{
    if (access(kPython, X_OK) != 0)
        GTEST_SKIP() << kPython << " is missing: cannot check " << kGolden
                     << " against Flask-Limiter's parser (install python3-limits)";
    if (std::system((std::string(kPython) + " -c 'import limits' >/dev/null 2>&1").c_str()) != 0)
        GTEST_SKIP() << "the Python module 'limits' is missing from " << kPython
                     << ": cannot check " << kGolden << " (install python3-limits)";
    std::string script = sourceRoot(kGolden) + "/" + kGenerator;
    ASSERT_EQ(script.find('\''), std::string::npos) << script;
    std::string command = std::string(kPython) + " '" + script + "' --check 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr) << command;
    std::string output;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof(buf), pipe))
        output.append(buf, n);
    int status = pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status)) << command << "\n" << output;
    EXPECT_EQ(WEXITSTATUS(status), 0) << command << "\n" << output;
}

}  // namespace
}  // namespace sluice
