#!/usr/bin/env python3
"""The GGUF llama.cpp's convert_hf_to_gguf.py (llama-cpp-python 0.3.36's copy) makes of a
tiny Qwen (v1) checkpoint with --outtype q8_0 or f16 (architecture `qwen`: fused attn_qkv
with bias, ffn_up = w1, ffn_gate = w2), written without torch so `make test` can build it:
the same metadata in the same order, the same tensors in the same order, quantized by the
same gguf-py.

    gen-qwen-gguf.py CHECKPOINT_DIR OUT.gguf q8_0|f16   write the GGUF
    gen-qwen-gguf.py --manifest FILE.gguf                print FILE's manifest (JSON)

The manifests (every metadata value and tensor's sha256) of the converter's own outputs
for scripts/gen-qwen-checkpoints.py's "bf16" checkpoint are kept in
Tests/Fixtures/qwen-v1-gguf-{q8_0,f16}-manifest.json; the tests require this script's
files to have the same ones. Two entries are not reproduced: tokenizer.ggml.merges (the converter runs
BPE over all 151k tokens, ~90 s; the engine does not read merges, so this file has none)
and general.name (the converter derives it from the directory's name).

A `qwen3` checkpoint directory (config.json model_type qwen3, from
scripts/gen-qwen-family-checkpoints.py's "qwen3-bf16") gets what the converter's
Qwen3Model writes instead: architecture `qwen3`, per-layer attn_q / attn_k / attn_v
(no bias), attn_q_norm / attn_k_norm [head_dim] (f32), attention.key_length /
value_length = head_dim, general.sampling.* from generation_config.json, and the
tokenizer from tokenizer.json / tokenizer_config.json, merges included. The files are
byte-identical to the converter's (general.name too, for a directory named qwen3-bf16);
Tests/Fixtures/qwen3-gguf-{q8_0,f16}-manifest.json keep the converter's manifests.
"""
import hashlib
import json
import os
import sys

import numpy as np
import gguf

NOT_REPRODUCED = ("tokenizer.ggml.merges", "general.name")

# Qwen v1 names -> llama.cpp's (gguf-py's tensor map for MODEL_ARCH.QWEN).
NAMES = {"lm_head.weight": "output.weight", "transformer.ln_f.weight": "output_norm.weight",
         "transformer.wte.weight": "token_embd.weight"}
LAYER_NAMES = {"attn.c_attn.bias": "attn_qkv.bias", "attn.c_attn.weight": "attn_qkv.weight",
               "attn.c_proj.weight": "attn_output.weight", "ln_1.weight": "attn_norm.weight",
               "ln_2.weight": "ffn_norm.weight", "mlp.c_proj.weight": "ffn_down.weight",
               "mlp.w1.weight": "ffn_up.weight", "mlp.w2.weight": "ffn_gate.weight"}


def gguf_name(name):
    if name in NAMES:
        return NAMES[name]
    _, _, block, rest = name.split(".", 3)
    return f"blk.{block}.{LAYER_NAMES[rest]}"


def read_safetensors(directory):
    """{name: float32 array}, the converter's order (names sorted, as safetensors lists them)."""
    import struct
    out = {}
    with open(os.path.join(directory, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name in sorted(k for k in header if k != "__metadata__"):
            entry = header[name]
            begin, end = entry["data_offsets"]
            f.seek(base + begin)
            raw = np.frombuffer(f.read(end - begin), dtype=np.uint16)
            assert entry["dtype"] == "BF16"
            out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])
    return out


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (transformers' bytes_to_unicode)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def vocabulary(directory, vocab_size):
    """tokenizer.ggml.tokens and token_type as _set_vocab_qwen builds them from qwen.tiktoken."""
    import base64
    encoder = bytes_to_unicode()
    reverse = {}
    with open(os.path.join(directory, "qwen.tiktoken"), "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                reverse[int(rank)] = "".join(encoder[b] for b in base64.b64decode(token))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(205)]
    for offset, special in enumerate(specials):
        reverse[151643 + offset] = special
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i >= 151643:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def write(directory, out_path, outtype):
    config = json.load(open(os.path.join(directory, "config.json")))
    tensors = read_safetensors(directory)
    parameters = sum(a.size for a in tensors.values())
    w = gguf.GGUFWriter(out_path, "qwen")
    w.add_type("model")
    w.add_name(os.path.basename(os.path.normpath(directory)).title())
    w.add_size_label(gguf.size_label(parameters, 0, 0, 0))
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_rope_freq_base(config["rotary_emb_base"])
    w.add_layer_norm_eps(config["layer_norm_epsilon"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if outtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types = vocabulary(directory, config["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_bos_token_id(151643)
    w.add_eos_token_id(151643)
    w.add_unk_token_id(151643)
    for name, data in tensors.items():
        if data.ndim == 1:
            w.add_tensor(gguf_name(name), data.astype(np.float32), raw_dtype=gguf.GGMLQuantizationType.F32)
        elif outtype == "f16":
            w.add_tensor(gguf_name(name), data.astype(np.float16), raw_dtype=gguf.GGMLQuantizationType.F16)
        else:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gguf_name(name), q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# transformers' Qwen3 names -> llama.cpp's (gguf-py's tensor map for MODEL_ARCH.QWEN3).
QWEN3_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}
QWEN3_LAYER_NAMES = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                     "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                     "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                     "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
                     "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                     "mlp.down_proj.weight": "ffn_down.weight"}


def qwen3_gguf_name(name):
    if name in QWEN3_NAMES:
        return QWEN3_NAMES[name]
    _, _, block, rest = name.split(".", 3)
    return f"blk.{block}.{QWEN3_LAYER_NAMES[rest]}"


def hf_vocabulary(directory, vocab_size):
    """tokenizer.ggml.tokens / token_type / merges as the converter's get_vocab_base and
    SpecialVocab build them from tokenizer.json: BPE tokens NORMAL, added tokens CONTROL
    when special (or <|...|>-shaped), else USER_DEFINED, ids without a token [PAD{i}] UNUSED;
    merges as "a b" strings whichever way tokenizer.json writes them."""
    with open(os.path.join(directory, "tokenizer.json"), encoding="utf-8") as f:
        document = json.load(f)
    reverse = {i: t for t, i in document["model"]["vocab"].items()}
    added = {}
    for entry in document["added_tokens"]:
        special = entry["special"] or (entry["content"].startswith("<|") and entry["content"].endswith("|>"))
        added[entry["id"]] = (entry["content"], gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
    tokens, types = [], []
    for i in range(vocab_size):
        if i in added:
            tokens.append(added[i][0])
            types.append(added[i][1])
        elif i in reverse:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in document["model"]["merges"]]
    return tokens, types, merges


def token_id(tokens, text):
    return tokens.index(text) if text is not None else None


def write_qwen3(directory, out_path, outtype):
    config = json.load(open(os.path.join(directory, "config.json")))
    generation = json.load(open(os.path.join(directory, "generation_config.json")))
    tokenizer_config = json.load(open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8"))
    tensors = read_safetensors(directory)
    parameters = sum(a.size for a in tensors.values())
    w = gguf.GGUFWriter(out_path, "qwen3")
    w.add_type("model")
    if "top_k" in generation:
        w.add_sampling_top_k(generation["top_k"])
    if "top_p" in generation:
        w.add_sampling_top_p(generation["top_p"])
    if "temperature" in generation:
        w.add_sampling_temp(generation["temperature"])
    w.add_name(os.path.basename(os.path.normpath(directory)).replace("-", " ").title())
    w.add_size_label(gguf.size_label(parameters, 0, 0, 0))
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    w.add_rope_freq_base(config["rope_theta"])
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_key_length(config["head_dim"])
    w.add_value_length(config["head_dim"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if outtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges = hf_vocabulary(directory, config["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(token_id(tokens, tokenizer_config["eos_token"]))
    w.add_pad_token_id(token_id(tokens, tokenizer_config["pad_token"]))
    w.add_bos_token_id(config["bos_token_id"])       # tokenizer_config's bos_token is null: config.json's
    w.add_add_bos_token(tokenizer_config.get("add_bos_token", False))
    w.add_add_eos_token(tokenizer_config.get("add_eos_token", False))
    w.add_chat_template(tokenizer_config["chat_template"])
    for name, data in tensors.items():
        if data.ndim == 1:
            w.add_tensor(qwen3_gguf_name(name), data.astype(np.float32), raw_dtype=gguf.GGMLQuantizationType.F32)
        elif outtype == "f16":
            w.add_tensor(qwen3_gguf_name(name), data.astype(np.float16), raw_dtype=gguf.GGMLQuantizationType.F16)
        else:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(qwen3_gguf_name(name), q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def manifest(path):
    r = gguf.GGUFReader(path)
    kv = {}
    for key, field in r.fields.items():
        digest = hashlib.sha256()
        for i in field.data:
            digest.update(bytes(field.parts[i]))
        kv[key] = {"types": [gguf.GGUFValueType(t).name for t in field.types], "sha256": digest.hexdigest()}
    tensors = [[t.name, t.tensor_type.name, [int(d) for d in t.shape], hashlib.sha256(bytes(t.data)).hexdigest()]
               for t in r.tensors]
    return {"kv": kv, "tensors": tensors}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--manifest":
        print(json.dumps(manifest(sys.argv[2]), indent=1))
    elif len(sys.argv) == 4 and sys.argv[3] in ("q8_0", "f16"):
        config = json.load(open(os.path.join(sys.argv[1], "config.json")))
        (write_qwen3 if config.get("model_type") == "qwen3" else write)(sys.argv[1], sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
