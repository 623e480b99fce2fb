"""Kernel-side latency of a drop in the patcher widget versus a naive full hooked forward.

A "drop" is what the kernel does when the browser sends ``add_patch``: validate, run the
corrupted prompt with every chip composed (starting at the lowest patched layer from the
cached corrupted residual, recomputing only positions >= the first changed one), evaluate
the metric and the top tokens, regenerate the code. The naive baseline is the seed's way:
``model.run_with_hooks(corrupted_tokens, fwd_hooks=...)`` from the embedding, every
position, then the metric. Target: a drop in < 0.5 s on SmolLM2 with 16-token prompts (CPU).

    .venv/bin/python benchmarks/bench_patcher.py            # SmolLM2-135M-Instruct
    .venv/bin/python benchmarks/bench_patcher.py --tiny     # a tiny random model (smoke run)
    .venv/bin/python benchmarks/bench_patcher.py --repeats 7 --threads 2 --sweep
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lenswidget.widgets.patcher import patcher

CLEAN = "When John and Mary went to the store, Mary gave a bottle of milk to"
CORRUPTED = "When John and Mary went to the store, John gave a bottle of milk to"


def _tokens(model, text: str, n: int) -> torch.Tensor:
    toks = model.to_tokens(text)
    if toks.shape[1] < n:
        raise SystemExit(f"prompt has {toks.shape[1]} tokens < {n}")
    return torch.cat([toks[:, :1], toks[:, toks.shape[1] - n + 1:]], dim=1)  # BOS + the last n-1 tokens


def _interleaved(fns, repeats: int) -> list[tuple[float, float]]:
    """(min, median) ms of each function, timed alternately so they share the machine's load."""
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [(1e3 * min(ts), 1e3 * statistics.median(ts)) for ts in times]


def _naive(w, patches: list[dict]):
    """The seed's loop body: one full run_with_hooks forward with the same patches, then the metric."""
    model, runs = w.runs.model, w.runs
    hooks = []
    for p in patches:
        for layer in p["layers"]:
            name = f"blocks.{layer}.hook_{p['act']}" if p["heads"] is None else f"blocks.{layer}.attn.hook_{p['act']}"
            src = runs.clean_cache[name]
            mean = runs.corrupted_cache[name].mean((0, 1), keepdim=True)
            pos = slice(None) if p["positions"] is None else p["positions"]

            def hook(act, hook, p=p, src=src, mean=mean, pos=pos):
                if p["act"] == "pattern":
                    where = (slice(None), p["heads"], pos)
                elif p["heads"] is None:
                    where = (slice(None), pos)
                else:
                    where = (slice(None), pos, p["heads"])  # one head per case: no index broadcasting
                value = src if p["mode"] == "clean" else (mean.expand_as(act) if p["mode"] == "mean" else torch.zeros_like(act))
                act[where] = value[where]
                return act

            hooks.append((name, hook))

    def run():
        with torch.no_grad():
            logits = model.run_with_hooks(runs.corrupted_tokens, fwd_hooks=hooks)
            return float(runs.metric(logits))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny random model instead of SmolLM2")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--sweep", action="store_true", help="also time the exact resid_pre and z sweeps")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    if args.tiny:
        from tests.models import tiny_model

        model = tiny_model("llama", tokenizer=True, n_layers=4, n_ctx=64)
        clean_text, corrupted_text = "The cat sat on the mat. The dog sat on the log. The", "The dog sat on the mat. The cat sat on the log. The"
    else:
        from lenswidget import HookedTransformer

        model = HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu")
        clean_text, corrupted_text = CLEAN, CORRUPTED
    clean, corrupted = _tokens(model, clean_text, args.tokens), _tokens(model, corrupted_text, args.tokens)
    t = time.perf_counter()
    w = patcher(model, clean, corrupted)
    build = time.perf_counter() - t
    L, T = model.cfg.n_layers, clean.shape[1]
    diff = [i for i, d in enumerate(w.token_differs) if d]
    p_diff = diff[0] if diff else T // 2
    late, mid = L - 2, L // 2
    cases = [
        ("resid_pre, late layer, last pos", [dict(act="resid_pre", layers=[late], positions=[T - 1], heads=None)]),
        ("resid_pre, layer 1, changed pos", [dict(act="resid_pre", layers=[1], positions=[p_diff], heads=None)]),
        ("resid_mid, mid layer, last pos", [dict(act="resid_mid", layers=[mid], positions=[T - 1], heads=None)]),
        ("attn_out, mid layer, last pos", [dict(act="attn_out", layers=[mid], positions=[T - 1], heads=None)]),
        ("mlp_out, layer 0, changed pos", [dict(act="mlp_out", layers=[0], positions=[p_diff], heads=None)]),
        ("z, mid layer head 1, all pos", [dict(act="z", layers=[mid], positions=None, heads=[1])]),
        ("q, late layer head 0, last pos", [dict(act="q", layers=[late], positions=[T - 1], heads=[0])]),
        ("k, mid layer kv-head 0, all pos", [dict(act="k", layers=[mid], positions=None, heads=[0])]),
        ("v, layer 2 kv-head 1, changed pos", [dict(act="v", layers=[2], positions=[p_diff], heads=[1])]),
        ("pattern, mid layer head 2, last dest", [dict(act="pattern", layers=[mid], positions=[T - 1], heads=[2])]),
        ("zero-ablate resid_pre L0, all pos", [dict(act="resid_pre", layers=[0], positions=None, heads=None, mode="zero")]),
        ("mean-ablate mlp_out L0-3, all pos", [dict(act="mlp_out", layers=[0, 1, 2, 3], positions=None, heads=None, mode="mean")]),
        ("4 chips composed", [
            dict(act="resid_pre", layers=[late], positions=[T - 1], heads=None),
            dict(act="z", layers=[mid], positions=None, heads=[1]),
            dict(act="v", layers=[2], positions=[p_diff], heads=[1]),
            dict(act="mlp_out", layers=[mid + 1], positions=[T - 1], heads=None, mode="mean"),
        ]),
    ]
    print(f"model {model.cfg.model_name} ({L} layers), {T}-token prompts, torch threads {torch.get_num_threads()}, "
          f"first changed position {p_diff}; widget build {build * 1e3:.0f} ms; median of {args.repeats}")
    print("times: min / median ms over the repeats (widget and naive alternate, so both see the same load)")
    print(f"{'drop':38s} {'widget ms':>15s} {'naive ms':>15s} {'naive/widget':>13s}   plan (start layer, first pos)")
    for name, patches in cases:
        for p in patches:
            p.setdefault("mode", "clean")

        def drop():
            w.clear_patches()
            for p in patches:
                w._handle_msg({"content": {"data": {"method": "custom", "content": {
                    "type": "add_patch", "act": p["act"], "layers": [min(p["layers"]), max(p["layers"])],
                    "positions": None if p["positions"] is None else [min(p["positions"]), max(p["positions"])],
                    "heads": None if p["heads"] is None else [min(p["heads"]), max(p["heads"])], "mode": p["mode"]}}}})
            assert not w.error, w.error

        # time only the last chip's drop (what one drag costs), the others are set up before
        w.clear_patches()
        for p in patches[:-1]:
            w.add_patch(p["act"], p["layers"], p["positions"], p["heads"], p["mode"])
        last = patches[-1]
        content = {"type": "add_patch", "act": last["act"], "layers": [min(last["layers"]), max(last["layers"])],
                   "positions": None if last["positions"] is None else [min(last["positions"]), max(last["positions"])],
                   "heads": None if last["heads"] is None else [min(last["heads"]), max(last["heads"])], "mode": last["mode"]}

        def one_drop():
            w._handle_msg({"content": {"data": {"method": "custom", "content": content}}})
            pid = w.patches[-1]["id"]
            w._patches = w._patches[:-1]  # undo without recomputing (not timed work)
            w._sync_patches()
            return pid

        drop()
        value = w.metric_value
        plan = w._forward.plan(w.patch_set)
        naive = _naive(w, list(w.patches))
        assert abs(naive() - value) < 1e-3, (name, naive(), value)
        w.clear_patches()
        for p in patches[:-1]:
            w.add_patch(p["act"], p["layers"], p["positions"], p["heads"], p["mode"])
        (w_min, w_med), (n_min, n_med) = _interleaved([one_drop, naive], args.repeats)
        print(f"{name:38s} {w_min:7.1f} / {w_med:5.0f} {n_min:7.1f} / {n_med:5.0f} {n_min / w_min:12.1f}x   ({plan.l0}, {plan.p0})")
    if args.sweep:
        for act in ("resid_pre", "z"):
            t = time.perf_counter()
            w.run_sweep(act=act, position=None)
            dt = time.perf_counter() - t
            print(f"exact sweep {act:10s} {w.sweep_progress[1]:5d} patched runs in {dt:6.2f} s")


if __name__ == "__main__":
    main()
