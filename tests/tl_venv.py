"""Run a script in the TransformerLens 3.9 + SAELens 6.54.12 venv (benchmarks/tl_env.sh builds it).

>>> from tests.tl_venv import run_in_tl_venv                      # doctest: +SKIP
>>> run_in_tl_venv(["tests/sae_saelens_worker.py", job_dir])       # doctest: +SKIP

The venv is ``$TL_BENCH_VENV`` or ``<repo>/.tl-bench``. Without it the calling test is skipped,
except under CI (``CI`` set), where a missing reference venv is a failure: the differential
tests must run there. The repository root is put on ``PYTHONPATH``, so a worker can import
this checkout's ``lenswidget`` next to TransformerLens and SAELens.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
WANT = {"transformer-lens": "3.9.0", "sae-lens": "6.54.12"}


def tl_python() -> Path:
    """The venv's python, after checking its versions; skips (or fails under CI) when absent."""
    venv = Path(os.environ.get("TL_BENCH_VENV") or REPO / ".tl-bench")
    python = venv / "bin" / "python"
    problem = None
    if not python.exists():
        problem = f"no TransformerLens reference venv at {venv}"
    else:
        probe = ("import importlib.metadata as m; print(m.version('transformer-lens'), m.version('sae-lens'))")
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120)
        got = out.stdout.split()
        if out.returncode != 0 or got != list(WANT.values()):
            problem = f"{venv} does not have {WANT} (got {got or out.stderr.strip()[-300:]})"
    if problem:
        msg = f"{problem}; build it with: bash benchmarks/tl_env.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return python


def run_in_tl_venv(args: Sequence[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """``<tl venv python> *args`` from the repo root; raises with the output tail when it fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([str(tl_python()), *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"TL-venv worker failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc
