#!/usr/bin/env python3
"""Expected outputs for the checkpoints of gen-qwen-family-checkpoints.py, from
implementations that share nothing with the engine. Run once (needs torch, transformers,
tokenizers, safetensors, numpy and gguf); the outputs are committed and the tests never run
this.

    gen-qwen-family-expected.py CHECKPOINTS_DIR FIXTURES_DIR      write the fixtures
    gen-qwen-family-expected.py --measure CHECKPOINTS_DIR [GGUF_DIR]
                                print what an engine's numerics would move (tolerances)

FIXTURES_DIR/qwen-family-expected.json:
- variants: every variant, transformers' Qwen2ForCausalLM / Qwen3ForCausalLM in float32
  with eager attention, one forward over PROMPT (the v1 fixture's), the top 20 [id, logit]
  at every position. bf16 / fp16 directories are loaded by AutoModelForCausalLM itself
  (config.json, safetensors, shards, tied or untied head); quantized ones through the
  float model built from the same config with the layers dequantized:
  GPTQ as auto_gptq's QuantLinear does (gen-qwen-expected.py's gptq_dequantize: zeros =
  ((qzeros >> shift) & mask) + 1, w = scale[g_idx] * (q - zero[g_idx]), scales in float32),
  AWQ as AutoAWQ's packing_utils.dequantize_gemm does (unpack_awq, reverse_awq_order,
  & 0xF, (iweight - izeros) * scales), here with the scales in float32: the exact product
  of the stored values (AutoAWQ's own function multiplies in fp16; see --measure).
- greedy: qwen2-bf16 and qwen3-bf16 greedily decoded GREEDY tokens after PROMPT with
  transformers' KV cache: the ids, each step's top 20 and top-1 margin.
- chat: the CHATS conversations (and tools, enable_thinking) through transformers'
  apply_chat_template(add_generation_prompt=True) with tokenizer_config.json's template:
  the text and its ids, per arch.

FIXTURES_DIR/qwen2-tokenizer-cases.jsonl: HF tokenizers' Tokenizer.from_file on the
generated tokenizer.json (qwen2: Qwen2.5's added tokens, "ids"; qwen3: Qwen3's, "ids_qwen3",
written only where it differs from "ids"),
encode(text, add_special_tokens=False) of every text of tokenizer-cases.jsonl and of
EXTRA_TEXTS. HF matches every added token inside the text, special or not.
"""
import importlib.util
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT = [750, 75698, 1445, 982, 262, 421, 308, 2651, 220, 16, 510, 286, 470, 308, 198, 262, 470,
          75698, 1445, 481, 220, 16, 8, 488, 75698, 1445, 481, 220, 17, 8]
TOP = 20
GREEDY = 8
GREEDY_VARIANTS = ("qwen2-bf16", "qwen3-bf16")

EXTRA_TEXTS = [
    ("added:tool_call", "<tool_call>"),
    ("added:think", "<think>x</think>"),
    ("added:im_start", "<|im_start|>"),
    ("added:chatml-turn", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
    ("added:tool-call-json", 'a<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>b'),
    ("added:tool-response", "<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>"),
    ("added:empty-think", "<|im_start|>assistant\n<think>\n\n</think>\n\nHello"),
    ("added:adjacent", "<|endoftext|><|endoftext|><|im_end|><think></think>"),
    ("added:spaces-around", "  <tool_call>  x  </tool_call>  "),
    ("added:fim", "<|fim_prefix|>def f():\n    <|fim_suffix|>\n<|fim_middle|>"),
    ("added:vision", "<|vision_start|><|image_pad|><|video_pad|><|vision_end|>"),
    ("added:box", "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(1,2)<|box_end|><|quad_start|><|quad_end|>"),
    ("added:repo", "<|repo_name|>qwen<|file_sep|>a.py\nprint(1)<|fim_pad|>"),
    ("near:unclosed", "<|im_start <|im_start| < |im_start|> <tool_call <think >"),
    ("near:case", "<THINK></Think><Tool_Call>"),
    ("near:v1-only", "<|extra_0|><|extra_204|>"),
    ("near:in-word", "abc<think>def</think>ghi"),
    ("near:nfc", "e\u0301<think>e\u0301</think>\u212b"),
]


def _load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tensors_of(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(directory, name)))
    return out


AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def awq_dequantize(qweight, qzeros, scales, group_size, bits=4, fp16_product=False):
    """AutoAWQ's packing_utils.dequantize_gemm: [out, in] float32."""
    shifts = torch.arange(0, 32, bits)
    iweights = torch.bitwise_right_shift(qweight[:, :, None], shifts[None, None, :]).to(torch.int8)
    iweights = iweights.view(iweights.shape[0], -1)
    izeros = torch.bitwise_right_shift(qzeros[:, :, None], shifts[None, None, :]).to(torch.int8)
    izeros = izeros.view(izeros.shape[0], -1)
    order = torch.arange(iweights.shape[-1], dtype=torch.int32).view(-1, 32 // bits)[:, AWQ_REVERSE_ORDER].view(-1)
    iweights, izeros = iweights[:, order], izeros[:, order]
    iweights = torch.bitwise_and(iweights, (2 ** bits) - 1)
    izeros = torch.bitwise_and(izeros, (2 ** bits) - 1)
    scales = scales.repeat_interleave(group_size, dim=0)
    izeros = izeros.repeat_interleave(group_size, dim=0)
    if fp16_product:
        w = ((iweights - izeros) * scales).float()           # AutoAWQ's: fp16 scales times int8 -> fp16
    else:
        w = (iweights - izeros).float() * scales.float()
    return w.t().contiguous()


def config_of(directory):
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f)


def dequantized_state(directory, fp16_awq=False):
    """{transformers name: float32 tensor} of a GPTQ / AWQ directory, the quantized layers
    dequantized; the zero .bias AutoGPTQ <= 0.7.1 writes for bias-less layers dropped (checked zero)."""
    config = config_of(directory)
    settings = config["quantization_config"]
    t = tensors_of(directory)
    gptq = _load("gen_qwen_expected", "gen-qwen-expected.py").gptq_dequantize
    has_bias = {"q_proj", "k_proj", "v_proj"} if config["model_type"] == "qwen2" else set()
    out = {}
    for name, value in t.items():
        prefix, leaf = name.rsplit(".", 1)
        if leaf == "qweight":
            if settings["quant_method"] == "gptq":
                out[prefix + ".weight"] = gptq(t, prefix, settings["bits"])
            else:
                out[prefix + ".weight"] = awq_dequantize(t[prefix + ".qweight"], t[prefix + ".qzeros"],
                                                         t[prefix + ".scales"], settings["group_size"],
                                                         fp16_product=fp16_awq)
        elif leaf in ("qzeros", "scales", "g_idx"):
            continue
        elif leaf == "bias" and prefix.rsplit(".", 1)[-1] not in has_bias:
            assert not value.any(), name
        else:
            out[name] = value.float()
    return out


def load_model(directory, dtype=torch.float32, fp16_awq=False):
    from transformers import AutoConfig, AutoModelForCausalLM
    config = config_of(directory)
    if "quantization_config" not in config:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, attn_implementation="eager")
        return model.eval()
    plain = {k: v for k, v in config.items() if k != "quantization_config"}
    hf_config = AutoConfig.for_model(**plain)
    model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype, attn_implementation="eager")
    state = {k: v.to(dtype) for k, v in dequantized_state(directory, fp16_awq).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k or (k == "lm_head.weight" and config["tie_word_embeddings"])
                                  for k in missing), (missing, unexpected)
    if config["tie_word_embeddings"]:
        model.tie_weights()
    return model.eval()


def top(row):
    values, ids = torch.topk(row.float(), TOP)
    return [[int(i), round(float(v), 5)] for i, v in zip(ids, values)]


def forward_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def greedy(model):
    steps, generated, margins = [], [], []
    with torch.no_grad():
        out = model(input_ids=torch.tensor([PROMPT]), use_cache=True)
        for _ in range(GREEDY):
            row = out.logits[0, -1].float()
            steps.append(top(row))
            values, _ = torch.topk(row, 2)
            margins.append(round(float(values[0] - values[1]), 5))
            token = int(torch.argmax(row))
            generated.append(token)
            out = model(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True)   # transformers 5: `cache`
    return {"generated": generated, "steps": steps, "top1_margin": margins}


def tokenizer_cases(checkpoints, fixtures):
    from tokenizers import Tokenizer
    qwen2 = Tokenizer.from_file(os.path.join(checkpoints, "qwen2-bf16", "tokenizer.json"))
    qwen3 = Tokenizer.from_file(os.path.join(checkpoints, "qwen3-bf16", "tokenizer.json"))
    rows = []
    with open(os.path.join(fixtures, "tokenizer-cases.jsonl"), encoding="utf-8") as f:
        for line in f:
            case = json.loads(line)
            rows.append((case["name"], case["text"]))
    rows += EXTRA_TEXTS
    with open(os.path.join(fixtures, "qwen2-tokenizer-cases.jsonl"), "w", encoding="utf-8") as f:
        for name, text in rows:
            row = {"name": name, "text": text, "ids": qwen2.encode(text, add_special_tokens=False).ids}
            ids_qwen3 = qwen3.encode(text, add_special_tokens=False).ids
            if ids_qwen3 != row["ids"]:
                row["ids_qwen3"] = ids_qwen3
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city."}},
                   "required": ["city"]}}}
# name -> (messages, tools, enable_thinking, archs)
CHATS = {
    "system": ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}], None, None,
               ("qwen2", "qwen3")),
    "no-system": ([{"role": "user", "content": "Hello"}], None, None, ("qwen2", "qwen3")),
    "tools": ([{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "",
                "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
               {"role": "tool", "content": "sunny, 21 C"}], [WEATHER_TOOL], None, ("qwen2", "qwen3")),
    "thinking-off": ([{"role": "user", "content": "Hello"}], None, False, ("qwen3",)),
}


def chat_prompts(checkpoints):
    """transformers' apply_chat_template(add_generation_prompt=True) over tokenizer_config.json's
    template: {arch: {chat: {messages, tools, enable_thinking, text, ids}}}."""
    from transformers import AutoTokenizer
    out = {}
    for arch in ("qwen2", "qwen3"):
        tokenizer = AutoTokenizer.from_pretrained(os.path.join(checkpoints, f"{arch}-bf16"))
        out[arch] = {}
        for name, (messages, tools, thinking, archs) in CHATS.items():
            if arch not in archs:
                continue
            extra = {} if thinking is None else {"enable_thinking": thinking}
            text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True, **extra)
            out[arch][name] = {"messages": messages, "tools": tools, "enable_thinking": thinking, "text": text,
                               "ids": tokenizer(text, add_special_tokens=False)["input_ids"]}
    return out


def versions():
    import tokenizers
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def variant_names(checkpoints):
    family = _load("gen_qwen_family", "gen-qwen-family-checkpoints.py")
    return [v for v in family.VARIANTS if os.path.isdir(os.path.join(checkpoints, v))]


def write_fixtures(checkpoints, fixtures):
    torch.set_num_threads(2)
    result = {"prompt": PROMPT, "top": TOP, "versions": versions(), "variants": {}, "greedy": {}}
    for name in variant_names(checkpoints):
        model = load_model(os.path.join(checkpoints, name))
        result["variants"][name] = [top(row) for row in forward_logits(model, PROMPT)]
        if name in GREEDY_VARIANTS:
            result["greedy"][name] = greedy(model)
        print(name, file=sys.stderr)
    result["chat"] = chat_prompts(checkpoints)
    with open(os.path.join(fixtures, "qwen-family-expected.json"), "w") as f:
        json.dump(result, f, separators=(",", ":"))
    print("tokenizer cases:", tokenizer_cases(checkpoints, fixtures), file=sys.stderr)


# ------------------------------------------------------------------ measurement only
# A second implementation in numpy (float64), with switches for what an engine's numerics
# change: an f16 KV cache, activations quantized to int8 per 32 values before each matmul
# (llama.cpp's Q8_0 / the engine's int8 decode kernels), weights of a Q8_0 GGUF.

def q8_activations(x):
    shape = x.shape
    blocks = x.reshape(-1, 32)
    d = (np.abs(blocks).max(axis=1, keepdims=True) / 127).astype(np.float16).astype(np.float64)
    q = np.round(np.divide(blocks, d, out=np.zeros_like(blocks), where=d != 0))
    return (q * d).reshape(shape)


def numpy_forward(w, config, ids, kv16=False, q8=False):
    arch = config["model_type"]
    h, heads, kv_heads = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim", h // heads)
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    n = len(ids)

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def linear(x, name):
        y = (q8_activations(x) if q8 else x) @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    angles = np.arange(n)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))

    def rope(x):          # [n, heads, hd], rotate_half
        rotated = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos[:, None, :] + rotated * sin[:, None, :]

    x = w["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = rms(x, w[p + "input_layernorm.weight"])
        q = linear(a, p + "self_attn.q_proj").reshape(n, heads, hd)
        k = linear(a, p + "self_attn.k_proj").reshape(n, kv_heads, hd)
        v = linear(a, p + "self_attn.v_proj").reshape(n, kv_heads, hd)
        if arch == "qwen3":
            q, k = rms(q, w[p + "self_attn.q_norm.weight"]), rms(k, w[p + "self_attn.k_norm.weight"])
        q, k = rope(q), rope(k)
        if kv16:
            k, v = k.astype(np.float16).astype(np.float64), v.astype(np.float16).astype(np.float64)
        group = heads // kv_heads
        out = np.empty((n, heads, hd))
        for head in range(heads):
            s = q[:, head] @ k[:, head // group].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, head // group]
        x = x + linear(out.reshape(n, heads * hd), p + "self_attn.o_proj")
        m = rms(x, w[p + "post_attention_layernorm.weight"])
        g, u = linear(m, p + "mlp.gate_proj"), linear(m, p + "mlp.up_proj")
        x = x + linear(g / (1 + np.exp(-g)) * u, p + "mlp.down_proj")
    x = rms(x, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return (q8_activations(x) if q8 else x) @ head.T


def worst(logits, reference):
    return max(abs(float(logits[pos][i]) - v) for pos, row in enumerate(reference) for i, v in row)


def gguf_weights(path):
    """transformers-named float64 weights of a qwen3 GGUF (dequantized as ggml does)."""
    import gguf
    names = {v: k for k, v in _load("gen_qwen_gguf", "gen-qwen-gguf.py").QWEN3_NAMES.items()}
    layer = {v: k for k, v in _load("gen_qwen_gguf", "gen-qwen-gguf.py").QWEN3_LAYER_NAMES.items()}
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        if t.name in names:
            name = names[t.name]
        else:
            _, block, rest = t.name.split(".", 2)
            name = f"model.layers.{block}.{layer[rest]}"
        assert data.shape == tuple(int(d) for d in reversed(t.shape)) or data.ndim == 1, (t.name, data.shape)
        out[name] = data
    return out


def measure(checkpoints, gguf_dir=None):
    torch.set_num_threads(2)
    for name in variant_names(checkpoints):
        directory = os.path.join(checkpoints, name)
        config = config_of(directory)
        model = load_model(directory)
        reference = [top(row) for row in forward_logits(model, PROMPT)]
        w = {k: v.double().numpy() for k, v in model.state_dict().items() if "rotary" not in k}
        if config["tie_word_embeddings"]:
            w.pop("lm_head.weight", None)
        exact = numpy_forward(w, config, PROMPT)
        line = [f"{name}: logits span [{min(r[-1][1] for r in reference):.2f}, {max(r[0][1] for r in reference):.2f}]",
                f"min top-1 margin {min(r[0][1] - r[1][1] for r in reference):.4f}",
                f"numpy f64 vs torch f32 {worst(exact, reference):.2e}",
                f"f16 KV {worst(numpy_forward(w, config, PROMPT, kv16=True), reference):.4f}",
                f"int8 activations {worst(numpy_forward(w, config, PROMPT, kv16=True, q8=True), reference):.4f}"]
        bf16 = load_model(directory, dtype=torch.bfloat16)
        line.append(f"torch bf16 compute {worst(forward_logits(bf16, PROMPT), reference):.4f}")
        if config.get("quantization_config", {}).get("quant_method") == "awq":
            fp16 = load_model(directory, fp16_awq=True)
            line.append(f"AWQ fp16-product dequant {worst(forward_logits(fp16, PROMPT), reference):.4f}")
        if name in GREEDY_VARIANTS:
            g = greedy(model)
            ids = PROMPT + g["generated"][:-1]
            decode = numpy_forward(w, config, ids, kv16=True)[len(PROMPT) - 1:]
            line.append(f"greedy {g['generated']} margins {g['top1_margin']} decode f16 KV {worst(decode, g['steps']):.4f}")
        print("\n  ".join(line))
        if gguf_dir and name == "qwen3-bf16":
            for outtype in ("f16", "q8_0"):
                gw = gguf_weights(os.path.join(gguf_dir, f"qwen3-{outtype}.gguf"))
                print(f"  GGUF {outtype}: f32 activations {worst(numpy_forward(gw, config, PROMPT, kv16=True), reference):.4f}, "
                      f"int8 activations {worst(numpy_forward(gw, config, PROMPT, kv16=True, q8=True), reference):.4f}")


def main():
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--measure":
        measure(*sys.argv[2:])
    elif len(sys.argv) == 3:
        write_fixtures(*sys.argv[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
