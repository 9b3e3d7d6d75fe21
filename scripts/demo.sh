#!/usr/bin/env bash
# `make run`: show the default model's info, stream a one-shot answer, then chat
# interactively when stdin is a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$(bash scripts/fetch-model.sh | tail -1)
QWEN=.build/release/qwen
echo "== qwen info" >&2
"$QWEN" info -m "$MODEL"
echo "== qwen tokenize --text 'Hello, Qwen! 你好'" >&2
"$QWEN" tokenize -m "$MODEL" --text 'Hello, Qwen! 你好'
echo "== qwen chat -p (streamed)" >&2
"$QWEN" chat -m "$MODEL" -n 300 -p "Write a Python function that checks whether a number is prime."
if [ -t 0 ]; then
  echo "== interactive chat (/reset, /exit; Ctrl-C stops a reply)" >&2
  exec "$QWEN" chat -m "$MODEL"
fi
