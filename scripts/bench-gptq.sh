#!/usr/bin/env bash
# Decode and prefill of GPTQ checkpoints with Qwen-7B-Chat-Int4 / -Int8's real shapes
# (scripts/make-scale-checkpoints.py, written into $SCALE_DIR if missing: ~15 GB), at 1
# and 2 threads, each as a fraction of the memory limit: weight bytes read per decoded
# token x tok/s / the machine's read bandwidth (scripts/bandwidth.c, same thread count).
# llama.cpp cannot read GPTQ checkpoints, so there is no side-by-side run here.
#   bash scripts/bench-gptq.sh [rounds]
# QWEN=path/to/qwen measures another build (an older one, for a before/after); QWEN_ISA
# picks the kernels' instruction set as everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
SCALE_DIR=${SCALE_DIR:-${QWEN_CACHE:-$HOME/.cache/qwen-embed}/scale}
QWEN=${QWEN:-.build/release/qwen}
for kind in 7b-int4 7b-int8; do
  [ -f "$SCALE_DIR/$kind/config.json" ] || python3 scripts/make-scale-checkpoints.py "$SCALE_DIR" "$kind" >/dev/null
done
BW=$(mktemp); cc -O2 -pthread scripts/bandwidth.c -o "$BW"
declare -A bandwidth
for t in 1 2; do bandwidth[$t]=$("$BW" "$t"); done
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ISA: $($QWEN info -m "$SCALE_DIR/7b-int4" | python3 -c 'import json,sys; print(json.load(sys.stdin)["isa"])'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| checkpoint | threads | round | prefill tok/s (p64) | decode tok/s (n32) | GB read / token | fraction of ${bandwidth[1]} / ${bandwidth[2]} GB/s | load + repack ms | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
  for kind in 7b-int4 7b-int8; do
    for t in 1 2; do
      $QWEN bench -m "$SCALE_DIR/$kind" -p 64 -n 32 -r 1 -t "$t" --json | python3 -c "
import json, sys
r = json.load(sys.stdin); gb = r['decode_bytes_per_token'] / 1e9
print(f\"| $kind | $t | $round | {r['prefill_tok_s']:.2f} | {r['decode_tok_s']:.2f} | {gb:.2f} | {r['decode_tok_s'] * gb / ${bandwidth[$t]}:.0%} | {r['load_ms']:.0f} | {r['peak_rss_mb']:.0f} |\")"
    done
  done
done
rm -f "$BW"
