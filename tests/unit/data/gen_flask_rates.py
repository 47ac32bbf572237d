#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The golden corpus of tests/unit/flask_rates_test.cpp.

Builds a fixed corpus of rate strings (valid Flask-Limiter strings in every
spelling, sluice's extensions, and strings Flask-Limiter refuses) and records
what the `limits` package (Flask-Limiter's parser) makes of each one. The C++
test then checks sluice's parseRates against these answers.

Run with Debian's interpreter, which has python3-limits:

  /usr/bin/python3 tests/unit/data/gen_flask_rates.py          # rewrite flask_rates.json
  /usr/bin/python3 tests/unit/data/gen_flask_rates.py --check  # exit 1 if it would change

--check also runs in the unit tier (FlaskRatesGolden), so that an upgrade of
`limits` that changes an answer, or a generator edit without a regenerated
file, fails a test instead of going unnoticed.

Each entry of flask_rates.json:
  s       the string
  tag     how the generator built it (for reading and counting only)
  limits  what limits.parse_many returned: one [amount, multiples, seconds,
          written] per limit (amount and multiples as decimal strings, since
          they can exceed 64 bits; `written` is the multiplier exactly as
          limits' own regex captured it, "" when absent, because limits turns
          a written "0" into 1), or null when it raised
  error   the exception's type name when it raised
  ext     only for sluice's extensions (weeks, burst, nginx r/s r/m), which
          limits refuses: what sluice must return, [count, seconds, burst]
          per limit (burst 0 = none)
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "flask_rates.json")
SEED = 0x5EED_F1A5


class Rng:
    """splitmix64: the corpus must not depend on the Python version's random."""

    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def between(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def chance(self, percent):
        return self.below(100) < percent


# The units limits 2.8.0 knows, and their seconds (month 30 d, year 360 d).
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400,
         "month": 2592000, "year": 31104000}
WEEK = 604800

AMOUNTS = [1, 2, 3, 5, 10, 12, 20, 30, 50, 60, 100, 120, 500, 1000, 3600, 5000,
           10000, 86400, 100000, 1000000]
MULTS = [1, 2, 3, 5, 7, 10, 12, 15, 24, 30, 60, 90]
# Whitespace sluice and limits both take.
SPACES = [" ", "  ", "\t", " \t ", "\n", "   "]


def spell(rng, word):
    """lower, UPPER, Title or MiXeD case."""
    style = rng.below(5)
    if style == 0:
        return word.upper()
    if style == 1:
        return word.capitalize()
    if style == 2:
        return "".join(c.upper() if rng.chance(50) else c for c in word)
    return word


def ws(rng, percent=50):
    """Optional whitespace."""
    return rng.choice(SPACES) if rng.chance(percent) else ""


def amount(rng):
    return rng.choice(AMOUNTS) if rng.chance(60) else rng.between(1, 100000)


def multiplier(rng, unit):
    if unit == "year":
        return rng.between(1, 3)  # the data path holds periods up to ~146 years
    return rng.choice(MULTS) if rng.chance(70) else rng.between(1, 999)


def limit(rng, units=tuple(UNITS)):
    """One limit both parsers take: (text, amount, multiples, unit)."""
    n = amount(rng)
    unit = rng.choice(units)
    mult = multiplier(rng, unit) if rng.chance(40) else None
    word = spell(rng, unit + ("s" if rng.chance(50) else ""))
    mult_text = ""
    if mult is not None:
        mult_text = ("0" * rng.between(1, 2) if rng.chance(5) else "") + str(mult)
    if rng.chance(50):
        # "per" needs a space or the multiplier before the unit: "persecond"
        # is a limits quirk, generated on purpose elsewhere.
        per = spell(rng, "per")
        before_unit = ws(rng) if mult is not None else rng.choice(SPACES)
        text = (f"{ws(rng, 30)}{n}{ws(rng, 80)}{per}"
                f"{(rng.choice(SPACES) + mult_text) if mult is not None else ''}"
                f"{before_unit}{word}{ws(rng, 20)}")
    else:
        text = (f"{ws(rng, 20)}{n}{ws(rng, 30)}/{ws(rng, 30)}{mult_text}"
                f"{ws(rng) if mult is not None else ''}{word}{ws(rng, 20)}")
    return text, n, mult or 1, unit


def separator(rng):
    return ws(rng, 40) + rng.choice(";,|") + ws(rng, 60)


def join(rng, parts):
    out = parts[0]
    for p in parts[1:]:
        out += separator(rng) + p
    return out


def ext_limit(rng):
    """One limit in sluice's extensions: (text, [count, seconds, burst])."""
    kind = rng.below(4)
    if kind == 0:  # weeks
        n = amount(rng)
        mult = rng.between(1, 52) if rng.chance(50) else None
        word = spell(rng, "week" + ("s" if rng.chance(50) else ""))
        sep = spell(rng, "per") if rng.chance(50) else "/"
        text = f"{n} {sep} {str(mult) + ' ' if mult else ''}{word}"
        return text, [n, (mult or 1) * WEEK, 0]
    if kind == 1:  # nginx
        n = rng.between(1, 10000)
        unit = rng.choice("sm")
        r = rng.choice(["r", "R"])
        u = unit if rng.chance(70) else unit.upper()
        text = f"{n}{ws(rng, 20)}{r}{ws(rng, 10)}/{ws(rng, 10)}{u}"
        return text, [n, 1 if unit == "s" else 60, 0]
    # burst on a plain or nginx limit
    if kind == 2:
        text, n, mult, unit = limit(rng, ("second", "minute", "hour"))
        seconds = mult * UNITS[unit]
    else:
        n = rng.between(1, 10000)
        unit = rng.choice("sm")
        text, seconds = f"{n}r/{unit}", 1 if unit == "s" else 60
    burst = rng.between(1, 1000)
    return f"{text.rstrip()} {spell(rng, 'burst')} {burst}", [n, seconds, burst]


# Strings limits refuses, written by hand: every way a rate goes wrong.
BAD = [
    "", " ", "\t", ";", ",", "|", "per second", "/second", "per", "/", "5", "5 per", "5/",
    "5 per 2", "5/2", "5 per minute;", ";5 per minute", "5 per minute;;10/hour",
    "5 per minute, ,10/hour", "5 per minute |", "| 5/second", "5 minute", "5 pre minute",
    "5 per sec", "5 per secs", "5 per s", "5/s", "5/min", "5/m", "5/h", "5/hr", "5 per hr",
    "5 per d", "5 per mo", "5 per yr", "5 per y", "5 per ms", "5 per millisecond",
    "5 per fortnight", "5 per decade", "5 per century", "5 per quarter", "5 per tick",
    "5 per seconds2", "5 per secondss", "5 per hourly", "5 per daily", "5 per minutely",
    "5 per sec ond", "5 per se cond", "5 per mi nute", "5 per 2 3 seconds", "5 per 2 2 hours",
    "5 per -2 seconds", "5 per 1.5 minutes", "5 per 2.0 hours", "1.5 per second",
    "-5 per second", "+5 per second", "5.0 per second", ".5 per second", "5. per second",
    "0x10 per second", "1e3 per second", "1_000 per second", "1,000 per second",
    "1 000 per second", "five per minute", "ten/hour", "5 per minute please",
    "5 per minute 10 per hour", "5 per minute # note", "5 per minute; 1/day extra",
    "please 5 per minute", "5 per per minute", "5 per / minute", "5 // minute",
    "5 / / minute", "5 per minute per hour", "5 per minute/hour", "5/minute/hour",
    "5 per hour day", "5 per hour 2", "5 per 2 hours 3", "5 per hour;5", "5;per hour",
    "5 per minute burst", "5/second burst 0", "5/second burst -3", "5/second burst 1.5",
    "5/second burst lots", "5/second burst 2 burst 3", "burst 5", "5 burst 2 per second",
    "10r/h", "10r/2s", "10r/", "10r", "10r/d", "10 r/sec", "10rs", "10 rps", "10/s burst",
    "5 MB/second", "5k per second", "5 KiB/second", "5K/second", "10 GB per hour",
    "5 per minute:", ":5 per minute", "5 per minute::;1/hour", "5:per minute",
    "5 per: minute", "5 per minute\t:\t;1/hour", "5 per minute:,", "5 per minute :",
    "5 per minute: ;1 per hour", "(5 per minute)", "[5 per minute]", "'5 per minute'",
    '"5 per minute"', "5 per minute.", "5 per minute!", "5 per minute?", "5 per minute\\",
    "5 per minute&1 per hour", "5 per minute and 1 per hour", "5 per minute + 1 per hour",
    "5 per minute\x00", "5\x00per minute", "5 per\x7fminute", "5 per min\x08ute",
    "5 \u00d7 minute", "\uff15 per second", "\u0665 per second", "5 per \u017fecond",
    "5 per m\u0131nute", "5 per M\u0130NUTE", "5 per s\u00e9cond", "5 per sekunde",
    "5 pro Minute", "5 par minute", "5 por minuto", "5 per minuto", "5 per heure",
    "5 per jour", "5 PER SEC", "5 Per Min", "5 per HR", "5 per Hrs", "5 per Mins", "5 per Secs",
    "5 per week:", "5 per weekly", "5 per wk", "5 per w", "5/w",
    "5 per second; 5 per minute; 5 per hour; 5 per day; 5 per month; 5 per fortnight",
    "5 per second ; ; 5 per minute", "5 per second 5 per minute", "5 per second\\n5 per minute",
    "5 per 2seconds2", "5 per 2 2seconds", "52 per", "per 5 second", "second per 5",
    "minute/5", "5 minutes", "5 per 5", "5 per 5 5", "5 a minute", "5 each minute",
    "5 every minute", "5 in 1 minute", "5 times per minute", "5 requests per minute",
    "5 hits/minute", "5req/s", "5 per minute;1/hour;1/day;1/month;1/year;",
]

# limits accepts these through its regular expression's looseness, which
# rate.h does not list; sluice refuses them (FlaskRates calls them quirks).
QUIRKS = [
    # "per" glued to the unit: limits' "\s*per\s*" needs no space.
    "10persecond", "10 persecond", "5 perminute", "5 PERHOURS", "1perday", "3 PerMonth",
    "12 peryears", "5 per minute; 10perhour", "7 perseconds|1/day",
    # A typo in limits' EXPR, "(:?" for "(?:", takes one ':' before a separator.
    "1/second:;2/minute", "1 per second:,2 per hour", "5 per minute :|1/day",
    "5 per minute: ;1 per hour", "1/second:;2/minute:;3/hour", "10 per 2 hours:, 5/day",
    # Python's \s takes ASCII's information separators \x1c-\x1f as spaces.
    "1 per\x1csecond", "1\x1dper second", "1 per 2\x1ehours", "\x1f5/minute",
]

# Whitespace that is not a plain space, tab or newline.
ODD_SPACES = [
    "1 per\x0bsecond", "1\x0cper\x0cminute", "\x0b5/hour\x0c", "5 /\x0b2 days",
    "5 per minute\x0c;\x0b10/hour", "1 per second\r\n", "\r1/second\r", "5\r\nper\r\nminute",
    "1\u00a0per second", "1 per\u00a0second", "5\u3000per\u3000minute", "1 per second\u2028",
    "\u20035/minute", "5 per minute\u2009;1/hour", "1 per second\x85",
    "10 per hour\u017f", "10 per minute\u017f", "1 per 2 days\u017f",
]


def big(rng):
    """Numbers past 64 bits, and rates past the data path's arithmetic."""
    out = ["18446744073709551615 per second", "18446744073709551616 per second",
           "99999999999999999999999999 per minute", "1000000000 per second",
           "999999999 per second", "1000000001 per second", "2000000000 per second",
           "700000000 per second", "100000000 per second", "33333333 per second",
           "1 per 100 years", "1 per 146 years", "1 per 147 years", "1 per 200 years",
           "1 per 100000000 years", "1 per 18446744073709551616 seconds",
           "1 per 18446744073709551615 seconds", "1 per 4611686018 seconds",
           "1 per 4611686019 seconds", "2 per 4611686019 seconds",
           "1 per 999999999999999999999 days", "5 per 1770 months", "5 per 1780 months",
           "1/second; 18446744073709551616 per hour", "1 per 99999 hours; 2 per 2 days"]
    for _ in range(25):
        digits = rng.between(10, 30)
        n = rng.between(10 ** (digits - 1), 10 ** digits - 1)
        unit = rng.choice(list(UNITS))
        out.append(f"{n} per {unit}" if rng.chance(50) else f"1 per {n} {unit}s")
    return out


def zeros(rng):
    out = ["0 per second", "0/minute", "00 per hour", "0 per 0 seconds", "5 per 0 minutes",
           "5/0 seconds", "5 per 00 hours", "5/000day", "1/second; 0/minute",
           "1/second | 5 per 0 hours", "0/second;0/minute", "007 per second",
           "5 per 007 minutes", "000000000001 per 000002 days"]
    for _ in range(20):
        parts = [limit(rng)[0] for _ in range(rng.between(1, 3))]
        i = rng.below(len(parts))
        text, n, mult, unit = limit(rng)
        if rng.chance(50):
            parts[i] = f"0 per {mult} {unit}"
        else:
            parts[i] = f"{n} per {'0' * rng.between(1, 3)} {unit}s"
        out.append(join(rng, parts))
    return out


MUTATION_CHARS = list("aeiorstpmhdynwkbc0123456789 \t/;,|.-+:#_*()'\"=\\") + ["\u00e9", "\x0b"]


def mutate(rng, text):
    for _ in range(rng.between(1, 2)):
        op = rng.below(5)
        i = rng.below(len(text) + 1)
        if op == 0 and text:
            i = min(i, len(text) - 1)
            text = text[:i] + text[i + 1:]
        elif op == 1:
            text = text[:i] + rng.choice(MUTATION_CHARS) + text[i:]
        elif op == 2 and text:
            i = min(i, len(text) - 1)
            text = text[:i] + rng.choice(MUTATION_CHARS) + text[i + 1:]
        elif op == 3 and len(text) > 1:
            i = min(i, len(text) - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        else:
            j = min(len(text), i + rng.between(1, 6))
            text = text[:i] + text[i:j] + text[i:j] + text[j:]
    return text


def corpus():
    """[(tag, string, ext or None)], in a fixed order, without duplicates."""
    rng = Rng(SEED)
    out = []

    for unit in UNITS:  # every unit, every spelling, at least once
        for word in (unit, unit + "s", unit.upper(), unit.upper() + "S", unit.capitalize() + "s"):
            out.append(("single", f"10 per {word}", None))
            out.append(("single", f"10/{word}", None))
            out.append(("single", f"10 per 2 {word}", None))
            out.append(("single", f"10/2{word}", None))
    for _ in range(500):
        out.append(("single", limit(rng)[0], None))
    for _ in range(350):
        out.append(("multi", join(rng, [limit(rng)[0] for _ in range(rng.between(2, 4))]), None))
    for _ in range(40):
        out.append(("many", join(rng, [limit(rng)[0] for _ in range(rng.between(5, 7))]), None))
    for s in zeros(rng):
        out.append(("zero", s, None))
    for s in big(rng):
        out.append(("big", s, None))
    for s in ODD_SPACES:
        out.append(("space", s, None))
    for s in QUIRKS:
        out.append(("quirk", s, None))
    for s in BAD:
        out.append(("bad", s, None))

    for _ in range(200):
        # One to four limits, at least one of them an extension.
        count = rng.between(1, 4)
        parts, ext = [], []
        for k in range(count):
            if k == 0 or rng.chance(40):
                text, want = ext_limit(rng)
            else:
                text, n, mult, unit = limit(rng, ("second", "minute", "hour", "day"))
                want = [n, mult * UNITS[unit], 0]
            parts.append(text)
            ext.append(want)
        order = list(range(count))
        for k in range(count - 1, 0, -1):  # the extension need not come first
            j = rng.below(k + 1)
            order[k], order[j] = order[j], order[k]
        out.append(("ext", join(rng, [parts[k] for k in order]), [ext[k] for k in order]))

    for _ in range(900):
        base = limit(rng)[0] if rng.chance(60) else join(
            rng, [limit(rng)[0] for _ in range(rng.between(2, 3))])
        out.append(("mutant", mutate(rng, base), None))

    seen, unique = set(), []
    for tag, s, ext in out:
        if s not in seen:
            seen.add(s)
            unique.append((tag, s, ext))
    return unique


def ask_limits(s):
    """What limits makes of `s`: (list or None, error type name or None)."""
    from limits import parse_many
    from limits.util import SEPARATORS, SINGLE_EXPR
    try:
        items = parse_many(s)
    except Exception as e:  # limits raises ValueError; any other type is news
        return None, type(e).__name__
    # The multiplier as written, by limits' own regex, as parse_many reads it.
    written = [SINGLE_EXPR.match(part).group(3) or "" for part in SEPARATORS.split(s)]
    assert len(written) == len(items), s
    return [[str(i.amount), str(i.multiples), i.GRANULARITY.seconds, w]
            for i, w in zip(items, written)], None


def entry(tag, s, ext, answer):
    e = {"s": s, "tag": tag, "limits": answer[0]}
    if answer[1] is not None:
        e["error"] = answer[1]
    if ext is not None:
        e["ext"] = ext
    return e


def render(entries):
    import limits
    head = {"generator": "tests/unit/data/gen_flask_rates.py", "limits_version": limits.__version__,
            "seed": SEED, "count": len(entries)}
    lines = ["{" + json.dumps("meta") + ": " + json.dumps(head, sort_keys=True) + ",",
             json.dumps("entries") + ": ["]
    body = [json.dumps(e, sort_keys=True, separators=(",", ":")) for e in entries]
    lines.append(",\n".join(body))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def check():
    """0 when the checked-in file is what this generator and limits give now."""
    try:
        with open(GOLDEN, encoding="utf-8") as f:
            golden = json.load(f)
    except (OSError, ValueError) as e:
        print(f"gen_flask_rates: cannot read {GOLDEN}: {e}", file=sys.stderr)
        return 1
    import limits
    problems = []
    # First what matters most: limits' answers for the checked-in strings.
    for e in golden["entries"]:
        now = ask_limits(e["s"])
        if now[0] != e["limits"] or now[1] != e.get("error"):
            problems.append(f"limits {limits.__version__} now answers {now[0] or now[1]} for "
                            f"{e['s']!r}; the file says {e['limits'] or e.get('error')}")
    # Then the corpus itself: an edited generator needs a regenerated file.
    want = [(tag, s, ext) for tag, s, ext in corpus()]
    if want != [(e["tag"], e["s"], e.get("ext")) for e in golden["entries"]]:
        have = {e["s"] for e in golden["entries"]}
        new = [s for _, s, _ in want if s not in have]
        wanted = {s for _, s, _ in want}
        gone = [e["s"] for e in golden["entries"] if e["s"] not in wanted]
        problems.append(f"the generator's corpus differs from the file ({len(new)} strings new, "
                        f"{len(gone)} gone, e.g. {(new + gone)[:3]!r}): regenerate it")
    for p in problems[:20]:
        print("gen_flask_rates: " + p, file=sys.stderr)
    if problems:
        print(f"gen_flask_rates: {len(problems)} difference(s) with {GOLDEN} "
              f"(golden limits {golden['meta'].get('limits_version')}, installed "
              f"{limits.__version__})", file=sys.stderr)
        return 1
    print(f"gen_flask_rates: {len(golden['entries'])} strings, all as limits "
          f"{limits.__version__} answers")
    return 0


def main(argv):
    try:
        import limits  # noqa: F401
    except ImportError:
        print("gen_flask_rates: the 'limits' module is missing (Debian: python3-limits; "
              "run with /usr/bin/python3)", file=sys.stderr)
        return 3
    if argv[1:] == ["--check"]:
        return check()
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    entries = [entry(tag, s, ext, ask_limits(s)) for tag, s, ext in corpus()]
    for e in entries:
        if "ext" in e and e["limits"] is not None:
            print(f"gen_flask_rates: limits accepts the extension {e['s']!r}", file=sys.stderr)
            return 1
    text = render(entries)
    with open(GOLDEN, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"gen_flask_rates: wrote {len(entries)} strings, {len(text)} bytes, to {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
