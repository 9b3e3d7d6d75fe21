#!/usr/bin/env python3
"""Writes tiny deterministic Qwen2 / Qwen2.5 and Qwen3 checkpoints laid out as Qwen's
Hugging Face releases are, for the tests: bf16 / fp16 safetensors (tied and untied head,
single file and sharded with an index), AutoGPTQ GPTQ Int4 / Int8 (checkpoint format v1,
packed as auto_gptq's QuantLinear.pack does) and AutoAWQ GEMM Int4 (packed as AutoAWQ's
WQLinear_GEMM.from_linear does), each with config.json, generation_config.json,
tokenizer.json and tokenizer_config.json. numpy only (plus gguf-py to read the
vocabulary), so `make test` can run it; the weights come from the counter-based hash of
gen-qwen-checkpoints.py, so every machine writes the same bytes.

    gen-qwen-family-checkpoints.py OUT_DIR [VARIANT ...]     (default: every variant)

tokenizer.json is Qwen2.5's, rebuilt from the vocabulary and merges of the default GGUF
($QWEN_MODEL, else ~/.cache/qwen-embed/qwen2.5-coder-0.5b-instruct.gguf): the qwen2
variants carry it with merges as "a b" strings and Qwen2.5's 22 added tokens, the qwen3
variants with merges as ["a", "b"] pairs (tokenizers >= 0.20 writes them so) and Qwen3's
26 added tokens (151665-151668: <tool_response> </tool_response> <think> </think>). It is
built once per OUT_DIR (OUT_DIR/.tokenizer-cache) and copied into every variant.
Expected logits come from transformers (scripts/gen-qwen-family-expected.py), kept in
Tests/Fixtures/qwen-family-expected.json.
"""
import importlib.util
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _v1():
    spec = importlib.util.spec_from_file_location("gen_qwen_checkpoints", os.path.join(HERE, "gen-qwen-checkpoints.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


v1 = _v1()
uniform, weight, gptq_layer, to_bf16_bytes = v1.uniform, v1.weight, v1.gptq_layer, v1.to_bf16_bytes

HIDDEN, HEADS, KV_HEADS, LAYERS, FFN, VOCAB = 128, 4, 2, 2, 256, 151936
QWEN3_HEAD_DIM = 64          # q is 4 x 64 = 256 wide: head_dim != hidden / heads
REGULAR_TOKENS = 151643      # ids 0..151642 are BPE tokens, the rest added tokens

VARIANTS = {
    "qwen2-bf16": dict(arch="qwen2", dtype="bf16", tied=True, vocab_files=True),
    "qwen2-fp16-untied-sharded": dict(arch="qwen2", dtype="fp16", tied=False, sharded=True),
    # Qwen2.5-*-GPTQ-Int4 as released: transformers' GPTQConfig in config.json, AutoGPTQ
    # <= 0.7.1's zero .bias on every quantized layer (make_quant passed bias=True).
    "qwen2-gptq-int4": dict(arch="qwen2", quant="gptq", bits=4, group=32, sym=True, desc_act=False, tied=True,
                            zero_biases=True, settings="transformers"),
    # AutoGPTQ's own save_quantized (main): its to_dict with checkpoint_format, quantize_config.json,
    # a bias only where the float layer had one.
    "qwen2-gptq-int8-actorder-asym": dict(arch="qwen2", quant="gptq", bits=8, group=64, sym=False, desc_act=True,
                                          tied=False, settings="autogptq"),
    "qwen2-awq-int4": dict(arch="qwen2", quant="awq", bits=4, group=64, tied=False),
    "qwen3-bf16": dict(arch="qwen3", dtype="bf16", tied=True),
    "qwen3-fp16-untied": dict(arch="qwen3", dtype="fp16", tied=False),
}

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def head_dim(arch):
    return QWEN3_HEAD_DIM if arch == "qwen3" else HIDDEN // HEADS


def float_tensors(arch, tied, vocab=VOCAB):
    """The float model: {name: float32 array} in transformers' names, [out, in] layout and
    module order (the order save_pretrained shards in)."""
    hd = head_dim(arch)
    q_dim, kv_dim = HEADS * hd, KV_HEADS * hd
    s = arch + "/"
    t = {"model.embed_tokens.weight": weight(s + "embed", (vocab, HIDDEN), 0.25)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for part, rows, scale in (("q_proj", q_dim, 0.3), ("k_proj", kv_dim, 0.3), ("v_proj", kv_dim, 0.3)):
            t[p + f"self_attn.{part}.weight"] = weight(s + p + part, (rows, HIDDEN), scale)
            if arch == "qwen2":
                t[p + f"self_attn.{part}.bias"] = weight(s + p + part + ".bias", (rows,), 0.2)
        t[p + "self_attn.o_proj.weight"] = weight(s + p + "o_proj", (HIDDEN, q_dim), 0.15 * (HIDDEN / q_dim) ** 0.5)
        if arch == "qwen3":
            t[p + "self_attn.q_norm.weight"] = 1 + weight(s + p + "q_norm", (hd,), 0.4)
            t[p + "self_attn.k_norm.weight"] = 1 + weight(s + p + "k_norm", (hd,), 0.4)
        t[p + "mlp.gate_proj.weight"] = weight(s + p + "gate_proj", (FFN, HIDDEN), 0.2)
        t[p + "mlp.up_proj.weight"] = weight(s + p + "up_proj", (FFN, HIDDEN), 0.2)
        t[p + "mlp.down_proj.weight"] = weight(s + p + "down_proj", (HIDDEN, FFN), 0.15)
        t[p + "input_layernorm.weight"] = 1 + weight(s + p + "input_layernorm", (HIDDEN,), 0.2)
        t[p + "post_attention_layernorm.weight"] = 1 + weight(s + p + "post_attention_layernorm", (HIDDEN,), 0.2)
    t["model.norm.weight"] = 1 + weight(s + "norm", (HIDDEN,), 0.2)
    if not tied:
        t["lm_head.weight"] = weight(s + "lm_head", (vocab, HIDDEN), 0.25)
    return t


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_layer(name, w, group):
    """AutoAWQ's GEMM tensors for a float weight w [out, in]: its zero-point quantizer
    (pseudo_quantize_tensor: scale = (max - min) / 15, zero = clamp(-round(min / scale), 0, 15),
    q = clamp(round(w / scale) + zero, 0, 15)) per row and group of `group` input columns,
    then WQLinear_GEMM.from_linear's packing: qweight [in, out / 8] and qzeros [in / group,
    out / 8], eight 4-bit values per int32 in AWQ_ORDER, scales fp16 [in / group, out].
    A few rows are made all positive (zero point 0) or all negative (zero point 15)."""
    out_f, in_f = w.shape
    groups = in_f // group
    wg = w.reshape(out_f, groups, group).copy()
    rows = np.arange(out_f)
    wg[rows % 11 == 0, 0] = np.abs(wg[rows % 11 == 0, 0])
    wg[rows % 11 == 5, -1] = -np.abs(wg[rows % 11 == 5, -1])
    hi, lo = wg.max(axis=2), wg.min(axis=2)                                  # [out, groups]
    scale = (np.maximum(hi - lo, 1e-5) / 15).astype(np.float16)
    s = scale.astype(np.float32)
    zero = np.clip(-np.round(lo / s), 0, 15)
    q = np.clip(np.round(wg / s[:, :, None]) + zero[:, :, None], 0, 15).astype(np.uint32).reshape(out_f, in_f)
    assert zero.min() == 0 and zero.max() == 15, name
    intweight = np.ascontiguousarray(q.T)                                    # [in, out]
    zeros = np.ascontiguousarray(zero.T.astype(np.uint32))                   # [groups, out]
    qweight = np.zeros((in_f, out_f // 8), dtype=np.uint32)
    qzeros = np.zeros((groups, out_f // 8), dtype=np.uint32)
    for i, k in enumerate(AWQ_ORDER):
        qweight |= intweight[:, k::8] << np.uint32(4 * i)
        qzeros |= zeros[:, k::8] << np.uint32(4 * i)
    return {name + ".qweight": qweight.view(np.int32), name + ".qzeros": qzeros.view(np.int32),
            name + ".scales": np.ascontiguousarray(scale.T)}


def encode(a, dtype):
    """(safetensors dtype, bytes) of an array stored as dtype ("bf16" / "fp16"; int32 as is)."""
    if a.dtype == np.int32:
        return "I32", np.ascontiguousarray(a).tobytes()
    if dtype == "bf16":
        return "BF16", to_bf16_bytes(a)
    return "F16", np.ascontiguousarray(a, dtype=np.float16).tobytes()


def write_safetensors(path, tensors):
    """tensors: {name: (dtype, shape, bytes)}, laid out as the safetensors library does
    (by alignment, then name)."""
    size = {"I32": 4, "F32": 4, "BF16": 2, "F16": 2}
    ordered = sorted(tensors, key=lambda n: (-size[tensors[n][0]], n))
    v1.write_safetensors(path, {n: tensors[n] for n in ordered})


# ---------------------------------------------------------------- tokenizer files

ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
         "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
         "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
         "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
ADDED_QWEN3 = ADDED + ["<tool_response>", "</tool_response>", "<think>", "</think>"]
ADDITIONAL_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
                      "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                      "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
PRETOKENIZE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# Qwen3-0.6B's chat template (llama.cpp 0c1e570's models/templates/Qwen-Qwen3-0.6B.jinja).
QWEN3_TEMPLATE = os.path.join(os.path.dirname(HERE), "Tests", "Fixtures", "templates", "Qwen-Qwen3-0.6B.jinja")


def gguf_path():
    return os.environ.get("QWEN_MODEL") or os.path.expanduser("~/.cache/qwen-embed/qwen2.5-coder-0.5b-instruct.gguf")


def read_gguf_vocabulary():
    """(tokens, merges, chat_template) of the default GGUF."""
    import gguf
    reader = gguf.GGUFReader(gguf_path())
    field = reader.fields
    tokens = field["tokenizer.ggml.tokens"].contents()
    assert tokens[REGULAR_TOKENS:REGULAR_TOKENS + len(ADDED)] == ADDED, "unexpected added tokens in the GGUF"
    assert len(set(tokens[:REGULAR_TOKENS])) == REGULAR_TOKENS
    return tokens[:REGULAR_TOKENS], field["tokenizer.ggml.merges"].contents(), field["tokenizer.chat_template"].contents()


def added_token(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
            "special": content.startswith("<|")}


def tokenizer_json(tokens, merges, added, pair_merges):
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    document = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added_token(REGULAR_TOKENS + k, c) for k, c in enumerate(added)],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PRETOKENIZE}, "behavior": "Isolated", "invert": False},
            dict({"type": "ByteLevel"}, **byte_level)]},
        "post_processor": dict({"type": "ByteLevel"}, **byte_level),
        "decoder": dict({"type": "ByteLevel"}, **byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": [m.split(" ") for m in merges] if pair_merges else list(merges)},
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def tokenizer_config(added, template):
    return {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": {str(REGULAR_TOKENS + k): {key: value for key, value in sorted(added_token(REGULAR_TOKENS + k, c).items())
                                                           if key != "id"} for k, c in enumerate(added)},
        "additional_special_tokens": ADDITIONAL_SPECIAL, "bos_token": None, "chat_template": template,
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
        "model_max_length": 131072, "pad_token": "<|endoftext|>", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }


def tokenizer_files(out_dir):
    """OUT_DIR/.tokenizer-cache/{qwen2,qwen3}/...: written once, copied into every variant."""
    cache = os.path.join(out_dir, ".tokenizer-cache")
    done = os.path.join(cache, "complete")
    if os.path.exists(done):
        return cache
    tokens, merges, template = read_gguf_vocabulary()
    with open(QWEN3_TEMPLATE, encoding="utf-8") as f:
        qwen3_template = f.read()
    for arch, added, chat, pairs in (("qwen2", ADDED, template, False), ("qwen3", ADDED_QWEN3, qwen3_template, True)):
        os.makedirs(os.path.join(cache, arch), exist_ok=True)
        with open(os.path.join(cache, arch, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tokenizer_json(tokens, merges, added, pairs))
        with open(os.path.join(cache, arch, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_config(added, chat), f, indent=2, ensure_ascii=False)
            f.write("\n")
    with open(os.path.join(cache, "qwen2", "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(tokens)}, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(cache, "qwen2", "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    open(done, "w").close()
    return cache


# ---------------------------------------------------------------- configs

def model_config(spec):
    arch, quantized = spec["arch"], "quant" in spec
    dtype = "float16" if quantized or spec.get("dtype") == "fp16" else "bfloat16"
    config = {"architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "Qwen3ForCausalLM"]}
    if arch == "qwen3":
        config["attention_bias"] = False
    config.update({"attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645})
    if arch == "qwen3":
        config["head_dim"] = QWEN3_HEAD_DIM
    config.update({
        "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": FFN,
        "max_position_embeddings": 32768 if arch == "qwen2" else 40960, "max_window_layers": LAYERS,
        "model_type": arch, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-06})
    if arch == "qwen3":
        config["rope_scaling"] = None
    config.update({"rope_theta": 1000000.0 if arch == "qwen2" else 1000000,
                   "sliding_window": 32768 if arch == "qwen2" else None,
                   "tie_word_embeddings": spec["tied"], "torch_dtype": dtype,
                   "transformers_version": "4.43.1" if arch == "qwen2" else "4.51.0",
                   "use_cache": True, "use_sliding_window": False, "vocab_size": VOCAB})
    if spec.get("quant") == "gptq" and spec["settings"] == "transformers":
        config["quantization_config"] = {
            "batch_size": 1, "bits": spec["bits"], "block_name_to_quantize": None, "cache_block_outputs": True,
            "damp_percent": 0.01, "dataset": None, "desc_act": spec["desc_act"], "exllama_config": {"version": 1},
            "group_size": spec["group"], "max_input_length": None, "model_seqlen": None,
            "module_name_preceding_first_block": None, "modules_in_block_to_quantize": None, "pad_token_id": None,
            "quant_method": "gptq", "sym": spec["sym"], "tokenizer": None, "true_sequential": True,
            "use_cuda_fp16": False, "use_exllama": True}
    elif spec.get("quant") == "gptq":
        config["quantization_config"] = autogptq_settings(spec)
    elif spec.get("quant") == "awq":
        config["quantization_config"] = {"bits": 4, "group_size": spec["group"], "modules_to_not_convert": None,
                                         "quant_method": "awq", "version": "gemm", "zero_point": True}
    return config


def autogptq_settings(spec):
    return {"bits": spec["bits"], "group_size": spec["group"], "damp_percent": 0.01, "desc_act": spec["desc_act"],
            "static_groups": False, "sym": spec["sym"], "true_sequential": True, "model_name_or_path": None,
            "model_file_base_name": "model", "quant_method": "gptq", "checkpoint_format": "gptq"}


def generation_config(arch):
    if arch == "qwen2":   # Qwen2.5-*-Instruct's
        return {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                "transformers_version": "4.37.0"}
    return {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
            "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"}


# ---------------------------------------------------------------- variants

def variant_tensors(spec):
    """{name: (dtype, shape, bytes)} in module order."""
    float_model = float_tensors(spec["arch"], spec["tied"])
    quant = spec.get("quant")
    storage = spec.get("dtype", "fp16")
    tensors = {}

    def put(name, value):
        dtype, data = encode(value, storage)
        tensors[name] = (dtype, value.shape, data)

    for key, value in float_model.items():
        prefix = key.rsplit(".", 1)[0]
        linear = prefix.split(".", 3)[-1] in LINEARS
        if quant and linear and key.endswith(".weight"):
            if quant == "gptq":
                packed = gptq_layer(prefix, value, spec["bits"], spec["group"], spec["sym"], spec["desc_act"])
            else:
                packed = awq_layer(prefix, value, spec["group"])
            for name in (".qweight", ".qzeros", ".scales", ".g_idx"):
                if prefix + name in packed:
                    put(prefix + name, packed[prefix + name])
            if spec.get("zero_biases") and prefix + ".bias" not in float_model:
                put(prefix + ".bias", np.zeros(value.shape[0], dtype=np.float32))
        else:
            put(key, value)
    return tensors


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_variant(out_dir, name, spec):
    target = os.path.join(out_dir, name)
    os.makedirs(target, exist_ok=True)
    tensors = variant_tensors(spec)
    names = list(tensors)
    if spec.get("sharded"):
        split = names.index("model.layers.1.self_attn.q_proj.weight")
        shards = {"model-00001-of-00002.safetensors": names[:split], "model-00002-of-00002.safetensors": names[split:]}
        for shard, members in shards.items():
            write_safetensors(os.path.join(target, shard), {n: tensors[n] for n in members})
        total = sum(len(t[2]) for t in tensors.values())
        write_json(os.path.join(target, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total},
                    "weight_map": {n: s for s, members in shards.items() for n in sorted(members)}})
    else:
        write_safetensors(os.path.join(target, "model.safetensors"), tensors)
    write_json(os.path.join(target, "config.json"), model_config(spec))
    write_json(os.path.join(target, "generation_config.json"), generation_config(spec["arch"]))
    if spec.get("settings") == "autogptq":
        write_json(os.path.join(target, "quantize_config.json"), autogptq_settings(spec))
    cache = os.path.join(tokenizer_files(out_dir), spec["arch"])
    files = ["tokenizer.json", "tokenizer_config.json"] + (["vocab.json", "merges.txt"] if spec.get("vocab_files") else [])
    for file in files:
        shutil.copyfile(os.path.join(cache, file), os.path.join(target, file))
    return target


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    wanted = sys.argv[2:] or list(VARIANTS)
    for name in wanted:
        if name not in VARIANTS:
            sys.exit(f"unknown variant {name}; known: {', '.join(VARIANTS)}")
    for name in wanted:
        print(write_variant(out_dir, name, VARIANTS[name]))


if __name__ == "__main__":
    main()
