"""Qwen2 / Qwen2.5 and Qwen3 Hugging Face directories (scripts/gen-qwen-family-checkpoints.py:
bf16 / fp16, tied and untied head, sharded, AutoGPTQ Int4 / Int8, AutoAWQ GEMM Int4, Qwen3's
q_norm / k_norm and head_dim != hidden / heads) through the CLI and the binding, against
what transformers computes for them (scripts/gen-qwen-family-expected.py, kept in
Tests/Fixtures/qwen-family-expected.json) and HF tokenizers' ids
(Tests/Fixtures/qwen2-tokenizer-cases.jsonl).

Tolerances (max |Δlogit| over each position's reference top 20; logits here span about
±9), as for the v1 checkpoints (QwenV1ReferenceTests.swift): batched (`qwen logits`, f32
activations times exactly dequantized weights) 0.02 — a float64 re-implementation with an
f16 KV cache moves them at most 0.011 (qwen2-bf16), 0.008 for the quantized ones; token by
token 0.02 for bf16 / fp16, 0.35 for GPTQ / AWQ, whose decode kernels may quantize the
activations to int8 per 32 values (simulated: at most 0.27). Top-1 must be identical
wherever the reference's top two are more than twice the tolerance apart; at a nearer tie
our top-1 must be one of the tied ones (within the tolerance of the reference maximum)."""
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import qwen_embed  # noqa: E402

EXPECTED = json.loads((FIXTURES / "qwen-family-expected.json").read_text())
VARIANTS = sorted(EXPECTED["variants"])
TOKENIZER_CASES = [json.loads(line) for line in (FIXTURES / "qwen2-tokenizer-cases.jsonl").read_text(encoding="utf-8").splitlines()]
BATCHED, DECODE, DECODE_QUANTIZED = 0.02, 0.02, 0.35


def quantized(variant: str) -> bool:
    return "gptq" in variant or "awq" in variant


def weight_type(variant: str) -> str:
    for marker, name in (("gptq-int4", "gptq-int4"), ("gptq-int8", "gptq-int8"), ("awq-int4", "awq-int4"),
                         ("bf16", "bf16"), ("fp16", "f16")):
        if marker in variant:
            return name
    raise AssertionError(variant)


def cli_logits(cli, model, ids, watched, batch):
    """[(our top-1 id, {watched id: logit})] per position, from `qwen logits`."""
    out = subprocess.run([cli, "logits", "-m", str(model), "--ids", ",".join(map(str, ids)), "--top", "1",
                          "--at", ",".join(map(str, watched)), "--batch", str(batch), "-t", "2"],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["pos"] for row in rows] == list(range(len(ids)))
    return [(row["top"][0][0], {int(i): v for i, v in row["at"]}) for row in rows]


def compare(ours, reference, tolerance, what):
    """The reference test's rule (QwenV1ReferenceTests.check) at every position; the worst |Δlogit|."""
    assert len(ours) == len(reference), what
    worst = 0.0
    for position, ((best, logits), expected) in enumerate(zip(ours, reference)):
        here = max(abs(logits[i] - v) for i, v in expected)
        assert here < tolerance, f"{what} position {position}: max |Δlogit| {here:.4f} >= {tolerance}"
        worst = max(worst, here)
        top, margin = expected[0], expected[0][1] - expected[1][1]
        if margin > 2 * tolerance:
            assert best == top[0], f"{what} position {position}: top-1 {best}, reference {top[0]}"
        else:
            tied = {i for i, v in expected if v > top[1] - tolerance}
            assert best in tied, f"{what} position {position}: top-1 {best} is not one of the reference's tied best {tied}"
    return worst


def watched(rows):
    return sorted({i for row in rows for i, _ in row})


@pytest.mark.parametrize("variant", VARIANTS)
def test_info(qwen_family_checkpoint, qwen_cli, variant):
    info = json.loads(subprocess.run([qwen_cli, "info", "-m", str(qwen_family_checkpoint(variant))],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["arch"] == variant.split("-")[0]
    assert info["weight_type"] == weight_type(variant)
    assert (info["n_layer"], info["n_embd"], info["n_head"], info["n_head_kv"], info["n_vocab"]) == (2, 128, 4, 2, 151936)


@pytest.mark.parametrize("batch", [128, 1])
@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_transformers(qwen_family_checkpoint, qwen_cli, variant, batch):
    reference = EXPECTED["variants"][variant]
    tolerance = BATCHED if batch > 1 else DECODE_QUANTIZED if quantized(variant) else DECODE
    ours = cli_logits(qwen_cli, qwen_family_checkpoint(variant), EXPECTED["prompt"], watched(reference), batch)
    worst = compare(ours, reference, tolerance, f"{variant} batch {batch}")
    print(f"{variant} batch {batch}: max |Δlogit| {worst:.4f}")


@pytest.mark.parametrize("variant", sorted(EXPECTED["greedy"]))
def test_greedy_decode_matches_transformers_kv_cache(qwen_family_checkpoint, qwen_cli, variant):
    """transformers' greedy decoding with its KV cache, step by step: the prompt, then each
    generated token fed back one at a time (--batch 1: the decode kernels over the KV cache)."""
    greedy, prompt = EXPECTED["greedy"][variant], EXPECTED["prompt"]
    ids = prompt + greedy["generated"][:-1]
    for batch in (1, 128):
        rows = cli_logits(qwen_cli, qwen_family_checkpoint(variant), ids, watched(greedy["steps"]), batch)
        worst = compare(rows[len(prompt) - 1:], greedy["steps"], DECODE, f"{variant} greedy batch {batch}")
        print(f"{variant} greedy batch {batch}: max |Δlogit| {worst:.4f}")


def tokenizer_rows(arch):
    key = "ids" if arch == "qwen2" else "ids_qwen3"
    return [(row["name"], row["text"], row.get(key, row["ids"])) for row in TOKENIZER_CASES]


@pytest.mark.parametrize("variant", ["qwen2-bf16", "qwen3-bf16", "qwen2-gptq-int4"])
def test_tokenizer_matches_hf_tokenizers(qwen_family_checkpoint, variant):
    """HF tokenizers' encode matches every added token inside the text, special or not:
    the binding's tokenize(special=True)."""
    with qwen_embed.Model(str(qwen_family_checkpoint(variant)), n_threads=2) as model:
        for name, text, ids in tokenizer_rows(variant.split("-")[0]):
            assert model.tokenize(text, special=True) == ids, name


@pytest.mark.parametrize("variant", ["qwen2-fp16-untied-sharded", "qwen3-fp16-untied"])
def test_tokenize_cli_reads_the_files(qwen_family_checkpoint, qwen_cli, variant, tmp_path):
    """`qwen tokenize --file --special` over the rows with added tokens and a few others."""
    rows = [row for row in tokenizer_rows(variant.split("-")[0])
            if row[0].split(":")[0] in ("added", "near", "special", "code", "edge")]
    assert len(rows) > 20
    for k, (name, text, ids) in enumerate(rows):
        path = tmp_path / f"{k}.txt"
        path.write_bytes(text.encode("utf-8"))
        out = subprocess.run([qwen_cli, "tokenize", "-m", str(qwen_family_checkpoint(variant)), "--file", str(path), "--special"],
                             check=True, capture_output=True, text=True).stdout
        assert json.loads(out) == ids, name


def render_cases():
    return [(arch, name) for arch, chats in sorted(EXPECTED["chat"].items()) for name in sorted(chats)]


@pytest.mark.parametrize("arch,chat", render_cases())
def test_chat_template_renders_as_transformers_does(qwen_family_checkpoint, qwen_cli, arch, chat, tmp_path):
    """tokenizer_config.json's chat_template, rendered by `qwen render`, against transformers'
    apply_chat_template(add_generation_prompt=True) of the same messages and tools."""
    case = EXPECTED["chat"][arch][chat]
    (tmp_path / "messages.json").write_text(json.dumps(case["messages"]))
    argv = [qwen_cli, "render", "-m", str(qwen_family_checkpoint(f"{arch}-bf16")), "--messages", str(tmp_path / "messages.json"), "--ids"]
    if case["tools"]:
        (tmp_path / "tools.json").write_text(json.dumps(case["tools"]))
        argv += ["--tools", str(tmp_path / "tools.json")]
    if case["enable_thinking"] is not None:
        argv += ["--enable-thinking", "true" if case["enable_thinking"] else "false"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == case["ids"], case["text"]


@pytest.mark.parametrize("variant", ["qwen2-bf16", "qwen2-awq-int4", "qwen3-bf16"])
def test_chats_through_the_binding(qwen_family_checkpoint, variant):
    with qwen_embed.Model(str(qwen_family_checkpoint(variant)), n_threads=2) as model:
        assert model.info["weight_type"] == weight_type(variant)
        reply = model.session(seed=1).chat("Hello", max_tokens=6, temperature=0)
        streamed = "".join(model.session(seed=1).chat("Hello", stream=True, max_tokens=6, temperature=0))
        assert streamed == reply   # greedy: the pull-form pieces make the same reply


def test_enable_thinking_reaches_qwen3s_template(qwen_family_checkpoint):
    """enable_thinking=False makes Qwen3's template close an empty thought in the prompt
    ("<think>\\n\\n</think>\\n\\n"); True and None (the template's default) leave it out."""
    with qwen_embed.Model(str(qwen_family_checkpoint("qwen3-bf16")), n_threads=2) as model:
        counts = {}
        for thinking in (None, True, False):
            with model.session(seed=1) as session:
                session.chat("Hello", max_tokens=1, temperature=0, enable_thinking=thinking)
                counts[thinking] = session.last_result["n_prompt_tokens"]
        empty_thought = len(model.tokenize("<think>\n\n</think>\n\n", special=True))
        assert counts[None] == counts[True] and counts[False] == counts[True] + empty_thought


def test_a_constrained_reply_may_think_first_unless_thinking_is_off(qwen_family_checkpoint):
    """Under a grammar, Qwen3 may still open its <think> block before the answer (the
    block comes before what the grammar holds); with enable_thinking=False it may not.
    The grammar's first step allows only a few tokens, so the 20 alternatives the
    logprobs list are all of them."""
    with qwen_embed.Model(str(qwen_family_checkpoint("qwen3-bf16")), n_threads=2) as model:
        think = model.tokenize("<think>", special=True)
        assert len(think) == 1
        first = {}
        for thinking in (None, False):
            with model.session(seed=1) as session:
                reply = session.chat("Hello", grammar='root ::= "{}"', max_tokens=24, temperature=0,
                                     logprobs=20, enable_thinking=thinking)
                first[thinking] = {t["bytes"] for t in session.logprobs()[0]["top_logprobs"]}
                if thinking is False:
                    assert reply == "{}" and session.last_result["finish_reason"] == "stop"
                    assert session.messages[-1]["content"] == "{}"
        assert b"<think>" in first[None] and all(b.startswith(b"{") for b in first[False]), first
