#!/usr/bin/env python3
"""The server under load, side by side with llama.cpp's llama-server on the same model:
N concurrent streaming chat clients (the official openai client, no retries) started at
once; first-token latency p50/p99 of the served ones, how many were refused (429), and
aggregate completion tokens/s over the wall time. Prints a BENCHMARKS.md table.

    python3 scripts/bench_server.py [--clients 100] [--max-tokens 32] [--parallel 4]
                                    [--threads N] [--queue 16 128] [--no-llama] [--avx2]

Each --queue value is one run of qwen-embed-server (16: the default, so most of 100 are
refused by design; 128: every client waits its turn). Both servers decode their
--parallel streams together in batched steps on --threads threads in all (default: all
cores): ours through the engine, llama-server (built by scripts/build-llama-cpp.sh)
with -np slots and continuous batching. llama-server has no bound on its waiting line,
so it serves everyone like the 128 run. --avx2 runs both on their AVX2 paths
(QWEN_ISA=avx2; llama.cpp built for AVX2 + FMA + F16C only).

--arrival measures instead the first-token latency of a new request (a ~150-token
prompt) arriving while --parallel streams are generating, --rounds times, on both
servers with one slot more than the running streams.
"""
import argparse
import asyncio
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


async def concurrent_streams(url, clients, max_tokens, model="qwen"):
    """Starts `clients` streaming chat requests at once; returns counts (served, refused
    with 429, other failures), first-token latencies and aggregate tokens/s."""
    import httpx
    import openai
    aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=900,
                                 http_client=openai.DefaultAsyncHttpxClient(
                                     limits=httpx.Limits(max_connections=clients + 10)))
    first_token, other = [], []
    counts = {"refused": 0, "retry_after_missing": 0, "tokens": 0}

    async def one(i):
        start = time.monotonic()
        try:
            stream = await aclient.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"Count from {i} to {i + 40}, separated by commas."}],
                max_tokens=max_tokens, temperature=0.7, stream=True, stream_options={"include_usage": True})
            got_first = False
            async for chunk in stream:
                if not got_first and chunk.choices and chunk.choices[0].delta.content:
                    first_token.append(time.monotonic() - start)
                    got_first = True
                if chunk.usage:
                    counts["tokens"] += chunk.usage.completion_tokens
            return "served"
        except openai.RateLimitError as e:
            counts["refused"] += 1
            if not e.response.headers.get("retry-after", "").isdigit():
                counts["retry_after_missing"] += 1
            return "refused"
        except Exception as e:  # noqa: BLE001 - collected and reported
            other.append(repr(e))
            return "failed"

    start = time.monotonic()
    outcomes = await asyncio.gather(*(one(i) for i in range(clients)))
    wall = time.monotonic() - start
    await aclient.close()
    first_token.sort()
    return {"served": outcomes.count("served"), "refused": counts["refused"], "other_failures": other,
            "retry_after_missing": counts["retry_after_missing"], "wall_s": wall, "tokens": counts["tokens"],
            "tokens_per_s": counts["tokens"] / wall if wall else 0.0,
            "ttft_p50": statistics.median(first_token) if first_token else float("nan"),
            "ttft_p99": first_token[min(len(first_token) - 1, int(0.99 * len(first_token)))]
            if first_token else float("nan")}


ARRIVAL_PROMPT = ("Here is a list of fruits: " + ", ".join(["apple", "banana", "cherry", "date", "elderberry", "fig",
                                                              "grape", "kiwi", "lemon", "mango"] * 6)
                  + ". Which fruit comes first alphabetically? Answer with one word.")


async def arrival(url, running, rounds, model="qwen"):
    """First-token latencies of a new streamed request sent while `running` long streams
    generate (each round waits until all of them stream), and the running streams'
    aggregate tokens/s meanwhile. Each round's message starts differently, so neither
    server finds more than the system prompt of it cached."""
    import openai
    aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=900)
    streaming = asyncio.Event()
    started, pieces = [0], [0]

    async def long_stream(i):
        stream = await aclient.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"Write a very long story about robot number {i}."}],
            max_tokens=4000, temperature=0.7, stream=True)
        first = True
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces[0] += 1
                if first:
                    first = False
                    started[0] += 1
                    if started[0] == running:
                        streaming.set()
            if stop.is_set():
                await stream.close()
                return

    stop = asyncio.Event()
    tasks = [asyncio.create_task(long_stream(i)) for i in range(running)]
    await asyncio.wait_for(streaming.wait(), 600)
    latencies = []
    begin, begin_pieces = time.monotonic(), pieces[0]
    for r in range(rounds):
        start = time.monotonic()
        stream = await aclient.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"(Request {r}.) " + ARRIVAL_PROMPT}],
            max_tokens=4, temperature=0, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                latencies.append(time.monotonic() - start)
                break
        await stream.close()
        await asyncio.sleep(0.5)
    rate = (pieces[0] - begin_pieces) / (time.monotonic() - begin)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await aclient.close()
    latencies.sort()
    return {"ttft_p50": statistics.median(latencies), "ttft_max": latencies[-1], "running_pieces_per_s": rate}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=180):
    import urllib.request
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {seconds} s")


def run_ours(model, args, queue):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "bindings" / "python"))
    env.setdefault("QWEN_LIBRARY", str(ROOT / ".build" / "release" / "libqwen.so"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "python" / "openai_server.py"), "-m", model,
                             "--port", str(port), "--parallel", str(args.parallel), "--queue", str(queue),
                             "--threads", str(args.threads), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return load(proc, port, args)


def load(proc, port, args):
    """The measurement against the server `proc` listening on `port`; stops it."""
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        if args.arrival:
            return asyncio.run(arrival(url, args.parallel - 1, args.rounds))
        return asyncio.run(concurrent_streams(url, args.clients, args.max_tokens))
    finally:
        proc.terminate()
        proc.wait(30)


def run_llama(model, args, binary):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", model, "--port", str(port), "-np", str(args.parallel), "-cb",
                             "-t", str(args.threads), "-c", str(4096 * args.parallel),
                             "--no-webui"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return load(proc, port, args)


def cpu_line():
    name = "unknown CPU"
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    isa = "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX2" if "avx2" in flags else "SSE"
    return f"{name}, {os.cpu_count()} cores, {isa}, {platform.machine()}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", default=None, help="default: the model scripts/fetch-model.sh caches")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="compute threads of each server, in all")
    p.add_argument("--queue", type=int, nargs="+", default=[16, 128])
    p.add_argument("--no-llama", action="store_true")
    p.add_argument("--avx2", action="store_true", help="both engines on their AVX2 paths")
    p.add_argument("--arrival", action="store_true",
                   help="first-token latency of a request arriving while --parallel - 1 streams run")
    p.add_argument("--rounds", type=int, default=5, help="--arrival: new requests measured")
    args = p.parse_args()
    if args.arrival:
        args.queue = args.queue[:1]
    if args.avx2:
        os.environ["QWEN_ISA"] = "avx2"
    model = args.model or subprocess.run(["bash", str(ROOT / "scripts" / "fetch-model.sh")], check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    rows = []
    for queue in args.queue:
        rows.append((f"qwen-embed-server --parallel {args.parallel} --queue {queue}", run_ours(model, args, queue)))
    if not args.no_llama:
        bin_dir = subprocess.run(["bash", str(ROOT / "scripts" / "build-llama-cpp.sh")] + (["--avx2"] if args.avx2 else []),
                                 check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rows.append((f"llama-server -np {args.parallel}", run_llama(model, args, f"{bin_dir}/llama-server")))
    if args.arrival:
        print(f"\n{cpu_line()}{' (both on their AVX2 paths)' if args.avx2 else ''}; a new request "
              f"({len(ARRIVAL_PROMPT.split())}-word prompt) while {args.parallel - 1} streams run, {args.rounds} rounds, "
              f"{args.threads} thread(s), load {os.getloadavg()[0]:.2f}\n")
        print("| server | first token p50 | max | running streams' tokens/s meanwhile |")
        print("|---|---|---|---|")
        for name, r in rows:
            print(f"| {name} | {r['ttft_p50']:.3f} s | {r['ttft_max']:.3f} s | {r['running_pieces_per_s']:.1f} |")
        return
    print(f"\n{cpu_line()}{' (both on their AVX2 paths)' if args.avx2 else ''}; {args.clients} streaming clients "
          f"at once, max_tokens {args.max_tokens}, {args.parallel} streams decoded together on {args.threads} thread(s)\n")
    print("| server | served | refused (429) | other failures | first token p50 | p99 | aggregate tok/s | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['served']} | {r['refused']} | {len(r['other_failures'])} | {r['ttft_p50']:.2f} s | "
              f"{r['ttft_p99']:.2f} s | {r['tokens_per_s']:.1f} | {r['wall_s']:.1f} s |")
    failures = [f for _, r in rows for f in r["other_failures"]]
    if failures:
        print("\nfailures:", *failures[:5], sep="\n  ")


if __name__ == "__main__":
    main()
