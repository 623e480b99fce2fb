"""Load memory: lenswidget vs HF ``from_pretrained`` (and TransformerLens 3.9 where installed),
on a random-weight Qwen2-shaped model of 0.49B parameters saved locally as safetensors.

Target (issue 11): lenswidget's peak resident memory during ``from_pretrained`` stays within
1.3x the weights' bytes in the target dtype, plus a fixed overhead (64 MiB here).

Each load runs in a fresh subprocess. It first imports its library and loads a tiny model of
the same family (imports and one-time setup are not load memory), then resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``), loads the model and reads the peak (``VmHWM``).
Reported: peak above the baseline, as a ratio to the weights' bytes. lenswidget loads with its
default processing (fold_ln, centring, value-bias folding); HF loads the raw weights;
TransformerLens goes its usual way (HF model, then conversion and processing).

Linux only (reads /proc). Usage::

    python benchmarks/bench_memory.py                    # 0.49B model, bf16 and float32
    python benchmarks/bench_memory.py --size small       # 0.06B model, a quick check
    python benchmarks/bench_memory.py --skip-tl --cases bf16:bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.3
FIXED_OVERHEAD = 64 << 20
SIZES = {  # Qwen2.5-0.5B's shape (494M parameters), and a small one for quick checks
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936),
    "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
                  intermediate_size=1536, vocab_size=32000),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=300),
}
DTYPES = {"bf16": "bfloat16", "f32": "float32"}


# ============================================================== worker (one load, fresh process)
def _peak_reset() -> int:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM"))


def _load(lib: str, path: str, dtype):
    import torch

    if lib == "lenswidget":
        from lenswidget import HookedTransformer

        return HookedTransformer.from_pretrained(path, device="cpu", dtype=dtype)
    from transformers import AutoModelForCausalLM

    if lib == "hf":
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    # TransformerLens 3.9, as its from_pretrained does it for a local directory
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer

    hf = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    cfg = loading.get_pretrained_model_config(path, hf_cfg=hf.config.to_dict(), fold_ln=True, device="cpu",
                                              dtype=dtype)
    model = HookedTransformer(cfg, move_to_device=False)
    state = loading.get_pretrained_state_dict(path, cfg, hf, dtype=dtype)
    model.load_and_process_state_dict(state, fold_ln=True, center_writing_weights=True, center_unembed=True,
                                      fold_value_biases=True)
    del hf, state
    assert isinstance(model, torch.nn.Module)
    return model


def worker(lib: str, path: str, tiny: str, dtype_name: str) -> None:
    import gc

    import torch

    dtype = getattr(torch, dtype_name)
    _load(lib, tiny, dtype)  # imports and one-time setup
    gc.collect()
    base = _peak_reset()
    t = time.perf_counter()
    model = _load(lib, path, dtype)
    seconds = time.perf_counter() - t
    peak = _peak()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.no_grad():  # first use: read every weight (memory-mapped ones become resident)
        for p in model.parameters():
            p.sum()
    print(json.dumps({"base": base, "peak": peak, "peak_used": _peak(), "weights": weights, "seconds": seconds}))


# ============================================================== driver
def make_model(size: str, dtype_name: str, root: Path) -> Path:
    """A random-weight Qwen2 model saved as safetensors (made once, kept in ``root``)."""
    path = root / f"qwen2-{size}-random-{dtype_name}"
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**SIZES[size], max_position_embeddings=4096, tie_word_embeddings=True,
                      architectures=["Qwen2ForCausalLM"])
    torch.manual_seed(0)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(getattr(torch, dtype_name))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    tmp = path.with_name(path.name + ".tmp")
    model.save_pretrained(tmp)
    os.replace(tmp, path)
    return path


def run_one(python: str, lib: str, path: Path, tiny: Path, dtype_name: str, env: dict) -> dict:
    out = subprocess.run([python, __file__, "--worker", lib, str(path), str(tiny), dtype_name],
                         capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["extra"] = r["peak"] - r["base"]
    r["ratio"] = r["extra"] / r["weights"]
    r["ratio_minus_overhead"] = max(0, r["extra"] - FIXED_OVERHEAD) / r["weights"]
    r["ratio_used"] = (r["peak_used"] - r["base"]) / r["weights"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["0.5b", "small"], default="0.5b")
    ap.add_argument("--cases", default="bf16:bf16,f32:f32,f32:bf16",
                    help="saved:loaded dtype pairs (bf16, f32)")
    ap.add_argument("--skip-tl", action="store_true")
    ap.add_argument("--tl-python", default=str(ROOT / ".tl-bench" / "bin" / "python"))
    ap.add_argument("--model-root", default=os.path.expanduser("~/.cache/lenswidget-bench"))
    ap.add_argument("--out", default=None, help="JSON file (default benchmarks/results/bench_memory-*.json)")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if not sys.platform.startswith("linux"):
        sys.exit("bench_memory reads /proc/self: Linux only")
    root = Path(args.model_root)
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    libs = [("lenswidget", sys.executable), ("hf", sys.executable)]
    if not args.skip_tl:
        if Path(args.tl_python).exists():
            libs.append(("transformerlens-3.9", args.tl_python))
        else:
            print(f"no TransformerLens venv at {args.tl_python} (benchmarks/tl_env.sh builds it): TL skipped")
    load_before = os.getloadavg()
    rows = []
    for case in args.cases.split(","):
        saved, loaded = case.split(":")
        path = make_model(args.size, DTYPES[saved], root)
        tiny = make_model("tiny", DTYPES[saved], root)
        for lib, python in libs:
            print(f"  {lib:<20} saved {saved:<4} -> {loaded:<4} ...", flush=True)
            r = run_one(python, "tl" if lib.startswith("transformerlens") else lib, path, tiny, DTYPES[loaded], env)
            rows.append({"lib": lib, "saved": saved, "loaded": loaded, **r})

    print(f"\nLoad peak RSS above baseline, {args.size} random Qwen2 (CPU); load avg before {load_before[0]:.1f}")
    print("(ratio: load peak above baseline / weight bytes; -64MiB: the same less the fixed overhead; "
          "used: peak once every weight was read, as memory-mapped weights are read lazily)")
    print(f"{'library':<22}{'saved->as':<12}{'weights':>10}{'peak extra':>12}{'ratio':>8}{'-64MiB':>8}"
          f"{'used':>7}{'load s':>8}  target")
    for r in rows:
        if "error" in r:
            print(f"{r['lib']:<22}{r['saved'] + '->' + r['loaded']:<12}  failed: {r['error'][:80]}")
            continue
        flag = ""
        if r["lib"] == "lenswidget":
            flag = f"<= {TARGET_RATIO}x + 64MiB " + ("ok" if r["ratio_minus_overhead"] <= TARGET_RATIO else "OVER")
        print(f"{r['lib']:<22}{r['saved'] + '->' + r['loaded']:<12}{r['weights'] / 2**20:>8.0f}MB"
              f"{r['extra'] / 2**20:>10.0f}MB{r['ratio']:>8.2f}{r['ratio_minus_overhead']:>8.2f}"
              f"{r['ratio_used']:>7.2f}{r['seconds']:>8.1f}  {flag}")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"bench_memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "args": {k: v for k, v in vars(args).items() if k != "worker"},
        "target": {"ratio": TARGET_RATIO, "fixed_overhead_bytes": FIXED_OVERHEAD},
        "results": rows,
    }, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
