"""SAE views on SmolLM2-135M with the default SAE: the feature dashboard's corpus pass against a
plain forward pass over the same windows (the least any dashboard must compute), its bounded
state, switching features, and the kernel time of the SAE clicks in the explorer and the patcher.

* dashboard pass: process CPU seconds of ``FeatureDashboard.compute()`` (``feature_activations``:
  the model up to the SAE's block and the encoder; top-k and histogram bookkeeping) and of
  ``model(tokens, stop_at_layer=13)`` on the same batches; ratio = pass / forward;
* state: numbers the pass keeps (``d_sae x (3 k + bins)``), for two corpus sizes (must not grow);
* clicks: ``_handle_msg`` as the browser sends them (``open_sae``, ``open_feature``,
  ``add_feature_patch``, ``remove_feature_patch``), median and p90 ms.

    .venv/bin/python benchmarks/bench_sae_views.py               # 80 documents, 3 repeats
    .venv/bin/python benchmarks/bench_sae_views.py --docs 595    # the whole shipped corpus
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import time

import torch

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _p90(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def _msg(content: dict) -> dict:
    return {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}


def _click(w, content: dict) -> float:
    t0 = time.perf_counter()
    w._handle_msg(_msg(content))
    ms = (time.perf_counter() - t0) * 1e3
    if w.error:
        raise RuntimeError(f"rejected: {w.error}")
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=80, help="documents of the shipped corpus to scan")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)

    import lenswidget as lw
    from lenswidget import HookedSAETransformer
    from lenswidget.sae import load_corpus, load_default_sae

    model = HookedSAETransformer.from_pretrained("SmolLM2-135M-Instruct")
    sae = load_default_sae()
    docs = load_corpus()[: args.docs]
    stop = int(sae.cfg.hook_name.split(".")[1]) + 1

    scan, plain = [], []
    for _ in range(args.repeats):
        dash = lw.feature(model, sae, 0, docs)
        c0 = time.process_time()
        dash.compute()
        scan.append(time.process_time() - c0)
        w = dash._windows
        c0 = time.process_time()
        for s in range(0, w.n, 16):
            model(model.to_tokens(w.texts[s:s + 16], padding_side="right"), stop_at_layer=stop)
        plain.append(time.process_time() - c0)
    switch = []
    for f in range(1, 1 + args.repeats * 2):
        c0 = time.process_time()
        dash.idx = f
        switch.append(time.process_time() - c0)
    small = lw.feature(model, sae, 0, docs[:10], compute=True)
    state = lambda d: sum(t.numel() for t in (d._scan.top.values, d._scan.top.window, d._scan.top.pos,  # noqa: E731
                                              d._scan.hist.counts, d._scan.hist.fired, d._scan.hist.max))

    prompt, corrupted = "The capital of France is", "The capital of Italy is"
    ex = lw.residual(model, prompt, answer=" Paris", incorrect=" Rome", saes=[sae])
    hook = sae.cfg.hook_name
    clicks: dict[str, list[float]] = {"open_sae": [], "open_feature": [], "add_feature_patch": [],
                                      "remove_feature_patch": []}
    pw = lw.patcher(model, prompt, corrupted, answer=" Paris", incorrect=" Rome", saes=[sae])
    f0 = pw.feature_grid["features"][0]
    for i in range(args.repeats * 2):
        ex.close_sae()
        clicks["open_sae"].append(_click(ex, {"type": "open_sae", "hook": hook}))
        clicks["open_feature"].append(_click(ex, {"type": "open_feature", "hook": hook, "feature": 100 + i}))
        clicks["add_feature_patch"].append(_click(pw, {"type": "add_feature_patch", "hook": hook, "features": [f0],
                                                       "positions": [4, 4], "mode": "clean"}))
        pid = pw.feature_patches[-1]["id"]
        clicks["remove_feature_patch"].append(_click(pw, {"type": "remove_feature_patch", "id": pid}))

    out = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "threads": args.threads,
        "docs": len(docs), "windows": dash.n_windows, "tokens": int(dash._windows.n_tokens),
        "scan_cpu_s": {"median": statistics.median(scan), "p90": _p90(scan)},
        "plain_forward_cpu_s": {"median": statistics.median(plain), "p90": _p90(plain)},
        "ratio": statistics.median(scan) / statistics.median(plain),
        "switch_feature_cpu_s": {"median": statistics.median(switch), "p90": _p90(switch)},
        "state_numbers": {f"{len(docs)} docs": state(dash), "10 docs": state(small)},
        "clicks_ms": {k: {"median": statistics.median(v), "p90": _p90(v)} for k, v in clicks.items()},
    }
    print(f"dashboard pass over {out['docs']} documents ({out['windows']} windows, {out['tokens']} tokens), "
          f"{args.threads} thread(s), process CPU s:")
    print(f"  pass            median {out['scan_cpu_s']['median']:.2f}  p90 {out['scan_cpu_s']['p90']:.2f}")
    plain_s = out["plain_forward_cpu_s"]
    print(f"  plain forward   median {plain_s['median']:.2f}  p90 {plain_s['p90']:.2f}")
    print(f"  ratio {out['ratio']:.2f} (target <= 1.5: the pass costs little more than the forward it needs)")
    print(f"  switch feature  median {out['switch_feature_cpu_s']['median']:.2f} s (one forward over its top windows)")
    print(f"  state: {out['state_numbers']} numbers (bounded: the same for any corpus size)")
    for k, v in out["clicks_ms"].items():
        print(f"  click {k:22s} median {v['median']:.0f} ms  p90 {v['p90']:.0f} ms")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sae_views.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
