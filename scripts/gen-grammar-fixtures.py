#!/usr/bin/env python3
"""Tests/Fixtures/grammar-cases.json from llama.cpp's own grammar tests: every
test_grammar / test_schema case of tests/test-grammar-integration.cpp (the grammar or
JSON schema, the strings it must accept and those it must refuse), and the grammars of
its grammars/ folder (json, arithmetic, list, ...) with strings written for them here.

    python3 scripts/gen-grammar-fixtures.py LLAMA_CPP_DIR

LLAMA_CPP_DIR: llama.cpp's source (the llama-cpp-python sdist's vendor/llama.cpp, as
scripts/build-llama-cpp.sh unpacks it)."""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpp_strings(text):
    """The C++ string literals of `text` (raw R\"\"\"(...)\"\"\" and "..." with escapes), in
    order, adjacent literals concatenated."""
    out, i, last_end = [], 0, -1
    while i < len(text):
        if text.startswith('R"""(', i):
            end = text.index(')"""', i + 5)
            value, nxt = text[i + 5:end], end + 4
        elif text.startswith('R"(', i):
            end = text.index(')"', i + 3)
            value, nxt = text[i + 3:end], end + 2
        elif text[i] == '"':
            j, chars = i + 1, []
            while text[j] != '"':
                if text[j] == '\\':
                    e = text[j + 1]
                    if e in 'nrt"\\\'':
                        chars.append({'n': '\n', 'r': '\r', 't': '\t'}.get(e, e))
                        j += 2
                    elif e == 'x':
                        m = re.match(r'[0-9a-fA-F]+', text[j + 2:])
                        chars.append(chr(int(m.group(0), 16)))
                        j += 2 + len(m.group(0))
                    elif e in 'uU':
                        n = 4 if e == 'u' else 8
                        chars.append(chr(int(text[j + 2:j + 2 + n], 16)))
                        j += 2 + n
                    else:
                        raise ValueError(f"escape \\{e}")
                else:
                    chars.append(text[j])
                    j += 1
            value, nxt = ''.join(chars), j + 1
        elif text.startswith('//', i):
            i = text.index('\n', i)
            continue
        else:
            i += 1
            continue
        if out and text[last_end:i].strip() == '':
            out[-1] += value   # "a" "b" is one literal
        else:
            out.append(value)
        last_end = i = nxt
    return out


def split_top_level(args):
    """The arguments of a call, split at top-level commas (braces, strings respected)."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(args):
        c = args[i]
        if args.startswith('R"""(', i):
            end = args.index(')"""', i) + 4
            cur.append(args[i:end]); i = end; continue
        if c == '"':
            j = i + 1
            while args[j] != '"':
                j += 2 if args[j] == '\\' else 1
            cur.append(args[i:j + 1]); i = j + 1; continue
        if args.startswith('//', i):
            j = args.index('\n', i); i = j; continue
        if c in '({[':
            depth += 1
        elif c in ')}]':
            depth -= 1
        if c == ',' and depth == 0:
            parts.append(''.join(cur)); cur = []
        else:
            cur.append(c)
        i += 1
    parts.append(''.join(cur))
    return parts


def integration_cases(path):
    source = open(path, encoding='utf-8').read()
    cases = []
    for m in re.finditer(r'\btest_(grammar|schema)\(\s*\n', source):
        kind, start, depth, i = m.group(1), m.end(), 1, m.end()
        while depth:   # the call's closing parenthesis (strings skipped)
            if source.startswith('R"""(', i):
                i = source.index(')"""', i) + 4; continue
            c = source[i]
            if c == '"':
                j = i + 1
                while source[j] != '"':
                    j += 2 if source[j] == '\\' else 1
                i = j + 1; continue
            if source.startswith('//', i):
                i = source.index('\n', i); continue
            depth += {'(': 1, ')': -1}.get(c, 0)
            i += 1
        args = split_top_level(source[start:i - 1])
        if len(args) != 4:
            continue
        desc, body = cpp_strings(args[0]), cpp_strings(args[1])
        cases.append({"source": "llama.cpp tests/test-grammar-integration.cpp", "kind": kind,
                      "description": desc[0] if desc else "", kind: body[0],
                      "accept": cpp_strings(args[2]), "reject": cpp_strings(args[3])})
    return cases


# Strings for the grammars/ folder: what each must accept and refuse.
FOLDER = {
    "json.gbnf": (['{}', '{"a": 1}', '{"a":[1,2.5,-3e5,"x",true,false,null,{}]}', '{\n  "key": "va\\"lue\\u00e9"\n}',
                   '{"nested": {"deep": [[], [{}]]}}', '{"ü": "日本"}'],
                  ['', '[]', '{', '{"a"}', '{"a": 01}', "{'a': 1}", '{"a": tru}', '{"a": 1,}', '{"a": "\x01"}',
                   '{"a": 1} x', '"str"']),
    "json_arr.gbnf": (['[\n]', '[\n{"a": 1}]', '[\n{"a": "b"},\n{"c": [1, 2]}]'], ['', '{}', '[]', '[\n{"a": 1},]']),
    "arithmetic.gbnf": (['1+2=3\n', 'x=(a*b)\n', 'a1 +b = c\nd=e\n'], ['', '1+2=3', '=3\n', '1++2=3\n', 'A=1\n', 'x=a+b\n']),
    "list.gbnf": (['- a\n', '- first item\n- second\n'], ['', '- \n', 'a\n', '- a', '- a\r\n']),
    "chess.gbnf": None,
    "english.gbnf": None, "japanese.gbnf": None, "c.gbnf": None,
}


def folder_cases(directory):
    cases = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith('.gbnf'):
            continue
        strings = FOLDER.get(name)
        cases.append({"source": f"llama.cpp grammars/{name}", "kind": "grammar", "description": name,
                      "grammar": open(os.path.join(directory, name), encoding='utf-8').read(),
                      "accept": strings[0] if strings else [], "reject": strings[1] if strings else []})
    return cases


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    llama = sys.argv[1]
    cases = folder_cases(os.path.join(llama, 'grammars'))
    cases += integration_cases(os.path.join(llama, 'tests', 'test-grammar-integration.cpp'))
    out = os.path.join(ROOT, 'Tests', 'Fixtures', 'grammar-cases.json')
    with open(out, 'w', encoding='utf-8') as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write('\n')
    print(f"{out}: {len(cases)} cases "
          f"({sum(c['kind'] == 'grammar' for c in cases)} grammars, {sum(c['kind'] == 'schema' for c in cases)} schemas)")


if __name__ == '__main__':
    main()
