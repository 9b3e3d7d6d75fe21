#!/usr/bin/env python3
"""Writes GPTQ checkpoints with the real shapes and configs of Qwen's releases, for the
scale test and the benchmarks (random weights: they measure speed and memory, not
answers).

    make-scale-checkpoints.py OUT_DIR 7b-int4|7b-int8|72b-int4|7b-q4_0|7b-q4_k_m ...

- 7b-int4 / 7b-int8: Qwen-7B-Chat-Int4 / -Int8's shapes (32 layers, hidden 4096, 32 heads,
  ffn 11008 per branch, vocab 151936, group size 128, symmetric, desc_act false), in
  ~2 GB shards with an index, as the release is sharded; every byte written (~5.9 / ~9.2 GB).
- 72b-int4: Qwen-72B-Chat-Int4's shapes (80 layers, hidden 8192, 64 heads, ffn 24576,
  vocab 152064, seq_length 32768) as sparse files: real headers and vectors (norms,
  biases), the matrices' data left as holes (~41 GB apparent, a few MB on disk).
- 7b-q4_0 / 7b-q4_k_m: GGUF files (OUT_DIR/7b-q4_0.gguf, ...) with Qwen-7B's shapes in the
  qwen2 layout (q/k/v with biases, 32 KV heads), which llama.cpp and ik_llama.cpp read too:
  random blocks of llama.cpp's type mix for those file types (Q4_0: every matrix Q4_0,
  the output Q6_K; Q4_K_M: Q4_K, with attn_v and ffn_down Q6_K in llama.cpp's
  "more bits" layers, the output Q6_K), the tokenizer copied from $QWEN_GGUF (default:
  the cached default model). ~4.3 / ~4.6 GB.
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


# Bytes per block and where its f16 scales sit, for random blocks of the GGUF types.
GGUF_BLOCKS = {  # type: (weights per block, bytes per block, [(f16 offset, low, high)])
    "Q4_0": (32, 18, [(0, 0.001, 0.003)]),
    "Q4_K": (256, 144, [(0, 0.0001, 0.0003), (2, 0.0001, 0.0003)]),
    "Q6_K": (256, 210, [(208, 0.00005, 0.00015)]),
}


def random_blocks(kind, rows, cols, rng):
    """A (rows, bytes per row) uint8 matrix of random blocks of `kind` whose f16 scales are
    small and finite (so activations stay finite through 32 layers)."""
    per_block, size, scales = GGUF_BLOCKS[kind]
    blocks = rng.integers(0, 256, size=(rows, cols // per_block, size), dtype=np.uint8)
    for offset, low, high in scales:
        d = (rng.random((rows, cols // per_block), dtype=np.float32) * (high - low) + low).astype(np.float16)
        blocks[:, :, offset:offset + 2] = d.view(np.uint8).reshape(rows, cols // per_block, 2)
    return blocks.reshape(rows, -1)


def write_gguf(out_dir, kind):
    """OUT_DIR/<kind>.gguf: Qwen-7B's shapes in the qwen2 layout, random quantized blocks."""
    import gguf
    shape, file_type = SHAPES["7b"], kind.split("-")[1]
    h, f, v, n = shape["hidden"], shape["ffn"], shape["vocab"], shape["layers"]
    base = gguf.GGUFReader(os.environ.get("QWEN_GGUF") or os.path.expanduser("~/.cache/qwen-embed/qwen2.5-coder-0.5b-instruct.gguf"))
    def field(name):
        return base.fields[name].contents()
    path = os.path.join(out_dir, f"{kind}.gguf")
    os.makedirs(out_dir, exist_ok=True)
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_name(f"random Qwen-7B shapes {file_type}")
    w.add_block_count(n); w.add_context_length(shape["seq_length"]); w.add_embedding_length(h)
    w.add_feed_forward_length(f); w.add_head_count(shape["heads"]); w.add_head_count_kv(shape["heads"])
    w.add_rope_freq_base(10000.0); w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(2 if file_type == "q4_0" else 15)   # llama.cpp's MOSTLY_Q4_0 / MOSTLY_Q4_K_M
    w.add_tokenizer_model(field("tokenizer.ggml.model")); w.add_tokenizer_pre(field("tokenizer.ggml.pre"))
    w.add_token_list(field("tokenizer.ggml.tokens")); w.add_token_types(field("tokenizer.ggml.token_type"))
    w.add_token_merges(field("tokenizer.ggml.merges"))
    w.add_eos_token_id(field("tokenizer.ggml.eos_token_id")); w.add_bos_token_id(field("tokenizer.ggml.bos_token_id"))
    w.add_pad_token_id(field("tokenizer.ggml.padding_token_id")); w.add_add_bos_token(False)
    w.add_chat_template(field("tokenizer.chat_template"))
    rng = np.random.default_rng(0)
    default = "Q4_0" if file_type == "q4_0" else "Q4_K"
    def more_bits(layer):   # llama.cpp's use_more_bits
        return layer < n // 8 or layer >= 7 * n // 8 or (layer - n // 8) % 3 == 2
    def matrix(name, rows, cols, kind):
        blocks = random_blocks(kind, rows, cols, rng)
        w.add_tensor(name, blocks, raw_shape=blocks.shape,
                     raw_dtype=getattr(gguf.GGMLQuantizationType, kind))
    matrix("token_embd.weight", v, h, default)
    for i in range(n):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(h, np.float32))
        bigger = "Q6_K" if file_type == "q4_k_m" and more_bits(i) else default
        for part in "qkv":
            matrix(p + f"attn_{part}.weight", h, h, bigger if part == "v" else default)
            w.add_tensor(p + f"attn_{part}.bias", ((rng.random(h, dtype=np.float32) - 0.5) * 0.1))
        matrix(p + "attn_output.weight", h, h, default)
        w.add_tensor(p + "ffn_norm.weight", np.ones(h, np.float32))
        matrix(p + "ffn_gate.weight", f, h, default)
        matrix(p + "ffn_up.weight", f, h, default)
        matrix(p + "ffn_down.weight", h, f, bigger)
    w.add_tensor("output_norm.weight", np.ones(h, np.float32))
    matrix("output.weight", v, h, "Q6_K")
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file()
    w.close()
    return path


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for kind in sys.argv[2:]:
        if kind in ("7b-q4_0", "7b-q4_k_m"):
            print(write_gguf(sys.argv[1], kind))
        elif kind in ("7b-int4", "7b-int8", "72b-int4"):
            print(write(sys.argv[1], kind, sparse=kind.startswith("72b")))
        else:
            sys.exit(f"unknown checkpoint {kind}")


if __name__ == "__main__":
    main()
