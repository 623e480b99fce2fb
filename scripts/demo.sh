#!/usr/bin/env bash
# Set everything up, then open JupyterLab on the demo notebook (built-in default model).
# The server's root is the repository (so the file browser shows the project, not just
# examples/), and the demo notebook is opened in it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${LENSWIDGET_VENV:-$PWD/.venv}
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
exec "$VENV/bin/jupyter" lab --ServerApp.root_dir="$PWD" "${extra[@]}" "$@" examples/demo.ipynb
