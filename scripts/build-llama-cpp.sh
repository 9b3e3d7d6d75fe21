#!/usr/bin/env bash
# Builds llama.cpp, the comparison engine of our benchmarks, from the source vendored
# in the llama-cpp-python sdist on PyPI (pinned), into the cache:
#   ${QWEN_CACHE:-~/.cache/qwen-embed}/llama.cpp-<version>/bin        native (-march=native)
#   ${QWEN_CACHE:-~/.cache/qwen-embed}/llama.cpp-<version>/bin-avx2   with --avx2: AVX2 + FMA +
#       F16C only, for comparing our AVX2 path with llama.cpp's on an AVX-512 machine
# Prints the bin directory on the last line of stdout. Skips everything when built.
# llama-server is the comparison of the server benchmark (scripts/bench_server.py).
# CPU only, Release; ~10 minutes on 2 cores (run niced).
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE="${QWEN_CACHE:-$HOME/.cache/qwen-embed}"
DIR="$CACHE/llama.cpp-$VERSION"
PY="${PYTHON:-python3}"
say() { echo "build-llama-cpp: $*" >&2; }

VARIANT=native
CPU_FLAGS=(-DGGML_NATIVE=ON)
if [ "${1:-}" = "--avx2" ]; then
  VARIANT=avx2
  CPU_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
             -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF)
fi
BIN="$DIR/bin$([ $VARIANT = native ] || echo "-$VARIANT")"
BUILD="$DIR/build$([ $VARIANT = native ] || echo "-$VARIANT")"

TARGETS=(llama-bench llama-perplexity llama-server llama-batched-bench)
if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-perplexity" ] && [ -x "$BIN/llama-server" ] && [ -x "$BIN/llama-batched-bench" ]; then
  echo "$BIN"; exit 0
fi
if ! command -v cmake >/dev/null; then
  say "installing cmake"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake >&2
fi
mkdir -p "$DIR"
if [ ! -d "$DIR/src" ]; then
  say "downloading llama-cpp-python $VERSION sdist"
  "$PY" -m pip download --no-deps --no-binary llama-cpp-python -d "$DIR/dl" "llama-cpp-python==$VERSION" >&2
  mkdir -p "$DIR/src"
  tar -xzf "$DIR"/dl/llama_cpp_python-$VERSION.tar.gz -C "$DIR/src" --strip-components=1
fi
SRC="$DIR/src/vendor/llama.cpp"
say "configuring $SRC ($VARIANT)"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release "${CPU_FLAGS[@]}" -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
say "building ${TARGETS[*]} (takes a while)"
nice -n 19 cmake --build "$BUILD" -j 2 --target "${TARGETS[@]}" >&2
mkdir -p "$BIN"
for t in "${TARGETS[@]}"; do cp "$BUILD/bin/$t" "$BIN/"; done
echo "$BIN"
