# Sourced by demo.sh and test.sh: create or reuse .venv and install charrnn into it.
#
#   PYTHON      interpreter to build the venv with   [default: python3.11, else python3]
#   TORCH_SPEC  how to install torch                 [default: torch==2.13.0]
#               e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
#   EXTRAS      optional dependencies, e.g. "test"   [default: none]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-}"

if [ -z "${PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "charrnn needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# Reinstall only when the project's requirements (or the requested extras) change.
stamp="$VENV/.charrnn-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16) $TORCH_SPEC [$EXTRAS]"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ] && ! { [ -n "$have" ] && [ -z "$EXTRAS" ] && [ "${have%% *}" = "${want%% *}" ]; }; then
  echo "installing charrnn and its dependencies into $VENV" >&2
  "$PY" -m pip install -q --upgrade pip
  # torch first and pinned: an open requirement would pull a multi-GB CUDA build.
  # shellcheck disable=SC2086
  "$PY" -m pip install -q $TORCH_SPEC
  target="$ROOT"
  [ -n "$EXTRAS" ] && target="$ROOT[$EXTRAS]"
  "$PY" -m pip install -q -e "$target"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
