"""Payload size (and encode time) of the widgets' binary transport versus JSON lists.

Scenario: SmolLM2-135M-sized full attention, 30 layers x 9 heads on 64 tokens (and 256 for
reference). The JSON baseline is what a CircuitsVis-style view ships: ``json.dumps`` of
the nested lists of float patterns. Target: binary <= 1/5 of JSON.

    .venv/bin/python benchmarks/bench_widgets.py            # random causal patterns
    .venv/bin/python benchmarks/bench_widgets.py --real     # SmolLM2-135M-Instruct (if installed)
    .venv/bin/python benchmarks/bench_widgets.py --tokens 64 256
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from ipywidgets.widgets.widget import _remove_buffers

from lenswidget.widgets import attention, codec
from lenswidget.widgets.fake import causal_patterns


def _random_patterns(n_layers: int, n_heads: int, n: int) -> np.ndarray:
    return np.stack([causal_patterns(n_heads, n, seed=layer) for layer in range(n_layers)])


def _real_patterns(n: int) -> tuple[np.ndarray, object]:
    from lenswidget import HookedTransformer

    model = HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu")
    text = ("When Mary and John went to the store, John gave a drink to Mary. " * 20)
    tokens = model.to_tokens(text)[:, :n]
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    pats = np.stack([cache[f"blocks.{l}.attn.hook_pattern"][0].float().numpy() for l in range(model.cfg.n_layers)])
    return pats, (model, tokens)


def _wire_bytes(widget) -> tuple[int, int]:
    """(JSON state bytes, binary buffer bytes) of a widget's full state message."""
    state, _, buffers = _remove_buffers(widget.get_state())
    return len(json.dumps(state).encode()), sum(len(b) for b in buffers)


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench(pats: np.ndarray, label: str, widget=None) -> None:
    L, H, n, _ = pats.shape
    print(f"\n== {label}: {L} layers x {H} heads x {n} x {n} tokens ==")
    js, t_json = _timed(lambda: json.dumps(pats.tolist()).encode())
    base = len(js)
    print(f"  JSON nested lists (all layers)      {base / 1e6:9.2f} MB  encode {t_json * 1e3:7.1f} ms   1/1")
    for dtype in ("float16", "uint8"):
        enc, t = _timed(lambda dtype=dtype: codec.encode(pats, dtype))
        size = len(enc["buffer"]) + len(json.dumps({k: v for k, v in enc.items() if k != "buffer"}))
        print(f"  binary {dtype:8s} (all layers)       {size / 1e6:9.2f} MB  encode {t * 1e3:7.1f} ms   1/{base / size:.0f}")
    if widget is None:
        tokens = [f"t{i}" for i in range(n)]
        widget, t = _timed(lambda: attention(pats, tokens))
    else:
        t = float("nan")
    js_state, buf = _wire_bytes(widget)
    total = js_state + buf
    print(f"  inspector initial state (thumbs + layer)  {total / 1e6:6.2f} MB  build  {t * 1e3:7.1f} ms   1/{base / total:.0f}"
          f"   (thumbs {widget.thumbs['shape']} {len(widget.thumbs['buffer']) / 1e3:.0f} kB, layer pattern {len(widget.pattern['buffer']) / 1e3:.0f} kB)")
    _, t = _timed(lambda: setattr(widget, "layer", widget.layers[-1]))
    print(f"  layer switch message (one layer, uint8)   {len(widget.pattern['buffer']) / 1e6:6.3f} MB  encode {t * 1e3:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="use SmolLM2-135M-Instruct's real patterns")
    ap.add_argument("--tokens", type=int, nargs="+", default=[64], help="prompt lengths (default 64)")
    args = ap.parse_args()
    if args.real:
        for n in args.tokens:
            pats, (model, tokens) = _real_patterns(n)
            bench(pats, "SmolLM2-135M-Instruct patterns")
        w, t = _timed(lambda: attention(model, tokens))
        print(f"  attention(model, tokens) incl. forward: {t * 1e3:.0f} ms")
        _, t = _timed(lambda: setattr(w, "prompt", "The capital of France is Paris. The capital of Italy is"))
        print(f"  prompt edit -> rerun + encode: {t * 1e3:.0f} ms")
    else:
        for n in args.tokens:
            bench(_random_patterns(30, 9, n), "random causal patterns")


if __name__ == "__main__":
    main()
