#!/usr/bin/env bash
# Set up (demo + dev extras), make the demo quants, run lint, types and the whole test suite,
# real llama-server tests included (QUANTTUI_REQUIRE_REAL=1 turns a missing test bed into an
# error instead of a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "demo,dev"
# a real node_exporter for the exporter test (CI runs as root with apt; elsewhere it is a hint)
if ! command -v prometheus-node-exporter >/dev/null && ! command -v node_exporter >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends prometheus-node-exporter; } >/dev/null 2>&1 \
            || echo "warning: could not install prometheus-node-exporter" >&2
    else
        echo "note: the exporter test needs prometheus-node-exporter (apt-get install" \
             "prometheus-node-exporter)" >&2
    fi
fi
# bubblewrap, the sandbox model-written code runs in (tests/test_sandbox.py), installed the same way
if ! command -v bwrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends bubblewrap; } >/dev/null 2>&1 \
            || echo "warning: could not install bubblewrap" >&2
    else
        echo "note: the sandbox tests need bubblewrap (apt-get install bubblewrap)" >&2
    fi
fi
.venv/bin/quanttui demo --prepare
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports
QUANTTUI_REQUIRE_REAL=1 exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
