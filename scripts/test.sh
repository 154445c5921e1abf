#!/usr/bin/env bash
# Install charrnn with its test tools into .venv, then lint, type-check and run the tests.
set -euo pipefail
EXTRAS=test source "$(dirname "$0")/env.sh"
cd "$ROOT"
echo "== ruff" >&2
ruff check charrnn tests benchmarks
ruff format --check charrnn tests benchmarks
echo "== mypy" >&2
mypy
echo "== pytest" >&2
python -m pytest -q "$@"
