#!/usr/bin/env bash
# Proves that a Swift package depending on QwenEmbed by a version tag, built with a plain
# `swift build -c release`, gets the run-time selected kernels at the speed of `make build`:
# copies this checkout's HEAD into a local git repository tagged 99.0.0, builds the consumer
# in scripts/consumer against it, and runs both benchmarks side by side (pp512, tg128).
#   scripts/check-consumer-package.sh [-t THREADS]     (needs `make build` first)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=2
while getopts "t:" opt; do case $opt in t) THREADS=$OPTARG ;; *) exit 2 ;; esac; done
MODEL=$(bash scripts/fetch-model.sh | tail -1)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git clone -q . "$WORK/QwenEmbed"
git -C "$WORK/QwenEmbed" tag 99.0.0
mkdir -p "$WORK/consumer"
cp -r scripts/consumer/Sources "$WORK/consumer/"
sed "s|@REPO@|file://$WORK/QwenEmbed|; s|@VERSION@|99.0.0|" scripts/consumer/Package.swift.in > "$WORK/consumer/Package.swift"
(cd "$WORK/consumer" && swift build -c release >&2)
consumer=$("$WORK/consumer/.build/release/qwen-consumer" "$MODEL" "$THREADS")
ours=$(.build/release/qwen bench -m "$MODEL" -p 512 -n 128 -t "$THREADS" -r 2 --json)
echo "consumer (plain swift build): $consumer"
echo "make build (qwen bench):      $ours"
python3 - "$consumer" "$ours" <<'PY'
import json, sys
c, o = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert c["isa"] == o["isa"], f"consumer runs {c['isa']}, make build {o['isa']}"
print(f"decode consumer/make build: {c['decode_tok_s'] / o['decode_tok_s']:.2f}, prefill: {c['prefill_tok_s'] / o['prefill_tok_s']:.2f}")
PY
python3 scripts/check-isa-isolation.py "$WORK/consumer/.build/release/qwen-consumer"
