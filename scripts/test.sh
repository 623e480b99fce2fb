#!/usr/bin/env bash
# Run every test suite (assumes scripts/setup.sh has run): TypeScript typecheck + vitest,
# pytest (the core, CI never skips it), and the Galata specs in real JupyterLab + Chromium.
# Every suite runs even when an earlier one fails; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${LENSWIDGET_VENV:-$PWD/.venv}
export PATH="$VENV/bin:$PATH"
mkdir -p test-results
failed=()

run() {  # run NAME CMD...
    local name=$1; shift
    printf '\n==> %s\n' "$name"
    if "$@"; then echo "--> $name: ok"; else echo "--> $name: FAILED"; failed+=("$name"); fi
}

run "typecheck (tsc --noEmit)" npm run --silent typecheck
run "frontend unit tests (vitest)" npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json
run "python tests (pytest)" python -m pytest -q -rs --junitxml=test-results/pytest.xml
if [ -d ui-tests ] && [ -f ui-tests/package.json ] && [ -z "${LENSWIDGET_SKIP_UI_TESTS:-}" ]; then
    run "browser tests (galata)" bash scripts/ui-tests.sh
fi

python scripts/summarize_tests.py test-results || true
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED suites: ${failed[*]}"
    exit 1
fi
