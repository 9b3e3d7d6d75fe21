"""The engine's allowed-token masks held to an independent implementation: llguidance
(PyPI, the guidance project's grammar engine, Rust) given the same vocabulary (the real
model's, token bytes from the engine) and the same GBNF text. For grammars of llama.cpp's
grammars/ folder, a JSON-schema grammar as the engine compiles it and a forced tool-call
shape, at every prefix (in tokens) of strings the grammar accepts, the tokens allowed next
and whether the end of turn is must be the same (`qwen grammar --masks` prints ours).

One difference is llguidance's by design: where the grammar forces a literal ("name" after
`{"`, `<tool_call>`), it allows only the literal's canonical tokens, where the engine (like
llama.cpp) allows every token that spells a piece of it. There the engine's set must hold
llguidance's, and each extra token must spell a beginning of a token llguidance allows.
(Grammars where a terminal's end is ambiguous, such as arithmetic.gbnf's `ws` before "\n",
are left out: llguidance lexes greedily, a GBNF grammar is context-free; GrammarTests holds
those to llama.cpp's own cases.)"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

llguidance = pytest.importorskip("llguidance")
import llguidance.numpy as llnp  # noqa: E402

import qwen_embed  # noqa: E402

IM_END = 151645
CASES = json.loads((ROOT / "Tests" / "Fixtures" / "grammar-cases.json").read_text(encoding="utf-8"))


def folder_grammar(name):
    return next(c["grammar"] for c in CASES if c["description"] == name)


SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    "kind": {"enum": ["cat", "dog"]}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    "required": ["name", "age", "kind"]}

TEXTS = {
    "json.gbnf": ['{"a": [1, 2.5, "x\\u00e9 ü"], "b": {"c": null, "d": true}}', '{\n  "key": "日本語",\n  "n": -12}'],
    "list.gbnf": ["- first item\n- second, ünïcode\n"],
    "schema": ['{"name": "Ann", "age": 30, "kind": "cat", "tags": ["a", "b"], "note": null}',
               '{ "name":"Bo \\"B\\"", "age":7, "kind":"dog"}'],
    "tool call": ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'],
}


@pytest.fixture(scope="module")
def vocabulary(model_path):
    model = qwen_embed.Model(model_path)
    n_vocab = model.info["n_vocab"]
    tokens, special = [], []
    for i in range(n_vocab):
        try:
            data = model.detokenize_bytes([i])
            if data and not model.detokenize_bytes([i], skip_special=True):
                special.append(i)   # a control token (<|im_end|>): not text
        except qwen_embed.QwenError:
            data = b""              # logits rows beyond the tokenizer
        if not data:
            special.append(i)
        tokens.append(data)

    class Vocabulary:
        eos_token_id, bos_token_id = IM_END, None

        def __init__(self):
            self.tokens, self.special_token_ids = tokens, special

        def __call__(self, text):
            return model.tokenize(text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text)

    yield model, n_vocab, llguidance.LLTokenizer(llguidance.TokenizerWrapper(Vocabulary()))
    model.close()


def grammar_text(name, qwen_cli, tmp_path):
    if name == "schema":
        schema = tmp_path / "schema.json"
        schema.write_text(json.dumps(SCHEMA))
        return subprocess.run([qwen_cli, "grammar", "--json-schema", str(schema)], check=True, capture_output=True,
                              text=True).stdout
    if name == "tool call":
        return ('root ::= "<tool_call>\\n" call "\\n</tool_call>"\n'
                'call ::= "{\\"name\\": \\"get_weather\\", \\"arguments\\": " args "}"\n'
                'args ::= "{" space "\\"city\\"" space ":" space string "}" space\n'
                'string ::= "\\"" ([^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\bfnrt] | "u" [0-9a-fA-F]{4}))* "\\"" space\n'
                'space ::= | " " | "\\n" [ \\t]{0,20}\n')
    return folder_grammar(name)


@pytest.mark.parametrize("name", list(TEXTS))
def test_masks_equal_llguidance(name, vocabulary, model_path, qwen_cli, tmp_path):
    model, n_vocab, tokenizer = vocabulary
    text = grammar_text(name, qwen_cli, tmp_path)
    grammar_file = tmp_path / "grammar.gbnf"
    grammar_file.write_text(text, encoding="utf-8")
    prefixes = []
    for sample in TEXTS[name]:
        ids = model.tokenize(sample)
        prefixes += [ids[:k] for k in range(len(ids) + 1)]
    prefix_file = tmp_path / "prefixes.jsonl"
    prefix_file.write_text("".join(json.dumps(p) + "\n" for p in prefixes))
    out = subprocess.run([qwen_cli, "grammar", "-m", model_path, "--grammar-file", str(grammar_file),
                          "--masks", str(prefix_file)], check=True, capture_output=True, text=True).stdout
    ours = [json.loads(line) for line in out.splitlines()]
    assert len(ours) == len(prefixes)
    reference = llguidance.grammar_from("gbnf", text)
    checked = forced = 0
    for prefix, mine in zip(prefixes, ours):
        matcher = llguidance.LLMatcher(tokenizer, reference)
        assert not matcher.is_error(), matcher.get_error()
        for token in prefix:
            assert matcher.consume_token(token), (name, prefix, matcher.get_error())
        bitmask = llnp.allocate_token_bitmask(1, tokenizer.vocab_size)
        llnp.fill_next_token_bitmask(matcher, bitmask, 0)
        allowed = set(np.nonzero(np.unpackbits(bitmask.view(np.uint8), bitorder="little")[:n_vocab])[0].tolist())
        theirs_end = IM_END in allowed
        allowed.discard(IM_END)
        mine_allowed = set(mine["allowed"])
        if mine_allowed != allowed:   # a forced literal: llguidance's canonical tokens, and the pieces of them
            assert allowed <= mine_allowed and len(allowed) <= 4, (name, model.detokenize(prefix), sorted(allowed)[:10])
            canonical = [model.token_bytes(t) for t in allowed]
            for extra in mine_allowed - allowed:
                piece = model.token_bytes(extra)
                assert any(c.startswith(piece) for c in canonical), (name, model.detokenize(prefix), piece, canonical)
            forced += 1
        assert mine["end"] == theirs_end, (name, model.detokenize(prefix))
        checked += 1
    assert checked == len(prefixes) >= 10
    assert forced < checked, "some prefixes are compared exactly"
