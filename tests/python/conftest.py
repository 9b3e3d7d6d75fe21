"""Shared fixtures: the release CLI, libqwen.so, the real model (fetched and cached by
scripts/fetch-model.sh), its GPL-3 perplexity, the tiny generated Qwen v1 checkpoints and
the tiny Qwen2 / Qwen3 ones; rss_kb()."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"


@pytest.fixture(scope="session")
def model_path() -> str:
    path = os.environ.get("QWEN_MODEL")
    if not path:
        out = subprocess.run(["bash", str(ROOT / "scripts" / "fetch-model.sh")], check=True,
                             capture_output=True, text=True)
        path = out.stdout.strip().splitlines()[-1]
    assert pathlib.Path(path).is_file(), f"model not found at {path}; run scripts/fetch-model.sh"
    return path


@pytest.fixture(scope="session")
def qwen_cli() -> str:
    path = os.environ.get("QWEN_CLI", str(ROOT / ".build" / "release" / "qwen"))
    assert os.access(path, os.X_OK), f"{path} is missing; run make build"
    return path


@pytest.fixture(scope="session")
def gpl3_perplexity(qwen_cli, model_path):
    """perplexity(kv_type) -> `qwen perplexity` of the default model on the GPL-3 text
    (512-token chunks, 2 threads) with that KV cache type, run once per test run: the
    llama.cpp comparison (test_engine) and the q8 cache's bound (test_kv_q8) share the f16
    figure."""
    import re
    figures = {}

    def perplexity(kv_type: str = "f16") -> float:
        if kv_type not in figures:
            out = subprocess.run([qwen_cli, "perplexity", "-m", model_path, "-f", "/usr/share/common-licenses/GPL-3",
                                  "-c", "512", "-t", "2", "--kv-type", kv_type],
                                 check=True, capture_output=True, text=True, timeout=900).stdout
            figures[kv_type] = float(re.search(r"ppl = ([0-9.]+)\s*$", out).group(1))
        return figures[kv_type]
    return perplexity


def rss_kb() -> int:
    """This process's resident memory (VmRSS), KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="session")
def qwen_v1_checkpoint(tmp_path_factory):
    """checkpoint(variant) -> the directory scripts/gen-qwen-checkpoints.py writes for it
    (tiny Qwen v1 checkpoints: bf16, GPTQ variants, ...), written once per test run."""
    out = tmp_path_factory.mktemp("qwen-v1")

    def checkpoint(variant: str) -> pathlib.Path:
        if not (out / variant / "config.json").exists():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-qwen-checkpoints.py"), str(out), variant],
                           check=True, capture_output=True)
        return out / variant
    return checkpoint


@pytest.fixture(scope="session")
def qwen_family_checkpoint(tmp_path_factory, model_path):
    """checkpoint(variant) -> the directory scripts/gen-qwen-family-checkpoints.py writes for it
    (tiny Qwen2 / Qwen2.5 / Qwen3 Hugging Face layouts: qwen2-bf16, qwen2-gptq-int4, qwen3-bf16,
    ...; every variant is written at the first call, sharing one tokenizer.json build), or
    checkpoint("qwen3-f16.gguf") / checkpoint("qwen3-q8_0.gguf") -> the qwen3 GGUF
    scripts/gen-qwen-gguf.py makes of qwen3-bf16, written next to the directories. The
    vocabulary (tokenizer.json) comes from the real model's GGUF."""
    out = tmp_path_factory.mktemp("qwen-family")

    def checkpoint(variant: str) -> pathlib.Path:
        if variant.endswith(".gguf"):
            path = out / variant
            if not path.exists():
                outtype = variant[len("qwen3-"):-len(".gguf")]
                subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-qwen-gguf.py"), str(checkpoint("qwen3-bf16")),
                                str(path), outtype], check=True, capture_output=True)
            return path
        if not (out / variant / "config.json").exists():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-qwen-family-checkpoints.py"), str(out)],
                           check=True, capture_output=True, env=dict(os.environ, QWEN_MODEL=model_path))
        return out / variant
    return checkpoint


class ListeningProcess:
    """A server on 127.0.0.1 whose first line on stdout is "listening on URL": ``url``,
    ``host``, ``port``, and ``log()``: what it has written on stderr so far."""

    def __init__(self, argv, env=None, startup_seconds=180):
        import queue
        import threading
        import urllib.parse
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: "queue.Queue[str]" = queue.Queue()
        self._stderr: list = []
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        threading.Thread(target=lambda: [self._stderr.append(line) for line in self.proc.stderr], daemon=True).start()
        try:
            first = lines.get(timeout=startup_seconds)
        except queue.Empty:
            self.close()
            raise AssertionError(f"the server did not start within {startup_seconds} s: {self.log()[-2000:]}") from None
        assert first.startswith("listening on http://127.0.0.1:"), first + self.log()
        self.url = first.split()[-1].strip()
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def log(self) -> str:
        return "".join(self._stderr)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class ServerProcess(ListeningProcess):
    """qwen-embed-server (examples/python/openai_server.py) on 127.0.0.1, a free port; its
    stderr is the request log."""

    def __init__(self, model: str, *args: str):
        env = dict(os.environ)
        bindings = str(ROOT / "bindings" / "python")
        env["PYTHONPATH"] = os.pathsep.join([bindings] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        super().__init__([sys.executable, str(ROOT / "examples" / "python" / "openai_server.py"), "-m", model,
                          "--host", "127.0.0.1", "--port", "0", *args], env=env)
