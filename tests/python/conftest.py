"""Shared fixtures: the release CLI, libqwen.so and the real model (fetched and
cached by scripts/fetch-model.sh)."""
import os
import pathlib
import subprocess

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
