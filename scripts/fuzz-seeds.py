#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (scripts/fuzz.sh), derived from real files:
    fuzz-seeds.py OUT_DIR BASE_CHECKPOINT CACHE_DIR
- fuzz_gguf: small valid GGUFs written with gguf-py (qwen2 and qwen, f32 and q8_0), and
  the header of the real Qwen2.5-Coder GGUF up to its tensor data.
- fuzz_checkpoint: each file of the base checkpoint behind its selector byte, plus a shard
  index and GPTQ settings.
- fuzz_tokenizer: the tokenizer reference texts, with and without special tokens.
- fuzz_chatml: the ChatML reference conversations."""
import json
import os
import pathlib
import struct
import sys

import numpy as np
import gguf

ROOT = pathlib.Path(__file__).resolve().parents[1]
out, base, cache = map(pathlib.Path, sys.argv[1:4])


def seed(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def small_gguf(path, arch, qtype):
    """A loadable GGUF: 1 layer, hidden 32, the 256 byte tokens plus ChatML's."""
    w = gguf.GGUFWriter(str(path), arch)
    h, ffn = 32, 64 if arch == "qwen2" else 128
    w.add_block_count(1); w.add_context_length(256); w.add_embedding_length(h)
    w.add_feed_forward_length(ffn); w.add_head_count(2); w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-6); w.add_rope_freq_base(10000.0)
    enc = {b: c for b, c in zip(*[list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256)),
                                  map(chr, list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256)))])}
    n = 0
    for b in range(256):
        if b not in enc:
            enc[b] = chr(256 + n); n += 1
    tokens = [enc[b] for b in range(256)] + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    w.add_tokenizer_model("gpt2"); w.add_token_list(tokens)
    w.add_token_types([1] * 256 + [3, 3, 3])
    rng = np.random.default_rng(0)
    def matrix(name, rows, cols):
        a = rng.standard_normal((rows, cols)).astype(np.float32) * 0.1
        if qtype == "q8_0":
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, a)
    v = len(tokens)
    w.add_tensor("token_embd.weight", rng.standard_normal((v, h)).astype(np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(h, np.float32))
    if arch == "qwen2":
        for part in ("q", "k", "v"):
            matrix(f"blk.0.attn_{part}.weight", h, h)
            w.add_tensor(f"blk.0.attn_{part}.bias", np.zeros(h, np.float32))
    else:
        matrix("blk.0.attn_qkv.weight", 3 * h, h)
        w.add_tensor("blk.0.attn_qkv.bias", np.zeros(3 * h, np.float32))
    matrix("blk.0.attn_output.weight", h, h)
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(h, np.float32))
    half = ffn if arch == "qwen2" else ffn // 2
    matrix("blk.0.ffn_gate.weight", half, h)
    matrix("blk.0.ffn_up.weight", half, h)
    matrix("blk.0.ffn_down.weight", h, half)
    w.add_tensor("output_norm.weight", np.ones(h, np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


for arch in ("qwen2", "qwen"):
    for qtype in ("f32", "q8_0"):
        path = out / f"small-{arch}-{qtype}.gguf"
        path.parent.mkdir(parents=True, exist_ok=True)
        small_gguf(path, arch, qtype)
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
