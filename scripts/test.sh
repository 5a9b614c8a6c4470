#!/usr/bin/env bash
# Set up (demo + dev extras), make the demo quants, run lint, types and the whole test suite,
# real llama-server tests included (QUANTTUI_REQUIRE_REAL=1 turns a missing test bed into an
# error instead of a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "demo,dev"
.venv/bin/quanttui demo --prepare
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports
QUANTTUI_REQUIRE_REAL=1 exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
