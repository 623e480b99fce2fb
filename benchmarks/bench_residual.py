"""Residual explorer: kernel-side time and payload of each click (target: a click repaints < 50 ms).

Each interaction goes through the widget's comm entry point (``_handle_msg``), exactly as
a browser message would: validation, the computation from the cached activations, the
encoding, and the trait updates. Payload = the JSON + binary bytes of the traits that
changed (what ipywidgets sends back). "cold" is the first such click on a fresh widget
(memoised pieces computed), "warm" the median of repeats. No model forward pass happens
on any click except ``set_prompts`` (counted).

    .venv/bin/python benchmarks/bench_residual.py              # SmolLM2-135M-Instruct, 30 tokens
    .venv/bin/python benchmarks/bench_residual.py --tiny       # random tiny model (no download)
    .venv/bin/python benchmarks/bench_residual.py --prompts 4  # a batch of prompts
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import time
from typing import Any

import torch
from ipywidgets.widgets.widget import _remove_buffers

from lenswidget.widgets.residual import residual

PROMPT = ("The quick brown fox jumps over the lazy dog while the cat sleeps. In Europe, the capital of "
          "France is Paris and the capital of Italy is")
RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _load(tiny: bool) -> tuple[Any, str]:
    if tiny:
        import sys

        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
        from tests.models import tiny_model

        return tiny_model("gpt2", tokenizer=True, n_layers=4, n_ctx=64), "tiny-gpt2"
    from lenswidget import HookedTransformer

    return HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu"), "SmolLM2-135M-Instruct"


def _msg(content: dict) -> dict:
    return {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}


def _set(state: dict) -> dict:
    return {"content": {"data": {"method": "update", "state": state}}, "buffers": []}


def _payload(before: dict, after: dict) -> int:
    """Bytes ipywidgets would send for the traits that changed (JSON + binary buffers)."""
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    state, _, buffers = _remove_buffers(changed)
    return len(json.dumps(state).encode()) + sum(len(b) for b in buffers)


def _click(w: Any, message: dict) -> tuple[float, int]:
    before = w.get_state()
    t0 = time.perf_counter()
    w._handle_msg(message)
    ms = (time.perf_counter() - t0) * 1e3
    if w.error:
        raise RuntimeError(f"rejected: {w.error}")
    return ms, _payload(before, w.get_state())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="random tiny model instead of SmolLM2")
    ap.add_argument("--prompts", type=int, default=1, help="number of (identical-length) prompts")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, name = _load(args.tiny)
    prompts = [PROMPT] * args.prompts
    n_tokens = int(model.to_tokens(PROMPT).shape[-1])
    L = model.cfg.n_layers
    runs = [0]
    original = model.run_with_cache

    def counted(*a: Any, **k: Any) -> Any:
        runs[0] += 1
        return original(*a, **k)

    model.run_with_cache = counted  # type: ignore[method-assign]
    t0 = time.perf_counter()
    w = residual(model, prompts, " Rome" if not args.tiny else " the", incorrect=" Paris" if not args.tiny else " to")
    build_ms = (time.perf_counter() - t0) * 1e3
    runs[0] = 0

    mid = L // 2
    answer = w.answer[0]
    other = " Italy" if not args.tiny else " on"
    top = _msg({"type": "back", "depth": 0})
    heads = _msg({"type": "select", "component": f"{L - 1}_attn_out"})
    # (label, messages that set the scene, the timed message, messages that undo it)
    steps: list[tuple[str, list[dict], dict, list[dict]]] = [
        ("open attention layer (heads)", [top], heads, [top]),
        ("open head (pattern + effect)", [heads], _msg({"type": "select", "component": f"L{L - 1}H3"}), [top]),
        ("breadcrumb back (head -> top)", [_msg({"type": "select", "component": f"L{L - 1}H3"})], top, []),
        ("open MLP layer (top neurons)", [top], _msg({"type": "select", "component": f"{mid}_mlp_out"}), [top]),
        ("open neuron (effect)", [_msg({"type": "select", "component": f"{mid}_mlp_out"})],
         _msg({"type": "select", "component": f"L{mid}N7"}), [top]),
        ("all-heads switch", [top], _set({"all_heads": True}), [_set({"all_heads": False})]),
        ("per-prompt toggle", [top], _set({"prompt_index": 0}), [_set({"prompt_index": None})]),
        ("sort by value", [top], _set({"sort": "value"}), [_set({"sort": "layer"})]),
        ("change answer (no forward)", [top], _msg({"type": "set_answer", "answer": other, "incorrect": ""}),
         [_msg({"type": "set_answer", "answer": answer, "incorrect": w.incorrect[0] if w.incorrect else ""})]),
        ("logit lens view", [top], _set({"view": "lens"}), [_set({"view": "attribution"})]),
    ]
    rows = []
    for label, prepare, message, undo in steps:
        # cold: a fresh widget (memoised pieces not yet computed); warm: the same click repeated
        fresh = residual(model, prompts, answer, incorrect=w.incorrect[0] if w.incorrect else None)
        runs[0] = 0
        for m in prepare:
            fresh._handle_msg(m)
        cold_ms, payload = _click(fresh, message)
        warm = []
        for _ in range(args.repeats):
            for m in prepare:
                w._handle_msg(m)
            ms, payload = _click(w, message)
            warm.append(ms)
            for m in undo:
                w._handle_msg(m)
        rows.append({"step": label, "cold_ms": round(cold_ms, 2), "warm_median_ms": round(statistics.median(warm), 2),
                     "warm_max_ms": round(max(warm), 2), "payload_bytes": payload, "forward_passes": runs[0]})
    runs[0] = 0
    t0 = time.perf_counter()
    w._handle_msg(_msg({"type": "set_prompts", "prompts": [PROMPT.replace("Italy", "Spain")] * args.prompts}))
    rows.append({"step": "change prompts (one forward)", "cold_ms": round((time.perf_counter() - t0) * 1e3, 2),
                 "warm_median_ms": None, "warm_max_ms": None, "payload_bytes": None, "forward_passes": runs[0]})

    print(f"\n== residual explorer: {name}, {args.prompts} prompt(s) x {n_tokens} tokens, "
          f"{L} layers x {model.cfg.n_heads} heads ==")
    print(f"build (forward + components): {build_ms:.0f} ms   load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print(f"{'interaction':34s} {'cold ms':>9s} {'warm ms':>9s} {'max ms':>8s} {'payload':>9s} {'fwd':>4s}")
    for r in rows:
        warm = "-" if r["warm_median_ms"] is None else f"{r['warm_median_ms']:.1f}"
        mx = "-" if r["warm_max_ms"] is None else f"{r['warm_max_ms']:.1f}"
        size = "-" if r["payload_bytes"] is None else f"{r['payload_bytes'] / 1e3:.1f} kB"
        print(f"{r['step']:34s} {r['cold_ms']:9.1f} {warm:>9s} {mx:>8s} {size:>9s} {r['forward_passes']:4d}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"bench_residual-{stamp}.json"
    out.write_text(json.dumps({"model": name, "prompts": args.prompts, "tokens": n_tokens, "build_ms": build_ms,
                               "load_average_1m": os.getloadavg()[0], "cpus": os.cpu_count(),
                               "torch_threads": torch.get_num_threads(), "rows": rows}, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
