#!/usr/bin/env bash
# Set everything up, then open JupyterLab on the demo notebook (built-in default model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${LENSWIDGET_VENV:-$PWD/.venv}
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
exec "$VENV/bin/jupyter" lab "${extra[@]}" "$@" examples/demo.ipynb
