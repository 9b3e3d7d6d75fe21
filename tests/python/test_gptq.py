"""GPTQ checkpoints through the product's surfaces: the Python binding (ctypes over
libqwen.so's C API) and the CLI, on the tiny checkpoints of scripts/gen-qwen-checkpoints.py
and the Qwen-72B-Chat-Int4-shaped sparse directory of scripts/make-scale-checkpoints.py."""
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import qwen_embed  # noqa: E402
from conftest import rss_kb  # noqa: E402


@pytest.fixture(scope="module")
def tiny(qwen_v1_checkpoint) -> pathlib.Path:
    """The folder holding the two GPTQ variants these tests use."""
    qwen_v1_checkpoint("gptq-int8-g64-asym-actorder")
    return qwen_v1_checkpoint("gptq-int4-g128").parent


@pytest.fixture(scope="module")
def scale_72b(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("scale")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make-scale-checkpoints.py"), str(out), "72b-int4"],
                   check=True, capture_output=True)
    return out / "72b-int4"


def test_72b_shape_loads_and_opens_a_session_without_reading_weights(scale_72b):
    size = sum(p.stat().st_size for p in scale_72b.glob("*.safetensors"))
    assert size > 40e9   # apparent size: the tensor data is holes
    before = rss_kb()
    start = time.monotonic()
    model = qwen_embed.Model(str(scale_72b), n_threads=2)
    session = model.session(n_ctx=512)
    elapsed = time.monotonic() - start
    grown_mb = (rss_kb() - before) / 1024
    info = model.info
    assert info["n_layer"] == 80 and info["n_embd"] == 8192 and info["weight_type"] == "gptq-int4"
    assert info["n_params"] > 70e9
    print(f"72B shape: load + session {elapsed * 1000:.0f} ms, RSS +{grown_mb:.0f} MB of {size / 1e9:.1f} GB")
    assert elapsed < 1.0
    assert grown_mb < 400       # no weight data copied: the fp16 vectors and the session's buffers
    session.close()
    model.close()


@pytest.mark.parametrize("variant", ["gptq-int4-g128", "gptq-int8-g64-asym-actorder"])
def test_gptq_chats_through_the_binding_like_a_gguf(tiny, variant):
    with qwen_embed.Model(str(tiny / variant), n_threads=2) as model:
        assert model.info["weight_type"] == ("gptq-int4" if "int4" in variant else "gptq-int8")
        reply = model.session(seed=1).chat("Hello", max_tokens=6, temperature=0)
        streamed = "".join(model.session(seed=1).chat("Hello", stream=True, max_tokens=6, temperature=0))
        assert streamed == reply   # greedy: the pull-form pieces make the same reply
        response, history = model.chat("Hello", max_tokens=6, temperature=0)
        assert response == reply and history == [("Hello", reply)]


def test_gptq_cli_info_logits_and_chat(tiny):
    cli = os.environ.get("QWEN_CLI", str(ROOT / ".build" / "release" / "qwen"))
    path = str(tiny / "gptq-int4-g128")
    info = json.loads(subprocess.run([cli, "info", "-m", path], check=True, capture_output=True, text=True).stdout)
    assert info["weight_type"] == "gptq-int4" and info["arch"] == "qwen"
    lines = subprocess.run([cli, "logits", "-m", path, "--ids", "9707,11,1879", "--top", "3", "-t", "2"],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["top"] for line in lines)
    chat = subprocess.run([cli, "chat", "-m", path, "-p", "Hi", "-n", "4", "--temp", "0", "-t", "2"],
                          capture_output=True, text=True, timeout=120)
    assert chat.returncode == 0, chat.stderr
