"""Load times of the built-in SmolLM2-135M-Instruct, each in a fresh process, beside their targets.

* first load from the GGUF (empty cache: dequantise, convert, process, cache)   target <= 15 s
  (reference: HF's own GGUF load of the same file)
* reload from the converted cache                                             target <= 2 s on a quiet
  machine, and <= 1.5x the floor: a fresh process that imports torch and reads the same
  safetensors file (the cached processed weights) with ``safetensors.torch.load_file``
* load memory of the reload: peak RSS above the process's baseline / weight bytes (float32)
* ``import lenswidget`` imports no transformers; a reload imports none either (the tokenizer of
  the cached model loads on first use: "reload + first to_tokens" shows that cost too)

Times are wall-clock times of whole subprocesses (interpreter start included, for both sides);
reloads and floors are interleaved. Prints a table and writes JSON to ``benchmarks/results/``::

    python benchmarks/bench_load.py [--reps 7] [--first-reps 1] [--skip-first] [--skip-hf-gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"first_load_s": 15.0, "reload_s": 2.0, "reload_vs_floor": 1.5}
_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

_RELOAD = """
import sys
from lenswidget import HookedTransformer
model = HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu")
print("CONFIG_CLASS", any(m.startswith("transformers.models.llama") for m in sys.modules))
print("TRANSFORMERS", "transformers" in sys.modules)
"""
_RELOAD_TEXT = _RELOAD + """
model.to_tokens("The capital of France is")  # the tokenizer loads on first use
"""
_FLOOR = """
import torch
from safetensors.torch import load_file
load_file({path!r})
"""


_CPU: list[float] = []  # CPU seconds (user + sys) of the last subprocess


def _wall(code: str, env: dict | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of ``python -c code``; its CPU seconds go to ``_CPU``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN) if resource else None
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env or _ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if resource:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        _CPU[:] = [after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime]
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return wall, out.stdout


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return {"median": statistics.median(xs), "p90": p90, "min": xs[0], "all": xs}


def processed_file() -> Path:
    """The cached processed weights the default reload reads (made by one load if missing)."""
    from lenswidget import HookedTransformer
    from lenswidget.loading import default_model_dir

    d = default_model_dir()
    HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu")  # builds it if missing
    return max(d.glob("processed-*.safetensors"), key=lambda p: p.stat().st_mtime)


def reload_vs_floor(reps: int) -> dict:
    path = processed_file()
    ours, floor, config_class, transformers, cpu_ours, cpu_floor = [], [], [], [], [], []
    _wall(_FLOOR.format(path=str(path)))  # warm the page cache and the interpreter's files
    _wall(_RELOAD)
    for i in range(reps):
        pair = [("ours", _RELOAD), ("floor", _FLOOR.format(path=str(path)))]
        for name, code in (pair if i % 2 == 0 else pair[::-1]):
            seconds, out = _wall(code)
            (ours if name == "ours" else floor).append(seconds)
            if _CPU:
                (cpu_ours if name == "ours" else cpu_floor).append(_CPU[0])
            if name == "ours":
                config_class.append("CONFIG_CLASS True" in out)
                transformers.append("TRANSFORMERS True" in out)
    text = [_wall(_RELOAD_TEXT)[0] for _ in range(max(1, reps // 2))]
    o, f = _stats(ours), _stats(floor)
    return {"reload_s": o, "floor_s": f, "reload_vs_floor": o["median"] / f["median"],
            "reload_then_tokenize_s": _stats(text),
            "reload_cpu_s": _stats(cpu_ours) if cpu_ours else None,
            "floor_cpu_s": _stats(cpu_floor) if cpu_floor else None,
            "reload_imported_a_config_class": any(config_class),
            "reload_imported_transformers": any(transformers), "file": str(path),
            "file_bytes": path.stat().st_size}


def first_load(reps: int) -> dict:
    code = ("from lenswidget import HookedTransformer\n"
            "HookedTransformer.from_pretrained('SmolLM2-135M-Instruct', device='cpu')\n")
    times, cpu = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            times.append(_wall(code, {**_ENV, "LENSWIDGET_CACHE_DIR": tmp})[0])
            cpu.extend(_CPU)
    return dict(_stats(times), cpu=_stats(cpu) if cpu else None)


def hf_gguf_load() -> dict:
    from lenswidget.loading import default_gguf_path

    g = default_gguf_path()
    code = ("from transformers import AutoModelForCausalLM\n"
            f"AutoModelForCausalLM.from_pretrained({str(g.parent)!r}, gguf_file={g.name!r})\n")
    wall = _wall(code)[0]
    return {"wall": wall, "cpu": _CPU[0] if _CPU else None}


def import_check() -> dict:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lenswidget; from lenswidget import HookedTransformer"],
                         env=_ENV, capture_output=True, text=True, check=True)
    modules = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    return {"imports_transformers": any(m == "transformers" or m.startswith("transformers.") for m in modules),
            "imports_accelerate": any(m == "accelerate" for m in modules), "modules": len(modules)}


def load_memory() -> dict:
    """Peak RSS of a reload above the process's baseline, as bench_memory measures it."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_memory.py"), "--worker", "lenswidget",
                          "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct", "float32"],
                         env=_ENV, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"weights": r["weights"], "extra": r["peak"] - r["base"], "ratio": (r["peak"] - r["base"]) / r["weights"],
            "ratio_used": (r["peak_used"] - r["base"]) / r["weights"], "peak_total": r["peak"]}


def measure(reps: int = 7, first_reps: int = 1, skip_first: bool = False, skip_hf_gguf: bool = False) -> dict:
    res: dict = {"imports": import_check()}
    if not skip_first:
        res["first_load_s"] = first_load(first_reps)
        if not skip_hf_gguf:
            res["hf_gguf_load_s"] = hf_gguf_load()
    res.update(reload_vs_floor(reps))
    if sys.platform.startswith("linux"):
        res["memory"] = load_memory()
    return res


def report(res: dict) -> None:
    def row(name, value, target, ok, note=""):
        print(f"{name:<44}{value:>16}{target:>18}  {'ok' if ok else 'MISSED'} {note}")

    print(f"{'SmolLM2-135M-Instruct loading (fresh processes)':<44}{'measured':>16}{'target':>18}")
    if "first_load_s" in res:
        f = res["first_load_s"]
        hf = res.get("hf_gguf_load_s")
        note = f"  (HF GGUF load {hf['wall']:.1f} s)" if hf else ""
        row("first load from GGUF, median", f"{f['median']:.2f} s", "<= 15 s", f["median"] <= TARGETS["first_load_s"], note)
        if f.get("cpu"):
            note = f"  (HF {hf['cpu']:.1f} s)" if hf and hf.get("cpu") else ""
            row("  same in CPU seconds (user+sys), median", f"{f['cpu']['median']:.2f} s", "", True, note)
    r, fl = res["reload_s"], res["floor_s"]
    row("reload from cache, median (p90)", f"{r['median']:.2f} ({r['p90']:.2f}) s", "<= 2 s quiet",
        r["median"] <= TARGETS["reload_s"])
    row("floor: import torch + read file, median", f"{fl['median']:.2f} ({fl['p90']:.2f}) s", "", True)
    row("reload / floor (medians)", f"{res['reload_vs_floor']:.2f}x", "<= 1.5x",
        res["reload_vs_floor"] <= TARGETS["reload_vs_floor"])
    if res.get("reload_cpu_s"):  # CPU seconds hardly depend on how busy the machine is
        rc, fc = res["reload_cpu_s"]["median"], res["floor_cpu_s"]["median"]
        row("  same in CPU seconds (user+sys), median", f"{rc:.2f} / {fc:.2f} s", "", True, f"= {rc / fc:.2f}x")
    t = res["reload_then_tokenize_s"]
    row("reload + first to_tokens (loads tokenizer)", f"{t['median']:.2f} ({t['p90']:.2f}) s", "", True)
    row("reload imports a transformers config class", str(res["reload_imported_a_config_class"]), "False",
        not res["reload_imported_a_config_class"])
    row("reload imports transformers", str(res["reload_imported_transformers"]), "False",
        not res["reload_imported_transformers"])
    row("import lenswidget imports transformers", str(res["imports"]["imports_transformers"]), "False",
        not res["imports"]["imports_transformers"])
    if "memory" in res:
        m = res["memory"]
        row("reload peak RSS above baseline / weights", f"{m['ratio']:.2f}x", "<= 1.3x + 64MiB",
            m["extra"] <= 1.3 * m["weights"] + (64 << 20),
            f"(weights {m['weights'] / 2**20:.0f} MB f32, memory-mapped; {m['ratio_used']:.2f}x once all read)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--first-reps", type=int, default=1)
    ap.add_argument("--skip-first", action="store_true", help="skip the first-load (GGUF conversion) timing")
    ap.add_argument("--skip-hf-gguf", action="store_true", help="skip HF's own GGUF load (the reference)")
    args = ap.parse_args()
    load_before = os.getloadavg()
    res = measure(args.reps, args.first_reps, args.skip_first, args.skip_hf_gguf)
    print(f"\nload avg before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; cpus {os.cpu_count()}")
    report(res)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set: a module edited since scripts/setup.sh compiled the "
              "package is recompiled in every fresh process (up to ~0.4 s of the reload)")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                            "dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
                                            "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
                                "args": vars(args), "targets": TARGETS, "results": res}, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
