#!/usr/bin/env python3
"""Writes GPTQ checkpoints with the real shapes and configs of Qwen's releases, for the
scale test and the benchmarks (random weights: they measure speed and memory, not
answers).

    make-scale-checkpoints.py OUT_DIR 7b-int4|7b-int8|72b-int4 ...

- 7b-int4 / 7b-int8: Qwen-7B-Chat-Int4 / -Int8's shapes (32 layers, hidden 4096, 32 heads,
  ffn 11008 per branch, vocab 151936, group size 128, symmetric, desc_act false), in
  ~2 GB shards with an index, as the release is sharded; every byte written (~5.9 / ~9.2 GB).
- 72b-int4: Qwen-72B-Chat-Int4's shapes (80 layers, hidden 8192, 64 heads, ffn 24576,
  vocab 152064, seq_length 32768) as sparse files: real headers and vectors (norms,
  biases), the matrices' data left as holes (~41 GB apparent, a few MB on disk).
qwen.tiktoken is copied from $QWEN_TIKTOKEN (or ~/.cache/qwen-embed).
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

SHAPES = {
    "7b": dict(hidden=4096, heads=32, layers=32, ffn=11008, vocab=151936, seq_length=8192),
    "72b": dict(hidden=8192, heads=64, layers=80, ffn=24576, vocab=152064, seq_length=32768),
}
SHARD_BYTES = 2 << 30


def tensor_plan(shape, bits, group=128):
    """[(name, dtype, shape)] in Qwen v1 GPTQ names: fp16 embeddings, norms, biases, lm_head;
    qweight / qzeros / scales / g_idx for every linear layer of every block."""
    h, f, v = shape["hidden"], shape["ffn"], shape["vocab"]
    plan = [("transformer.wte.weight", "F16", (v, h))]
    for i in range(shape["layers"]):
        p = f"transformer.h.{i}."
        plan.append((p + "ln_1.weight", "F16", (h,)))
        for name, rows, cols in (("attn.c_attn", 3 * h, h), ("attn.c_proj", h, h),
                                 ("mlp.w1", f, h), ("mlp.w2", f, h), ("mlp.c_proj", h, f)):
            plan += [(p + name + ".qweight", "I32", (cols * bits // 32, rows)),
                     (p + name + ".qzeros", "I32", (cols // group, rows * bits // 32)),
                     (p + name + ".scales", "F16", (cols // group, rows)),
                     (p + name + ".g_idx", "I32", (cols,))]
            if name == "attn.c_attn":
                plan.append((p + name + ".bias", "F16", (rows,)))
        plan.append((p + "ln_2.weight", "F16", (h,)))
    plan += [("transformer.ln_f.weight", "F16", (h,)), ("lm_head.weight", "F16", (v, h))]
    return plan


def nbytes(dtype, dims):
    return int(np.prod(dims)) * (2 if dtype == "F16" else 4)


def data_for(name, dtype, dims, bits, rng):
    """Random weights that keep activations finite: small fp16 values, symmetric zeros."""
    count = int(np.prod(dims))
    if name.endswith(".qweight"):
        return rng.integers(0, 1 << 32, size=count, dtype=np.uint32).tobytes()
    if name.endswith(".qzeros"):
        word = 0x77777777 if bits == 4 else 0x7F7F7F7F    # stored zero - 1 = 2^(bits-1) - 1
        return np.full(count, word, dtype=np.uint32).tobytes()
    if name.endswith(".g_idx"):
        return (np.arange(count, dtype=np.int32) // 128).tobytes()
    if name.endswith(".scales"):
        return (rng.random(count, dtype=np.float32) * 0.002 + 0.001).astype(np.float16).tobytes()
    if name.endswith("norm.weight") or ".ln_" in name:
        return np.ones(count, dtype=np.float16).tobytes()
    return ((rng.random(count, dtype=np.float32) - 0.5) * 0.05).astype(np.float16).tobytes()


def write(out_dir, kind, sparse):
    size, bits = kind.split("-")
    bits = int(bits.removeprefix("int"))
    shape = SHAPES[size]
    target = os.path.join(out_dir, kind)
    os.makedirs(target, exist_ok=True)
    plan = tensor_plan(shape, bits)
    shards, current, used = [], [], 0
    for entry in plan:
        if current and used + nbytes(entry[1], entry[2]) > SHARD_BYTES:
            shards.append(current)
            current, used = [], 0
        current.append(entry)
        used += nbytes(entry[1], entry[2])
    shards.append(current)
    rng = np.random.default_rng(0)
    weight_map = {}
    for k, members in enumerate(shards):
        file_name = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, dtype, dims in members:
            header[name] = {"dtype": dtype, "shape": list(dims), "data_offsets": [offset, offset + nbytes(dtype, dims)]}
            offset += nbytes(dtype, dims)
            weight_map[name] = file_name
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        with open(os.path.join(target, file_name), "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            if sparse:
                base = 8 + len(text)
                for name, dtype, dims in members:
                    if len(dims) == 1:
                        f.seek(base + header[name]["data_offsets"][0])
                        f.write(data_for(name, dtype, dims, bits, rng))
                f.truncate(base + offset)
            else:
                for name, dtype, dims in members:
                    f.write(data_for(name, dtype, dims, bits, rng))
    with open(os.path.join(target, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(nbytes(d, s) for _, d, s in plan)}, "weight_map": weight_map}, f)
    h = shape["hidden"]
    config = {
        "architectures": ["QWenLMHeadModel"], "model_type": "qwen", "hidden_size": h,
        "num_attention_heads": shape["heads"], "num_hidden_layers": shape["layers"],
        "intermediate_size": 2 * shape["ffn"], "vocab_size": shape["vocab"], "seq_length": shape["seq_length"],
        "max_position_embeddings": shape["seq_length"], "kv_channels": h // shape["heads"], "rotary_pct": 1.0,
        "rotary_emb_base": 10000 if size == "7b" else 1000000, "layer_norm_epsilon": 1e-6,
        "use_dynamic_ntk": True, "use_logn_attn": True, "no_bias": True, "tie_word_embeddings": False,
        "bf16": False, "fp16": True, "fp32": False,
        "quantization_config": {"bits": bits, "group_size": 128, "damp_percent": 0.01, "desc_act": False,
                                "static_groups": False, "sym": True, "true_sequential": True,
                                "model_name_or_path": None, "model_file_base_name": "model", "quant_method": "gptq"},
    }
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(target, "generation_config.json"), "w") as f:
        json.dump({"chat_format": "chatml", "eos_token_id": 151643, "max_window_size": 24000 if size == "72b" else 6144}, f)
    vocab = os.environ.get("QWEN_TIKTOKEN") or os.path.expanduser("~/.cache/qwen-embed/qwen.tiktoken")
    shutil.copyfile(vocab, os.path.join(target, "qwen.tiktoken"))
    return target


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for kind in sys.argv[2:]:
        if kind not in ("7b-int4", "7b-int8", "72b-int4"):
            sys.exit(f"unknown checkpoint {kind}")
        print(write(sys.argv[1], kind, sparse=kind.startswith("72b")))


if __name__ == "__main__":
    main()
