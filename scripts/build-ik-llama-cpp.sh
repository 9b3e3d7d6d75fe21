#!/usr/bin/env bash
# Builds ik_llama.cpp's llama-bench (the fastest CPU engine, issue 18's prefill reference)
# into the cache:
#   ${QWEN_CACHE:-~/.cache/qwen-embed}/ik_llama.cpp/bin        native (-march=native)
#   ${QWEN_CACHE:-~/.cache/qwen-embed}/ik_llama.cpp/bin-avx2   with --avx2: AVX2 + FMA + F16C
# Its source is not on PyPI: give a checkout or a git directory of
# github.com/ikawrakow/ik_llama.cpp in IK_LLAMA_SRC (default: the tool library's mirror,
# /work/.mirror/ikawrakow+ik_llama.cpp/repo; its HEAD is used). Prints the bin directory
# on the last line of stdout; exits 1 (printing nothing) when no source is found, so
# scripts/bench.sh leaves its columns out. CPU only, Release, FlashAttention kernels for
# f16 and Q8_0 caches only (GGML_IQK_FA_ALL_QUANTS=OFF: a build of hours otherwise on 2 cores).
set -euo pipefail
CACHE="${QWEN_CACHE:-$HOME/.cache/qwen-embed}"
DIR="$CACHE/ik_llama.cpp"
SOURCE=${IK_LLAMA_SRC:-/work/.mirror/ikawrakow+ik_llama.cpp/repo}
say() { echo "build-ik-llama-cpp: $*" >&2; }

VARIANT=native
CPU_FLAGS=(-DGGML_NATIVE=ON)
if [ "${1:-}" = "--avx2" ]; then
  VARIANT=avx2
  CPU_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
             -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF)
fi
BIN="$DIR/bin$([ $VARIANT = native ] || echo "-$VARIANT")"
BUILD="$DIR/build$([ $VARIANT = native ] || echo "-$VARIANT")"
if [ -x "$BIN/llama-bench" ]; then echo "$BIN"; exit 0; fi

if [ ! -f "$DIR/src/CMakeLists.txt" ]; then
  if [ -f "$SOURCE/CMakeLists.txt" ]; then
    mkdir -p "$DIR/src" && cp -r "$SOURCE/." "$DIR/src/"
  elif git --git-dir="$SOURCE" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    # File by file: a mirror may lack its largest blobs (the server's web assets, which
    # llama-bench does not build); those are skipped.
    mkdir -p "$DIR/src"
    git --git-dir="$SOURCE" ls-tree -r HEAD | while read -r mode type object path; do
      [ "$type" = blob ] || continue
      mkdir -p "$DIR/src/$(dirname "$path")"
      git --git-dir="$SOURCE" cat-file blob "$object" > "$DIR/src/$path" 2>/dev/null || rm -f "$DIR/src/$path"
    done
    git --git-dir="$SOURCE" rev-parse HEAD > "$DIR/src/COMMIT"
  else
    say "no ik_llama.cpp source at $SOURCE (set IK_LLAMA_SRC)"; exit 1
  fi
fi
command -v cmake >/dev/null || { say "cmake missing (scripts/build-llama-cpp.sh installs it)"; exit 1; }
say "configuring $DIR/src ($VARIANT)"
cmake -S "$DIR/src" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release "${CPU_FLAGS[@]}" -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_IQK_FA_ALL_QUANTS=OFF >&2
say "building llama-bench (takes a while)"
nice -n 10 cmake --build "$BUILD" -j 2 --target llama-bench >&2
mkdir -p "$BIN"
cp "$BUILD/bin/llama-bench" "$BIN/"
echo "$BIN"
