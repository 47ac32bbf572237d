// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The rate and duration grammars (userspace/rate.h): one row per string, with
// the limits it must give or the error (and column) it must raise.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "error.h"
#include "policy.h"
#include "rate.h"

namespace sluice {
namespace {

constexpr uint64_t kS = kNsPerSecond;
constexpr uint64_t kMin = 60 * kS;
constexpr uint64_t kHour = 60 * kMin;
constexpr uint64_t kDay = 24 * kHour;
constexpr uint64_t kWeek = 7 * kDay;
constexpr uint64_t kMonth = 30 * kDay;
constexpr uint64_t kYear = 360 * kDay;

constexpr LimitKind kConn = LimitKind::Connections;
constexpr LimitKind kPkt = LimitKind::Packets;
constexpr LimitKind kBytes = LimitKind::Bytes;

const SourceLocation kToml{"sluice.toml", 12, 15};

struct Want {
    uint64_t count;
    uint64_t periodNs;
    uint64_t burst = 0;
};

struct RateRow {
    std::string input;
    LimitKind kind;
    std::vector<Want> want;  // empty: must fail
    std::string error;       // substring of the message, location included
    SourceLocation where;
};

RateRow ok(std::string input, LimitKind kind, std::vector<Want> want)
{
    return {std::move(input), kind, std::move(want), "", {}};
}

RateRow bad(std::string input, LimitKind kind, std::string error, SourceLocation where = {})
{
    return {std::move(input), kind, {}, std::move(error), std::move(where)};
}

void PrintTo(const RateRow& row, std::ostream* os)
{
    *os << "\"" << row.input << "\" as " << kindName(row.kind);
}

// "12_5_per_minute": gtest wants names of letters, digits and '_'.
template <typename Row>
std::string rowName(const testing::TestParamInfo<Row>& info)
{
    std::string name = std::to_string(info.index) + "_";
    for (char c : info.param.input)
        name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return name;
}

const std::vector<RateRow> kRateRows = {
    // Flask-Limiter's grammar, and its whitespace and case variants.
    ok("5 per minute", kPkt, {{5, kMin}}),
    ok("5 PER MINUTE", kPkt, {{5, kMin}}),
    ok(" 5  per   minute ", kPkt, {{5, kMin}}),
    ok("5/Minute", kPkt, {{5, kMin}}),
    ok("5 per minutes", kPkt, {{5, kMin}}),
    ok("5 per 1 minute", kPkt, {{5, kMin}}),
    ok("5per minute", kPkt, {{5, kMin}}),
    ok("\t5 / minute\t", kPkt, {{5, kMin}}),
    // Vertical tab and form feed are whitespace too, as in Flask-Limiter's \s.
    ok("\v5\fper\v2 minutes\f", kPkt, {{5, 2 * kMin}}),
    ok("5/hour\f;\v10/day", kConn, {{5, kHour}, {10, kDay}}),
    ok("100/day", kConn, {{100, kDay}}),
    ok("10 per 2 hours", kConn, {{10, 2 * kHour}}),
    ok("5/2 seconds", kPkt, {{5, 2 * kS}}),
    ok("5/2seconds", kPkt, {{5, 2 * kS}}),
    ok("500/7 days", kPkt, {{500, 7 * kDay}}),
    ok("1 per 1 second", kPkt, {{1, kS}}),
    ok("2 per Week", kConn, {{2, kWeek}}),
    ok("1 per month", kConn, {{1, kMonth}}),
    ok("12 per years", kConn, {{12, kYear}}),
    ok("1 per 100 years", kConn, {{1, 100 * kYear}}),
    ok("1000000000 per second", kPkt, {{1000000000, kS}}),
    // Several limits, every separator.
    ok("5 per minute; 100 per day", kConn, {{5, kMin}, {100, kDay}}),
    ok("5/2 seconds;10/hour", kPkt, {{5, 2 * kS}, {10, kHour}}),
    ok("100/day, 500/7 days", kConn, {{100, kDay}, {500, 7 * kDay}}),
    ok("5/second , 10/minute|100/day ;1000/week", kPkt,
       {{5, kS}, {10, kMin}, {100, kDay}, {1000, kWeek}}),
    // Burst.
    ok("50/second burst 100", kPkt, {{50, kS, 100}}),
    ok("5 per minute BURST 1", kPkt, {{5, kMin, 1}}),
    ok("5 per minute burst 10; 100 per day burst 20 | 10r/s burst 30", kConn,
       {{5, kMin, 10}, {100, kDay, 20}, {10, kS, 30}}),
    // nginx.
    ok("10r/s", kPkt, {{10, kS}}),
    ok("30r/m", kConn, {{30, kMin}}),
    ok("10R/S burst 20", kPkt, {{10, kS, 20}}),
    ok(" 10 r / s ", kPkt, {{10, kS}}),
    // Byte suffixes: decimal and binary, exactly.
    ok("1500/second", kBytes, {{1500, kS}}),
    ok("10 MB/second", kBytes, {{10000000, kS}}),
    ok("10MB/second", kBytes, {{10000000, kS}}),
    ok("5 KB/second", kBytes, {{5000, kS}}),
    ok("5k/second", kBytes, {{5000, kS}}),
    ok("5 KiB/second", kBytes, {{5120, kS}}),
    ok("2 MiB per minute", kBytes, {{2097152, kMin}}),
    ok("3 m per minute", kBytes, {{3000000, kMin}}),
    ok("3 gb/day", kBytes, {{3000000000, kDay}}),
    ok("1 G per hour", kBytes, {{1000000000, kHour}}),
    ok("1GiB per hour burst 64 KiB", kBytes, {{1073741824, kHour, 65536}}),
    ok("16 GB/second burst 1 MB; 1 GiB/minute burst 2 MiB", kBytes,
       {{16000000000, kS, 1000000}, {1073741824, kMin, 2097152}}),

    // Where the text is empty, or a limit is.
    bad("", kPkt, "<command line>:1:1: no limit given"),
    bad("   ", kPkt, "<command line>:1:1: no limit given"),
    bad("5/second;;10/minute", kPkt, "<command line>:1:10: empty limit between separators: ';'"),
    bad(";5/second", kPkt, "<command line>:1:1: empty limit before the separator: ';'"),
    bad("5/second |", kPkt, "<command line>:1:10: empty limit after the separator: '|'"),
    // Count.
    bad("per minute", kPkt, "<command line>:1:1: missing count (a limit reads like '5 per minute'): 'per minute'"),
    bad("five per minute", kPkt, "<command line>:1:1: missing count"),
    bad("5/second; /minute", kPkt, "<command line>:1:11: missing count"),
    bad("-5 per second", kPkt, "<command line>:1:1: negative numbers are not allowed: '-5'"),
    bad("1.5 per second", kPkt, "<command line>:1:1: counts are whole numbers: '1.5'"),
    bad("0 per second", kPkt,
        "<command line>:1:1: a limit of 0 admits nothing: use a [[deny]] entry instead: '0'"),
    bad("18446744073709551616 per second", kPkt,
        "<command line>:1:1: the number is too large (the largest is 18446744073709551615): "
        "'18446744073709551616'"),
    // 'per' or '/'.
    bad("5", kPkt, "<command line>:1:2: missing 'per' or '/' after the count: '5'"),
    bad("5 minute", kPkt, "<command line>:1:3: expected 'per' or '/' after the count: 'minute'"),
    bad("5 pre minute", kPkt, "<command line>:1:3: expected 'per' or '/' after the count: 'pre'"),
    bad("5 \xc3\x97 minute", kPkt, "<command line>:1:3: expected 'per' or '/' after the count: '\xc3\x97'"),
    // Multiplier and unit.
    bad("5 per sec", kPkt,
        "<command line>:1:7: unknown unit 'sec' (use second, minute, hour, day, week, month or year)"),
    bad("5 per s", kPkt, "<command line>:1:7: unknown unit 's'"),
    bad("5/min", kPkt, "<command line>:1:3: unknown unit 'min'"),
    bad("5 per fortnight", kPkt, "<command line>:1:7: unknown unit 'fortnight'"),
    bad("5 per", kPkt, "<command line>:1:6: missing unit (second, minute, hour, day, week, month or year): '5 per'"),
    bad("5 per 2", kPkt, "<command line>:1:8: missing unit"),
    bad("5 per 2; 10/hour", kPkt, "<command line>:1:8: missing unit (second, minute, hour, day, week, month or year): '5 per 2'"),
    bad("5 per burst 10", kPkt, "<command line>:1:6: missing unit"),
    bad("5 per 2 3 seconds", kPkt, "<command line>:1:9: expected a unit (second, minute, hour, day, week, month or year): '3'"),
    bad("5 per 0 minutes", kPkt, "<command line>:1:7: a multiplier of 0 makes the period empty: '0'"),
    bad("5 per -2 seconds", kPkt, "<command line>:1:7: negative numbers are not allowed: '-2'"),
    bad("5 per 1.5 minutes", kPkt, "<command line>:1:7: multipliers are whole numbers: '1.5'"),
    // Trailing garbage.
    bad("5 per minute please", kPkt, "<command line>:1:14: unexpected text after the limit: 'please'"),
    bad("5 per minute 10 per hour", kPkt, "<command line>:1:14: unexpected text after the limit: '10 per hour'"),
    bad("5 per minute # note; 1/day", kPkt, "<command line>:1:14: unexpected text after the limit: '# note'"),
    // Burst.
    bad("5/second burst", kPkt, "<command line>:1:15: missing burst size after 'burst': '5/second burst'"),
    bad("5/second burst 0", kPkt, "<command line>:1:16: burst must be at least 1: '0'"),
    bad("5/second burst -3", kPkt, "<command line>:1:16: negative numbers are not allowed: '-3'"),
    bad("5/second burst 1.5", kPkt, "<command line>:1:16: bursts are whole numbers: '1.5'"),
    bad("5/second burst lots", kPkt, "<command line>:1:16: burst takes a whole number: 'lots'"),
    bad("5/second burst 2 burst 3", kPkt, "<command line>:1:18: burst is given twice: 'burst 3'"),
    // nginx.
    bad("10r/h", kPkt, "<command line>:1:5: nginx rates end in r/s or r/m: 'h'"),
    bad("10r/2s", kPkt, "<command line>:1:5: nginx rates end in r/s or r/m: '2'"),
    bad("10r/", kPkt, "<command line>:1:5: missing unit: nginx rates end in r/s or r/m: '10r/'"),
    bad("10r", kPkt, "<command line>:1:4: expected '/' after 'r'"),
    bad("10r/s", kBytes, "<command line>:1:3: nginx's 'r/s' form counts requests"),
    // Byte suffixes.
    bad("5 MB/second", kPkt, "<command line>:1:3: byte suffixes are only for bytes limits: 'MB'"),
    bad("5k per second", kConn, "<command line>:1:2: byte suffixes are only for bytes limits: 'k'"),
    bad("5/second burst 2 KiB", kPkt, "<command line>:1:18: byte suffixes are only for bytes limits: 'KiB'"),
    bad("10 TB/second", kBytes, "<command line>:1:4: expected a byte suffix (K, M, G, KB, MB, GB, KiB, MiB or GiB), 'per' or '/' after the count: 'TB'"),
    bad("1.5 MB/second", kBytes, "<command line>:1:1: counts are whole numbers: '1.5'"),
    bad("20000000000 GB/second", kBytes,
        "<command line>:1:1: the number is too large (more than 2^64 - 1 bytes): '20000000000 GB'"),
    bad("1 MB/second burst 20000000000 GB", kBytes,
        "<command line>:1:19: the number is too large (more than 2^64 - 1 bytes): '20000000000 GB'"),
    // Beyond 64 bits, and beyond what the data path's arithmetic holds.
    bad("1 per 100000000 years", kPkt,
        "<command line>:1:7: the period is too long (beyond 2^64 ns, about 584 years): '100000000 years'"),
    bad("1 per 200 years", kPkt, "<command line>:1:1: limit '1 per 200 year': the period per unit is too long: '1 per 200 years'"),
    bad("1 per 100 years burst 2", kConn, "<command line>:1:1: limit '1 per 100 year burst 2': burst x period is beyond the data path's 2^62 ns range"),
    bad("18446744073709551615 per second", kPkt, "<command line>:1:1: limit '18446744073709551615 per 1 second' is faster than one unit per nanosecond"),
    bad("5/second; 700000000 per second", kPkt, "<command line>:1:11: limit '700000000 per 1 second' needs an interval of"),
    bad("18446744073709551615/second", kBytes, "<command line>:1:1: limit '18446744073709551615 per 1 second' is faster than 4 GB per nanosecond"),
    bad("1/second; 2/second; 3/second; 4/second; 5/second", kPkt,
        "<command line>:1:41: at most 4 limits fit one policy: '5/second'"),
    // Offsets from where the text sits in a file.
    bad("5 per sec", kPkt, "sluice.toml:12:21: unknown unit 'sec'", kToml),
    bad("5/second;;10/minute", kPkt, "sluice.toml:12:24: empty limit between separators: ';'", kToml),
    bad("", kPkt, "sluice.toml:12:15: no limit given", kToml),
    bad("5/minute; 1 per 200 years", kConn, "sluice.toml:12:25: limit '1 per 200 year'", kToml),
    bad("  5 MB/second", kPkt, "sluice.toml:12:19: byte suffixes are only for bytes limits: 'MB'", kToml),
};

class RateTest : public testing::TestWithParam<RateRow> {};

TEST_P(RateTest, ParsesOrNamesTheError)
{
    const RateRow& row = GetParam();
    if (row.want.empty()) {
        try {
            auto limits = parseRates(row.input, row.kind, row.where);
            ADD_FAILURE() << "accepted, giving " << limits.size() << " limit(s)";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Usage);
            EXPECT_NE(std::string(e.what()).find(row.error), std::string::npos)
                << "message: " << e.what() << "\nwanted:  " << row.error;
        }
        return;
    }
    std::vector<Limit> limits;
    try {
        limits = parseRates(row.input, row.kind, row.where);
    } catch (const Error& e) {
        FAIL() << "rejected: " << e.what();
    }
    ASSERT_EQ(limits.size(), row.want.size());
    for (size_t i = 0; i < limits.size(); i++) {
        SCOPED_TRACE("limit " + std::to_string(i));
        EXPECT_EQ(limits[i].kind, row.kind);
        EXPECT_EQ(limits[i].count, row.want[i].count);
        EXPECT_EQ(limits[i].periodNs, row.want[i].periodNs);
        EXPECT_EQ(limits[i].burst, row.want[i].burst);
    }
}

INSTANTIATE_TEST_SUITE_P(Rates, RateTest, testing::ValuesIn(kRateRows), rowName<RateRow>);

TEST(RateLocation, FormatsAndAdvances)
{
    EXPECT_EQ(SourceLocation{}.str(), "<command line>:1:1");
    EXPECT_EQ(kToml.str(), "sluice.toml:12:15");
    EXPECT_EQ(kToml.advanced(0).str(), "sluice.toml:12:15");
    EXPECT_EQ(kToml.advanced(6).str(), "sluice.toml:12:21");
}

struct DurationRow {
    std::string input;
    uint64_t wantNs;  // 0: must fail
    std::string error;
};

void PrintTo(const DurationRow& row, std::ostream* os) { *os << "\"" << row.input << "\""; }

const std::vector<DurationRow> kDurationRows = {
    {"10 minutes", 10 * kMin, ""},
    {"1 hour", kHour, ""},
    {"2 days", 2 * kDay, ""},
    {"30 seconds", 30 * kS, ""},
    {"30s", 30 * kS, ""},
    {"100ms", 100 * kS / 1000, ""},
    {"250 milliseconds", 250 * kS / 1000, ""},
    {"1m", kMin, ""},
    {"1h", kHour, ""},
    {"1d", kDay, ""},
    {"1 week", kWeek, ""},
    {" 10 Minutes ", 10 * kMin, ""},
    {"1 month", kMonth, ""},
    {"", 0, "<command line>:1:1: no duration given"},
    {"0s", 0, "<command line>:1:1: a duration must be longer than 0: '0'"},
    {"1.5h", 0, "<command line>:1:1: durations are whole numbers"},
    {"-1s", 0, "<command line>:1:1: negative numbers are not allowed: '-1'"},
    {"30", 0, "<command line>:1:3: missing unit"},
    {"30 sec", 0, "<command line>:1:4: unknown unit 'sec'"},
    {"1h30m", 0, "<command line>:1:3: unexpected text after the duration: '30m'"},
    {"ten minutes", 0, "<command line>:1:1: a duration starts with a whole number"},
    {"30 / s", 0, "<command line>:1:4: expected a unit"},
    {"99999999999 years", 0, "<command line>:1:1: the duration is too long"},
    {"18446744073709551616s", 0, "<command line>:1:1: the number is too large"},
};

class DurationTest : public testing::TestWithParam<DurationRow> {};

TEST_P(DurationTest, ParsesOrNamesTheError)
{
    const DurationRow& row = GetParam();
    if (row.wantNs == 0) {
        try {
            uint64_t ns = parseDurationNs(row.input);
            ADD_FAILURE() << "accepted, giving " << ns << " ns";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Usage);
            EXPECT_NE(std::string(e.what()).find(row.error), std::string::npos)
                << "message: " << e.what() << "\nwanted:  " << row.error;
        }
        return;
    }
    try {
        EXPECT_EQ(parseDurationNs(row.input), row.wantNs);
    } catch (const Error& e) {
        FAIL() << "rejected: " << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Durations, DurationTest, testing::ValuesIn(kDurationRows),
                         rowName<DurationRow>);

TEST(DurationLocation, PointsIntoTheFile)
{
    try {
        parseDurationNs("10 minits", kToml);
        FAIL() << "accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("sluice.toml:12:18: unknown unit 'minits'"),
                  std::string::npos)
            << e.what();
    }
}

}  // namespace
}  // namespace sluice
