#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora from the unit tests' inputs.

tests/fuzz/corpus/rate/: every rate and duration string of
tests/unit/rate_test.cpp plus tests/fuzz/rate_edges.txt (one per line).
tests/fuzz/corpus/config/: examples/*.toml, the full config and every invalid
config of tests/unit/config_test.cpp, plus tests/fuzz/config_edges/*.toml.
Run it again after adding rows to those tests; it replaces the generated
files (named gen-*) and leaves others alone. Standard library only.
"""
import ast
import hashlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
FUZZ = ROOT / "tests" / "fuzz"
# A C++ string literal whose escapes (\n \" \\ \t) read the same in Python.
LITERAL = r'"(?:[^"\\\n]|\\.)*"'


def literal(text):
    # A C++ "\xHH" above 0x7f is one byte, where Python would read a code
    # point: it becomes the surrogate that write() turns back into that byte.
    text = re.sub(r'\\(x[89a-fA-F][0-9a-fA-F]|.)',
                  lambda m: '\\udc' + m.group(1)[1:] if m.group(1).startswith('x') and len(m.group(1)) == 3
                  else m.group(0), text)
    return ast.literal_eval(text)


def rate_inputs():
    src = (ROOT / "tests/unit/rate_test.cpp").read_text()
    found = [literal(m) for m in re.findall(r'\b(?:ok|bad)\((' + LITERAL + r')', src)]
    # Duration rows: {"text", ns, "error"}.
    found += [literal(m) for m in re.findall(r'^\s*\{(' + LITERAL + r'),', src, re.M)]
    edges = (FUZZ / "rate_edges.txt").read_text().splitlines()
    return found + [e for e in edges if not e.startswith("#")]


def config_inputs():
    src = (ROOT / "tests/unit/config_test.cpp").read_text()
    consts = {}
    for name, expr in re.findall(r'^const std::string (k\w+) = (.*);$', src, re.M):
        consts[name] = evaluate(expr, consts)
    found = [m for m in re.findall(r'R"\((.*?)\)"', src, re.S)]
    # kInvalid rows: {"Name", EXPR, "t.toml:...
    rows = src[src.index("kInvalid = {"):]
    rows = rows[:rows.index("\n};")]
    for expr in re.findall(r'\{' + LITERAL + r',\s*(.*?),\s*"t\.toml:', rows, re.S):
        found.append(evaluate(expr, consts))
    found += [p.read_text() for p in sorted((ROOT / "examples").glob("*.toml"))]
    found += [p.read_text() for p in sorted((FUZZ / "config_edges").glob("*.toml"))]
    return found


def evaluate(expr, consts):
    """A + of string literals, known constants and std::string(N, 'c')."""
    out = ""
    for part in re.findall(LITERAL + r'|k\w+|std::string\(\d+, \'.\'\)', expr):
        if part.startswith('"'):
            out += literal(part)
        elif part.startswith("std::string"):
            count, char = re.match(r"std::string\((\d+), '(.)'\)", part).groups()
            out += char * int(count)
        else:
            out += consts[part]
    return out


def write(kind, inputs):
    corpus = FUZZ / "corpus" / kind
    corpus.mkdir(parents=True, exist_ok=True)
    for old in corpus.glob("gen-*"):
        old.unlink()
    for text in dict.fromkeys(inputs):
        data = text.encode("utf-8", "surrogateescape")
        (corpus / ("gen-" + hashlib.sha1(data).hexdigest()[:12])).write_bytes(data)
    print(f"{corpus.relative_to(ROOT)}: {len(dict.fromkeys(inputs))} seeds")


write("rate", rate_inputs())
write("config", config_inputs())
