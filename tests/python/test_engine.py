"""The engine on the real Qwen2.5-Coder-0.5B-Instruct GGUF, through the release CLI,
against llama.cpp's figures (Tests/Fixtures, copied from the reference data)."""
import json
import platform
import re
import subprocess

import pytest

from conftest import FIXTURES, ROOT

# llama.cpp's perplexity tool on Debian's GPL-3 text, 512-token windows (see
# Tests/Fixtures/README.md).
LLAMA_CPP_PPL_GPL3 = 5.3184


def run(cli, *args, timeout=900):
    result = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"qwen {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def test_perplexity_matches_llama_cpp(gpl3_perplexity):
    ppl = gpl3_perplexity("f16")
    assert abs(ppl - LLAMA_CPP_PPL_GPL3) / LLAMA_CPP_PPL_GPL3 < 0.01, f"ppl {ppl} vs llama.cpp {LLAMA_CPP_PPL_GPL3}"


def first_sentence(text: str) -> str:
    """Up to and including the first '.', '。' or ':' that ends a sentence, or the first newline."""
    match = re.search(r"(\.|。|:)(\s|$)|\n", text)
    return text[: match.end(1) if match and match.group(1) else (match.start() if match else len(text))]


def test_greedy_replies_agree_with_llama_cpp(qwen_cli, model_path):
    cases = [json.loads(line) for line in (FIXTURES / "greedy-qwen2.5-coder-0.5b.jsonl").read_text().splitlines()]
    assert len(cases) == 6
    for case in cases:
        reply = run(qwen_cli, "chat", "-m", model_path, "-s", case["system"], "-p", case["user"],
                    "--temp", "0", "--repeat-penalty", "1", "-n", str(case["n_tokens"]), "-t", "2")
        expected = first_sentence(case["greedy_reply_prefix"])
        assert len(expected) >= 10
        assert reply.startswith(expected), f"{case['user']!r}:\n ours:      {reply!r}\n llama.cpp: {case['greedy_reply_prefix']!r}"


def test_chat_cli_errors_are_one_line(qwen_cli, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    result = subprocess.run([qwen_cli, "chat", "-m", str(bad), "-p", "hi"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    usage = subprocess.run([qwen_cli, "chat", "--no-such-flag"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_tokenize_an_empty_file_gives_no_ids(qwen_cli, model_path, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert json.loads(run(qwen_cli, "tokenize", "-m", model_path, "--file", str(empty))) == []
    assert json.loads(run(qwen_cli, "tokenize", "-m", model_path, "--text", "")) == []


def top_logits(cli, model, ids, batch):
    out = run(cli, "logits", "-m", model, "--ids", ",".join(map(str, ids)), "--top", "5", "--batch", str(batch), "-t", "2")
    return [json.loads(line) for line in out.splitlines()]


def test_batched_prefill_equals_token_by_token(qwen_cli, model_path):
    """The matrix-matrix prefill path and the matrix-vector decode path agree."""
    ids = json.loads(run(qwen_cli, "tokenize", "-m", model_path, "--text",
                         "def quicksort(xs):\n    if len(xs) <= 1:\n        return xs\n    pivot = xs[0]\n"))
    batched = top_logits(qwen_cli, model_path, ids, 64)
    single = top_logits(qwen_cli, model_path, ids, 1)
    assert len(batched) == len(single) == len(ids)
    for b, s in zip(batched, single):
        assert b["top"][0][0] == s["top"][0][0], f"position {b['pos']}: argmax {b['top'][0]} vs {s['top'][0]}"
        for (_, lb), (_, ls) in zip(b["top"], s["top"]):
            assert abs(lb - ls) <= 0.02 * max(1.0, abs(ls)), f"position {b['pos']}: {b['top']} vs {s['top']}"


def test_every_instruction_set_agrees_with_the_selected_one(qwen_cli, model_path):
    """The engine once on each kernel path this CPU runs, the portable generic one
    included (so it cannot rot): the same greedy reply as the path the machine selects,
    and batched prefill logits within 2% of it. The reply's prompt has no near tie: with
    int8 activations in prefill and decode, paths that sum floats in another order (generic
    vs x86) differ by a few hundredths in logits, and "Write a Python function that
    reverses a string." meets a tie of 0.004 at its fourth token."""
    info = json.loads(run(qwen_cli, "info", "-m", model_path))
    assert info["isa"] == info["isa_available"][-1]
    assert "generic" in info["isa_available"]
    prompt = ["-p", "Count from 1 to 20, separated by commas.", "--temp", "0", "--repeat-penalty", "1", "-t", "2"]
    selected = run(qwen_cli, "chat", "-m", model_path, *prompt, "-n", "24")
    ids = json.loads(run(qwen_cli, "tokenize", "-m", model_path, "--text", "def add(a, b):\n    return a + b\n"))
    reference = top_logits(qwen_cli, model_path, ids, 64)
    for isa in info["isa_available"][:-1]:
        reply = run(qwen_cli, "chat", "-m", model_path, *prompt, "-n", "24", "--isa", isa)
        assert reply == selected, f"{isa}: {reply!r}\n{info['isa']}: {selected!r}"
        logits = [json.loads(line) for line in run(qwen_cli, "logits", "-m", model_path, "--ids", ",".join(map(str, ids)),
                                                   "--top", "5", "--batch", "64", "-t", "2", "--isa", isa).splitlines()]
        for got, want in zip(logits, reference):
            assert got["top"][0][0] == want["top"][0][0], f"{isa} position {got['pos']}: {got['top']} vs {want['top']}"
            for (_, lg), (_, lw) in zip(got["top"], want["top"]):
                assert abs(lg - lw) <= 0.02 * max(1.0, abs(lw)), f"{isa} position {got['pos']}: {got['top']} vs {want['top']}"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the per-instruction-set targets exist on x86-64 only")
def test_only_kernel_targets_contain_simd_beyond_baseline(qwen_cli):
    """objdump proof that baseline code (generic path, Swift runtime, engine) holds no
    AVX/AVX2/AVX-512 instruction: only the per-instruction-set kernel targets do."""
    library = str(ROOT / ".build" / "release" / "libqwen.so")
    result = subprocess.run(["python3", str(ROOT / "scripts" / "check-isa-isolation.py"), library, qwen_cli],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
