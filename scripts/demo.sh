#!/usr/bin/env bash
# One command for a new user: set up, make the demo quants, compare them live.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
exec .venv/bin/quanttui demo "$@"
