"""``attention(...)``: an :class:`~.widget.AttentionInspector` from a model, a cache or a tensor."""

from __future__ import annotations

from typing import Any, Sequence

from ...errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError
from .sources import ModelRunner, Options, from_cache, from_tensor, pick, tensor_4d
from .store import DEFAULT_CAP_MB, MIB
from .widget import PRECISIONS, AttentionInspector, _text_of


def attention(model: Any = None, source: Any = None, layers: Sequence[int] | int | None = None,
              heads: Sequence[int] | int | None = None, str_tokens: Sequence[str] | None = None, *,
              head_names: Sequence[str] | None = None, title: str = "", precision: str = "uint8",
              max_tokens: int = 256, thumb_size: int = 32, debounce_ms: int = 150,
              layer: int | None = None, head: int | None = None, max_pattern_mb: float = DEFAULT_CAP_MB,
              normalize: str = "global", hide_sink: bool = False, gamma: float = 1.0,
              layer_payload_mb: float = 8) -> AttentionInspector:
    """An :class:`AttentionInspector`.

    * ``attention(model, "prompt")`` / ``attention(model, tokens)`` runs the model (only
      ``hook_pattern`` is recorded); editing the prompt box reruns it.
    * ``attention(model, cache, str_tokens=...)`` shows an existing ``ActivationCache``.
    * ``attention(pattern, str_tokens)`` shows a ``[heads, dest, src]`` (or
      ``[layers, heads, dest, src]``) tensor, like CircuitsVis ``attention_heads``;
      ``head_names`` labels the heads (e.g. ``["L23H1", ...]``).

    The kernel keeps float16 patterns of every shown layer when they fit in
    ``max_pattern_mb`` MiB, else only the selected layer (the widget says so). View
    options: ``normalize="head"`` scales each head to its own maximum, ``hide_sink=True``
    blanks position 0 (BOS / attention sink) and leaves it out of that maximum,
    ``gamma < 1`` brightens small values. The selected layer travels whole while it takes
    at most ``layer_payload_mb`` MiB (one byte per value), else head by head.
    """
    if precision not in PRECISIONS:
        raise InvalidOptionError("precision", precision, PRECISIONS)
    if not (isinstance(max_pattern_mb, (int, float)) and max_pattern_mb > 0):
        raise OutOfRangeError("max_pattern_mb", max_pattern_mb, 1, 1 << 20)
    opts = Options(max(2, int(thumb_size)), int(max_pattern_mb * MIB))
    common = dict(title=title, precision=precision, debounce_ms=debounce_ms, layer=layer, head=head,
                  normalize=normalize, hide_sink=bool(hide_sink), gamma=float(gamma), layer_payload_mb=layer_payload_mb)
    if _is_float_tensor(model):
        tokens = [str(s) for s in (source if source is not None else str_tokens or [])]
        data = tensor_4d(model)
        shown_layers = pick(layers, data.shape[0], "layer")
        shown_heads = pick(heads, data.shape[1], "head")
        ids = list(range(len(shown_layers)))
        keep = 0 if layer is None else _index_of(layer, ids, "layer")
        store = from_tensor(data, tokens, shown_layers, shown_heads, opts, keep)
        names = _names(head_names, len(shown_layers) * len(shown_heads))
        return AttentionInspector(store, layers=ids, heads=list(range(len(shown_heads))), head_names=names, **common)
    if model is None or not hasattr(model, "cfg"):
        raise InvalidOptionError("first argument", type(model).__name__, ["HookedTransformer", "a [heads, dest, src] tensor"])
    shown_layers = pick(layers, model.cfg.n_layers, "layer")
    shown_heads = pick(heads, model.cfg.n_heads, "head")
    if head is not None and head not in shown_heads:
        raise OutOfRangeError("head", head, 0, model.cfg.n_heads - 1, f"shown heads: {shown_heads}")
    keep = 0 if layer is None else _index_of(layer, shown_layers, "layer", model.cfg.n_layers)
    runner = ModelRunner(model, shown_layers, shown_heads, max_tokens, opts)
    if isinstance(source, str):
        store, prompt = runner.run_prompt(source, keep), source
    elif _is_int_tensor(source):
        store = runner.run_tokens(source, keep)
        prompt = _text_of(model, store.tokens) if runner.tokenizes else ""
    elif source is not None and hasattr(source, "keys"):
        if str_tokens is None:
            raise ShapeMismatchError("attention(model, cache) needs str_tokens= (e.g. model.to_str_tokens(tokens[0]))")
        store = from_cache(source, shown_layers, shown_heads, [str(s) for s in str_tokens], opts, keep)
        prompt = _text_of(model, store.tokens)
    else:
        raise InvalidOptionError("attention source", type(source).__name__, ["a prompt str", "tokens tensor", "ActivationCache"])
    if str_tokens is not None and len(str_tokens) == store.n:
        store.tokens = [str(s) for s in str_tokens]
    return AttentionInspector(store, runner=runner, layers=shown_layers, heads=shown_heads, prompt=prompt,
                              head_names=_names(head_names, len(shown_layers) * len(shown_heads)), **common)


def _index_of(layer: int, shown: list[int], what: str, n_layers: int | None = None) -> int:
    if layer not in shown:
        high = (n_layers - 1) if n_layers is not None else max(shown)
        raise OutOfRangeError(what, layer, 0, high, f"shown layers: {shown}")
    return shown.index(layer)


def _names(names: Sequence[str] | None, count: int) -> list[str]:
    if names is None:
        return []
    names = [str(n) for n in names]
    if len(names) != count:
        raise ShapeMismatchError(f"{len(names)} head_names for {count} shown heads")
    return names


def _is_float_tensor(x: Any) -> bool:
    dtype = str(getattr(x, "dtype", ""))
    return hasattr(x, "shape") and ("float" in dtype or "bfloat" in dtype)


def _is_int_tensor(x: Any) -> bool:
    dtype = str(getattr(x, "dtype", ""))
    return hasattr(x, "shape") and "int" in dtype
