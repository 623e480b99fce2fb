"""Run every side-by-side benchmark in this folder, one after another, with default settings.

Each ``bench_*.py`` prints its own table (ratios against its reference) and writes JSON to
``benchmarks/results/``. ``bench_patching.py`` compares with TransformerLens 3.9.0 when
``benchmarks/tl_env.sh`` has built its separate environment; otherwise it says so and skips TL.

    python benchmarks/run_all.py            # all
    python benchmarks/run_all.py core widgets
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = []
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        if subprocess.call([sys.executable, str(script)], cwd=HERE.parent) != 0:
            failed.append(script.name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
