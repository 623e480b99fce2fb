"""Device check for issue 11 (several devices through accelerate, lean loading).

On a machine with a GPU (default when CUDA is available):

1. load memory: ``from_pretrained(..., device="cuda", dtype=bfloat16)`` of a random-weight
   Qwen2-shaped model saved locally; ``torch.cuda.max_memory_allocated()`` during the load vs
   the weights' bytes (target <= 1.3x), beside HF ``from_pretrained(device_map="cuda")``;
2. split == whole: a cuda + cpu split (half the blocks on cuda:0, the rest and the unembedding on
   the CPU, offloaded by accelerate and run on cuda:0) and a cuda + disk split (``offload_folder``)
   against the same model loaded whole on cuda:0: logits, every cached activation, a hooked run
   and a patching sweep; and ``n_devices=2`` when there are two GPUs;
3. GPU memory held by the cuda + cpu split after loading (about its GPU share of the weights).

``--cpu`` runs the same checks without a GPU (a cpu + disk split; load memory as peak RSS), so
this script is tested in CI (tests/test_devices_gpu_check.py). Writes JSON to ``$OUT`` (or
``--out``) and prints a summary; exits 1 if a check fails::

    python benchmarks/gpu_check_devices.py                 # GPU
    python benchmarks/gpu_check_devices.py --cpu --size tiny --out /tmp/check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

SIZES = {  # Qwen2-shaped random models: (memory model, split-equality model)
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936),
    "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
                  intermediate_size=1536, vocab_size=32000),
    "tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=300),
}
MEMORY_TARGET = 1.3


def make_model(size: str, dtype: torch.dtype, root: Path) -> Path:
    """A random-weight Qwen2 model saved as safetensors in ``root`` (made once)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    path = root / f"qwen2-{size}-{str(dtype).split('.')[-1]}"
    if (path / "config.json").is_file():
        return path
    cfg = Qwen2Config(**SIZES[size], max_position_embeddings=2048, tie_word_embeddings=False,
                      architectures=["Qwen2ForCausalLM"])
    with torch.device("meta"):
        model = Qwen2ForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(dtype)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen) if p.dim() == 1
                    else torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1] ** 0.5))
    model.save_pretrained(path)
    return path


def _ht():
    from lenswidget import HookedTransformer

    return HookedTransformer


def _rss_peak_reset() -> int:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_peak() -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))


def load_memory(path: Path, device: str) -> dict:
    """Peak memory of loading ``path`` onto ``device`` (GPU: max_memory_allocated; CPU: RSS)."""
    import gc

    from transformers import AutoModelForCausalLM

    out = {}
    for lib in ("lenswidget", "hf"):
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        elif sys.platform.startswith("linux"):
            base = _rss_peak_reset()
        else:
            return {"skipped": "CPU load memory needs /proc (Linux)"}
        t = time.perf_counter()
        if lib == "lenswidget":
            m = _ht().from_pretrained(str(path), device=device, dtype=torch.bfloat16)
        else:
            m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map=device)
        seconds = time.perf_counter() - t
        peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda") else _rss_peak()) - base
        weights = sum(p.numel() * p.element_size() for p in m.parameters())
        out[lib] = {"peak_bytes": peak, "weight_bytes": weights, "ratio": peak / weights, "seconds": seconds}
        del m
    out["target_ratio"] = MEMORY_TARGET
    out["ok"] = out["lenswidget"]["ratio"] <= MEMORY_TARGET + (64 << 20) / out["lenswidget"]["weight_bytes"]
    return out


def _diff(a: torch.Tensor, b: torch.Tensor) -> dict:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    finite = torch.isfinite(a) & torch.isfinite(b)
    d = (a - b).abs()[finite]
    scale = b.abs()[finite].max().clamp_min(1e-12)
    return {"max_abs": float(d.max()) if d.numel() else 0.0, "max_rel": float(d.max() / scale) if d.numel() else 0.0}


def compare(whole, split, tol: float) -> dict:
    """Logits, every cached activation, a hooked run and a patching sweep: split vs whole."""
    from lenswidget import patching

    gen = torch.Generator().manual_seed(0)
    vocab = whole.cfg.d_vocab
    toks = torch.randint(3, vocab, (2, 12), generator=gen)
    res: dict = {}
    with torch.no_grad():
        res["logits"] = _diff(split(toks), whole(toks))
        lw, cw = whole.run_with_cache(toks, device="cpu")
        ls, cs = split.run_with_cache(toks, device="cpu")
        worst = {"max_rel": 0.0}
        for k in cw.keys():
            d = _diff(cs[k], cw[k])
            if d["max_rel"] >= worst["max_rel"]:
                worst = dict(d, key=k)
        res["cache_worst"] = worst
        res["cache_keys_equal"] = sorted(cs.keys()) == sorted(cw.keys())
        res["cache_on_cpu"] = all(v.device.type == "cpu" for v in cs.values())

        def ablate(z, hook):
            z[:, :, 0] = 0
            return z

        hooks = [(f"blocks.{whole.cfg.n_layers - 1}.attn.hook_z", ablate)]
        res["hooked_logits"] = _diff(split.run_with_hooks(toks, fwd_hooks=hooks), whole.run_with_hooks(toks, fwd_hooks=hooks))
    corrupted = toks.clone()
    corrupted[:, 3:5] = torch.randint(3, vocab, (2, 2), generator=gen)

    def metric(logits):
        return (logits[:, -1, 5] - logits[:, -1, 7]).mean()

    a = patching.get_act_patch_resid_pre(split, corrupted, cs, metric, verbose=False)
    b = patching.get_act_patch_resid_pre(whole, corrupted, cw, metric, verbose=False, method="hooks")
    res["sweep_resid_pre"] = _diff(a, b)
    res["results_device"] = str(a.device)
    res["ok"] = (res["cache_keys_equal"] and all(res[k]["max_rel"] <= tol for k in ("logits", "hooked_logits", "sweep_resid_pre"))
                 and res["cache_worst"]["max_rel"] <= tol)
    return res


def split_map(n_layers: int, first: str, rest: str) -> dict:
    half = n_layers // 2
    dm = {"embed": first, "ln_final": rest, "unembed": rest}
    dm.update({f"blocks.{i}": first if i < half else rest for i in range(n_layers)})
    return dm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="no GPU: cpu + disk split, RSS for load memory")
    ap.add_argument("--size", choices=list(SIZES), default=None,
                    help="model for the split checks (default: small; the memory check uses 0.5b on a GPU)")
    ap.add_argument("--memory-size", choices=list(SIZES), default=None)
    ap.add_argument("--out", default=os.environ.get("OUT"), help="output folder (default $OUT, else benchmarks/results)")
    ap.add_argument("--model-root", default=None, help="where random models are saved (default: a temp dir)")
    args = ap.parse_args()
    gpu = torch.cuda.is_available() and not args.cpu
    if not gpu and not args.cpu:
        print("no CUDA device: running the CPU mode (pass --cpu to ask for it)")
    size = args.size or ("small" if gpu else "tiny")
    mem_size = args.memory_size or ("0.5b" if gpu else size)
    root = Path(args.model_root or tempfile.mkdtemp(prefix="gpu-check-models-"))
    root.mkdir(parents=True, exist_ok=True)
    report: dict = {"mode": "gpu" if gpu else "cpu", "torch": torch.__version__, "platform": platform.platform(),
                    "size": size, "memory_size": mem_size}
    if gpu:
        report["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    device = "cuda:0" if gpu else "cpu"
    t0 = time.perf_counter()
    path = make_model(size, torch.float32, root)
    whole = _ht().from_pretrained(str(path), device=device)  # also imports everything before measuring
    report["load_memory"] = load_memory(make_model(mem_size, torch.bfloat16, root), device)
    n = whole.cfg.n_layers
    tol = 1e-4
    splits = {}
    with tempfile.TemporaryDirectory() as off:
        if gpu:
            splits["cuda+cpu"] = dict(device_map=split_map(n, "cuda:0", "cpu"))
            splits["cuda+disk"] = dict(device_map=split_map(n, "cuda:0", "disk"), offload_folder=off + "/a")
            if torch.cuda.device_count() >= 2:
                splits["n_devices=2"] = dict(n_devices=2)
        else:
            splits["cpu+disk"] = dict(device_map=split_map(n, "cpu", "disk"), offload_folder=off + "/a")
        report["splits"] = {}
        for name, kwargs in splits.items():
            if gpu:
                torch.cuda.empty_cache()
                before = torch.cuda.memory_allocated()
            model = _ht().from_pretrained(str(path), **kwargs)
            r = compare(whole, model, tol)
            r["placement"] = model._placement.describe()
            if gpu:
                r["gpu_bytes_held"] = torch.cuda.memory_allocated() - before
                r["weight_bytes"] = sum(p.numel() * p.element_size() for p in whole.parameters())
            report["splits"][name] = r
            del model
    report["seconds"] = time.perf_counter() - t0
    report["ok"] = report["load_memory"].get("ok", True) and all(r["ok"] for r in report["splits"].values())
    out_dir = Path(args.out) if args.out else ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "gpu_check_devices.json"
    out.write_text(json.dumps(report, indent=1))
    lm = report["load_memory"]
    if "lenswidget" in lm:
        print(f"load memory ({mem_size}, bf16, {device}): lenswidget {lm['lenswidget']['ratio']:.2f}x weights, "
              f"HF {lm['hf']['ratio']:.2f}x (target <= {MEMORY_TARGET}x)")
    for name, r in report["splits"].items():
        print(f"{name:<12} {'ok' if r['ok'] else 'FAILED'}: logits rel {r['logits']['max_rel']:.2e}, cache worst "
              f"{r['cache_worst']['max_rel']:.2e}, sweep {r['sweep_resid_pre']['max_rel']:.2e} ({r['placement']})")
    print(f"{'ok' if report['ok'] else 'FAILED'}; wrote {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
