#!/usr/bin/env python3
"""Decode speed with and without a JSON schema, ours beside llama.cpp's llama-server on the
same GGUF, and how often the model breaks JSON when nothing holds it:

    python3 scripts/bench_structured.py [-m MODEL] [--threads 2] [--max-tokens 256]

For each of the 24 prompts of tests/python/test_structured_output.py (four nested Pydantic
models, their schemas as the official openai client's parse() sends them), greedy and
sampled (temperature 0.8, top_p 0.95): the reply unconstrained (the prompt asks for JSON)
and under the schema. Decode tokens/s is generated tokens over decode time summed over the
prompts (ours: qwen_result.decode_ms; llama-server: its timings.predicted_ms), so load and
prefill are left out. Prints a markdown table for BENCHMARKS.md."""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bindings" / "python"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "scripts"))

from openai.lib._pydantic import to_strict_json_schema  # noqa: E402

import qwen_embed  # noqa: E402
from bench_server import cpu_line, free_port, wait_ready  # noqa: E402
from test_structured_output import PROMPTS  # noqa: E402

MODES = {"greedy": dict(temperature=0.0), "sampled": dict(temperature=0.8, top_p=0.95)}


def valid(cls, text):
    """Whether the reply is an instance of the schema (a Markdown code fence around it allowed)."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    try:
        cls.model_validate_json(text.strip())
        return True
    except Exception:
        return False


def ours(model_path, threads, max_tokens):
    model = qwen_embed.Model(model_path, n_threads=threads)
    rows = {}
    for mode, sampling in MODES.items():
        for constrained in (False, True):
            tokens, ms, ok, first_ms = 0, 0.0, 0, []
            seen = set()
            for i, (cls, prompt) in enumerate(PROMPTS):
                session = model.session(seed=1 + i)
                gen = dict(sampling, max_tokens=max_tokens, repetition_penalty=1.0)
                if constrained:
                    gen["json_schema"] = to_strict_json_schema(cls)
                text = session.chat(prompt + ("" if constrained else " Reply with JSON only."), **gen)
                r = session.last_result
                tokens += r["n_generated_tokens"]
                ms += r["decode_ms"]
                ok += valid(cls, text)
                if constrained and cls not in seen:   # the first reply under a schema builds its masks
                    first_ms.append(r["decode_ms"] / max(1, r["n_generated_tokens"]))
                    seen.add(cls)
                session.close()
            rows[(mode, constrained)] = (tokens, 1000 * tokens / ms, ok)
    model.close()
    return rows


def llama_server(binary, model_path, threads, max_tokens):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", model_path, "--port", str(port), "-t", str(threads), "-c", "4096",
                             "-np", "1", "--no-webui"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    rows = {}
    try:
        wait_ready(url, proc)
        for mode, sampling in MODES.items():
            for constrained in (False, True):
                tokens, ms, ok = 0, 0.0, 0
                for i, (cls, prompt) in enumerate(PROMPTS):
                    body = dict(sampling, model="m", max_tokens=max_tokens, seed=1 + i, cache_prompt=False,
                                messages=[{"role": "user", "content": prompt + ("" if constrained else " Reply with JSON only.")}])
                    if constrained:
                        body["response_format"] = {"type": "json_schema", "json_schema": {
                            "name": cls.__name__, "schema": to_strict_json_schema(cls), "strict": True}}
                    request = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                                     {"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=600) as response:
                        reply = json.loads(response.read())
                    timings = reply["timings"]
                    tokens += timings["predicted_n"]
                    ms += timings["predicted_ms"]
                    ok += valid(cls, reply["choices"][0]["message"]["content"] or "")
                rows[(mode, constrained)] = (tokens, 1000 * tokens / ms, ok)
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--llama-bin", default=None, help="llama.cpp's bin directory (default: build-llama-cpp.sh's)")
    parser.add_argument("--every", type=int, default=1, help="take every k-th prompt (a shorter run)")
    args = parser.parse_args()
    global PROMPTS
    PROMPTS = PROMPTS[::args.every]
    model_path = args.model or subprocess.run(["bash", str(ROOT / "scripts" / "fetch-model.sh")], check=True,
                                              capture_output=True, text=True).stdout.strip().splitlines()[-1]
    bin_dir = args.llama_bin or subprocess.run(["bash", str(ROOT / "scripts" / "build-llama-cpp.sh")], check=True,
                                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"# {cpu_line()}, {args.threads} threads, {len(PROMPTS)} prompts, max_tokens {args.max_tokens}, "
          f"repetition penalty off, {time.strftime('%Y-%m-%d')}")
    results = {"ours": ours(model_path, args.threads, args.max_tokens),
               "llama-server": llama_server(os.path.join(bin_dir, "llama-server"), model_path, args.threads, args.max_tokens)}
    print("| engine | sampling | unconstrained tok/s | valid JSON of the schema | under the schema tok/s | valid | constrained / unconstrained |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for engine, rows in results.items():
        for mode in MODES:
            free, held = rows[(mode, False)], rows[(mode, True)]
            print(f"| {engine} | {mode} | {free[1]:.1f} | {free[2]}/{len(PROMPTS)} | {held[1]:.1f} | {held[2]}/{len(PROMPTS)} "
                  f"| {held[1] / free[1]:.2f}x |")
    for mode in MODES:
        print(f"ours / llama-server under the schema, {mode}: "
              f"{results['ours'][(mode, True)][1] / results['llama-server'][(mode, True)][1]:.2f}x")


if __name__ == "__main__":
    main()
