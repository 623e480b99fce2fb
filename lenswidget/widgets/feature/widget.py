"""Feature dashboard: one SAE feature's top-activating contexts over a corpus, its activation
histogram and the tokens its decoder direction promotes and suppresses.

>>> dash = feature(model, sae, 123, corpus)         # doctest: +SKIP
>>> dash                                            # shows a progress bar, then the results
>>> dash.compute(); dash.contexts_data[0]["tokens"] # or from Python, without a browser

One pass over the corpus (windows of ``ctx_len`` tokens, ``batch_size`` at a time) gathers
every feature's statistics at once, bounded (:mod:`.stats`): its ``top_k`` windows and a
log-binned histogram. Switching the shown feature (``dash.idx = 7`` or the number box)
needs no new pass, only one small batch over that feature's ``top_k`` windows. Activations
are :func:`lenswidget.sae.feature_activations`' (the model up to the SAE's block).

The pass starts when the view first shows (the browser sends ``compute``) or when Python
calls :meth:`FeatureDashboard.compute`; progress reaches the browser while it runs (custom
``progress`` messages, not held back by the update batching of a handled message).
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Sequence

import traitlets as t

from ...errors import InvalidOptionError, OutOfRangeError
from .. import codec
from ..assets import esm
from ..base import LensWidget, format_error
from ..messages import MessageRouter
from ..saes import check_all
from ..saes import label as sae_label
from ..saes import top_effects
from ..validation import Int, Schema
from .contexts import contexts
from .scan import Scan, scan
from .windows import Windows, build

STATUSES = ("pending", "running", "done", "error")
PROGRESS_EVERY_S = 0.1


class FeatureDashboard(LensWidget):
    """See the module docstring; build it with :func:`feature`."""

    _esm = esm("feature")

    hook = t.Unicode("").tag(sync=True)
    sae_label = t.Unicode("").tag(sync=True)
    d_sae = t.Int(0).tag(sync=True)
    n_windows = t.Int(0).tag(sync=True)
    n_docs = t.Int(0).tag(sync=True)
    ctx_len = t.Int(0).tag(sync=True)
    top_k = t.Int(0).tag(sync=True)
    status = t.Unicode("pending").tag(sync=True)
    progress = t.List(t.Int(), default_value=[0, 0]).tag(sync=True)
    summary = t.Dict().tag(sync=True)
    histogram = t.Dict().tag(sync=True)
    contexts = t.List(t.Dict()).tag(sync=True)
    effects = t.Dict().tag(sync=True)
    # browser-writable
    idx = t.Int(0).tag(sync=True)

    def __init__(self, model: Any, sae: Any, idx: int, windows: Windows, *, top_k: int, batch_size: int,
                 ctx_len: int = 64, n_effects: int = 10, **kwargs: Any):
        self._model, self._sae, self._windows = model, sae, windows
        self._batch_size, self._n_effects = batch_size, n_effects
        self._scan: Optional[Scan] = None
        self._shown: dict[str, Any] = {}
        self._progress_at = 0.0
        d_sae = int(sae.cfg.d_sae)
        _check_idx(idx, d_sae)
        super().__init__(hook=str(sae.cfg.hook_name), sae_label=sae_label(sae), d_sae=d_sae, n_windows=windows.n,
                         n_docs=int(windows.doc.max()) + 1, ctx_len=ctx_len, top_k=top_k,
                         idx=idx, progress=[0, windows.n], **kwargs)
        self.effects = self._effects_payload(idx)

    # -- Python API ------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        return self._model

    @property
    def sae(self) -> Any:
        return self._sae

    @property
    def computed(self) -> bool:
        return self._scan is not None

    def compute(self) -> "FeatureDashboard":
        """Run the pass over the corpus now (no-op when done); returns the dashboard."""
        if self._scan is None:
            self._run_scan()
        return self

    def show(self, idx: int) -> None:
        """Show feature ``idx`` (same as setting ``dash.idx``)."""
        self.idx = idx

    @property
    def contexts_data(self) -> list[dict[str, Any]]:
        """The shown feature's top contexts, best first: ``value``, ``doc``, ``tokens``, ``acts``, ``top``,
        ``start`` (the first shown token's index in its corpus string)."""
        self.compute()
        return [c.to_dict() for c in self._shown.get("contexts", [])]

    @property
    def histogram_data(self) -> dict[str, Any]:
        """The shown feature's histogram: ``counts`` [n], ``edges`` [n + 1] (log-spaced) and its summary."""
        self.compute()
        return dict(self._shown["hist"])

    def top_features(self, n: int = 10, by: str = "frequency") -> list[int]:
        """Features ranked by ``frequency`` (fraction of tokens they fire on) or ``max`` activation."""
        if by not in ("frequency", "max"):
            raise InvalidOptionError("by", by, ["frequency", "max"])
        self.compute()
        hist = self._scan.hist  # type: ignore[union-attr]
        values = hist.fired.float() if by == "frequency" else hist.max
        return [int(i) for i in values.topk(min(int(n), values.numel())).indices.tolist()]

    # -- browser input -----------------------------------------------------------------------------
    def browser_writable(self) -> Mapping[str, Schema]:
        return {"idx": Int(0, self.d_sae - 1)}

    def _add_messages(self, router: MessageRouter) -> None:
        router.add("compute", lambda m: self.compute())

    @t.validate("idx")
    def _check_idx_trait(self, proposal: Any) -> int:
        value = proposal["value"]
        _check_idx(value, self.d_sae, trait=True)
        return value

    @t.observe("idx")
    def _on_idx(self, change: Any) -> None:
        with self.hold_sync():
            self.effects = self._effects_payload(change["new"])
            if self._scan is not None:
                self._show(change["new"])

    # -- internals -----------------------------------------------------------------------------------
    def _run_scan(self) -> None:
        self.status = "running"
        total = self._windows.n
        self._report(0, total, force=True)
        try:
            result = scan(self._model, self._sae, self._windows, self.top_k, self._batch_size, self._report)
            self._scan = result
            with self.hold_sync():
                self._show(self.idx)
                self.progress = [total, total]
                self.status = "done"
        except Exception as exc:
            with self.hold_sync():
                self.status = "error"
                self.error = format_error(exc)
            raise

    def _report(self, done: int, total: int, force: bool = False) -> None:
        """Progress to the browser now: a custom message (and the trait when not held)."""
        now = time.monotonic()
        if not force and done < total and now - self._progress_at < PROGRESS_EVERY_S:
            return
        self._progress_at = now
        self.send({"type": "progress", "done": int(done), "total": int(total)})
        self.progress = [int(done), int(total)]

    def _show(self, idx: int) -> None:
        assert self._scan is not None
        ctx = contexts(self._model, self._sae, self._scan, idx)
        hist = self._scan.hist.of(idx)
        self._shown = {"idx": idx, "contexts": ctx, "hist": hist}
        self.summary = {k: hist[k] for k in ("fired", "total", "frequency", "mean", "max")}
        self.histogram = {k: codec.encode(hist[k], "float32") for k in ("counts", "edges")}
        self.contexts = [{"value": c.value, "doc": c.doc, "tokens": c.tokens, "acts": codec.encode(c.acts, "float32"),
                          "top": c.top, "start": c.start, "clipped_left": c.clipped_left,
                          "clipped_right": c.clipped_right} for c in ctx]

    def _effects_payload(self, idx: int) -> dict[str, Any]:
        up, up_v, down, down_v = top_effects(self._model, self._sae, idx, self._n_effects)
        return {"promoted": up, "promoted_values": codec.encode(up_v, "float32"),
                "suppressed": down, "suppressed_values": codec.encode(down_v, "float32")}


def _check_idx(idx: Any, d_sae: int, trait: bool = False) -> None:
    if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < d_sae:
        err = OutOfRangeError("feature index", idx, 0, d_sae - 1, f"the SAE has d_sae={d_sae} features")
        if trait:
            raise t.TraitError(str(err))
        raise err


def feature(model: Any, sae: Any, idx: int = 0, corpus: Sequence[str] | str | None = None, *, top_k: int = 10,
            ctx_len: int = 64, batch_size: int = 16, max_windows: Optional[int] = None, n_effects: int = 10,
            compute: bool = False, title: str = "") -> FeatureDashboard:
    """A :class:`FeatureDashboard` of feature ``idx`` of ``sae`` on ``model``.

    ``corpus``: a list of strings (or one string); ``None`` uses the small public-domain
    corpus shipped with lenswidget (``lenswidget.sae.load_corpus()``). Strings are cut
    into windows of at most ``ctx_len`` tokens (BOS included), at most ``max_windows`` of them,
    and scanned ``batch_size`` windows at a time; each feature keeps its ``top_k`` windows.
    ``compute=True`` runs the pass before returning (else when the view first shows).
    ``model``: a ``HookedSAETransformer``; ``sae``: a lenswidget or SAELens SAE for one of its hooks.
    """
    if model is None or not hasattr(model, "cfg"):
        raise InvalidOptionError("model", type(model).__name__, ["HookedSAETransformer"])
    if isinstance(sae, (list, tuple)):
        raise InvalidOptionError("sae", f"a {type(sae).__name__} of SAEs",
                                 ["one SAE (the dashboard shows one feature)"])
    sae = check_all(model, sae)[0]
    for what, value, low, high in (("top_k", top_k, 1, 100), ("batch_size", batch_size, 1, 4096),
                                   ("n_effects", n_effects, 1, 100)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise OutOfRangeError(what, value, low, high)
    if corpus is None:
        from ...sae import load_corpus

        corpus = load_corpus()
    windows = build(model, corpus, ctx_len, max_windows)
    dash = FeatureDashboard(model, sae, idx, windows, top_k=top_k, batch_size=batch_size, ctx_len=ctx_len,
                            n_effects=n_effects,
                            title=title)
    if compute:
        dash.compute()
    return dash
