#!/usr/bin/env bash
# Installs what the build and the tests need, skipping what is already there:
# Debian: libopenblas-dev, binutils (objdump, for the instruction-set isolation test),
# chromium + chromium-driver (the web page's browser test);
# PyPI: pytest, tiktoken, gguf, numpy, setuptools (for make wheel); fastapi + uvicorn (the
# server), openai, httpx and selenium (its tests).
set -euo pipefail
PY="${PYTHON:-python3}"

missing=()
[ -f /usr/include/x86_64-linux-gnu/cblas.h ] || missing+=(libopenblas-dev)
command -v objdump >/dev/null || missing+=(binutils)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

pip_missing=()
for mod in pytest tiktoken gguf numpy fastapi uvicorn openai httpx selenium pydantic llguidance; do
  "$PY" -c "import $mod" 2>/dev/null || pip_missing+=("$mod")
done
# make wheel builds without isolation: setuptools with bdist_wheel built in (>= 70.1).
"$PY" -c "from setuptools.command.bdist_wheel import bdist_wheel" 2>/dev/null || pip_missing+=("setuptools>=70.1")
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "install-deps: pip install ${pip_missing[*]}" >&2
  "$PY" -m pip install -q "${pip_missing[@]}" >&2
fi
