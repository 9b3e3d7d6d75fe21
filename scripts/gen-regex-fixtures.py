#!/usr/bin/env python3
"""Tests/Fixtures/regex-cases.json: JSON Schema `pattern`s with the JSON strings each must
accept and refuse, decided by Python's `re` (re.search, ASCII classes; `$` read as the end
of the string as ECMAScript reads it). The strings are random over each pattern's
alphabet plus hand-picked ones, written as json.dumps writes them (`"`, `\\`, controls
escaped), so the grammar must match the JSON text of exactly the values the regular
expression accepts. Deterministic: run it again to get the same file.

    python3 scripts/gen-regex-fixtures.py Tests/Fixtures/regex-cases.json
"""
import json
import random
import re
import sys

# (ECMAScript pattern, alphabet for random strings, hand-picked strings)
CASES = [
    (r"^[a-zA-Z0-9_-]*$", "aZ9_-! ", ["", "He_llo-12", "Hello World", "!"]),
    (r"^a\^\$\.\[\]\(\)\|\{\}\*\+\?b$", "ab^$.", ["a^$.[]()|{}*+?b", "ab"]),
    (r"^\d{3}-\d{4}$", "0123456789-a", ["555-1234", "5551234", "555-12345", "55-1234"]),
    (r"^\(\d{3}\) \d{3}-\d{4}$", "0129()- ", ["(555) 123-4567", "555 123-4567"]),
    (r"[a-z]+@[a-z]+\.com", "ab@.comx ", ["me@host.com", "say me@host.com now", "me@host.org", "@host.com"]),
    (r"^(?:\+1)?[0-9]{10}$", "0123456789+", ["+10123456789", "0123456789", "+1012345678"]),
    (r"^(cat|dog)s?$", "catdogs", ["cat", "dogs", "cats", "catdog", "ca"]),
    (r"^(ab|cd)*e{2,3}$", "abcde", ["ee", "abcdeee", "abcdeeee", "abe"]),
    (r"^.$", "a\"\\\n\t\x01é€😀", ["\"", "\\", "\n", "😀", "ab", ""]),
    (r"^[^a-c]{2}$", "abcxy\"\\\n\t\x1f", ["xy", "ax", "\"\\", "\n\t"]),
    (r"^\w+\s\w+$", "ab_1 \t\n-", ["hello world", "a_1\tb", "a  b", "a-b c"]),
    (r"^\S*$", "ab \t\"\\", ["", "ab\"\\", "a b"]),
    (r"^\W\D$", "a1!?", ["!a", "?!", "a!", "!1"]),
    (r"^[\d.]+$", "012.a", ["1.5", "...", "1a"]),
    (r"^x{2}y{1,}z{0,2}$", "xyz", ["xxy", "xxyyyzz", "xxyzzz", "xy"]),
    (r"^a.c$", "abc.\n", ["abc", "a.c", "a\nc", "ac"]),
    (r"^[-a]+$", "-ab", ["-a-", "ab"]),
    (r"^[a-]+$", "-ab", ["-a-", "ab"]),
    (r"^[\-\]\\]+$", "-]\\a", ["-]\\", "a"]),
    (r"^\x41\u00e9\t$", "Aé\tB", ["Aé\t", "Ae\t"]),
    (r"abc", "abcx", ["abc", "xabcx", "ab", ""]),
    (r"^abc", "abcx", ["abc", "abcx", "xabc"]),
    (r"abc$", "abcx", ["abc", "xabc", "abcx"]),
    (r"^a|b$", "abx", ["a", "axx", "xxb", "xbx", "x"]),
    (r"^(a(b(c)?)?)?$", "abc", ["", "a", "ab", "abc", "ac", "b"]),
    (r"^a{2,}?b+?$", "ab", ["aab", "aaabbb", "ab"]),
    (r"^\{\}x{$", "{}x", ["{}x{", "{}x"]),
    (r"^[\u0391-\u03a9]+$", "ΑΒΩab", ["ΑΒΩ", "Αa"]),
    (r"^[^\x00-\x7f]+$", "aé€😀", ["é€😀", "éa"]),
    (r"^\0?$", "\x00a", ["", "\x00", "a"]),
]


def python_pattern(p):
    """ECMAScript's `$` (end of string, no m flag) is Python's \\Z; the rest reads the same."""
    out, i = "", 0
    while i < len(p):
        if p[i] == "\\":
            out += p[i:i + 2]
            i += 2
            continue
        if p[i] == "[":
            j = i + 1
            while j < len(p) and p[j] != "]":
                j += 2 if p[j] == "\\" else 1
            out += p[i:j + 1]
            i = j + 1
            continue
        out += r"\Z" if p[i] == "$" else p[i]
        i += 1
    return out


def main():
    rng = random.Random(20261203)
    cases = []
    for pattern, alphabet, picked in CASES:
        regex = re.compile(python_pattern(pattern), re.ASCII)
        strings = list(picked)
        for _ in range(60):
            strings.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))))
        accept, reject = [], []
        for s in dict.fromkeys(strings):
            (accept if regex.search(s) else reject).append(json.dumps(s, ensure_ascii=False))
        cases.append({"pattern": pattern, "accept": accept, "reject": reject})
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
