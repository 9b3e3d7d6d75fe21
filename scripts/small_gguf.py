"""A small loadable GGUF (one layer, hidden 32, the 256 byte tokens plus ChatML's), for
the fuzz seeds and the corrupt-file corpus; gguf-py only."""
import numpy as np
import gguf


def write_small_gguf(path, arch, qtype, chat_template=None):
    """Writes it to `path`: architecture qwen2 or qwen, matrices f32 or q8_0, and
    `chat_template` as tokenizer.chat_template when given."""
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
    if chat_template is not None:
        w.add_chat_template(chat_template)
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
