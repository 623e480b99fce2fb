#!/usr/bin/env bash
# Create a separate TransformerLens 3.9.0 (+ SAELens 6.54.12) virtual environment: the reference
# for side-by-side benchmarks and the differential test suites (tests/tl_compat, SAE tests).
#
#   bash benchmarks/tl_env.sh            # -> .tl-bench/ (gitignored)
#   TL_BENCH_VENV=/tmp/tl bash benchmarks/tl_env.sh
#
# torch is pinned to the project's CPU wheel (constraints.txt: torch==2.13.0) so pip reuses
# it instead of pulling a CUDA build. Idempotent: does nothing when the venv already imports
# transformer_lens 3.9.0. lenswidget's own .venv is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${TL_BENCH_VENV:-$ROOT/.tl-bench}
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

pipq() {  # pip, without the local index's "location is ignored" noise
    "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if (m.version("transformer-lens"), m.version("sae-lens")) == ("3.9.0", "6.54.12") else 1)
EOF
then
    echo "TransformerLens 3.9.0 + SAELens 6.54.12 already installed in $VENV"
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pipq install -q -c "$ROOT/constraints.txt" "torch==2.13.0"
pipq install -q -c "$ROOT/constraints.txt" "transformer-lens==3.9.0"
# SAELens pins transformer-lens < 4, so it shares this venv (the SAE differential tests use it).
pipq install -q -c "$ROOT/constraints.txt" "sae-lens==6.54.12"
"$VENV/bin/python" -c "import torch, transformer_lens, importlib.metadata as m; \
print('transformer-lens', m.version('transformer-lens'), 'sae-lens', m.version('sae-lens'), 'torch', torch.__version__)"
