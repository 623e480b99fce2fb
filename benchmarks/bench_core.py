"""Core benchmark: lenswidget vs HuggingFace transformers on SmolLM2-135M-Instruct, same weights.

Measures (median of interleaved repetitions after warm-up, ``torch.inference_mode`` for both):

* forward, no hooks                       target <= 1.05x HF forward
* run_with_cache, every hook              target <= 1.25x HF forward
* generate 50 tokens, KV cache, greedy    target <= 1.10x HF generate
* loading (bench_load.py): first load from the GGUF   target <= 15 s
  reload from the cache in a fresh process              target <= 2 s quiet, <= 1.5x the floor
  load memory (peak RSS above baseline / weights)       target <= 1.3x + 64 MiB

Prints a table and writes JSON to ``benchmarks/results/``. Usage::

    python benchmarks/bench_core.py [--reps 7] [--batch 4] [--seq 64] [--skip-gguf] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGETS = {"forward": 1.05, "run_with_cache": 1.25, "generate_50": 1.10}


def _time(fn, cpu: list) -> float:
    c, t = time.process_time(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    cpu.append(time.process_time() - c)
    return wall


def paired(ours, theirs, reps: int, warmup: int = 2) -> dict:
    """Interleaved timings of two callables; medians and their ratio.

    The process CPU time (user + system, all threads) of each call is recorded too: on a busy
    machine it is less disturbed than the wall time (``ratio_cpu``)."""
    with torch.inference_mode():
        for _ in range(warmup):
            ours()
            theirs()
        a, b, ca, cb = [], [], [], []
        for i in range(reps):
            if i % 2:  # alternate the order so drift hits both sides alike
                b.append(_time(theirs, cb))
                a.append(_time(ours, ca))
            else:
                a.append(_time(ours, ca))
                b.append(_time(theirs, cb))
    ma, mb = statistics.median(a), statistics.median(b)
    # min/min is reported too: on a shared machine it is the least noisy estimate
    return {"ours_s": ma, "hf_s": mb, "ratio": ma / mb, "ratio_min": min(a) / min(b),
            "ours_p90_s": _p90(a), "hf_p90_s": _p90(b),
            "ratio_cpu": statistics.median(ca) / statistics.median(cb), "ratio_cpu_min": min(ca) / min(cb),
            "ours_all": a, "hf_all": b, "ours_cpu_all": ca, "hf_cpu_all": cb}


def _p90(xs: list) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def bench_loading(reps: int, skip_gguf: bool) -> dict:
    """Fresh-process load times and load memory beside their targets (see bench_load.py), plus
    in-process loads from the cache beside HF's load of the same float32 directory."""
    from transformers import AutoModelForCausalLM

    from bench_load import measure
    from lenswidget import HookedTransformer
    from lenswidget.loading import default_model_dir

    res = measure(reps=max(3, reps), skip_first=skip_gguf)
    load = paired(
        lambda: HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu"),
        lambda: AutoModelForCausalLM.from_pretrained(default_model_dir(), dtype=torch.float32),
        reps=max(3, reps // 2), warmup=1,
    )
    res["in_process"] = {"ours_cache_load_s": load["ours_s"], "hf_dir_load_s": load["hf_s"]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--gen-tokens", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-gguf", action="store_true", help="skip the (slow) first-time GGUF conversion")
    ap.add_argument("--skip-loading", action="store_true")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="keep glibc's malloc defaults (LENSWIDGET_MALLOC_TUNING=0; see lenswidget/allocator.py)")
    ap.add_argument("--only", choices=["forward", "run_with_cache", "generate_50"], action="append",
                    help="run only these timings (repeatable)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_malloc_tuning:
        os.environ["LENSWIDGET_MALLOC_TUNING"] = "0"

    from transformers import AutoModelForCausalLM

    from lenswidget import HookedTransformer
    from lenswidget.loading import default_model_dir

    load_before = os.getloadavg()
    model = HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu")
    hf = AutoModelForCausalLM.from_pretrained(default_model_dir(), dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(100, 40000, (args.batch, args.seq), generator=gen)
    prompt = model.to_tokens("The capital of France is")

    results: dict = {}
    want = set(args.only or TARGETS)
    if "forward" in want:
        results["forward"] = paired(lambda: model(tokens), lambda: hf(tokens).logits, args.reps)
    if "run_with_cache" in want:
        results["run_with_cache"] = paired(lambda: model.run_with_cache(tokens), lambda: hf(tokens).logits,
                                           args.reps)
    n = args.gen_tokens
    if "generate_50" in want:
        results["generate_50"] = paired(
            lambda: model.generate(prompt, max_new_tokens=n, do_sample=False, stop_at_eos=False,
                                   use_past_kv_cache=True, verbose=False),
            lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                                min_new_tokens=n, do_sample=False),
            max(3, args.reps // 2), warmup=1,
        )
    loading = {} if args.skip_loading else bench_loading(args.reps, args.skip_gguf)
    from lenswidget.allocator import keep_freed_memory

    malloc_tuned = keep_freed_memory()

    print(f"\nSmolLM2-135M-Instruct, CPU, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch} x seq {args.seq}, load avg before {load_before[0]:.1f}, "
          f"malloc tuning {'on' if malloc_tuned else 'off'}")
    print(f"{'benchmark (median)':<20}{'lenswidget':>12}{'HF':>12}{'ratio':>8}{'min/min':>9}"
          f"{'p90 ours':>10}{'p90 HF':>9}{'cpu ratio':>10}{'cpu min':>8}{'target':>8}")
    for name, r in results.items():
        flag = "ok" if r["ratio"] <= TARGETS[name] else "SLOW"
        print(f"{name:<20}{r['ours_s']*1e3:>10.1f}ms{r['hf_s']*1e3:>10.1f}ms{r['ratio']:>8.3f}"
              f"{r['ratio_min']:>9.3f}{r['ours_p90_s']*1e3:>8.1f}ms{r['hf_p90_s']*1e3:>7.1f}ms"
              f"{r['ratio_cpu']:>10.3f}{r['ratio_cpu_min']:>8.3f}{TARGETS[name]:>7.2f}x {flag}")
    if loading:
        from bench_load import report

        print()
        report(loading)
        print(f"in-process load from the cache: lenswidget {loading['in_process']['ours_cache_load_s']:.2f} s, "
              f"HF (same float32 dir) {loading['in_process']['hf_dir_load_s']:.2f} s")

    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench_core-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "args": vars(args), "targets": TARGETS, "results": results, "loading": loading,
        "malloc_tuning": malloc_tuned,
    }, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
