#!/usr/bin/env bash
# Builds llama.cpp, the comparison engine of our benchmarks, from the source vendored
# in the llama-cpp-python sdist on PyPI (pinned), into the cache:
#   ${QWEN_CACHE:-~/.cache/qwen-embed}/llama.cpp-<version>/bin
# Prints the bin directory on the last line of stdout. Skips everything when built.
# CPU only, native, Release; ~10 minutes on 2 cores (run niced).
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE="${QWEN_CACHE:-$HOME/.cache/qwen-embed}"
DIR="$CACHE/llama.cpp-$VERSION"
BIN="$DIR/bin"
PY="${PYTHON:-python3}"
say() { echo "build-llama-cpp: $*" >&2; }

if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-perplexity" ]; then
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
  "$PY" -m pip download --no-deps --no-binary :all: -d "$DIR/dl" "llama-cpp-python==$VERSION" >&2
  mkdir -p "$DIR/src"
  tar -xzf "$DIR"/dl/llama_cpp_python-$VERSION.tar.gz -C "$DIR/src" --strip-components=1
fi
SRC="$DIR/src/vendor/llama.cpp"
say "configuring $SRC"
cmake -S "$SRC" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
say "building llama-bench llama-perplexity (takes a while)"
nice -n 19 cmake --build "$DIR/build" -j 2 --target llama-bench llama-perplexity >&2
mkdir -p "$BIN"
for t in llama-bench llama-perplexity; do cp "$DIR/build/bin/$t" "$BIN/"; done
echo "$BIN"
