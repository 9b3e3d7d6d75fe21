#!/usr/bin/env python3
"""Batched decoding side by side with llama.cpp: `qwen batched-bench` against
`llama-batched-bench` on the same GGUF and threads, alternating per round, on the
selected kernel path and the AVX2 path. For each number of parallel sequences B: every
sequence prefills --npp prompt tokens, then generates --ntg tokens, the B sequences
decoded together; aggregate decode tokens/s (S_TG) and per-stream tokens/s (S_TG / B).
Prints BENCHMARKS.md tables.

    python3 scripts/bench_batched.py [-m MODEL] [-t 2] [--npp 128] [--ntg 128]
                                     [--npl 1,2,4,8] [--rounds 2] [--paths selected avx2]

llama.cpp is the version vendored in llama-cpp-python (scripts/build-llama-cpp.sh):
native (-march=native) for the selected path, built for AVX2 + FMA + F16C only for the
AVX2 path, where ours runs with --isa avx2. With --ik DIR, ik_llama.cpp's
llama-batched-bench from DIR (a build of your own: ik_llama.cpp is not fetched by this
project) runs too, on the selected path only, its table read from the text output.
"""
import argparse
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_json_lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def ours(args, model, path):
    cmd = [str(ROOT / ".build" / "release" / "qwen"), "batched-bench", "-m", model, "-t", str(args.threads),
           "--npp", str(args.npp), "--ntg", str(args.ntg), "--npl", args.npl, "--json"]
    if path == "avx2":
        cmd += ["--isa", "avx2"]
    return {r["pl"]: r for r in run_json_lines(cmd)}


def llama(args, model, path):
    bin_dir = subprocess.run(["bash", str(ROOT / "scripts" / "build-llama-cpp.sh")] + (["--avx2"] if path == "avx2" else []),
                             check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    cmd = [f"{bin_dir}/llama-batched-bench", "-m", model, "-t", str(args.threads), "-tb", str(args.threads),
           "-c", str(max(4096, max(int(b) for b in args.npl.split(",")) * (args.npp + args.ntg) + 64)),
           "-npp", str(args.npp), "-ntg", str(args.ntg), "-npl", args.npl, "--output-format", "jsonl"]
    return {r["pl"]: r for r in run_json_lines(cmd)}


def ik_llama(args, model, bin_dir):
    """ik_llama.cpp's llama-batched-bench prints only a text table, on stderr
    (| PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | ...); rows keyed by B."""
    cmd = [f"{bin_dir}/llama-batched-bench", "-m", model, "-t", str(args.threads), "-tb", str(args.threads),
           "-c", str(max(4096, max(int(b) for b in args.npl.split(",")) * (args.npp + args.ntg) + 64)),
           "-npp", str(args.npp), "-ntg", str(args.ntg), "-npl", args.npl]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    header, rows = None, {}
    for line in (done.stdout + done.stderr).splitlines():   # the table goes to stderr
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "S_TG t/s" in cells:
            header = cells
        elif header and len(cells) == len(header) and cells[0].isdigit():
            row = dict(zip(header, cells))
            rows[int(row["B"])] = {"speed_tg": float(row["S_TG t/s"]), "speed_pp": float(row["S_PP t/s"])}
    return rows


def cpu():
    name, flags = "unknown CPU", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split()
    isa = ["AVX2"] if "avx2" in flags else []
    isa += [x for x, f in (("AVX-VNNI", "avx_vnni"), ("AVX-512 VNNI", "avx512_vnni")) if f in flags]
    return f"{name}, {os.cpu_count()} cores, {' + '.join(isa) or 'no AVX2'}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", default=None, help="default: the model scripts/fetch-model.sh caches")
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--npp", type=int, default=128)
    p.add_argument("--ntg", type=int, default=128)
    p.add_argument("--npl", default="1,2,4,8")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--paths", nargs="+", default=["selected", "avx2"], choices=["selected", "avx2"])
    p.add_argument("--ik", metavar="DIR", help="ik_llama.cpp's bin folder: its llama-batched-bench runs too (selected path)")
    args = p.parse_args()
    model = args.model or subprocess.run(["bash", str(ROOT / "scripts" / "fetch-model.sh")], check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"{cpu()}; {args.threads} threads; npp {args.npp}, ntg {args.ntg}; load {os.getloadavg()[0]:.2f}\n")
    print("| round | path | reference | B | ours S_TG tok/s | ref S_TG tok/s | ratio | ours per stream | ref per stream "
          "| ours S_PP tok/s | ref S_PP tok/s | ours B=n / B=1 | ref B=n / B=1 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        for path in args.paths:
            a, b = ours(args, model, path), llama(args, model, path)
            references = [("llama.cpp", b)]
            if args.ik and path == "selected":
                references.append(("ik_llama.cpp", ik_llama(args, model, args.ik)))
            for name, ref in references:
                for n in sorted(a):
                    x, y = a[n], ref.get(n, {})
                    tg_x, tg_y = x["speed_tg"], y.get("speed_tg", float("nan"))
                    print(f"| {round_} | {path} ({x['isa']}) | {name} | {n} | {tg_x:.1f} | {tg_y:.1f} | **{tg_x / tg_y:.2f}x** | "
                          f"{tg_x / n:.1f} | {tg_y / n:.1f} | {x['speed_pp']:.1f} | {y.get('speed_pp', float('nan')):.1f} | "
                          f"{tg_x / a[min(a)]['speed_tg']:.2f}x | "
                          f"{tg_y / ref[min(ref)]['speed_tg'] if ref else float('nan'):.2f}x |", flush=True)


if __name__ == "__main__":
    main()
