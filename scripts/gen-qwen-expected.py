#!/usr/bin/env python3
"""Expected logits for the checkpoints of gen-qwen-checkpoints.py, from implementations
that share nothing with the engine. Run once (needs torch, transformers, safetensors and
a copy of Qwen's own modeling code); the output is committed as
tests/python/fixtures/qwen-v1-expected.json and the tests never run this.

    gen-qwen-expected.py CHECKPOINTS_DIR QWEN_CODE_DIR OUT.json

- Every variant but long-context: transformers' Qwen2ForCausalLM (float32, eager
  attention) with the v1 weights mapped onto it (c_attn split into q/k/v, w2 = gate,
  w1 = up); GPTQ layers dequantized as auto_gptq's QuantLinear does (qlinear_cuda.py's
  torch path: zeros = ((qzeros >> shift) & mask) + 1, w = scale[g_idx] * (q - zero[g_idx]),
  scales in float32 as its CUDA kernels take them). One forward over PROMPT; the top 20
  logits at every position.
- long-context: Qwen's own modeling_qwen.py (QWEN_CODE_DIR: modeling_qwen.py,
  configuration_qwen.py, qwen_generation_utils.py from mapengAdam/qianwen-72B), seq_length
  32, a LONG_PROMPT_LENGTH-token prompt in one prefill, then greedy decoding with its KV
  cache for LONG_DECODE tokens (past 256, the next power-of-two boundary): the ids and
  each step's top 20 logits.
"""
import importlib.util
import json
import os
import sys
import types

import torch
from safetensors.torch import load_file

PROMPT = [750, 75698, 1445, 982, 262, 421, 308, 2651, 220, 16, 510, 286, 470, 308, 198, 262, 470,
          75698, 1445, 481, 220, 16, 8, 488, 75698, 1445, 481, 220, 17, 8]
LONG_PROMPT_LENGTH, LONG_DECODE = 200, 72
TOP = 20


def tensors_of(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(directory, name)))
    return out


def gptq_dequantize(t, prefix, bits):
    """auto_gptq 0.7.1 qlinear_cuda.QuantLinear.forward's dequantization (bits 4 / 8)."""
    qweight, qzeros, scales, g_idx = (t[prefix + s] for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    wf = torch.tensor(list(range(0, 32, bits)), dtype=torch.int32).unsqueeze(0)
    zeros = torch.bitwise_right_shift(torch.unsqueeze(qzeros, 2).expand(-1, -1, 32 // bits), wf.unsqueeze(0))
    zeros = zeros.to(torch.int16 if bits == 8 else torch.int8)
    zeros = torch.bitwise_and(zeros, (2 ** bits) - 1) + 1
    zeros = zeros.reshape(scales.shape)
    weight = torch.bitwise_right_shift(torch.unsqueeze(qweight, 1).expand(-1, 32 // bits, -1), wf.unsqueeze(-1))
    weight = weight.to(torch.int16 if bits == 8 else torch.int8)
    weight = torch.bitwise_and(weight, (2 ** bits) - 1)
    weight = weight.reshape(weight.shape[0] * weight.shape[1], weight.shape[2])
    g = g_idx.long()
    w = scales.float()[g] * (weight.float() - zeros.float()[g])      # [in, out]
    return w.t().contiguous()                                         # [out, in]


def float_weights(directory):
    """{v1 name: float32 [out, in] or vector} with GPTQ layers dequantized."""
    config = json.load(open(os.path.join(directory, "config.json")))
    settings = config.get("quantization_config")
    if settings is None and os.path.exists(os.path.join(directory, "quantize_config.json")):
        settings = json.load(open(os.path.join(directory, "quantize_config.json")))
    t = tensors_of(directory)
    out = {}
    for name, value in t.items():
        if name.endswith(".qweight"):
            prefix = name[: -len(".qweight")]
            out[prefix + ".weight"] = gptq_dequantize(t, prefix, settings["bits"])
        elif not name.endswith((".qzeros", ".scales", ".g_idx")):
            out[name] = value.float()
    return config, out


def qwen2_logits(directory):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    config, w = float_weights(directory)
    h, heads, layers = config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]
    q2 = Qwen2Config(vocab_size=config["vocab_size"], hidden_size=h, intermediate_size=config["intermediate_size"] // 2,
                     num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                     max_position_embeddings=config["max_position_embeddings"], rms_norm_eps=config["layer_norm_epsilon"],
                     rope_theta=config["rotary_emb_base"], tie_word_embeddings=False, attn_implementation="eager",
                     torch_dtype=torch.float32)
    model = Qwen2ForCausalLM(q2).float().eval()
    state = {"model.embed_tokens.weight": w["transformer.wte.weight"], "model.norm.weight": w["transformer.ln_f.weight"],
             "lm_head.weight": w["lm_head.weight"]}
    for i in range(layers):
        p, m = f"transformer.h.{i}.", f"model.layers.{i}."
        qkv, bias = w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]
        for k, part in enumerate(("q_proj", "k_proj", "v_proj")):
            state[m + f"self_attn.{part}.weight"] = qkv[k * h:(k + 1) * h]
            state[m + f"self_attn.{part}.bias"] = bias[k * h:(k + 1) * h]
        state[m + "self_attn.o_proj.weight"] = w[p + "attn.c_proj.weight"]
        state[m + "input_layernorm.weight"] = w[p + "ln_1.weight"]
        state[m + "post_attention_layernorm.weight"] = w[p + "ln_2.weight"]
        state[m + "mlp.gate_proj.weight"] = w[p + "mlp.w2.weight"]
        state[m + "mlp.up_proj.weight"] = w[p + "mlp.w1.weight"]
        state[m + "mlp.down_proj.weight"] = w[p + "mlp.c_proj.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    with torch.no_grad():
        logits = model(torch.tensor([PROMPT])).logits[0]
    return [top(row) for row in logits]


def top(row):
    values, ids = torch.topk(row.float(), TOP)
    return [[int(i), round(float(v), 5)] for i, v in zip(ids, values)]


def load_qwen_code(code_dir):
    """modeling_qwen.py as the package `qwen_ref`, with the shims today's transformers needs."""
    package = types.ModuleType("qwen_ref")
    package.__path__ = [code_dir]
    sys.modules["qwen_ref"] = package
    for name in ("configuration_qwen", "qwen_generation_utils", "modeling_qwen"):
        spec = importlib.util.spec_from_file_location(f"qwen_ref.{name}", os.path.join(code_dir, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"qwen_ref.{name}"] = module
        spec.loader.exec_module(module)
    modeling = sys.modules["qwen_ref.modeling_qwen"]
    if not hasattr(modeling.QWenModel, "get_head_mask"):   # removed from PreTrainedModel in transformers 5
        modeling.QWenModel.get_head_mask = lambda self, head_mask, n: [None] * n
    return sys.modules["qwen_ref.configuration_qwen"], modeling


def long_context(directory, code_dir):
    configuration, modeling = load_qwen_code(code_dir)
    config_json = json.load(open(os.path.join(directory, "config.json")))
    config = configuration.QWenConfig(**{k: v for k, v in config_json.items() if k not in ("architectures", "model_type")})
    config.bf16, config.fp16, config.fp32 = False, False, True
    config.use_flash_attn = False
    model = modeling.QWenLMHeadModel(config).float().eval()
    state = {k: v.float() for k, v in tensors_of(directory).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if "rotary" not in k], (missing, unexpected)
    prompt = [1000 + (i * 7919) % 30000 for i in range(LONG_PROMPT_LENGTH)]
    steps, generated = [], []
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        for _ in range(LONG_DECODE):
            row = out.logits[0, -1]
            steps.append(top(row))
            token = int(torch.argmax(row))
            generated.append(token)
            out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    return {"prompt": prompt, "generated": generated, "steps": steps}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    checkpoints, code_dir, out_path = sys.argv[1:]
    torch.set_num_threads(2)
    result = {"prompt": PROMPT, "top": TOP, "variants": {}}
    for name in sorted(os.listdir(checkpoints)):
        if name == "long-context":
            result["long_context"] = long_context(os.path.join(checkpoints, name), code_dir)
        else:
            result["variants"][name] = qwen2_logits(os.path.join(checkpoints, name))
        print(name, file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(result, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
