"""The corrupt-file corpus of scripts/gen-corrupt-corpus.py loaded through the C API
(qwen_model_load, via the Python binding): each case returns the status it should, with
a message that names the problem, without crashing, hanging or allocating beyond what the
file justifies. Cases run in child processes (a batch each), so a crash or a hang is
caught as such and the memory of a case is its own process's peak."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Run in a child: loads the cases given as JSON on stdin, prints one result line each.
CHILD = r"""
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
import qwen_embed
from qwen_embed.errors import QwenError
NAMES = {-1: "INVALID_ARGUMENT", -2: "IO", -3: "BAD_MODEL", -4: "UNSUPPORTED_MODEL", -5: "OUT_OF_MEMORY"}
def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
for line in sys.stdin:
    c = json.loads(line)
    before = peak_kb()
    result = {"name": c["name"], "status": "OK", "message": "", "generate": None}
    try:
        model = qwen_embed.Model(c["path"], n_threads=1)
        if c["generate"]:
            try:
                model.session(n_ctx=64, seed=1).generate("a", max_tokens=3)   # raw and one byte: the small vocabularies lack ChatML and most merges
                result["generate"] = "OK"
            except QwenError as e:
                result["generate"], result["message"] = NAMES.get(e.status, str(e.status)), e.message
        model.close()
    except QwenError as e:
        result["status"], result["message"] = NAMES.get(e.status, str(e.status)), e.message
    result["grown_kb"] = peak_kb() - before
    print(json.dumps(result), flush=True)
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corrupt")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-corrupt-corpus.py"), str(out)], check=True, capture_output=True)
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def run_batch(cases):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "bindings" / "python")],
                          input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True, text=True, timeout=300)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, f"child died ({proc.returncode}) after {len(results)} cases, at {cases[len(results)]['name']!r}: {proc.stderr[-2000:]}"
    return results


def size_of(path):
    p = pathlib.Path(path)
    return sum(f.stat().st_size for f in p.iterdir()) if p.is_dir() else p.stat().st_size


def test_every_case_gets_its_status_and_a_message(corpus):
    assert len(corpus) > 100
    results = []
    for start in range(0, len(corpus), 40):
        results += run_batch(corpus[start:start + 40])
    failures = []
    for case, got in zip(corpus, results):
        assert got["name"] == case["name"]
        problems = []
        if got["status"] != case["status"]:
            problems.append(f"status {got['status']} ({got['message']!r}), expected {case['status']}")
        if case["status"] != "OK" and not got["message"]:
            problems.append("no message")
        if case["generate"] and got["status"] == "OK" and got["generate"] != case["generate"]:
            problems.append(f"generation {got['generate']} ({got['message']!r}), expected {case['generate']}")
        if case["contains"] and got["message"] and case["contains"].lower() not in got["message"].lower():
            problems.append(f"message {got['message']!r} does not name {case['contains']!r}")
        # Memory: a refused file costs little; a loaded one at most its size again, plus
        # the 151k-token vocabulary and the session's buffers.
        allowed_kb = (2 * size_of(case["path"]) >> 10) + 96 * 1024
        if got["grown_kb"] > allowed_kb:
            problems.append(f"peak memory +{got['grown_kb']} KB (allowed {allowed_kb})")
        if problems:
            failures.append(f"{case['name']}: " + "; ".join(problems))
    assert not failures, "\n".join(failures)
