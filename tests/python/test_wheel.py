"""The Python package as users get it: `make wheel` builds a wheel with libqwen.so inside
that installs with pip, offline, into a fresh venv and works from any directory with no
environment set; a package without the library finds one installed by `make install`."""
import json
import os
import pathlib
import subprocess
import sys
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECK = ("import qwen_embed, qwen_embed._lib as lib, sys; "
         "m = qwen_embed.Model(sys.argv[1], n_threads=2); "
         "print(lib.library_path()); print(m.info['weight_type']); "
         "print(len(m.session(seed=1).chat('Hello', max_tokens=3)) >= 0)")


def clean_env():
    return {k: v for k, v in os.environ.items() if k not in ("QWEN_LIBRARY", "PYTHONPATH", "QWEN_PREFIX")}


def venv(path):
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def tiny(qwen_v1_checkpoint):
    return qwen_v1_checkpoint("gptq-int4-g128")


def test_the_wheel_installs_and_runs_in_a_fresh_venv(tmp_path, tiny):
    subprocess.run(["make", "--no-print-directory", "wheel"], cwd=ROOT, check=True, capture_output=True)
    wheels = list((ROOT / "build" / "wheel").glob("qwen_embed-*.whl"))
    assert len(wheels) == 1 and "linux_x86_64" in wheels[0].name, wheels
    python = venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", str(wheels[0])], check=True, capture_output=True)
    out = subprocess.run([str(python), "-c", CHECK, str(tiny)], cwd=tmp_path, env=clean_env(),
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith(str(tmp_path / "venv")), out       # its own copy of the library
    assert out[1:] == ["gptq-int4", "True"]
    server = subprocess.run([str(tmp_path / "venv" / "bin" / "qwen-embed-server"), "--help"], env=clean_env(),
                            capture_output=True, text=True)
    assert server.returncode == 0 and "--model" in server.stdout
    # Without the [server] extra the command says what to install.
    bare = subprocess.run([str(tmp_path / "venv" / "bin" / "qwen-embed-server"), "-m", str(tiny)], env=clean_env(),
                          capture_output=True, text=True)
    assert bare.returncode == 1 and "pip install 'qwen-embed[server]'" in bare.stderr


def test_the_server_extra_serves_the_api_and_the_page(tmp_path, model_path):
    """README: pip install "WHEEL[server]" (FastAPI + uvicorn from PyPI), then qwen-embed-server."""
    subprocess.run(["make", "--no-print-directory", "wheel"], cwd=ROOT, check=True, capture_output=True)
    wheel = next((ROOT / "build" / "wheel").glob("qwen_embed-*.whl"))
    python = venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"{wheel}[server]"], check=True, capture_output=True)
    proc = subprocess.Popen([str(tmp_path / "venv" / "bin" / "qwen-embed-server"), "-m", model_path, "--port", "0"],
                            cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        with urllib.request.urlopen(url + "/", timeout=60) as r:
            assert 'id="messages"' in r.read().decode()
        request = urllib.request.Request(url + "/v1/chat/completions", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"messages": [{"role": "user", "content": "Say hi"}],
                                                          "max_tokens": 4}).encode())
        with urllib.request.urlopen(request, timeout=120) as r:
            assert json.load(r)["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_package_without_the_library_finds_the_installed_one(tmp_path, tiny):
    prefix = tmp_path / "prefix"
    subprocess.run(["make", "--no-print-directory", "install", f"PREFIX={prefix}"], cwd=ROOT, check=True, capture_output=True)
    python = venv(tmp_path / "venv")
    source = tmp_path / "source"
    subprocess.run(["cp", "-r", str(ROOT / "bindings" / "python"), str(source)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "pure"), str(source)], check=True, capture_output=True)
    pure = list((tmp_path / "pure").glob("qwen_embed-*.whl"))
    assert len(pure) == 1 and pure[0].name.endswith("-py3-none-any.whl"), pure   # no library inside
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", str(pure[0])], check=True, capture_output=True)
    env = dict(clean_env(), QWEN_PREFIX=str(prefix))
    out = subprocess.run([str(python), "-c", CHECK, str(tiny)], cwd=tmp_path, env=env,
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0] == str(prefix / "lib" / "libqwen.so"), out
