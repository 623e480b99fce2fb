"""Attention inspector at scale, kernel side: 32 layers x 32 heads at 1,024 tokens.

A random-weight model (tiny d_model / d_head: the pattern count is what matters) is shown
in ``attention(model, tokens)``. Each configuration runs in a fresh subprocess, which
reports its peak resident memory above its own baseline (model built, torch loaded):

* ``reference``  - what the inspector did before: ``run_with_cache`` of every
  ``hook_pattern`` (float32), stacked into a float32 ``[L, H, n, n]`` array, max-pooled
  with numpy. Run at ``--ref-tokens`` (default 512): at 1,024 tokens it needs > 8 GiB.
* ``new@ref``    - ``attention(...)`` at the same size, for the side-by-side ratio;
* ``all-layers`` - ``attention(...)`` at ``--tokens`` with every layer kept as float16
  (``max_pattern_mb`` raised to fit);
* ``capped``     - the same under the default cap (1024 MiB): one layer kept, switching
  layers reruns the model up to that layer (``layer switch`` column).

Timings: median and p90 of ``--repeat`` runs of build (forward + recording + encoding),
and of a layer switch (encoding one layer; a rerun when capped). The browser side (first
paint, hover, layer switch, prompt edit, browser memory) is measured in Chromium by
``ui-tests/tests/scale.spec.ts``.

    .venv/bin/python benchmarks/bench_widgets_scale.py
    .venv/bin/python benchmarks/bench_widgets_scale.py --tokens 1024 --ref-tokens 512 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
LAYERS, HEADS = 32, 32
MIB = 1 << 20


def build_model(n_ctx: int):
    """32 x 32 heads, d_head 2: a cheap forward whose patterns are full size."""
    import torch

    from lenswidget.config import HookedTransformerConfig
    from lenswidget.model import HookedTransformer

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=LAYERS, n_heads=HEADS, d_model=64, d_head=2, d_mlp=64, n_ctx=n_ctx,
                                  d_vocab=512, act_fn="gelu", normalization_type="LN", seed=0, device="cpu",
                                  dtype=torch.float32)
    return HookedTransformer(cfg).eval()


def _rss() -> tuple[int, int]:
    """(current, peak) resident bytes of this process."""
    fields = dict(line.split(":", 1) for line in pathlib.Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kb = lambda k: int(fields[k].split()[0]) * 1024  # noqa: E731
    return kb("VmRSS"), kb("VmHWM")


def _stats(xs: list[float]) -> dict:
    s = sorted(xs)
    return {"median": round(statistics.median(s), 1), "p90": round(s[min(len(s) - 1, int(0.9 * len(s)))], 1), "n": len(s)}


def child(kind: str, n: int, repeat: int) -> dict:
    """One configuration, in this (fresh) process."""
    import numpy as np
    import torch

    torch.set_grad_enabled(False)
    model = build_model(max(n, 8) + 8)
    tokens = torch.randint(0, model.cfg.d_vocab, (1, n), generator=torch.Generator().manual_seed(1))
    model(tokens[:, :8], return_type=None)  # warm up kernels
    base, _ = _rss()
    builds, switches, out = [], [], {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        if kind == "reference":
            names = lambda name: name.endswith("hook_pattern")  # noqa: E731
            _, cache = model.run_with_cache(tokens, names_filter=names, return_type=None)
            data = np.stack([cache[f"blocks.{l}.attn.hook_pattern"][0].float().numpy() for l in range(LAYERS)])
            del cache
            edges = np.linspace(0, n, 33).round().astype(int)
            rows = np.maximum.reduceat(data, edges[:-1], axis=-2)
            thumbs = np.maximum.reduceat(rows, edges[:-1], axis=-1)
            out = {"kept_bytes": int(data.nbytes + thumbs.nbytes)}
            builds.append((time.perf_counter() - t0) * 1e3)
            for layer in (LAYERS // 2, LAYERS - 1):
                t1 = time.perf_counter()
                payload = np.rint(np.clip(data[layer], 0, 1) * 255).astype(np.uint8).tobytes()
                switches.append((time.perf_counter() - t1) * 1e3)
            del data, payload
        else:
            from lenswidget.widgets import attention

            cap = {"capped": 1024}.get(kind, int((LAYERS * HEADS * n * n * 2) / MIB) + 64)
            w = attention(model, tokens, max_tokens=n, max_pattern_mb=cap)
            builds.append((time.perf_counter() - t0) * 1e3)
            out = {"kept_bytes": w.kernel_bytes, "note": w.note,
                   "thumbs_bytes": len(w.thumbs["buffer"]), "pattern_bytes": len(w.pattern["buffer"])}
            for layer in (LAYERS // 2, LAYERS - 1):
                t1 = time.perf_counter()
                w.layer = layer  # encodes (and, capped, recomputes) that layer's pattern
                switches.append((time.perf_counter() - t1) * 1e3)
            w.close()
            del w
    _, peak = _rss()
    return {"kind": kind, "tokens": n, "build_ms": _stats(builds), "layer_switch_ms": _stats(switches),
            "peak_rss_above_base_mib": round((peak - base) / MIB, 1), **out}


def run(kind: str, n: int, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--tokens", str(n), "--repeat", str(repeat)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--ref-tokens", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.tokens, args.repeat)))
        return
    rows = [run("reference", args.ref_tokens, args.repeat), run("new@ref", args.ref_tokens, args.repeat),
            run("all-layers", args.tokens, args.repeat), run("capped", args.tokens, args.repeat)]
    print(f"\n== attention inspector, kernel side: {LAYERS} layers x {HEADS} heads (load average {os.getloadavg()[0]:.1f}) ==")
    print(f"{'config':<12}{'tokens':>7}{'kept MiB':>10}{'peak MiB':>10}{'build ms (med/p90)':>22}{'switch ms (med/p90)':>22}")
    for r in rows:
        b, s = r["build_ms"], r["layer_switch_ms"]
        print(f"{r['kind']:<12}{r['tokens']:>7}{r['kept_bytes'] / MIB:>10.1f}{r['peak_rss_above_base_mib']:>10.1f}"
              f"{b['median']:>13.0f} / {b['p90']:<7.0f}{s['median']:>13.1f} / {s['p90']:<7.1f}")
    ref, new = rows[0], rows[1]
    ratios = {"kept_bytes_new_over_ref": round(new["kept_bytes"] / ref["kept_bytes"], 3),
              "peak_rss_new_over_ref": round(new["peak_rss_above_base_mib"] / max(1e-9, ref["peak_rss_above_base_mib"]), 3),
              "build_time_new_over_ref": round(new["build_ms"]["median"] / ref["build_ms"]["median"], 3)}
    print(f"\nat {args.ref_tokens} tokens, new / reference: kept bytes {ratios['kept_bytes_new_over_ref']}, "
          f"peak memory {ratios['peak_rss_new_over_ref']}, build time {ratios['build_time_new_over_ref']}")
    print(f"capped note: {rows[3].get('note', '')}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "widgets_scale.json"
    path.write_text(json.dumps({"rows": rows, "ratios": ratios, "load_average_1m": os.getloadavg()[0],
                                "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
