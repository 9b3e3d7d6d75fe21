#!/usr/bin/env bash
# Perplexity of Debian's GPL-3 text (512-token windows) by llama.cpp's perplexity tool
# and by `qwen perplexity`, side by side, with the relative difference.
#   scripts/bench-ppl.sh [-m MODEL] [-t THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="" THREADS=2 TEXT=/usr/share/common-licenses/GPL-3
while getopts "m:t:" opt; do
  case $opt in m) MODEL=$OPTARG ;; t) THREADS=$OPTARG ;; *) exit 2 ;; esac
done
[ -n "$MODEL" ] || MODEL=$(bash scripts/fetch-model.sh | tail -1)
LLAMA_BIN=$(bash scripts/build-llama-cpp.sh | tail -1)
theirs=$("$LLAMA_BIN/llama-perplexity" -m "$MODEL" -f "$TEXT" -c 512 -t "$THREADS" 2>&1 | grep -o 'Final estimate: PPL = [0-9.]*' | grep -o '[0-9.]*$')
ours=$(.build/release/qwen perplexity -m "$MODEL" -f "$TEXT" -c 512 -t "$THREADS" 2>/dev/null | tail -1 | grep -o '[0-9.]*$')
python3 -c "import sys; o, t = float(sys.argv[1]), float(sys.argv[2]); print(f'llama.cpp {t:.4f}  qwen {o:.4f}  difference {100 * (o - t) / t:+.2f}%')" "$ours" "$theirs"
