// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The rate and duration grammars of rate.h: a small tokenizer and a
// recursive-descent parser, so that every error can point at the exact
// column of the token that is wrong.
#include "rate.h"

#include <cctype>
#include <limits>
#include <optional>
#include <string_view>

#include "error.h"

namespace sluice {

std::string SourceLocation::str() const
{
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

SourceLocation SourceLocation::advanced(size_t offset) const
{
    SourceLocation out = *this;
    out.column += static_cast<int>(offset);
    return out;
}

namespace {

constexpr uint64_t kNsPerMinute = 60 * kNsPerSecond;
constexpr uint64_t kNsPerHour = 60 * kNsPerMinute;
constexpr uint64_t kNsPerDay = 24 * kNsPerHour;

constexpr const char* kRateUnits = "second, minute, hour, day, week, month or year";
constexpr const char* kDurationUnits =
    "ms, s, m, h, d, w, or millisecond, second, minute, hour, day, week, month, year";
constexpr const char* kByteSuffixes = "K, M, G, KB, MB, GB, KiB, MiB or GiB";

struct Unit {
    std::string_view name;
    uint64_t ns;
};

// Long names, each also taken with a plural "s".
constexpr Unit kLongUnits[] = {
    {"second", kNsPerSecond}, {"minute", kNsPerMinute}, {"hour", kNsPerHour},
    {"day", kNsPerDay},       {"week", 7 * kNsPerDay},  {"month", 30 * kNsPerDay},
    {"year", 360 * kNsPerDay},
};

// Durations also take these, exactly as written (no plural).
constexpr Unit kShortDurationUnits[] = {
    {"ms", kNsPerSecond / 1000}, {"millisecond", kNsPerSecond / 1000},
    {"milliseconds", kNsPerSecond / 1000}, {"s", kNsPerSecond}, {"m", kNsPerMinute},
    {"h", kNsPerHour}, {"d", kNsPerDay}, {"w", 7 * kNsPerDay},
};

constexpr Unit kByteSuffixTable[] = {
    {"k", 1000ULL},       {"kb", 1000ULL},       {"kib", 1ULL << 10},
    {"m", 1000000ULL},    {"mb", 1000000ULL},    {"mib", 1ULL << 20},
    {"g", 1000000000ULL}, {"gb", 1000000000ULL}, {"gib", 1ULL << 30},
};

std::string lower(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::optional<uint64_t> longUnitNs(std::string_view word)
{
    std::string w = lower(word);
    for (const auto& u : kLongUnits)
        if (w == u.name || w == std::string(u.name) + "s")
            return u.ns;
    return std::nullopt;
}

std::optional<uint64_t> durationUnitNs(std::string_view word)
{
    if (auto ns = longUnitNs(word))
        return ns;
    std::string w = lower(word);
    for (const auto& u : kShortDurationUnits)
        if (w == u.name)
            return u.ns;
    return std::nullopt;
}

std::optional<uint64_t> byteSuffix(std::string_view word)
{
    std::string w = lower(word);
    for (const auto& s : kByteSuffixTable)
        if (w == s.name)
            return s.ns;
    return std::nullopt;
}

enum class TokenType { Number, Word, Slash, Separator, Other, End };

struct Token {
    TokenType type = TokenType::End;
    size_t pos = 0;
    std::string_view text;
    // Numbers are lexed with a sign and a fraction so that "-5" and "1.5"
    // are reported as one token, not as a stray character.
    bool negative = false;
    bool fractional = false;

    size_t end() const { return pos + text.size(); }
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// C's isspace() in the C locale; Flask-Limiter's \s takes \v and \f too.
bool isSpace(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

std::vector<Token> tokenize(std::string_view s)
{
    std::vector<Token> out;
    size_t i = 0;
    while (i < s.size()) {
        char c = s[i];
        if (isSpace(c)) {
            i++;
            continue;
        }
        Token t;
        t.pos = i;
        size_t j = i;
        if (isDigit(c) || (c == '-' && j + 1 < s.size() && isDigit(s[j + 1]))) {
            t.type = TokenType::Number;
            t.negative = c == '-';
            if (t.negative)
                j++;
            while (j < s.size() && isDigit(s[j]))
                j++;
            if (j + 1 < s.size() && s[j] == '.' && isDigit(s[j + 1])) {
                t.fractional = true;
                j++;
                while (j < s.size() && isDigit(s[j]))
                    j++;
            }
        } else if (isLetter(c)) {
            t.type = TokenType::Word;
            while (j < s.size() && isLetter(s[j]))
                j++;
        } else if (c == '/') {
            t.type = TokenType::Slash;
            j++;
        } else if (c == ';' || c == ',' || c == '|') {
            t.type = TokenType::Separator;
            j++;
        } else {
            t.type = TokenType::Other;
            j++;
            // Quote a whole UTF-8 character, not one byte of it.
            while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xc0) == 0x80)
                j++;
        }
        t.text = s.substr(i, j - i);
        out.push_back(t);
        i = j;
    }
    Token end;
    end.pos = s.size();
    out.push_back(end);
    return out;
}

class Parser {
public:
    Parser(std::string_view text, const SourceLocation& where)
        : text_(text), where_(where), tokens_(tokenize(text_)) {}

    [[noreturn]] void fail(size_t pos, const std::string& what) const
    {
        throwUsage(where_.advanced(pos).str() + ": " + what);
    }

    [[noreturn]] void fail(size_t pos, const std::string& what, std::string_view offending) const
    {
        fail(pos, what + ": '" + std::string(offending) + "'");
    }

    const Token& peek() const { return tokens_[index_]; }
    size_t index() const { return index_; }
    const Token& next() { return tokens_[index_++]; }
    // Where something missing should have been: just after the last token.
    size_t afterPrevious() const { return index_ ? tokens_[index_ - 1].end() : 0; }

    bool atWord(std::string_view word) const
    {
        return peek().type == TokenType::Word && lower(peek().text) == word;
    }
    bool atLimitEnd() const
    {
        return peek().type == TokenType::End || peek().type == TokenType::Separator;
    }

    // The text from token `from` to the end of its limit (the next separator),
    // or to the end of the text when `toEnd`.
    std::string_view rest(size_t from, bool toEnd = false) const
    {
        size_t start = tokens_[from].pos;
        size_t stop = start;
        for (size_t i = from; tokens_[i].type != TokenType::End; i++) {
            if (!toEnd && tokens_[i].type == TokenType::Separator)
                break;
            stop = tokens_[i].end();
        }
        return text_.substr(start, stop - start);
    }

    // A whole, non-negative number that fits 64 bits.
    uint64_t number(const Token& t, const std::string& wholeNumbersOnly) const
    {
        if (t.negative)
            fail(t.pos, "negative numbers are not allowed", t.text);
        if (t.fractional)
            fail(t.pos, wholeNumbersOnly, t.text);
        uint64_t value = 0;
        constexpr uint64_t max = std::numeric_limits<uint64_t>::max();
        for (char c : t.text) {
            uint64_t digit = static_cast<uint64_t>(c - '0');
            if (value > (max - digit) / 10)
                fail(t.pos, "the number is too large (the largest is " + std::to_string(max) + ")",
                     t.text);
            value = value * 10 + digit;
        }
        return value;
    }

private:
    std::string_view text_;
    SourceLocation where_;
    std::vector<Token> tokens_;
    size_t index_ = 0;
};

class RateParser {
public:
    RateParser(std::string_view text, LimitKind kind, const SourceLocation& where)
        : text_(text), kind_(kind), p_(text, where) {}

    std::vector<Limit> parse()
    {
        if (p_.peek().type == TokenType::End)
            p_.fail(0, "no limit given (write e.g. '5 per minute')", text_);
        std::vector<Limit> limits;
        for (;;) {
            const Token& start = p_.peek();
            if (start.type == TokenType::Separator)
                p_.fail(start.pos,
                        limits.empty() ? "empty limit before the separator"
                                       : "empty limit between separators",
                        start.text);
            if (limits.size() == SLUICE_MAX_LIMITS)
                p_.fail(start.pos,
                        "at most " + std::to_string(SLUICE_MAX_LIMITS) + " limits fit one policy",
                        p_.rest(p_.index()));
            limits.push_back(parseLimit());
            if (p_.peek().type == TokenType::End)
                return limits;
            if (p_.peek().type != TokenType::Separator)
                p_.fail(p_.peek().pos, "unexpected text after the limit", p_.rest(p_.index()));
            const Token& separator = p_.next();
            if (p_.peek().type == TokenType::End)
                p_.fail(separator.pos, "empty limit after the separator", separator.text);
        }
    }

private:
    // COUNT [suffix], or the burst's N [suffix].
    uint64_t amount(const std::string& wholeNumbersOnly)
    {
        const Token& n = p_.next();
        uint64_t value = p_.number(n, wholeNumbersOnly);
        if (p_.peek().type != TokenType::Word)
            return value;
        const Token& word = p_.peek();
        auto factor = byteSuffix(word.text);
        if (!factor)
            return value;
        if (kind_ != LimitKind::Bytes)
            p_.fail(word.pos, "byte suffixes are only for bytes limits", word.text);
        p_.next();
        if (value > std::numeric_limits<uint64_t>::max() / *factor)
            p_.fail(n.pos, "the number is too large (more than 2^64 - 1 bytes)",
                    text_.substr(n.pos, word.end() - n.pos));
        return value * *factor;
    }

    Limit parseLimit()
    {
        size_t first = p_.index();
        size_t startPos = p_.peek().pos;
        std::string_view whole = p_.rest(first);
        Limit limit;
        limit.kind = kind_;

        const Token& countToken = p_.peek();
        if (countToken.type != TokenType::Number)
            p_.fail(countToken.pos, "missing count (a limit reads like '5 per minute')", whole);
        limit.count = amount("counts are whole numbers");
        if (limit.count == 0)
            p_.fail(countToken.pos, "a limit of 0 admits nothing: use a [[deny]] entry instead",
                    countToken.text);

        limit.periodNs = period(whole);

        if (p_.atWord("burst")) {
            const Token& keyword = p_.next();
            const Token& n = p_.peek();
            if (p_.atLimitEnd())
                p_.fail(keyword.end(), "missing burst size after 'burst'", whole);
            if (n.type != TokenType::Number)
                p_.fail(n.pos, "burst takes a whole number", n.text);
            limit.burst = amount("bursts are whole numbers");
            if (limit.burst == 0)
                p_.fail(n.pos, "burst must be at least 1", n.text);
            if (p_.atWord("burst"))
                p_.fail(p_.peek().pos, "burst is given twice", p_.rest(p_.index()));
        }

        try {
            compileLimit(limit);
        } catch (const Error& e) {
            p_.fail(startPos, e.what(), whole);
        }
        return limit;
    }

    // ("per" | "/") [mult] unit, or nginx's "r" "/" ("s" | "m").
    uint64_t period(std::string_view whole)
    {
        const Token& t = p_.peek();
        if (p_.atWord("r")) {
            if (kind_ == LimitKind::Bytes)
                p_.fail(t.pos, "nginx's 'r/s' form counts requests: write bytes like '10 MB/second'",
                        t.text);
            p_.next();
            if (p_.peek().type != TokenType::Slash)
                p_.fail(p_.atLimitEnd() ? t.end() : p_.peek().pos,
                        "expected '/' after 'r' (nginx form: 10r/s or 30r/m)", whole);
            p_.next();
            const Token& unit = p_.peek();
            if (p_.atWord("s") || p_.atWord("m")) {
                uint64_t ns = p_.atWord("s") ? kNsPerSecond : kNsPerMinute;
                p_.next();
                return ns;
            }
            if (p_.atLimitEnd())
                p_.fail(p_.afterPrevious(), "missing unit: nginx rates end in r/s or r/m", whole);
            p_.fail(unit.pos, "nginx rates end in r/s or r/m", unit.text);
        }
        if (!p_.atWord("per") && t.type != TokenType::Slash) {
            if (p_.atLimitEnd())
                p_.fail(p_.afterPrevious(), "missing 'per' or '/' after the count", whole);
            p_.fail(t.pos,
                    kind_ == LimitKind::Bytes
                        ? std::string("expected a byte suffix (") + kByteSuffixes +
                              "), 'per' or '/' after the count"
                        : std::string("expected 'per' or '/' after the count"),
                    t.text);
        }
        p_.next();

        uint64_t multiplier = 1;
        const Token& m = p_.peek();
        if (m.type == TokenType::Number) {
            multiplier = p_.number(p_.next(), "multipliers are whole numbers");
            if (multiplier == 0)
                p_.fail(m.pos, "a multiplier of 0 makes the period empty", m.text);
        }

        const Token& unit = p_.peek();
        if (p_.atLimitEnd() || p_.atWord("burst"))
            p_.fail(p_.afterPrevious(), std::string("missing unit (") + kRateUnits + ")", whole);
        if (unit.type != TokenType::Word)
            p_.fail(unit.pos, std::string("expected a unit (") + kRateUnits + ")", unit.text);
        auto unitNs = longUnitNs(unit.text);
        if (!unitNs)
            p_.fail(unit.pos, "unknown unit '" + std::string(unit.text) + "' (use " + kRateUnits + ")");
        p_.next();
        if (multiplier > std::numeric_limits<uint64_t>::max() / *unitNs) {
            size_t from = m.type == TokenType::Number ? m.pos : unit.pos;
            p_.fail(from, "the period is too long (beyond 2^64 ns, about 584 years)",
                    text_.substr(from, unit.end() - from));
        }
        return multiplier * *unitNs;
    }

    std::string_view text_;
    LimitKind kind_;
    Parser p_;
};

}  // namespace

std::vector<Limit> parseRates(const std::string& text, LimitKind kind, const SourceLocation& where)
{
    return RateParser(text, kind, where).parse();
}

uint64_t parseDurationNs(const std::string& text, const SourceLocation& where)
{
    Parser p(text, where);
    const Token& n = p.peek();
    if (n.type == TokenType::End)
        p.fail(0, "no duration given (write e.g. '10 minutes' or '30s')", text);
    if (n.type != TokenType::Number)
        p.fail(n.pos, "a duration starts with a whole number (e.g. '10 minutes' or '30s')",
               p.rest(0, true));
    uint64_t value = p.number(p.next(), "durations are whole numbers (use a smaller unit: '90s')");
    if (value == 0)
        p.fail(n.pos, "a duration must be longer than 0", n.text);

    const Token& unit = p.peek();
    if (unit.type == TokenType::End)
        p.fail(n.end(), std::string("missing unit (") + kDurationUnits + ")", n.text);
    if (unit.type != TokenType::Word)
        p.fail(unit.pos, std::string("expected a unit (") + kDurationUnits + ")", unit.text);
    auto unitNs = durationUnitNs(unit.text);
    if (!unitNs)
        p.fail(unit.pos, "unknown unit '" + std::string(unit.text) + "' (use " + kDurationUnits + ")");
    p.next();
    if (p.peek().type != TokenType::End)
        p.fail(p.peek().pos, "unexpected text after the duration", p.rest(p.index(), true));
    if (value > std::numeric_limits<uint64_t>::max() / *unitNs)
        p.fail(n.pos, "the duration is too long (beyond 2^64 ns, about 584 years)",
               std::string_view(text).substr(n.pos, unit.end() - n.pos));
    return value * *unitNs;
}

}  // namespace sluice
