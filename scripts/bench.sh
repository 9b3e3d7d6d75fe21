#!/usr/bin/env bash
# Our engine and llama.cpp side by side on the same GGUF, in one invocation: for each
# round, each thread count and each kernel path this CPU runs (the selected one and every
# lower one, generic included), `qwen bench` then `llama-bench` (pp512, tg128), alternating:
# ours runs again right before each reference, so every ratio compares two runs a minute
# apart at most (the shared host's memory speed moves by a third within minutes), and both
# sides report the best of their -r 2 repetitions (`qwen bench` takes the best; llama-bench's
# avg_ts is the mean, so its samples_ts are used).
# Also the machine's read bandwidth per thread count and decode as a fraction of the
# bandwidth limit (weight bytes read per token x tok/s / bandwidth). Prints one markdown
# row per (path, threads, reference, round) for BENCHMARKS.md; only ratios from one run compare.
#   scripts/bench.sh [-m MODEL] [-t "1 2"] [-r ROUNDS] [-i "avx512 avx2"] [-p 512] [-n 128]
# On a machine with AVX-512, AVX2/AVX-VNNI rows are also compared with llama.cpp built for
# AVX2 only (scripts/build-llama-cpp.sh --avx2): the same instruction set on both sides.
# Where ik_llama.cpp is built (scripts/build-ik-llama-cpp.sh, native and --avx2; it is not
# on PyPI, so it is never built here), rows against it too, run with its load-time repack
# (-rtr 1) as its users run it.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="" THREADS="1 2" ROUNDS=2 ISAS="" PROMPT=512 GEN=128
while getopts "m:t:r:i:p:n:" opt; do
  case $opt in m) MODEL=$OPTARG ;; t) THREADS=$OPTARG ;; r) ROUNDS=$OPTARG ;; i) ISAS=$OPTARG ;;
               p) PROMPT=$OPTARG ;; n) GEN=$OPTARG ;; *) exit 2 ;; esac
done
[ -n "$MODEL" ] || MODEL=$(bash scripts/fetch-model.sh | tail -1)
QWEN=.build/release/qwen
[ -x "$QWEN" ] || { echo "bench: $QWEN missing; run make build" >&2; exit 1; }
LLAMA=$(bash scripts/build-llama-cpp.sh | tail -1)
LLAMA_AVX2=""
grep -q avx512_vnni /proc/cpuinfo && LLAMA_AVX2=$(bash scripts/build-llama-cpp.sh --avx2 | tail -1)
IK_DIR="${QWEN_CACHE:-$HOME/.cache/qwen-embed}/ik_llama.cpp"
IK=""; IK_AVX2=""
[ -x "$IK_DIR/bin/llama-bench" ] && IK="$IK_DIR/bin"
[ -x "$IK_DIR/bin-avx2/llama-bench" ] && grep -q avx512_vnni /proc/cpuinfo && IK_AVX2="$IK_DIR/bin-avx2"
[ -n "$ISAS" ] || ISAS=$("$QWEN" info -m "$MODEL" | python3 -c 'import json,sys; print(" ".join(reversed(json.load(sys.stdin)["isa_available"])))')
BW=$(mktemp); cc -O2 -pthread scripts/bandwidth.c -o "$BW"
declare -A bandwidth
for t in $THREADS; do bandwidth[$t]=$("$BW" "$t"); done
rm -f "$BW"
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)

llama() { # bin threads [extra llama-bench options] -> "pp tg", each the best repetition
  local bin=$1 threads=$2; shift 2
  "$bin/llama-bench" -m "$MODEL" -p "$PROMPT" -n "$GEN" -t "$threads" -r 2 "$@" -o json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
pp = next(max(r["samples_ts"]) for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(max(r["samples_ts"]) for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
print(pp, tg)'
}

echo "| date | CPU, 1-min load | path | threads | ours pp$PROMPT | reference pp$PROMPT | ratio | ours tg$GEN | reference tg$GEN | ratio | decode GB/s | of bandwidth |"
echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for round in $(seq 1 "$ROUNDS"); do
  for t in $THREADS; do
    for isa in $ISAS; do
      n=$GEN; [ "$isa" = generic ] && n=32   # the portable path decodes ~10x slower
      refs=("llama.cpp native:$LLAMA")
      avx2=false; { [ "$isa" = avx2 ] || [ "$isa" = avxvnni ]; } && avx2=true
      if [ -n "$LLAMA_AVX2" ] && $avx2; then refs+=("llama.cpp AVX2 build:$LLAMA_AVX2"); fi
      [ -n "$IK" ] && refs+=("ik_llama.cpp native -rtr 1:$IK")
      if [ -n "$IK_AVX2" ] && $avx2; then refs+=("ik_llama.cpp AVX2 build -rtr 1:$IK_AVX2"); fi
      for ref in "${refs[@]}"; do
        extra=(); [[ $ref == ik_llama.cpp* ]] && extra=(-rtr 1)
        ours=$("$QWEN" bench -m "$MODEL" -p "$PROMPT" -n "$n" -t "$t" -r 2 --isa "$isa" --json)
        theirs=$(llama "${ref#*:}" "$t" "${extra[@]}")
        python3 - "$ours" "$theirs" "$t" "$isa" "${ref%%:*}" "${bandwidth[$t]}" "$CPU" <<'PY'
import datetime, json, sys
ours = json.loads(sys.argv[1]); pp, tg = map(float, sys.argv[2].split())
threads, isa, ref, bw, cpu = sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]), sys.argv[7]
load = open("/proc/loadavg").read().split()[0]
gbs = ours["decode_bytes_per_token"] * ours["decode_tok_s"] / 1e9
print(f"| {datetime.date.today()} | {cpu}, load {load} | {isa} vs {ref} | {threads} | {ours['prefill_tok_s']:.1f} | {pp:.1f} | "
      f"**{ours['prefill_tok_s'] / pp:.2f}x** | {ours['decode_tok_s']:.1f} | {tg:.1f} | **{ours['decode_tok_s'] / tg:.2f}x** | "
      f"{gbs:.1f} | {gbs / bw:.0%} of {bw:.0f} |")
PY
      done
    done
  done
done
