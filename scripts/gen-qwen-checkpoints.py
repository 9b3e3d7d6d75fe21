#!/usr/bin/env python3
"""Writes tiny deterministic Qwen (v1) checkpoints, the way Qwen's releases are laid out,
for the tests: bf16 / fp16 safetensors (single file and sharded with an index), GPTQ
Int4 and Int8 (AutoGPTQ's checkpoint format v1: qweight / qzeros / scales / g_idx, packed
exactly as auto_gptq's QuantLinear.pack does), and a long-context one with a small
seq_length. numpy only, so `make test` can run it; the weights come from a counter-based
hash (splitmix64), so every machine and numpy version writes the same bytes.

    gen-qwen-checkpoints.py OUT_DIR [VARIANT ...]     (default: every variant)

Each variant is a directory OUT_DIR/VARIANT with config.json, generation_config.json and
the weights; qwen.tiktoken is copied from $QWEN_TIKTOKEN (or ~/.cache/qwen-embed).
Expected logits for these checkpoints come from independent implementations, computed
once by scripts/gen-qwen-expected.py (torch + transformers + Qwen's own code) and kept in
tests/python/fixtures/.
"""
import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np

HIDDEN, HEADS, LAYERS, FFN, VOCAB = 128, 4, 2, 256, 151936   # FFN: one branch (config states 2 * FFN)


# name -> (dtype, bits, group size or -1, sym, desc_act, where the GPTQ settings live,
#          sharded, seq_length)
VARIANTS = {
    "bf16": dict(dtype="bf16"),
    "fp16-sharded": dict(dtype="fp16", sharded=True),
    "gptq-int4-g128": dict(bits=4, group=128, sym=True),
    "gptq-int4-g32-asym": dict(bits=4, group=32, sym=False),
    "gptq-int4-g64-actorder": dict(bits=4, group=64, sym=True, desc_act=True, sharded=True),
    "gptq-int4-gall": dict(bits=4, group=-1, sym=True, settings_file=True),
    "gptq-int8-g128": dict(bits=8, group=128, sym=True),
    "gptq-int8-g64-asym-actorder": dict(bits=8, group=64, sym=False, desc_act=True),
    "long-context": dict(dtype="bf16", seq_length=32),
    # For the fuzzers (make fuzz) and the corrupt-file corpus: small enough to rewrite per input.
    "fuzz-base": dict(dtype="bf16", vocab=512),
    "fuzz-gptq": dict(bits=4, group=64, sym=False, desc_act=True, vocab=512),
}


def uniform(name, count):
    """count values in [-1, 1) from splitmix64 over (hash(name), index)."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) + np.uint64(seed)
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2 - 1).astype(np.float32)


def weight(name, shape, scale):
    return (uniform(name, int(np.prod(shape))) * scale).reshape(shape)


def float_tensors(vocab=VOCAB):
    """The float model: {name: float32 array} in Qwen v1's names and [out, in] layout."""
    t = {"transformer.wte.weight": weight("wte", (vocab, HIDDEN), 1.0),
         "transformer.ln_f.weight": 1 + weight("ln_f", (HIDDEN,), 0.2),
         "lm_head.weight": weight("lm_head", (vocab, HIDDEN), 0.25)}
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        t[p + "ln_1.weight"] = 1 + weight(p + "ln_1", (HIDDEN,), 0.2)
        t[p + "attn.c_attn.weight"] = weight(p + "c_attn", (3 * HIDDEN, HIDDEN), 0.3)
        t[p + "attn.c_attn.bias"] = weight(p + "c_attn.bias", (3 * HIDDEN,), 0.2)
        t[p + "attn.c_proj.weight"] = weight(p + "c_proj", (HIDDEN, HIDDEN), 0.15)
        t[p + "ln_2.weight"] = 1 + weight(p + "ln_2", (HIDDEN,), 0.2)
        t[p + "mlp.w1.weight"] = weight(p + "w1", (FFN, HIDDEN), 0.2)
        t[p + "mlp.w2.weight"] = weight(p + "w2", (FFN, HIDDEN), 0.2)
        t[p + "mlp.c_proj.weight"] = weight(p + "mlp.c_proj", (HIDDEN, FFN), 0.15)
    return t


QUANTIZED = ("attn.c_attn", "attn.c_proj", "mlp.w1", "mlp.w2", "mlp.c_proj")


def gptq_layer(name, w, bits, group, sym, desc_act):
    """AutoGPTQ's tensors for a float weight w [out, in]: round-to-nearest per group with
    GPTQ's quantizer (sym: zero 2^(bits-1); asym: zero = round(-min / scale), kept >= 1 so
    the v1 "zero - 1" packing stays in range), then QuantLinear.pack's layout."""
    out_f, in_f = w.shape
    maxq = 2 ** bits - 1
    g = in_f if group == -1 else group
    groups = (in_f + g - 1) // g
    if desc_act:   # act-order: column perm[i] is the i-th quantized, in group i // g
        perm = np.argsort(uniform(name + ".perm", in_f), kind="stable")
        g_idx = np.empty(in_f, dtype=np.int32)
        g_idx[perm] = np.arange(in_f) // g
    else:
        g_idx = (np.arange(in_f) // g).astype(np.int32)
    scales = np.zeros((groups, out_f), dtype=np.float16)
    zeros = np.zeros((groups, out_f), dtype=np.int64)
    for k in range(groups):
        cols = w[:, g_idx == k]
        lo, hi = np.minimum(cols.min(axis=1), 0), np.maximum(cols.max(axis=1), 0)
        if sym:
            top = np.maximum(-lo, hi)
            lo, hi = -top, top
        scale = ((hi - lo) / maxq).astype(np.float16)
        scale[scale == 0] = 1
        scales[k] = scale
        zeros[k] = np.full(out_f, (maxq + 1) // 2) if sym else np.clip(np.round(-lo / scale.astype(np.float32)), 1, maxq)
    s = scales.astype(np.float32)[g_idx].T        # [out, in]
    z = zeros[g_idx].T
    q = np.clip(np.round(w / s) + z, 0, maxq).astype(np.uint32).T     # [in, out]
    per = 32 // bits
    qweight = np.zeros((in_f // per, out_f), dtype=np.uint32)
    for j in range(per):
        qweight |= q[j::per] << np.uint32(bits * j)
    stored = (zeros - 1).astype(np.uint32)        # [groups, out]
    qzeros = np.zeros((groups, out_f // per), dtype=np.uint32)
    for j in range(per):
        qzeros |= stored[:, j::per] << np.uint32(bits * j)
    return {name + ".qweight": qweight.view(np.int32), name + ".qzeros": qzeros.view(np.int32),
            name + ".scales": scales, name + ".g_idx": g_idx}


def to_bf16_bytes(a):
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return rounded.astype(np.uint16).tobytes()


def encode(a, dtype):
    """(safetensors dtype, bytes)."""
    if dtype == "bf16":
        return "BF16", to_bf16_bytes(a)
    if a.dtype == np.int32:
        return "I32", np.ascontiguousarray(a).tobytes()
    return "F16", np.ascontiguousarray(a, dtype=np.float16).tobytes()


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def write_variant(out_dir, name, spec):
    target = os.path.join(out_dir, name)
    os.makedirs(target, exist_ok=True)
    bits = spec.get("bits")
    float_model = float_tensors(spec.get("vocab", VOCAB))
    tensors = {}
    for key, value in float_model.items():
        prefix = key.rsplit(".", 1)[0]
        if bits and key.endswith(".weight") and prefix.split(".", 3)[-1] in QUANTIZED:
            for qname, q in gptq_layer(prefix, value, bits, spec["group"], spec["sym"], spec.get("desc_act", False)).items():
                dtype, data = encode(q, "fp16")
                tensors[qname] = (dtype, q.shape, data)
        else:
            dtype, data = encode(value, spec.get("dtype", "fp16"))
            tensors[key] = (dtype, value.shape, data)

    config = {
        "architectures": ["QWenLMHeadModel"], "model_type": "qwen", "hidden_size": HIDDEN,
        "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "intermediate_size": 2 * FFN,
        "vocab_size": spec.get("vocab", VOCAB), "seq_length": spec.get("seq_length", 2048), "max_position_embeddings": 8192,
        "kv_channels": HIDDEN // HEADS, "rotary_pct": 1.0, "rotary_emb_base": 10000,
        "layer_norm_epsilon": 1e-6, "use_dynamic_ntk": True, "use_logn_attn": True, "no_bias": True,
        "tie_word_embeddings": False, "bf16": spec.get("dtype") == "bf16", "fp16": spec.get("dtype", "fp16") == "fp16",
        "fp32": False, "emb_dropout_prob": 0.0, "attn_dropout_prob": 0.0, "initializer_range": 0.02,
        "scale_attn_weights": True, "use_cache": True, "use_flash_attn": False,
        "tokenizer_class": "QWenTokenizer",
    }
    if bits:
        settings = {"bits": bits, "group_size": spec["group"], "damp_percent": 0.01, "desc_act": spec.get("desc_act", False),
                    "static_groups": False, "sym": spec["sym"], "true_sequential": True,
                    "model_name_or_path": None, "model_file_base_name": "model"}
        if spec.get("settings_file"):
            with open(os.path.join(target, "quantize_config.json"), "w") as f:
                json.dump(settings, f, indent=2)
        else:
            config["quantization_config"] = dict(settings, quant_method="gptq")
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(target, "generation_config.json"), "w") as f:
        json.dump({"chat_format": "chatml", "eos_token_id": 151643, "pad_token_id": 151643,
                   "max_window_size": 6144, "max_new_tokens": 512, "do_sample": False}, f, indent=2)

    names = list(tensors)
    if spec.get("sharded"):
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
        for shard, members in shards.items():
            write_safetensors(os.path.join(target, shard), {n: tensors[n] for n in members})
        with open(os.path.join(target, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": {n: s for s, members in shards.items() for n in members}}, f, indent=2)
    else:
        write_safetensors(os.path.join(target, "model.safetensors"), tensors)

    vocab = os.environ.get("QWEN_TIKTOKEN") or os.path.expanduser("~/.cache/qwen-embed/qwen.tiktoken")
    shutil.copyfile(vocab, os.path.join(target, "qwen.tiktoken"))
    return target


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    wanted = sys.argv[2:] or list(VARIANTS)
    for name in wanted:
        if name not in VARIANTS:
            sys.exit(f"unknown variant {name}; known: {', '.join(VARIANTS)}")
        print(write_variant(out_dir, name, VARIANTS[name]))


if __name__ == "__main__":
    main()
