"""The GGUF `qwen3` architecture: the files llama.cpp's convert_hf_to_gguf.py (--outtype f16
and q8_0; llama.cpp 0c1e570 as vendored by llama-cpp-python 0.3.36, transformers 5.24) makes
of the tiny "qwen3-bf16" directory of scripts/gen-qwen-family-checkpoints.py, rebuilt without
torch by scripts/gen-qwen-gguf.py and held to the converter's own outputs through their
manifests (Tests/Fixtures/qwen3-gguf-{f16,q8_0}-manifest.json; the files were
byte-identical), then run against what transformers computes for the directory
(Tests/Fixtures/qwen-family-expected.json, variant qwen3-bf16).

Tolerances (max |Δlogit| over the reference top 20 of every position; logits span about
±9): f16 0.02 (bf16 weights are exact in f16; a float64 re-implementation with an f16 KV
cache: 0.0024); Q8_0 0.6 batched / 1.0 token by token (the same
re-implementation with the Q8_0 weights: 0.14, with int8 activations too: 0.15)."""
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"
sys.path.insert(0, str(ROOT / "bindings" / "python"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import qwen_embed  # noqa: E402
from test_qwen_family import EXPECTED, cli_logits, compare, tokenizer_rows, watched  # noqa: E402

TOLERANCE = {("f16", 128): 0.02, ("f16", 1): 0.02, ("q8_0", 128): 0.6, ("q8_0", 1): 1.0}


@pytest.fixture(scope="module", params=["f16", "q8_0"])
def gguf_file(request, qwen_family_checkpoint):
    return qwen_family_checkpoint(f"qwen3-{request.param}.gguf"), request.param


def test_the_file_is_what_llama_cpps_converter_writes(gguf_file):
    path, outtype = gguf_file
    manifest = json.loads(subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-qwen-gguf.py"), "--manifest", str(path)],
                                         check=True, capture_output=True, text=True).stdout)
    converter = json.loads((FIXTURES / f"qwen3-gguf-{outtype}-manifest.json").read_text())
    skipped = {"general.name"}   # derived from the directory's name
    assert [k for k in converter["kv"] if k not in skipped] == [k for k in manifest["kv"] if k not in skipped]
    for key, value in converter["kv"].items():
        if key not in skipped:
            assert manifest["kv"][key] == value, key
    assert manifest["tensors"] == converter["tensors"]


def test_info(gguf_file, qwen_cli):
    path, outtype = gguf_file
    info = json.loads(subprocess.run([qwen_cli, "info", "-m", str(path)], check=True, capture_output=True, text=True).stdout)
    assert info["arch"] == "qwen3" and info["weight_type"] == outtype.upper()
    assert (info["n_layer"], info["n_embd"], info["n_head"], info["n_head_kv"], info["n_vocab"]) == (2, 128, 4, 2, 151936)


@pytest.mark.parametrize("batch", [128, 1])
def test_logits_match_transformers(gguf_file, qwen_cli, batch):
    path, outtype = gguf_file
    reference = EXPECTED["variants"]["qwen3-bf16"]
    ours = cli_logits(qwen_cli, path, EXPECTED["prompt"], watched(reference), batch)
    worst = compare(ours, reference, TOLERANCE[outtype, batch], f"qwen3 GGUF {outtype} batch {batch}")
    print(f"qwen3 GGUF {outtype} batch {batch}: max |Δlogit| {worst:.4f}")


def test_tokenizer_matches_hf_tokenizers(gguf_file):
    """tokenizer.ggml.* (with merges) as the converter writes it: the same ids as tokenizer.json,
    added tokens (<think>: USER_DEFINED, <|im_start|>: CONTROL) matched with special=True."""
    path, _ = gguf_file
    with qwen_embed.Model(str(path), n_threads=2) as model:
        for name, text, ids in tokenizer_rows("qwen3"):
            assert model.tokenize(text, special=True) == ids, name
