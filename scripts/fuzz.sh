#!/usr/bin/env bash
# make fuzz FUZZ_SECONDS=N: every libFuzzer target in tests/fuzz for N seconds (default
# 60) against libqwen.so built with AddressSanitizer and coverage (.build-fuzz), each
# from a seed corpus derived from real files; then the example server's request parsing
# with atheris. Prints one markdown row per target
# (executions, coverage, corpus, result) for RELIABILITY.md; exits non-zero on a finding
# (the crashing input is left in $FUZZ_DIR/<target>/crash-*).
# FUZZ_TARGETS="fuzz_grammar fuzz_session_file" runs only those; FUZZ_RUNS=N stops each
# after N executions instead (FUZZ_SECONDS then bounds it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-}
selected() { [[ -z $TARGETS || " $TARGETS " == *" $1 "* ]]; }
FUZZ_DIR=${FUZZ_DIR:-$(pwd)/.build-fuzz/work}
CACHE=${QWEN_CACHE:-$HOME/.cache/qwen-embed}
mkdir -p "$FUZZ_DIR"

# Coverage only where data is read (Package.swift's fuzzCoverage); the harnesses, linked
# with -fsanitize=fuzzer, provide the callbacks it calls. SwiftPM does not rebuild objects
# when only the flags change, so a build made with other flags is removed first.
FLAGS="coverage: QwenEmbed QwenC; -sanitize=address"
if [[ -d .build-fuzz && "$(cat .build-fuzz/qwen-fuzz-flags 2>/dev/null)" != "$FLAGS" ]]; then rm -rf .build-fuzz/*-unknown-linux-gnu; fi
QWEN_FUZZ_COVERAGE=1 swift build -c release --product qwen --scratch-path .build-fuzz -Xswiftc -sanitize=address \
  -Xlinker --version-script="$(pwd)/scripts/libqwen.map" >&2
echo "$FLAGS" > .build-fuzz/qwen-fuzz-flags
LIB=$(pwd)/.build-fuzz/release

# A valid base checkpoint (bf16, 512-token vocabulary) and the seeds.
python3 scripts/gen-qwen-checkpoints.py "$FUZZ_DIR" fuzz-base >/dev/null
BASE=$FUZZ_DIR/fuzz-base
# The checkpoint target links a 512-rank vocabulary: loading all 151k ranks per input
# would make it ~50 executions a second.
head -512 "$CACHE/qwen.tiktoken" > "$FUZZ_DIR/small.tiktoken"
export QWEN_FUZZ_TIKTOKEN=$FUZZ_DIR/small.tiktoken QWEN_FUZZ_CHECKPOINT=$BASE
python3 scripts/fuzz-seeds.py "$FUZZ_DIR/seeds" "$BASE" "$CACHE" >&2
export QWEN_FUZZ_TEMPLATE_GGUF=$FUZZ_DIR/seeds/template-base.gguf
# Saved sessions for fuzz_session_file, written by this AddressSanitizer build (its runtime
# preloaded into Python).
LD_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so) ASAN_OPTIONS=detect_leaks=0 \
  QWEN_LIBRARY=$LIB/libqwen.so python3 scripts/fuzz-seeds.py --sessions "$FUZZ_DIR/seeds" "$BASE" >&2

echo "| target | seconds | executions | exec/s | coverage (edges) | corpus | result |"
echo "|---|---|---|---|---|---|---|"
status=0
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  selected "$name" || continue
  bin=$FUZZ_DIR/$name
  clang -g -O1 -fsanitize=fuzzer,address -I include "$src" -o "$bin" -L"$LIB" -lqwen -Wl,-rpath,"$LIB"
  corpus=$FUZZ_DIR/corpus/$name
  mkdir -p "$corpus" "$FUZZ_DIR/$name.artifacts"
  log=$FUZZ_DIR/$name.log
  result=ok
  started=$SECONDS
  ASAN_OPTIONS=detect_leaks=1 "$bin" "$corpus" "$FUZZ_DIR/seeds/$name" -max_total_time="$SECONDS_EACH" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} \
    -max_len=1100000 -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_DIR/$name.artifacts/" >"$log" 2>&1 || { result="FINDING (see $log)"; status=1; }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  files=$(ls "$corpus" | wc -l)
  took=$(( SECONDS - started > 0 ? SECONDS - started : 1 ))
  echo "| $name | $took | $runs | $(( runs / took )) | $cov | $files | $result |"
done
# The example server's request parsing, with atheris (Python's libFuzzer).
selected fuzz_server_request || exit $status
python3 -c "import atheris" 2>/dev/null || python3 -m pip install -q atheris >&2
name=fuzz_server_request
corpus=$FUZZ_DIR/corpus/$name; log=$FUZZ_DIR/$name.log; result=ok
mkdir -p "$corpus" "$FUZZ_DIR/$name.artifacts"
python3 tests/fuzz/$name.py "$corpus" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
  -artifact_prefix="$FUZZ_DIR/$name.artifacts/" >"$log" 2>&1 || { result="FINDING (see $log)"; status=1; }
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
echo "| $name | $SECONDS_EACH | $runs | $(( runs / (SECONDS_EACH > 0 ? SECONDS_EACH : 1) )) | $cov | $(ls "$corpus" | wc -l) | $result |"
exit $status
