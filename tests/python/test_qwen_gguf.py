"""The GGUF `qwen` architecture (llama.cpp's Qwen v1 export): the files llama.cpp's
convert_hf_to_gguf.py (--outtype q8_0 and f16) makes of the tiny "bf16" checkpoint of
scripts/gen-qwen-checkpoints.py, rebuilt without torch by scripts/gen-qwen-gguf.py and held
to the converter's own outputs through their manifests, then run against the safetensors
directory they came from.

Tolerances (max |Δlogit| over the reference top-20 ids of every position; logits span ±7):
f16 0.002 (bf16 weights are exact in f16; measured 0.0001); Q8_0 1.0 batched and token by
token: Q8_0 rounds every weight, embedding and head included, to 8 bits per 32 values, and
prefill and decode both quantize activations to int8 (as llama.cpp does for Q8_0); this
random two-layer model amplifies that (measured 0.75 both ways; 0.39 batched when prefill
multiplied in f32)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"
sys.path.insert(0, str(ROOT / "scripts"))


TOLERANCE = {("f16", 128): 0.002, ("f16", 1): 0.002, ("q8_0", 128): 1.0, ("q8_0", 1): 1.0}


@pytest.fixture(scope="module")
def source(qwen_v1_checkpoint):
    return qwen_v1_checkpoint("bf16")


@pytest.fixture(scope="module", params=["q8_0", "f16"])
def pair(request, source):
    outtype = request.param
    gguf_path = source.parent / f"tiny-qwen-{outtype}.gguf"   # next to the checkpoints, shared by the run
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-qwen-gguf.py"), str(source), str(gguf_path), outtype],
                   check=True, capture_output=True)
    return source, gguf_path, outtype


def test_the_file_is_what_llama_cpps_converter_writes(pair):
    _, gguf_path, outtype = pair
    manifest = json.loads(subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-qwen-gguf.py"), "--manifest",
                                          str(gguf_path)], check=True, capture_output=True, text=True).stdout)
    converter = json.loads((FIXTURES / f"qwen-v1-gguf-{outtype}-manifest.json").read_text())
    skipped = {"tokenizer.ggml.merges", "general.name", "GGUF.kv_count"}   # see gen-qwen-gguf.py
    assert [k for k in converter["kv"] if k not in skipped] == [k for k in manifest["kv"] if k not in skipped]
    for key, value in converter["kv"].items():
        if key not in skipped:
            assert manifest["kv"][key] == value, key
    assert manifest["tensors"] == converter["tensors"]


def logits(cli, model, ids, watched, batch):
    out = subprocess.run([cli, "logits", "-m", str(model), "--ids", ",".join(map(str, ids)), "--top", "1",
                          "--at", ",".join(map(str, watched)), "--batch", str(batch), "-t", "2"],
                         check=True, capture_output=True, text=True).stdout
    return [dict(json.loads(line)["at"]) for line in out.splitlines()]


def test_gguf_logits_equal_the_safetensors_directory(pair, qwen_cli):
    directory, gguf_path, outtype = pair
    info = json.loads(subprocess.run([qwen_cli, "info", "-m", str(gguf_path)], check=True, capture_output=True, text=True).stdout)
    assert info["arch"] == "qwen" and info["weight_type"] == outtype.upper() and info["n_layer"] == 2
    expected = json.loads((FIXTURES / "qwen-v1-expected.json").read_text())
    prompt = expected["prompt"]
    watched = sorted({i for row in expected["variants"]["bf16"] for i, _ in row})
    for batch in (128, 1):
        ours, theirs = logits(qwen_cli, gguf_path, prompt, watched, batch), logits(qwen_cli, directory, prompt, watched, batch)
        worst = max(abs(a[i] - b[i]) for a, b in zip(ours, theirs) for i in a)
        print(f"batch {batch}: max |Δlogit| GGUF {outtype} vs bf16 safetensors {worst:.4f}")
        assert worst < TOLERANCE[outtype, batch]
