// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "error.h"
#include "rate.h"
#include "toml_checked.h"

namespace sluice {
namespace {

using Pos = toml::source_position;

const std::vector<std::string_view> kRootKeys = {"sluice", "allow", "deny", "policy", "fleet"};
const std::vector<std::string_view> kSluiceKeys = {"interfaces", "metrics", "max_sources", "admin",
                                                    "admin_ports"};
const std::vector<std::string_view> kListKeys = {"cidr", "comment"};
const std::vector<std::string_view> kFleetKeys = {"redis", "node", "sync_interval"};
// Node names go into a Redis client name and log lines: no spaces.
constexpr size_t kMaxNodeName = 64;
const std::vector<std::string_view> kPolicyKeys = {
    "name",   "proto", "ports",       "connections", "packets",   "bytes",
    "key",    "ipv4_prefix", "ipv6_prefix", "action", "ban_after", "ban",
    "scope",  "redirect_to", "new_sources",
};
// Where toml++ 3.3 would classify a non-ASCII character with its table of
// Unicode whitespace, which reaches __builtin_unreachable() for most of
// U+00A1..U+0499 and a few other ranges: undefined behaviour (upstream
// marzer/tomlplusplus #190 and #295, fixed after 3.3; found here by
// tests/fuzz/config_fuzz). It does so for every such character outside
// strings and comments, which is never valid TOML anyway, and for one right
// after a backslash (and the blanks and line breaks that follow it) in a
// multi-line basic string. The config parser refuses both before toml++ sees
// them. Strings (basic, literal, multi-line) and comments are skipped as
// TOML 1.0 defines them; a UTF-8 byte order mark may open the text.
struct UnreadableCharacter {
    size_t offset;
    bool afterBackslash;  // in a multi-line string, after a backslash
};

std::optional<UnreadableCharacter> unreadableCharacter(std::string_view text)
{
    auto nonAscii = [](char c) { return static_cast<unsigned char>(c) >= 0x80; };
    size_t i = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
    std::optional<UnreadableCharacter> found;
    // Past the closing quotes of a multi-line string: its first run of 3 to
    // 5 quotes (a longer run is an error toml++ reports).
    auto closeMultiLine = [&](char quote) {
        while (i < text.size()) {
            if (quote == '"' && text[i] == '\\') {
                size_t j = i + 1;
                while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' ||
                                           text[j] == '\n'))
                    j++;
                if (j < text.size() && nonAscii(text[j])) {
                    found = UnreadableCharacter{j, true};
                    return;
                }
                // An escaped character is skipped; after a line-ending
                // backslash the text goes on where the blanks end.
                i = j == i + 1 ? i + 2 : j;
            } else if (text.substr(i, 3) == std::string(3, quote)) {
                while (i < text.size() && text[i] == quote)
                    i++;
                return;
            } else {
                i++;
            }
        }
    };
    // Past a one-line string: its closing quote or the end of the line.
    auto closeOneLine = [&](char quote) {
        bool escapes = quote == '"';
        while (i < text.size() && text[i] != quote && text[i] != '\n')
            i += escapes && text[i] == '\\' && i + 1 < text.size() && text[i + 1] != '\n' ? 2 : 1;
        if (i < text.size() && text[i] == quote)
            i++;
    };
    // toml++'s value terminators (is_value_terminator), ASCII ones.
    auto endsValue = [](char c) {
        return c == ' ' || (c >= '\t' && c <= '\r') || c == ']' || c == '}' || c == ',' || c == '#';
    };
    // A quote opens a string only where a key or a value starts. Any other
    // value (number, boolean, date) toml++ reads up to a terminator, quotes
    // and brackets included ('-"é"', '0["é"', '0x4==="é"'), classifying each
    // character: so does this scan. Where neither a key nor a value may
    // start (after a value, a key or a header), a quote opens nothing: toml++
    // stops with an error there, and anything non-ASCII after it is refused.
    enum class Next { Key, Value, Neither };
    Next next = Next::Key;
    bool keyMode = true;        // keys until '=', then a value
    std::vector<char> nesting;  // open arrays and inline tables
    while (i < text.size() && !found) {
        char c = text[i];
        if (nonAscii(c))
            return UnreadableCharacter{i, false};
        if (c == '#') {
            while (i < text.size() && text[i] != '\n')
                i++;
            continue;
        }
        i++;
        if (c == ' ' || c == '\t' || c == '\r')
            continue;
        if (c == '\n') {
            // A line break inside an array keeps what may come next.
            if (nesting.empty()) {
                next = Next::Key;
                keyMode = true;
            }
            continue;
        }
        if ((c == '"' || c == '\'') && next != Next::Neither) {
            if (text.substr(i - 1, 3) == std::string(3, c)) {
                i += 2;
                closeMultiLine(c);
            } else {
                closeOneLine(c);
            }
            next = Next::Neither;
            continue;
        }
        bool closes = (c == ']' || c == '}') && !nesting.empty() &&
                      nesting.back() == (c == ']' ? '[' : '{');
        if (closes) {
            nesting.pop_back();
            keyMode = false;
            next = Next::Neither;
        } else if (c == ',' && !nesting.empty()) {
            keyMode = nesting.back() == '{';
            next = keyMode ? Next::Key : Next::Value;
        } else if (next == Next::Value && c == '[') {
            nesting.push_back('[');
        } else if (next == Next::Value && c == '{') {
            nesting.push_back('{');
            keyMode = true;
            next = Next::Key;
        } else if (next == Next::Value) {
            while (i < text.size() && !endsValue(text[i]))
                if (nonAscii(text[i++]))
                    return UnreadableCharacter{i - 1, false};
            next = Next::Neither;
        } else if (keyMode && c == '=') {
            keyMode = false;
            next = Next::Value;
        } else if (keyMode && (c == '.' || (c == '[' && next == Next::Key))) {
            // A dotted key goes on; '[' or '[[' opens a table header.
            next = Next::Key;
        } else {
            next = Next::Neither;
        }
    }
    return found;
}

bool before(const Pos& a, const Pos& b)
{
    return a.line != b.line ? a.line < b.line : a.column < b.column;
}

// Optimal string alignment distance: a swapped pair of letters ("prots")
// counts as one edit, so the usual typos get a suggestion.
size_t editDistance(std::string_view a, std::string_view b)
{
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); i++)
        d[i][0] = i;
    for (size_t j = 0; j <= b.size(); j++)
        d[0][j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
        for (size_t j = 1; j <= b.size(); j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.size()][b.size()];
}

std::string suggestion(std::string_view key, const std::vector<std::string_view>& known)
{
    std::vector<std::string_view> best;
    size_t bestDistance = SIZE_MAX;
    for (auto k : known) {
        size_t d = editDistance(key, k);
        if (d > (k.size() >= 5 ? 2U : 1U) || d > bestDistance)
            continue;
        if (d < bestDistance)
            best.clear();
        bestDistance = d;
        best.push_back(k);
    }
    std::string s;
    for (size_t i = 0; i < best.size(); i++)
        s += (i == 0 ? "" : i + 1 == best.size() ? " or '" : ", '") + std::string(best[i]) + "'";
    return s.empty() ? "" : " (did you mean '" + s + "?)";
}

}  // namespace

bool validInterfaceName(const std::string& name)
{
    if (name.empty() || name.size() > 15 || name == "." || name == "..")
        return false;
    return std::none_of(name.begin(), name.end(), [](char c) {
        return c == '/' || c == ':' || c == ' ' || (c >= '\t' && c <= '\r');
    });
}

namespace {

std::optional<uint16_t> parsePort(std::string_view text)
{
    if (text.empty() || text.size() > 5 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    unsigned long v = std::stoul(std::string(text));
    if (v < 1 || v > 65535)
        return std::nullopt;
    return static_cast<uint16_t>(v);
}

// A policy's entries as read, with the positions later checks point at.
struct PolicySource {
    Pos table;
    Pos name;
    std::vector<Pos> portItems;  // one per Policy::ports entry
    std::array<std::optional<Pos>, 3> limitText;  // per LimitKind - 1: the rate string's first character
    std::array<size_t, 3> limitCount{};
    std::optional<Pos> scope;
};

class Parser {
public:
    Parser(std::string_view text, const std::string& name) : text_(text), name_(name)
    {
        lineStarts_.push_back(0);
        for (size_t i = 0; i < text_.size(); i++)
            if (text_[i] == '\n')
                lineStarts_.push_back(i + 1);
    }

    Config run()
    {
        if (auto at = unreadableCharacter(text_))
            failUnreadable(*at);
        toml::table root;
        try {
            root = toml::parse(text_, std::string_view(name_));
        } catch (const toml::parse_error& e) {
            fail(e.source().begin, std::string(e.description()));
        } catch (const TomlCheckFailed& e) {
            failMalformed(e.what());
        }

        Config config;
        config.path = name_;
        for (const auto& [key, node] : inSourceOrder(root)) {
            std::string_view k = key->str();
            if (k == "sluice")
                readSluice(config, *node);
            else if (k == "allow" || k == "deny")
                readList(k == "allow" ? config.rules.allow : config.rules.deny, k, *node);
            else if (k == "policy")
                readPolicies(config.rules.policies, *node);
            else if (k == "fleet")
                readFleet(config, *node);
            else
                rejectKey(*key, *node, "at the top level", kRootKeys);
        }

        for (size_t i = 0; i < config.rules.policies.size(); i++)
            if (config.rules.policies[i].scope == Scope::Fleet && !config.fleet)
                fail(*sources_[i].scope, "policy '" + config.rules.policies[i].name +
                                             "': scope \"fleet\" needs a [fleet] section (redis, node)");
        try {
            compileRuleset(config.rules, {});
        } catch (const Error& e) {
            fail(positionOf(e.what(), config.rules.policies), e.what());
        }
        return config;
    }

private:
    [[noreturn]] void fail(const Pos& at, const std::string& message) const
    {
        throwUsage(name_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": " +
                   message);
    }

    [[noreturn]] void failUnreadable(const UnreadableCharacter& c) const
    {
        size_t offset = c.offset;
        size_t line = std::upper_bound(lineStarts_.begin(), lineStarts_.end(), offset) -
                      lineStarts_.begin();
        size_t start = lineStarts_[line - 1];
        if (line == 1 && text_.substr(0, 3) == "\xEF\xBB\xBF")
            start = 3;  // toml++ does not count the byte order mark
        Pos at;
        at.line = static_cast<toml::source_index>(line);
        // toml++ counts columns in code points: so do these messages.
        at.column = 1;
        for (size_t i = start; i < offset; i++)
            at.column += (static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80;
        size_t end = offset + 1;
        while (end < text_.size() && (static_cast<unsigned char>(text_[end]) & 0xC0) == 0x80)
            end++;
        std::string character(text_.substr(offset, end - offset));
        if (c.afterBackslash)
            fail(at, "the TOML parser cannot read '" + character +
                         "' right after a backslash (and the blanks after it) in a multi-line "
                         "string: end the line without the backslash, or put an ASCII character "
                         "first");
        fail(at, "unexpected character '" + character +
                     "' outside a string or comment (keys, numbers and other values are ASCII)");
    }

    // toml++ stopped at one of its internal checks (toml_checked.h). The one
    // known to trip is a table header whose name starts with a character no
    // key starts with: point at the first such header. A '[' at the start of
    // a line inside a multi-line string or array could be taken for it; the
    // file is refused either way, only the position would be off.
    [[noreturn]] void failMalformed(const std::string& check) const
    {
        auto keyStart = [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '"' ||
                   c == '\'' || c == ']';
        };
        for (size_t line = 0; line < lineStarts_.size(); line++) {
            size_t i = lineStarts_[line];
            auto skipBlanks = [&] {
                while (i < text_.size() && (text_[i] == ' ' || text_[i] == '\t'))
                    i++;
            };
            skipBlanks();
            if (i >= text_.size() || text_[i] != '[')
                continue;
            i++;
            skipBlanks();
            if (i < text_.size() && text_[i] == '[') {
                i++;
                skipBlanks();
            }
            if (i >= text_.size() || !keyStart(text_[i])) {
                Pos at;
                at.line = static_cast<toml::source_index>(line + 1);
                at.column = static_cast<toml::source_index>(i - lineStarts_[line] + 1);
                fail(at, "expected a table name after '[' (letters, digits, '_', '-' or a quoted name)");
            }
        }
        Pos start;
        start.line = 1;
        start.column = 1;
        fail(start, "not valid TOML (the TOML parser stopped at its check '" + check + "')");
    }

    static std::vector<std::pair<const toml::key*, const toml::node*>> inSourceOrder(
        const toml::table& table)
    {
        // toml++ keeps keys sorted; errors should come in the order they are written.
        std::vector<std::pair<const toml::key*, const toml::node*>> out;
        for (const auto& [key, node] : table)
            out.emplace_back(&key, &node);
        std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
            return before(a.first->source().begin, b.first->source().begin);
        });
        return out;
    }

    // Where a key is written: for [table] and [[table]] headers the '[', for
    // "key = value" the key.
    static Pos keyPosition(const toml::key& key, const toml::node& node)
    {
        const Pos& k = key.source().begin;
        const Pos& v = node.source().begin;
        return before(v, k) ? v : k;
    }

    [[noreturn]] void rejectKey(const toml::key& key, const toml::node& node,
                                const std::string& where,
                                const std::vector<std::string_view>& known) const
    {
        std::string_view k = key.str();
        fail(keyPosition(key, node),
             "unknown key '" + std::string(k) + "' " + where + suggestion(k, known));
    }

    const std::string& needString(const toml::node& node, const std::string& what) const
    {
        const auto* s = node.as_string();
        if (!s)
            fail(node.source().begin, what + " must be a string");
        return s->get();
    }

    int64_t needInteger(const toml::node& node, const std::string& what) const
    {
        const auto* i = node.as_integer();
        if (!i)
            fail(node.source().begin, what + " must be an integer");
        return i->get();
    }

    int64_t needIntegerIn(const toml::node& node, const std::string& what, int64_t lo,
                          int64_t hi) const
    {
        int64_t v = needInteger(node, what);
        if (v < lo || v > hi)
            fail(node.source().begin, what + " must be " + std::to_string(lo) + ".." +
                                          std::to_string(hi) + ", not " + std::to_string(v));
        return v;
    }

    const toml::array& needArray(const toml::node& node, const std::string& what) const
    {
        const auto* a = node.as_array();
        if (!a)
            fail(node.source().begin, what + " must be an array");
        return *a;
    }

    // [[name]]: an array whose every element is a table.
    std::vector<const toml::table*> needTables(const toml::node& node, std::string_view name) const
    {
        std::string what(name);
        const auto* a = node.as_array();
        std::vector<const toml::table*> out;
        if (a)
            for (const auto& e : *a)
                if (const auto* t = e.as_table())
                    out.push_back(t);
        if (!a || out.size() != a->size())
            fail(node.source().begin, what + " must be an array of tables: write [[" + what + "]]");
        return out;
    }

    // The location of a string value's first character, past its opening
    // quotes (and past the newline that directly follows """ or ''').
    // Escape sequences make the text differ from the file, so positions
    // inside a string with escapes are approximate.
    SourceLocation stringContent(const toml::node& node) const
    {
        SourceLocation loc;
        loc.file = name_;
        loc.line = static_cast<int>(node.source().begin.line);
        loc.column = static_cast<int>(node.source().begin.column);
        if (loc.line < 1 || static_cast<size_t>(loc.line) > lineStarts_.size())
            return loc;
        size_t i = lineStarts_[loc.line - 1];
        if (loc.line == 1 && text_.substr(0, 3) == "\xEF\xBB\xBF")
            i = 3;
        // toml++ counts columns in code points.
        for (int c = 1; c < loc.column && i < text_.size(); c++) {
            i++;
            while (i < text_.size() && (static_cast<unsigned char>(text_[i]) & 0xC0) == 0x80)
                i++;
        }
        std::string_view rest = text_.substr(std::min(i, text_.size()));
        if (rest.substr(0, 3) == "\"\"\"" || rest.substr(0, 3) == "'''") {
            rest.remove_prefix(3);
            if (rest.substr(0, 1) == "\n" || rest.substr(0, 2) == "\r\n") {
                loc.line++;
                loc.column = 1;
            } else {
                loc.column += 3;
            }
        } else if (rest.substr(0, 1) == "\"" || rest.substr(0, 1) == "'") {
            loc.column += 1;
        }
        return loc;
    }

    static Pos toPos(const SourceLocation& loc)
    {
        Pos p;
        p.line = static_cast<toml::source_index>(loc.line);
        p.column = static_cast<toml::source_index>(loc.column);
        return p;
    }

    void readSluice(Config& config, const toml::node& node)
    {
        const auto* table = node.as_table();
        if (!table)
            fail(node.source().begin, "sluice must be a table: write [sluice]");
        for (const auto& [key, value] : inSourceOrder(*table)) {
            std::string_view k = key->str();
            if (k == "interfaces") {
                std::set<std::string> seen;
                for (const auto& item : needArray(*value, "interfaces")) {
                    const auto* s = item.as_string();
                    if (!s)
                        fail(item.source().begin, "interfaces must hold strings (interface names)");
                    const std::string& name = s->get();
                    if (!validInterfaceName(name))
                        fail(item.source().begin,
                             "invalid interface name '" + name +
                                 "': 1 to 15 characters, without '/', ':' or whitespace");
                    if (!seen.insert(name).second)
                        fail(item.source().begin, "interface '" + name + "' is listed twice");
                    config.interfaces.push_back(name);
                }
            } else if (k == "metrics") {
                config.metrics = needString(*value, "metrics");
                checkMetricsAddress(config.metrics, *value);
            } else if (k == "max_sources") {
                int64_t v = needInteger(*value, "max_sources");
                if (v == 0)
                    fail(value->source().begin,
                         "max_sources must be at least 1: a zero table holds no source");
                if (v < 1 || v > kMaxSources)
                    fail(value->source().begin, "max_sources must be 1.." +
                                                    std::to_string(kMaxSources) + ", not " +
                                                    std::to_string(v));
                config.maxSources = static_cast<uint32_t>(v);
            } else if (k == "admin") {
                readAdmin(config, *value);
            } else if (k == "admin_ports") {
                readAdminPorts(config, *value);
            } else {
                rejectKey(*key, *value, "in [sluice]", kSluiceKeys);
            }
        }
    }

    void readFleet(Config& config, const toml::node& node)
    {
        const auto* table = node.as_table();
        if (!table)
            fail(node.source().begin, "fleet must be a table: write [fleet]");
        FleetConfig fleet;
        bool hasRedis = false, hasNode = false;
        for (const auto& [key, value] : inSourceOrder(*table)) {
            std::string_view k = key->str();
            const Pos& at = value->source().begin;
            if (k == "redis") {
                const auto& list = needArray(*value, "redis (a list of redis:// URLs)");
                if (list.empty())
                    fail(at, "redis must list at least one redis:// URL");
                for (const auto& item : list) {
                    const auto* s = item.as_string();
                    if (!s)
                        fail(item.source().begin, "redis must hold redis:// URLs (strings)");
                    RedisEndpoint ep;
                    try {
                        ep = parseRedisUrl(s->get());
                    } catch (const Error& e) {
                        fail(item.source().begin, e.what());
                    }
                    for (const auto& other : fleet.redis)
                        if (other.host == ep.host && other.port == ep.port && other.db == ep.db)
                            fail(item.source().begin, "redis " + ep.str() + " is listed twice");
                    fleet.redis.push_back(ep);
                }
                hasRedis = true;
            } else if (k == "node") {
                fleet.node = needString(*value, "node (this host's name in the fleet)");
                bool valid = !fleet.node.empty() && fleet.node.size() <= kMaxNodeName &&
                             std::all_of(fleet.node.begin(), fleet.node.end(), [](char c) {
                                 return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                                        c == '_' || c == '.';
                             });
                if (!valid)
                    fail(at, "node must be 1.." + std::to_string(kMaxNodeName) +
                                 " letters, digits, '-', '_' or '.', not '" + fleet.node + "'");
                hasNode = true;
            } else if (k == "sync_interval") {
                const std::string& text =
                    needString(*value, "sync_interval (a duration such as \"100ms\")");
                fleet.syncIntervalNs = parseDurationNs(text, stringContent(*value));
                if (fleet.syncIntervalNs < kMinSyncIntervalNs || fleet.syncIntervalNs > kMaxSyncIntervalNs)
                    fail(at, "sync_interval must be 10ms..1 minute, not '" + text + "'");
            } else {
                rejectKey(*key, *value, "in [fleet]", kFleetKeys);
            }
        }
        if (!hasRedis)
            fail(table->source().begin, "[fleet] needs redis (a list of redis:// URLs)");
        if (!hasNode)
            fail(table->source().begin, "[fleet] needs node (this host's name in the fleet)");
        config.fleet = std::move(fleet);
    }

    // admin = ["192.0.2.0/24", "2001:db8:ad::/48"]: CIDRs, as in [[allow]].
    void readAdmin(Config& config, const toml::node& node) const
    {
        for (const auto& item : needArray(node, "admin")) {
            const auto* s = item.as_string();
            if (!s)
                fail(item.source().begin, "admin must hold CIDRs as strings (\"192.0.2.0/24\")");
            try {
                config.admin.push_back(Cidr::parse(s->get()));
            } catch (const Error& e) {
                fail(item.source().begin, std::string("admin: ") + e.what());
            }
        }
    }

    // admin_ports = [22, 2222]: TCP ports, at least one.
    void readAdminPorts(Config& config, const toml::node& node) const
    {
        const toml::array& ports = needArray(node, "admin_ports");
        if (ports.empty())
            fail(node.source().begin, "admin_ports must not be empty (the default is [22])");
        config.adminPorts.clear();
        for (const auto& item : ports) {
            const auto* i = item.as_integer();
            if (!i || i->get() < 1 || i->get() > 65535)
                fail(item.source().begin, "admin_ports must hold TCP port numbers 1..65535");
            config.adminPorts.push_back(static_cast<uint16_t>(i->get()));
        }
    }

    // "host:port" where host is an IP literal ([...] for IPv6) or localhost:
    // the metrics server binds it, so a name that needs DNS is not accepted.
    void checkMetricsAddress(const std::string& address, const toml::node& node) const
    {
        const std::string example = " (e.g. \"127.0.0.1:9464\" or \"[::1]:9464\")";
        std::string host, port;
        in_addr v4{};
        in6_addr v6{};
        if (!address.empty() && address[0] == '[') {
            auto close = address.find(']');
            if (close == std::string::npos || close + 1 >= address.size() ||
                address[close + 1] != ':')
                fail(node.source().begin, "metrics '" + address + "' must be HOST:PORT" + example);
            host = address.substr(1, close - 1);
            port = address.substr(close + 2);
            if (inet_pton(AF_INET6, host.c_str(), &v6) != 1)
                fail(node.source().begin,
                     "metrics '" + address + "': '" + host + "' is not an IPv6 address");
        } else {
            auto colon = address.rfind(':');
            if (colon == std::string::npos)
                fail(node.source().begin, "metrics '" + address + "' must be HOST:PORT" + example);
            host = address.substr(0, colon);
            port = address.substr(colon + 1);
            if (host.find(':') != std::string::npos)
                fail(node.source().begin,
                     "metrics '" + address + "': an IPv6 address needs brackets, as in [::1]:9464");
            if (host != "localhost" && inet_pton(AF_INET, host.c_str(), &v4) != 1)
                fail(node.source().begin, "metrics '" + address + "': the host must be an IP address "
                                          "or localhost, not '" + host + "'");
        }
        if (!parsePort(port))
            fail(node.source().begin,
                 "metrics '" + address + "': the port must be 1..65535, not '" + port + "'");
    }

    void readList(std::vector<Cidr>& out, std::string_view name, const toml::node& node)
    {
        std::string where = "in [[" + std::string(name) + "]]";
        for (const auto* table : needTables(node, name)) {
            std::optional<Cidr> cidr;
            for (const auto& [key, value] : inSourceOrder(*table)) {
                std::string_view k = key->str();
                if (k == "cidr") {
                    const std::string& text = needString(*value, "cidr");
                    try {
                        cidr = Cidr::parse(text);
                    } catch (const Error& e) {
                        fail(value->source().begin, e.what());
                    }
                } else if (k == "comment") {
                    needString(*value, "comment");
                } else {
                    rejectKey(*key, *value, where, kListKeys);
                }
            }
            if (!cidr)
                fail(table->source().begin, "[[" + std::string(name) + "]] needs a cidr");
            out.push_back(*cidr);
        }
    }

    void readPolicies(std::vector<Policy>& out, const toml::node& node)
    {
        for (const auto* table : needTables(node, "policy")) {
            Policy p;
            PolicySource src;
            src.table = table->source().begin;
            readPolicy(*table, p, src);
            checkPolicy(p, src, out);
            out.push_back(std::move(p));
            sources_.push_back(std::move(src));
        }
    }

    // A key that takes one rate counted in units of kind packets
    // (ban_after, new_sources).
    Limit oneRate(const toml::node& value, const Pos& at, const std::string& key, const std::string& example)
    {
        const std::string& text = needString(value, key + " (a rate such as \"" + example + "\")");
        auto rates = parseRates(text, LimitKind::Packets, stringContent(value));
        if (rates.size() != 1)
            fail(at, key + " takes one rate, not " + std::to_string(rates.size()));
        return rates.front();
    }

    void readPolicy(const toml::table& table, Policy& p, PolicySource& src)
    {
        bool hasName = false, hasProto = false, hasPorts = false;
        std::array<std::vector<Limit>, 3> limits;
        std::optional<Pos> actionAt, banAt, banAfterAt, redirectAt, newSourcesAt;
        for (const auto& [key, value] : inSourceOrder(table)) {
            std::string_view k = key->str();
            const Pos& at = value->source().begin;
            if (k == "name") {
                p.name = needString(*value, "name");
                src.name = at;
                hasName = true;
            } else if (k == "proto") {
                const std::string& proto = needString(*value, "proto");
                if (proto == "tcp")
                    p.proto = Proto::Tcp;
                else if (proto == "udp")
                    p.proto = Proto::Udp;
                else
                    fail(at, "proto must be \"tcp\" or \"udp\", not '" + proto + "'");
                hasProto = true;
            } else if (k == "ports") {
                readPorts(needArray(*value, "ports"), at, p, src);
                hasPorts = true;
            } else if (k == "connections" || k == "packets" || k == "bytes") {
                LimitKind kind = k == "connections" ? LimitKind::Connections
                                 : k == "packets"   ? LimitKind::Packets
                                                    : LimitKind::Bytes;
                std::string what(k);
                const std::string& text =
                    needString(*value, what + " (a rate such as \"10/second\")");
                SourceLocation loc = stringContent(*value);
                size_t idx = static_cast<size_t>(kind) - 1;
                limits[idx] = parseRates(text, kind, loc);
                src.limitText[idx] = toPos(loc);
                src.limitCount[idx] = limits[idx].size();
            } else if (k == "key") {
                const std::string& mode = needString(*value, "key");
                if (mode == "source")
                    p.key = KeyMode::Source;
                else if (mode == "global")
                    p.key = KeyMode::Global;
                else
                    fail(at, "key must be \"source\" or \"global\", not '" + mode + "'");
            } else if (k == "ipv4_prefix") {
                p.ipv4Prefix = static_cast<uint8_t>(needIntegerIn(*value, "ipv4_prefix", 0, 32));
            } else if (k == "ipv6_prefix") {
                p.ipv6Prefix = static_cast<uint8_t>(needIntegerIn(*value, "ipv6_prefix", 0, 128));
            } else if (k == "action") {
                const std::string& name = needString(*value, "action");
                auto action = actionFromName(name);
                if (action)
                    p.action = *action;
                else
                    fail(at, "action must be \"drop\", \"reject\", \"respond\", \"redirect\" or "
                             "\"monitor\", not '" + name + "'");
                actionAt = at;
            } else if (k == "ban_after") {
                p.banAfter = oneRate(*value, at, "ban_after", "20 per minute");
                banAfterAt = at;
            } else if (k == "new_sources") {
                p.newSources = oneRate(*value, at, "new_sources", "1000 per second");
                newSourcesAt = at;
            } else if (k == "ban") {
                const std::string& text =
                    needString(*value, "ban (a duration such as \"10 minutes\")");
                p.banNs = parseDurationNs(text, stringContent(*value));
                banAt = at;
            } else if (k == "scope") {
                const std::string& scope = needString(*value, "scope");
                if (scope == "host")
                    p.scope = Scope::Host;
                else if (scope == "fleet")
                    p.scope = Scope::Fleet;
                else
                    fail(at, "scope must be \"host\" or \"fleet\", not '" + scope + "'");
                src.scope = at;
            } else if (k == "redirect_to") {
                p.redirectTo = needString(*value, "redirect_to (an interface name)");
                if (p.redirectTo.empty() || p.redirectTo.size() >= 16 ||
                    p.redirectTo.find('/') != std::string::npos)
                    fail(at, "redirect_to must be an interface name, not '" + p.redirectTo + "'");
                redirectAt = at;
            } else {
                rejectKey(*key, *value, "in [[policy]]", kPolicyKeys);
            }
        }
        // A fixed order (connections, packets, bytes) so that moving keys
        // around in the file does not count as a change of limits.
        for (auto& l : limits)
            p.limits.insert(p.limits.end(), l.begin(), l.end());

        std::string which = hasName ? "policy '" + p.name + "'" : "[[policy]]";
        if (banAfterAt && !banAt)
            fail(*banAfterAt, which + ": ban_after needs ban (how long a ban lasts)");
        if (banAt && !banAfterAt)
            fail(*banAt, which + ": ban needs ban_after (the rate of limited units that starts a ban)");
        if (banAt && p.action == Action::Monitor)
            fail(*banAt, which + ": a ban stops traffic, which action \"monitor\" never does");
        if (newSourcesAt && p.key == KeyMode::Global)
            fail(*newSourcesAt, which + ": new_sources needs key = \"source\" (with key global there is one source)");
        if (p.action == Action::Redirect && !redirectAt)
            fail(*actionAt, which + ": action \"redirect\" needs redirect_to (an interface name)");
        if (redirectAt && p.action != Action::Redirect)
            fail(*redirectAt, which + ": redirect_to is only for action \"redirect\"");
        if (p.action == Action::Reject && hasProto && p.proto != Proto::Tcp)
            fail(*actionAt, which + ": action \"reject\" needs proto \"tcp\" (it answers SYNs with a RST)");
        if (p.action == Action::Respond && hasProto && p.proto != Proto::Tcp)
            fail(*actionAt, which + ": action \"respond\" needs proto \"tcp\" (it answers HTTP connections with 429)");
        if (!hasName)
            fail(src.table, "[[policy]] needs a name");
        if (!hasProto)
            fail(src.table, which + " needs a proto (\"tcp\" or \"udp\")");
        if (!hasPorts)
            fail(src.table, which + " needs ports");
    }

    void readPorts(const toml::array& ports, const Pos& at, Policy& p, PolicySource& src) const
    {
        if (ports.empty())
            fail(at, "ports must not be empty");
        for (const auto& item : ports) {
            const Pos& itemAt = item.source().begin;
            PortRange r;
            if (const auto* i = item.as_integer()) {
                int64_t v = i->get();
                if (v < 1 || v > 65535)
                    fail(itemAt, "port " + std::to_string(v) + " is out of range 1..65535");
                r.first = r.last = static_cast<uint16_t>(v);
            } else if (const auto* s = item.as_string()) {
                const std::string& text = s->get();
                auto dash = text.find('-');
                if (dash == std::string::npos) {
                    bool number = parsePort(text).has_value();
                    fail(itemAt, "port range '" + text + "' must be \"FIRST-LAST\"" +
                                     (number ? " (a single port is an integer: " + text + ")"
                                             : ""));
                }
                auto first = parsePort(std::string_view(text).substr(0, dash));
                auto last = parsePort(std::string_view(text).substr(dash + 1));
                if (!first || !last)
                    fail(itemAt, "port range '" + text +
                                     "' must be \"FIRST-LAST\" with ports 1..65535");
                if (*first > *last)
                    fail(itemAt, "port range '" + text + "' is reversed");
                r.first = *first;
                r.last = *last;
            } else {
                fail(itemAt, "ports must hold port numbers or \"FIRST-LAST\" ranges");
            }
            p.ports.push_back(r);
            src.portItems.push_back(itemAt);
        }
    }

    static std::string portText(const Policy& p, uint16_t first, uint16_t last)
    {
        std::string s = protoName(p.proto) + (first == last ? " port " : " ports ") +
                        std::to_string(first);
        if (last != first)
            s += "-" + std::to_string(last);
        return s;
    }

    std::string locationText(const Pos& at) const
    {
        return name_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
    }

    // Checks that need the whole policy, and those against earlier policies.
    // `earlier` are the policies read before, parallel to sources_.
    void checkPolicy(const Policy& p, const PolicySource& src,
                     const std::vector<Policy>& earlier) const
    {
        std::string which = "policy '" + p.name + "'";
        if (auto problem = policyNameProblem(p.name))
            fail(src.name, *problem);
        for (size_t i = 0; i < sources_.size(); i++)
            if (earlier[i].name == p.name)
                fail(src.name, which + " is defined twice (first at " + locationText(sources_[i].table) +
                                   ")");

        if (p.limits.empty())
            fail(src.table, which + " has no limits: set connections, packets or bytes");
        size_t connIdx = static_cast<size_t>(LimitKind::Connections) - 1;
        if (p.proto != Proto::Tcp && src.limitCount[connIdx])
            fail(*src.limitText[connIdx],
                 which + ": connections limits need proto \"tcp\" (UDP has no connections)");
        if (p.limits.size() > SLUICE_MAX_LIMITS)
            fail(src.table, which + " has " + std::to_string(p.limits.size()) +
                                " limits (connections " + std::to_string(src.limitCount[0]) +
                                ", packets " + std::to_string(src.limitCount[1]) + ", bytes " +
                                std::to_string(src.limitCount[2]) + "); at most " +
                                std::to_string(SLUICE_MAX_LIMITS) + " are allowed");

        for (size_t i = 0; i < p.ports.size(); i++) {
            const PortRange& r = p.ports[i];
            for (size_t j = 0; j < i; j++) {
                const PortRange& o = p.ports[j];
                uint16_t lo = std::max(r.first, o.first), hi = std::min(r.last, o.last);
                if (lo <= hi)
                    fail(src.portItems[i], which + ": " + portText(p, lo, hi) +
                                               " already listed at " + locationText(src.portItems[j]));
            }
            for (size_t k = 0; k < sources_.size(); k++) {
                const Policy& other = earlier[k];
                if (other.proto != p.proto)
                    continue;
                for (size_t j = 0; j < other.ports.size(); j++) {
                    const PortRange& o = other.ports[j];
                    uint16_t lo = std::max(r.first, o.first), hi = std::min(r.last, o.last);
                    if (lo <= hi)
                        fail(src.portItems[i],
                             which + ": " + portText(p, lo, hi) +
                                 (lo == hi ? " is" : " are") + " already covered by policy '" +
                                 other.name + "' (at " + locationText(sources_[k].portItems[j]) +
                                 "): one policy per protocol and port");
                }
            }
        }
    }

    // compileRuleset's messages name a policy as "policy 'NAME'": point at
    // that policy's table, or else at the start of the file.
    Pos positionOf(const std::string& message, const std::vector<Policy>& list) const
    {
        Pos at;
        at.line = 1;
        at.column = 1;
        size_t best = 0;
        for (size_t i = 0; i < list.size(); i++) {
            std::string prefix = "policy '" + list[i].name + "'";
            if (message.rfind(prefix, 0) == 0 && prefix.size() > best) {
                best = prefix.size();
                at = sources_[i].table;
            }
        }
        return at;
    }

    std::string_view text_;
    std::string name_;
    std::vector<size_t> lineStarts_;
    std::vector<PolicySource> sources_;
};

}  // namespace

Config parseConfig(const std::string& text, const std::string& name)
{
    Parser parser(text, name);
    return parser.run();
}

std::string readConfigFile(const std::string& path)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throwUsage("cannot read config " + path + ": " + errnoText(errno));
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throwUsage("cannot read config " + path + ": " + errnoText(err));
        }
        if (n == 0)
            break;
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return text;
}

Config loadConfig(const std::string& path)
{
    Config config = parseConfig(readConfigFile(path), path);
    config.path = path;
    return config;
}

}  // namespace sluice
