#!/usr/bin/env bash
# Runs our engine and llama.cpp side by side on the same GGUF, in one invocation, and
# prints a markdown row for BENCHMARKS.md (figures and ratios; only ratios from one
# run are comparable on a shared machine).
#   scripts/bench.sh [-m MODEL] [-t THREADS] [-r REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="" THREADS=2 REPS=3
while getopts "m:t:r:" opt; do
  case $opt in m) MODEL=$OPTARG ;; t) THREADS=$OPTARG ;; r) REPS=$OPTARG ;; *) exit 2 ;; esac
done
[ -n "$MODEL" ] || MODEL=$(bash scripts/fetch-model.sh | tail -1)
LLAMA_BIN=$(bash scripts/build-llama-cpp.sh | tail -1)
QWEN=.build/release/qwen
[ -x "$QWEN" ] || { echo "bench: $QWEN missing; run make build" >&2; exit 1; }

ours=$("$QWEN" bench -m "$MODEL" -p 512 -n 128 -t "$THREADS" -r "$REPS" --json)
theirs=$("$LLAMA_BIN/llama-bench" -m "$MODEL" -p 512 -n 128 -t "$THREADS" -r "$REPS" -o json 2>/dev/null)
python3 - "$ours" "$theirs" "$THREADS" <<'PY'
import datetime, json, platform, subprocess, sys
ours = json.loads(sys.argv[1]); theirs = json.loads(sys.argv[2]); threads = sys.argv[3]
pp = next(t["avg_ts"] for t in theirs if t["n_prompt"] > 0 and t["n_gen"] == 0)
tg = next(t["avg_ts"] for t in theirs if t["n_gen"] > 0 and t["n_prompt"] == 0)
cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if l.startswith("Model name")), platform.processor())
load = open("/proc/loadavg").read().split()[0]
print(f"| {datetime.date.today()} | {cpu}, load {load} | {threads} | {ours['prefill_tok_s']:.1f} | {pp:.1f} | "
      f"**{ours['prefill_tok_s'] / pp:.2f}x** | {ours['decode_tok_s']:.1f} | {tg:.1f} | **{ours['decode_tok_s'] / tg:.2f}x** | "
      f"{ours['load_ms']:.0f} ms | {ours['peak_rss_mb']:.0f} MB |")
PY
