"""Run the differential cases with TransformerLens 3.9 (inside the .tl-bench venv).

``python tests/tl_compat/tl_worker.py JOB_DIR``: reads ``job.json`` ({"models": {family: dir},
"out": path}) and writes ``{f"{family}/{'processed' if p else 'unprocessed'}": {case: result}}``
plus ``"__signatures__"`` (signatures.py's dump of TL's API) with ``torch.save``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.tl_compat.*

from tests.tl_compat.runner import run_cases  # noqa: E402


def main(job_dir: str) -> None:
    torch.set_num_threads(1)
    job = json.loads((Path(job_dir) / "job.json").read_text())
    results = {}
    for family, model_dir in job["models"].items():
        for processed in (True, False):
            key = f"{family}/{'processed' if processed else 'unprocessed'}"
            results[key] = run_cases("transformer_lens", family, model_dir, processed)
            print(key, f"{results[key]['__seconds__']:.1f}s", flush=True)
    from tests.tl_compat.signatures import dump

    results["__signatures__"] = dump("transformer_lens")  # one TL start-up for both test files
    torch.save(results, job["out"])


if __name__ == "__main__":
    main(sys.argv[1])
