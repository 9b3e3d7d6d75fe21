#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (scripts/fuzz.sh), derived from real files:
    fuzz-seeds.py OUT_DIR BASE_CHECKPOINT CACHE_DIR
- fuzz_gguf: small valid GGUFs written with gguf-py (qwen2 and qwen, f32 and q8_0), and
  the header of the real Qwen2.5-Coder GGUF up to its tensor data.
- fuzz_checkpoint: each file of the base checkpoint behind its selector byte, plus a shard
  index and GPTQ settings.
- fuzz_tokenizer: the tokenizer reference texts, with and without special tokens.
- fuzz_chatml: the ChatML reference conversations.
- fuzz_template: the chat templates of Tests/Fixtures/templates; and OUT_DIR/template-base.gguf,
  a small qwen2 GGUF whose chat template is TEMPLATE_SLOT bytes of "@" the target overwrites.
- fuzz_grammar: every grammar and JSON schema of Tests/Fixtures/grammar-cases.json (llama.cpp's
  test cases and grammars/ folder) behind its selector byte, and a string schema for each
  pattern of Tests/Fixtures/regex-cases.json.
    fuzz-seeds.py --sessions OUT_DIR BASE_CHECKPOINT
- fuzz_session_file: sessions saved from the base checkpoint through the binding (libqwen as
  QWEN_LIBRARY finds it): a new one, and one with tools, a tool call, a tool result and a KV
  cache (a raw continuation: the base checkpoint's 512-token vocabulary has no ChatML ids)."""
import json
import os
import pathlib
import struct
import sys

import gguf

from small_gguf import write_small_gguf

ROOT = pathlib.Path(__file__).resolve().parents[1]


def session_seeds(out, base):
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    import qwen_embed
    target = out / "fuzz_session_file"
    target.mkdir(parents=True, exist_ok=True)
    with qwen_embed.Model(str(base), n_threads=1) as model, model.session(n_ctx=256, seed=1) as session:
        session.save(target / "new")
        session.tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
                                                           "parameters": {"type": "object"}}}]
        session.add_message("user", "Weather in Paris?")
        session.add_message("assistant", "Thought: look it up", tool_call={"name": "get_weather", "arguments": {"city": "Paris"}})
        session.add_message("tool", "{\"temperature\": 21}")
        session.generate("a", temperature=0, max_tokens=3)   # raw: the 512-token model has no ChatML ids
        session.save(target / "tools-and-cache")


if sys.argv[1] == "--sessions":
    session_seeds(pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]))
    sys.exit(0)
out, base, cache = map(pathlib.Path, sys.argv[1:4])
TEMPLATE_SLOT = 8192   # fuzz_template.c's slot


def seed(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


for arch in ("qwen2", "qwen"):
    for qtype in ("f32", "q8_0"):
        path = out / f"small-{arch}-{qtype}.gguf"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_small_gguf(path, arch, qtype)
        seed("fuzz_gguf", path.name, path.read_bytes())
        path.unlink()
real = cache / "qwen2.5-coder-0.5b-instruct.gguf"
if real.exists():
    reader = gguf.GGUFReader(str(real))
    start = min(t.data_offset for t in reader.tensors)
    with open(real, "rb") as f:
        seed("fuzz_gguf", "qwen2.5-coder-header", f.read(min(start, 1 << 20)))

selectors = {"model.safetensors": 0, "model.safetensors.index.json": 1, "config.json": 2,
             "quantize_config.json": 3, "generation_config.json": 4, "qwen.tiktoken": 5}
for name in ("model.safetensors", "config.json", "generation_config.json"):
    seed("fuzz_checkpoint", name, bytes([selectors[name]]) + (base / name).read_bytes())
seed("fuzz_checkpoint", "index", bytes([1]) + json.dumps({"weight_map": {"transformer.wte.weight": "model.safetensors"}}).encode())
seed("fuzz_checkpoint", "quantize_config", bytes([3]) + json.dumps({"bits": 4, "group_size": 128, "desc_act": False, "sym": True}).encode())
with open(cache / "qwen.tiktoken", "rb") as f:
    seed("fuzz_checkpoint", "tiktoken-head", bytes([5]) + b"".join(f.readline() for _ in range(300)))

for i, line in enumerate(open(ROOT / "Tests/Fixtures/tokenizer-cases.jsonl", encoding="utf-8")):
    case = json.loads(line)
    seed("fuzz_tokenizer", f"case-{i}", bytes([i % 2]) + case["text"].encode("utf-8"))
for i, line in enumerate(open(ROOT / "Tests/Fixtures/chatml-cases.jsonl", encoding="utf-8")):
    case = json.loads(line)
    parts = [bytes([0]) + case["system"].encode()]
    for user, assistant in case["history"]:
        parts += [bytes([1]) + user.encode(), bytes([2]) + assistant.encode()]
    parts.append(bytes([1]) + case["query"].encode())
    seed("fuzz_chatml", f"case-{i}", b"\0".join(parts))

write_small_gguf(out / "template-base.gguf", "qwen2", "f32", chat_template="@" * TEMPLATE_SLOT)
for path in sorted((ROOT / "Tests/Fixtures/templates").glob("*.jinja")):
    seed("fuzz_template", path.stem, path.read_bytes())
for i, case in enumerate(json.loads((ROOT / "Tests/Fixtures/grammar-cases.json").read_text(encoding="utf-8"))):
    if case["kind"] == "grammar":
        seed("fuzz_grammar", f"grammar-{i}", bytes([0]) + case["grammar"].encode())
    else:
        seed("fuzz_grammar", f"schema-{i}", bytes([1]) + case["schema"].encode())
for i, case in enumerate(json.loads((ROOT / "Tests/Fixtures/regex-cases.json").read_text(encoding="utf-8"))):
    seed("fuzz_grammar", f"pattern-{i}", bytes([1]) + json.dumps({"type": "string", "pattern": case["pattern"]}).encode())
