// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The rate grammar: Flask-Limiter's ("5 per minute; 100 per day",
// "10/2 seconds"), nginx's ("10r/s", "30r/m"), an optional "burst N" after a
// limit, and K/M/G (KiB/MiB/GiB) suffixes on byte counts ("10 MB/second").
// Every error names where it is and the offending text; there is no fallback.
//
//   rates  := limit ( (";" | "," | "|") limit )*
//   limit  := amount ( ("per" | "/") [mult] unit | "r" "/" ("s" | "m") ) [ "burst" amount ]
//   amount := digits [suffix]     suffix (bytes only): K M G KB MB GB (10^3n), KiB MiB GiB (2^10n)
//   unit   := second minute hour day week month (30 d) year (360 d), each with an optional "s"
//
// Words are case-insensitive and whitespace (space, tab, CR, LF, VT, FF: C's
// isspace) may surround any token. Choices made where Flask-Limiter or nginx
// are lenient or silent:
//   - counts, multipliers and bursts are whole numbers; "1.5 per second" and
//     "-5 per second" are errors, never rounded or clamped;
//   - "0 per second" is an error: a limit that admits nothing is a [[deny]]
//     entry, written as such; a multiplier of 0 and "burst 0" are errors too;
//   - abbreviations ("sec", "min", "s") are unknown units, as in Flask-Limiter;
//     only the nginx form takes "r/s" and "r/m", and it is not for bytes;
//   - a string holds at most SLUICE_MAX_LIMITS limits, what one policy holds;
//   - every limit must also fit the data path's arithmetic (compileLimit);
//   - a unit is a word of its own: "10persecond" is an error (Flask-Limiter's
//     `\s*per\s*` takes it), as is a ':' before a separator ("1/second:;
//     2/minute", which a typo in Flask-Limiter's regex lets through), and the
//     ASCII separators \x1c-\x1f are not whitespace (Python's \s has them).
// Columns count bytes; the first non-ASCII byte is always the error itself:
// Unicode spaces (U+00A0, U+3000), which Flask-Limiter takes, are errors.
// tests/unit/flask_rates_test.cpp holds these choices against Flask-Limiter's
// own parser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policy.h"

namespace sluice {

// Where a piece of text came from, for error messages "FILE:LINE:COL: ...".
// `column` is that of the text's first character; errors inside the text
// point at the offending character.
struct SourceLocation {
    std::string file = "<command line>";
    int line = 1;
    int column = 1;

    std::string str() const;  // "file:line:col"
    // `offset` characters further along the same line (the text is one line).
    SourceLocation advanced(size_t offset) const;
};

// Parses one or more limits of one kind. Byte suffixes are accepted only
// for LimitKind::Bytes. A limit without "burst" has burst 0 (= its count).
// Throws Error(Usage): "FILE:LINE:COL: what is wrong: 'offending text'".
std::vector<Limit> parseRates(const std::string& text, LimitKind kind,
                              const SourceLocation& where = {});

// A duration, greater than 0: a whole number and a unit, "10 minutes",
// "1 hour", "2 days", "1 week", or short: "100ms", "30s", "1m", "1h", "1d",
// "1w". Months and years are 30 and 360 days, as in rates. Throws as above.
uint64_t parseDurationNs(const std::string& text, const SourceLocation& where = {});

}  // namespace sluice
