"""Live attention inspector: head thumbnails, a big dest x src pattern, an editable prompt.

Protocol (kernel -> browser), chosen so 30 layers x 9 heads x 256 tokens stays small:

* ``thumbs``: every shown head, max-pooled to ``thumb_size`` (default 32) per side,
  uint8-quantised - about 270 KB for SmolLM2 whatever the prompt length;
* ``pattern``: only the selected layer's heads at full ``n x n`` resolution (uint8 by
  default, ``precision="float16"`` on request), re-sent when ``layer`` changes.

The kernel keeps only the shown heads' patterns (float32), never the rest of the cache.
Hovering a thumbnail of another layer previews its pooled thumbnail with no round trip.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import traitlets as t

from ..errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError
from . import codec
from .assets import esm
from .base import LensWidget
from .messages import MessageRouter
from .pooling import max_pool_square
from .sources import ModelRunner, Patterns, from_cache, from_tensor, pick
from .validation import Nullable, Schema, Str, choices

PRECISIONS = ("uint8", "float16", "float32")
MAX_PROMPT_CHARS = 20_000


class AttentionInspector(LensWidget):
    """Observe/set ``layer``, ``head`` (locked head or None), ``prompt``; read ``tokens``."""

    _esm = esm("attention")

    layer = t.Int(0).tag(sync=True)
    head = t.Int(None, allow_none=True).tag(sync=True)
    prompt = t.Unicode("").tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)
    layers = t.List(t.Int()).tag(sync=True)
    heads = t.List(t.Int()).tag(sync=True)
    head_names = t.List(t.Unicode()).tag(sync=True)
    editable = t.Bool(False).tag(sync=True)
    debounce_ms = t.Int(400).tag(sync=True)
    thumbs = t.Dict(default_value=codec.empty("uint8")).tag(sync=True)
    pattern = t.Dict(default_value=codec.empty("uint8")).tag(sync=True)

    def __init__(self, patterns: Patterns, *, runner: ModelRunner | None = None, layers: list[int],
                 heads: list[int], precision: str = "uint8", thumb_size: int = 32, **kwargs: Any):
        if precision not in PRECISIONS:
            raise InvalidOptionError("precision", precision, PRECISIONS)
        # Plain attributes first: the trait validators below read them during __init__.
        self._runner, self._precision, self._thumb_size = runner, precision, max(1, int(thumb_size))
        self._patterns, self._prompt_of_patterns = patterns, kwargs.get("prompt", "")
        self._stash: tuple[str, Patterns] | None = None
        layer = kwargs.pop("layer", None)
        layer = layers[0] if layer is None else layer
        if layer not in layers:
            raise OutOfRangeError("layer", layer, min(layers), max(layers), f"shown layers: {layers}")
        # Everything goes in as constructor kwargs so the comm opens with the full state.
        super().__init__(layers=layers, heads=heads, layer=layer, editable=runner is not None,
                         tokens=patterns.tokens, thumbs=_encode_thumbs(max_pool_square(patterns.data, self._thumb_size)),
                         pattern=self._encode_layer(layers.index(layer), layer), **kwargs)

    # -- Python API ---------------------------------------------------------------------
    @property
    def patterns(self) -> Any:
        """float32 ``[len(layers), len(heads), n, n]`` patterns of the current tokens."""
        return self._patterns.data

    def set_tokens(self, tokens: Any) -> None:
        """Rerun the model on token ids (``[pos]`` or ``[1, pos]``); the prompt box shows their text."""
        if self._runner is None:
            raise InvalidOptionError("set_tokens on an inspector without a model", "tokens", ["attention(model, ...)"])
        patterns = self._runner.run_tokens(tokens)
        text = _text_of(self._runner.model, patterns.tokens)
        with self.hold_sync():
            self._prompt_of_patterns = text
            self.prompt = text
            self._show(patterns)

    def select(self, layer: int, head: int | None = None) -> None:
        """Show ``layer`` and lock ``head`` (``None`` unlocks) in one update."""
        with self.hold_sync():
            self.layer = layer
            self.head = head

    # -- browser input --------------------------------------------------------------------
    def browser_writable(self) -> Mapping[str, Schema]:
        writable: dict[str, Schema] = {"layer": choices(self.layers), "head": Nullable(choices(self.heads))}
        if self.editable:
            writable["prompt"] = Str(MAX_PROMPT_CHARS)
        return writable

    def _add_messages(self, router: MessageRouter) -> None:
        router.add("select", lambda m: self.select(m["layer"], m["head"]),
                   lambda: {"layer": choices(self.layers), "head": Nullable(choices(self.heads))})

    # -- validation: failable work happens here, before any trait changes ----------------
    @t.validate("layer")
    def _check_layer(self, proposal: Any) -> int:
        if self.layers and proposal["value"] not in self.layers:
            raise t.TraitError(f"layer {proposal['value']!r} is not shown; shown layers: {self.layers}")
        return proposal["value"]

    @t.validate("head")
    def _check_head(self, proposal: Any) -> int | None:
        value = proposal["value"]
        if value is not None and self.heads and value not in self.heads:
            raise t.TraitError(f"head {value!r} is not shown; shown heads: {self.heads}")
        return value

    @t.validate("tokens")
    def _check_tokens(self, proposal: Any) -> list:
        n = self._patterns.data.shape[-1]
        if len(proposal["value"]) != n:
            raise t.TraitError(f"{len(proposal['value'])} tokens for {n} positions; to change the text, set "
                               "`prompt` or call set_tokens(ids) (relabelling needs exactly one label per position)")
        return proposal["value"]

    @t.validate("prompt")
    def _check_prompt(self, proposal: Any) -> str:
        text = proposal["value"]
        if text == self._prompt_of_patterns:
            return text
        if self._runner is None:
            raise t.TraitError("the prompt is read-only: this inspector was built from tensors, not a model")
        try:
            self._stash = (text, self._runner.run_prompt(text))
        except Exception as exc:
            raise t.TraitError(str(exc)) from exc
        return text

    @t.observe("prompt")
    def _on_prompt(self, change: Any) -> None:
        if self._stash is not None and self._stash[0] == change["new"]:
            text, patterns = self._stash
            self._stash = None
            self._prompt_of_patterns = text
            self._show(patterns)

    @t.observe("layer")
    def _on_layer(self, change: Any) -> None:
        self._send_layer()

    # -- encoding ---------------------------------------------------------------------------
    def _show(self, patterns: Patterns) -> None:
        self._patterns = patterns
        with self.hold_sync():
            self.tokens = patterns.tokens
            self.thumbs = _encode_thumbs(max_pool_square(patterns.data, self._thumb_size))
            self._send_layer()

    def _send_layer(self) -> None:
        self.pattern = self._encode_layer(self.layers.index(self.layer), self.layer)

    def _encode_layer(self, index: int, layer: int) -> dict:
        # Tagged with its layer: the browser may have moved on by the time it arrives.
        return {**codec.encode(self._patterns.data[index], self._precision), "layer": layer}


def attention(model: Any = None, source: Any = None, layers: Sequence[int] | int | None = None,
              heads: Sequence[int] | int | None = None, str_tokens: Sequence[str] | None = None, *,
              head_names: Sequence[str] | None = None, title: str = "", precision: str = "uint8",
              max_tokens: int = 256, thumb_size: int = 32, debounce_ms: int = 400,
              layer: int | None = None, head: int | None = None) -> AttentionInspector:
    """An :class:`AttentionInspector`.

    * ``attention(model, "prompt")`` / ``attention(model, tokens)`` runs the model (only
      ``hook_pattern`` is cached); editing the prompt box reruns it.
    * ``attention(model, cache, str_tokens=...)`` shows an existing ``ActivationCache``.
    * ``attention(pattern, str_tokens)`` shows a ``[heads, dest, src]`` (or
      ``[layers, heads, dest, src]``) tensor, like CircuitsVis ``attention_heads``;
      ``head_names`` labels the heads (e.g. ``["L23H1", ...]``).
    """
    common = dict(title=title, precision=precision, thumb_size=thumb_size, debounce_ms=debounce_ms,
                  layer=layer, head=head)
    if precision not in PRECISIONS:
        raise InvalidOptionError("precision", precision, PRECISIONS)
    if _is_float_tensor(model):
        tokens = list(source if source is not None else str_tokens or [])
        data = from_tensor(model, [str(s) for s in tokens])
        shown_layers = pick(layers, data.shape[0], "layer")
        shown_heads = pick(heads, data.shape[1], "head")
        data = data[shown_layers][:, shown_heads]
        names = _names(head_names, len(shown_layers) * len(shown_heads))
        return AttentionInspector(Patterns([str(s) for s in tokens], data), layers=list(range(len(shown_layers))),
                                  heads=list(range(len(shown_heads))), head_names=names, **common)
    if model is None or not hasattr(model, "cfg"):
        raise InvalidOptionError("first argument", type(model).__name__, ["HookedTransformer", "a [heads, dest, src] tensor"])
    shown_layers = pick(layers, model.cfg.n_layers, "layer")
    shown_heads = pick(heads, model.cfg.n_heads, "head")
    runner = ModelRunner(model, shown_layers, shown_heads, max_tokens)
    if isinstance(source, str):
        patterns, prompt = runner.run_prompt(source), source
    elif _is_int_tensor(source):
        patterns = runner.run_tokens(source)
        prompt = _text_of(model, patterns.tokens)
    elif source is not None and hasattr(source, "keys"):
        if str_tokens is None:
            raise ShapeMismatchError("attention(model, cache) needs str_tokens= (e.g. model.to_str_tokens(tokens[0]))")
        patterns = from_cache(source, shown_layers, shown_heads, [str(s) for s in str_tokens])
        prompt = _text_of(model, patterns.tokens)
    else:
        raise InvalidOptionError("attention source", type(source).__name__, ["a prompt str", "tokens tensor", "ActivationCache"])
    if str_tokens is not None and len(str_tokens) == len(patterns.tokens):
        patterns = Patterns([str(s) for s in str_tokens], patterns.data)
    if head is not None and head not in shown_heads:
        raise OutOfRangeError("head", head, 0, model.cfg.n_heads - 1, f"shown heads: {shown_heads}")
    if layer is not None and layer not in shown_layers:
        raise OutOfRangeError("layer", layer, 0, model.cfg.n_layers - 1, f"shown layers: {shown_layers}")
    return AttentionInspector(patterns, runner=runner, layers=shown_layers, heads=shown_heads,
                              prompt=prompt, head_names=_names(head_names, len(shown_layers) * len(shown_heads)), **common)


def _encode_thumbs(pooled: Any) -> dict:
    """uint8 for probabilities (the usual case); float16 for anything else (e.g. scores)."""
    try:
        return codec.encode(pooled, "uint8")
    except OutOfRangeError:
        return codec.encode(pooled, "float16")


def _names(names: Sequence[str] | None, count: int) -> list[str]:
    if names is None:
        return []
    names = [str(n) for n in names]
    if len(names) != count:
        raise ShapeMismatchError(f"{len(names)} head_names for {count} shown heads")
    return names


def _text_of(model: Any, str_tokens: list[str]) -> str:
    """Prompt text for tokens, without a leading BOS (to_tokens adds it back)."""
    bos = getattr(getattr(model, "tokenizer", None), "bos_token", None)
    start = 1 if str_tokens and bos is not None and str_tokens[0] == bos else 0
    return "".join(str_tokens[start:])


def _is_float_tensor(x: Any) -> bool:
    dtype = str(getattr(x, "dtype", ""))
    return hasattr(x, "shape") and ("float" in dtype or "bfloat" in dtype)


def _is_int_tensor(x: Any) -> bool:
    dtype = str(getattr(x, "dtype", ""))
    return hasattr(x, "shape") and "int" in dtype
