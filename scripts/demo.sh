#!/usr/bin/env bash
# Install charrnn into .venv, show the lecture's "hello", train for about a minute on
# the default corpus (Python's own standard library source), sample from it, and write
# the page that shows inside it (runs/demo/inspect.html).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
charrnn hello
charrnn train --time "${DEMO_TIME:-60s}" --out runs/demo --overwrite
charrnn sample runs/demo --length 600 --temperature 0.7 --prime "def "
charrnn inspect runs/demo --max-chars 4000
