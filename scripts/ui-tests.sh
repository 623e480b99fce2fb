#!/usr/bin/env bash
# Real-browser tests of the lenswidget widgets in JupyterLab (Galata + Playwright).
#
# Usage: scripts/ui-tests.sh [extra playwright args, e.g. tests/infra.spec.ts -g heatmap]
#
# Expects the Python package installed (editable) into .venv with its front end
# built (lenswidget/static/*.js, `npm run build` at the repository root).
# Installs Debian chromium when missing (never downloads a Playwright browser),
# installs ui-tests/node_modules from the lockfile when it is out of date, then
# runs `playwright test`. Exits non-zero when any spec fails.
#
# Environment:
#   LENSWIDGET_VENV       virtual environment (default: <repo>/.venv)
#   LENSWIDGET_CHROMIUM   browser executable (default: /usr/bin/chromium)
#   LENSWIDGET_UI_PORT    Jupyter server port (default: 8917)
set -euo pipefail

start=$(date +%s)
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ui_dir="$repo_root/ui-tests"
venv="${LENSWIDGET_VENV:-$repo_root/.venv}"
chromium="${LENSWIDGET_CHROMIUM:-/usr/bin/chromium}"

log() { printf '[ui-tests] %s\n' "$*"; }

# --- browser -----------------------------------------------------------------
if [ ! -x "$chromium" ]; then
  if [ "$chromium" != /usr/bin/chromium ]; then
    log "LENSWIDGET_CHROMIUM=$chromium is not executable" >&2
    exit 2
  fi
  log "installing Debian chromium"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
log "browser: $("$chromium" --version 2>/dev/null | head -n1)"

# --- python side -------------------------------------------------------------
if [ ! -x "$venv/bin/jupyter" ]; then
  log "no jupyter in $venv (install the project first: make install)" >&2
  exit 2
fi
if ! PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" -c "import lenswidget, anywidget" 2>/dev/null; then
  log "lenswidget is not importable from $venv (install it first)" >&2
  exit 2
fi
if ! compgen -G "$repo_root/lenswidget/static/*.js" >/dev/null; then
  log "warning: lenswidget/static/*.js missing (run 'npm run build' at the repository root)" >&2
fi

# --- node side ---------------------------------------------------------------
cd "$ui_dir"
stamp="node_modules/.lenswidget-lock.sha256"
if [ -f package-lock.json ]; then
  want="$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
  if [ -d node_modules/@jupyterlab/galata ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "node_modules up to date"
  else
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
  fi
else
  log "no package-lock.json: npm install"
  npm install --no-audit --no-fund --loglevel=error
fi

# --- run ---------------------------------------------------------------------
rm -rf test-results/measurements test-results/results.json
mkdir -p test-results
export PATH="$venv/bin:$PATH"
export LENSWIDGET_JUPYTER="$venv/bin/jupyter"
export LENSWIDGET_CHROMIUM="$chromium"
rc=0
npx --no-install playwright test "$@" || rc=$?

# scripts/summarize_tests.py adds up <repo>/test-results/playwright.json.
if [ -f test-results/results.json ]; then
  mkdir -p "$repo_root/test-results"
  cp test-results/results.json "$repo_root/test-results/playwright.json"
fi
for f in test-results/measurements/*.json; do
  if [ -f "$f" ]; then log "measurement written: ui-tests/$f"; fi
done
log "HTML report: ui-tests/playwright-report/index.html; server log: ui-tests/test-results/jupyter-server.log"
log "finished in $(( $(date +%s) - start )) s (exit $rc)"
exit "$rc"
