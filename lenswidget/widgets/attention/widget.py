"""Live attention inspector: head thumbnails, a big dest x src pattern, an editable prompt.

Protocol (kernel -> browser), chosen so 32 layers x 32 heads x 1,024 tokens stays small:

* ``thumbs``: every shown head, max-pooled to ``thumb_size`` (default 32) per side with the
  BOS/sink position in a bin of its own (``edges`` says which positions each bin holds),
  uint8-quantised - 1 MiB for 32 x 32 heads whatever the prompt length;
* ``pattern``: only the selected layer's heads at full ``n x n`` resolution (uint8 by
  default, ``precision="float16"`` on request), re-sent when ``layer`` changes.

The kernel keeps the shown heads' patterns as float16 (never the rest of the cache), all
layers when they fit in ``max_pattern_mb`` (default 1024 MiB), else the selected layer
only (``note`` says so; see :mod:`.store`). The browser keeps the uint8 codes as they
arrive and a 256-entry colour table; view options (``normalize``, ``hide_sink``,
``gamma``) only change that table, not the data.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import traitlets as t

from ...errors import InvalidOptionError, OutOfRangeError
from .. import codec
from ..assets import esm
from ..base import LensWidget
from ..messages import MessageRouter
from ..validation import Bool, Float, Nullable, OneOf, Schema, Str, choices
from .sources import ModelRunner
from .store import PatternStore

PRECISIONS = ("uint8", "float16", "float32")
NORMALIZE = ("global", "head")
MAX_PROMPT_CHARS = 20_000
GAMMA_RANGE = (0.05, 4.0)


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
    debounce_ms = t.Int(150).tag(sync=True)
    thumbs = t.Dict(default_value=codec.empty("uint8")).tag(sync=True)
    pattern = t.Dict(default_value=codec.empty("uint8")).tag(sync=True)
    # View options (browser-writable; the kernel only stores them).
    normalize = t.Unicode("global").tag(sync=True)
    hide_sink = t.Bool(False).tag(sync=True)
    gamma = t.Float(1.0).tag(sync=True)
    # A notice that is not an error (e.g. the memory cap applies).
    note = t.Unicode("").tag(sync=True)

    def __init__(self, store: PatternStore, *, runner: ModelRunner | None = None, layers: list[int],
                 heads: list[int], precision: str = "uint8", layer_payload_mb: float = 8, **kwargs: Any):
        if precision not in PRECISIONS:
            raise InvalidOptionError("precision", precision, PRECISIONS)
        _check_view_options(kwargs)
        # Plain attributes first: the trait validators below read them during __init__.
        self._runner, self._precision = runner, precision
        self._layer_budget = int(layer_payload_mb * (1 << 20))
        self._store, self._prompt_of_patterns = store, kwargs.get("prompt", "")
        self._stash: tuple[str, PatternStore] | None = None
        layer = kwargs.pop("layer", None)
        layer = layers[0] if layer is None else layer
        if layer not in layers:
            raise OutOfRangeError("layer", layer, min(layers), max(layers), f"shown layers: {layers}")
        # Everything goes in as constructor kwargs so the comm opens with the full state.
        super().__init__(layers=layers, heads=heads, layer=layer, editable=runner is not None and runner.tokenizes,
                         tokens=store.tokens, thumbs=_encode_thumbs(store), note=store.note,
                         pattern=self._encode_layer(store, layers.index(layer), layer, _index(heads, kwargs.get("head"))),
                         **kwargs)

    # -- Python API ---------------------------------------------------------------------
    @property
    def patterns(self) -> np.ndarray:
        """``[len(layers), len(heads), n, n]`` float16 patterns of the current tokens.

        Raises :class:`~.store.PatternMemoryError` when they were over ``max_pattern_mb``
        (then only one layer is kept: use :meth:`layer_patterns`).
        """
        return self._store.all_layers()

    def layer_patterns(self, layer: int) -> np.ndarray:
        """``[len(heads), n, n]`` float16 patterns of shown layer ``layer`` (model index)."""
        if layer not in self.layers:
            raise OutOfRangeError("layer", layer, min(self.layers), max(self.layers), f"shown layers: {self.layers}")
        return self._store.layer(self.layers.index(layer))

    @property
    def last_run_ms(self) -> float:
        """Wall time (ms) of the last model run: forward pass + recording the patterns (0 without a model)."""
        return self._runner.last_ms if self._runner is not None else 0.0

    @property
    def kernel_bytes(self) -> int:
        """Bytes of pattern data the kernel holds (thumbnails + float16 patterns kept)."""
        return self._store.nbytes

    def set_tokens(self, tokens: Any) -> None:
        """Rerun the model on token ids (``[pos]`` or ``[1, pos]``); the prompt box shows their text."""
        if self._runner is None:
            raise InvalidOptionError("set_tokens on an inspector without a model", "tokens", ["attention(model, ...)"])
        store = self._runner.run_tokens(tokens, self.layers.index(self.layer))
        text = _text_of(self._runner.model, store.tokens) if self._runner.tokenizes else ""
        with self.hold_sync():
            self._prompt_of_patterns = text
            self.prompt = text
            self._show(store)

    def select(self, layer: int, head: int | None = None) -> None:
        """Show ``layer`` and lock ``head`` (``None`` unlocks) in one update."""
        with self.hold_sync():
            self.layer = layer
            self.head = head

    # -- browser input --------------------------------------------------------------------
    def browser_writable(self) -> Mapping[str, Schema]:
        writable: dict[str, Schema] = {
            "layer": choices(self.layers), "head": Nullable(choices(self.heads)),
            "normalize": OneOf(NORMALIZE), "hide_sink": Bool(), "gamma": Float(*GAMMA_RANGE),
        }
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

    @t.validate("normalize")
    def _check_normalize(self, proposal: Any) -> str:
        if proposal["value"] not in NORMALIZE:
            raise t.TraitError(f"normalize {proposal['value']!r}; valid: {', '.join(NORMALIZE)}")
        return proposal["value"]

    @t.validate("gamma")
    def _check_gamma(self, proposal: Any) -> float:
        lo, hi = GAMMA_RANGE
        if not lo <= proposal["value"] <= hi:
            raise t.TraitError(f"gamma {proposal['value']!r} is out of range; valid: {lo}..{hi}")
        return proposal["value"]

    @t.validate("tokens")
    def _check_tokens(self, proposal: Any) -> list:
        n = self._store.n
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
        if not self._runner.tokenizes:
            raise t.TraitError("the prompt is read-only: the model has no tokenizer (model.set_tokenizer(...) and "
                               "rebuild the inspector, or call set_tokens(ids))")
        try:
            self._stash = (text, self._runner.run_prompt(text, self.layers.index(self.layer)))
        except Exception as exc:
            raise t.TraitError(str(exc)) from exc
        return text

    @t.observe("prompt")
    def _on_prompt(self, change: Any) -> None:
        if self._stash is not None and self._stash[0] == change["new"]:
            text, store = self._stash
            self._stash = None
            self._prompt_of_patterns = text
            self._show(store)

    @t.observe("layer")
    def _on_layer(self, change: Any) -> None:
        self._send_layer()

    @t.observe("head")
    def _on_head(self, change: Any) -> None:
        # A layer sent head by head (too big to send whole): send the newly locked one.
        sent = self.pattern.get("heads")
        if sent is not None and _index(self.heads, change["new"]) not in sent:
            self._send_layer()

    # -- encoding ---------------------------------------------------------------------------
    def _show(self, store: PatternStore) -> None:
        self._store = store
        with self.hold_sync():
            self.tokens = store.tokens
            self.thumbs = _encode_thumbs(store)
            self.note = store.note
            self._send_layer()

    def _send_layer(self) -> None:
        self.pattern = self._encode_layer(self._store, self.layers.index(self.layer), self.layer, _index(self.heads, self.head))

    def _encode_layer(self, store: PatternStore, index: int, layer: int, head_index: int) -> dict:
        """The selected layer's full patterns, tagged with the layer (the browser may have moved
        on by the time they arrive) and with the shown-head indices they hold (``heads``): every
        head while the layer fits in ``layer_payload_mb`` (at one byte per value), else only the
        locked head (or the first, which the browser shows when nothing is locked) - 32 heads x
        1,024 tokens would be 32 MiB per layer switch; other heads preview from thumbnails."""
        data = store.layer(index)
        heads = list(range(data.shape[0]))
        if data[0].size * len(heads) > self._layer_budget:
            heads = [head_index]
            data = data[heads]
        return {**codec.encode(data, self._precision), "layer": layer, "heads": heads}


def _index(heads: list[int], head: int | None) -> int:
    """Index of the locked head among the shown ones; 0 (what the browser shows) when none is locked."""
    return heads.index(head) if head in heads else 0


def _check_view_options(kwargs: dict) -> None:
    if kwargs.get("normalize", "global") not in NORMALIZE:
        raise InvalidOptionError("normalize", kwargs["normalize"], NORMALIZE)
    gamma = kwargs.get("gamma", 1.0)
    if not isinstance(gamma, (int, float)) or not GAMMA_RANGE[0] <= gamma <= GAMMA_RANGE[1]:
        raise OutOfRangeError("gamma", gamma, GAMMA_RANGE[0], GAMMA_RANGE[1])


def _encode_thumbs(store: PatternStore) -> dict:
    """uint8 for probabilities (the usual case); float16 for anything else (e.g. scores)."""
    try:
        payload = codec.encode(store.thumbs, "uint8")
    except OutOfRangeError:
        payload = codec.encode(store.thumbs, "float16")
    return {**payload, "edges": list(store.edges)}


def _text_of(model: Any, str_tokens: list[str]) -> str:
    """Prompt text for tokens, without a leading BOS (to_tokens adds it back)."""
    bos = getattr(getattr(model, "tokenizer", None), "bos_token", None)
    start = 1 if str_tokens and bos is not None and str_tokens[0] == bos else 0
    return "".join(str_tokens[start:])
