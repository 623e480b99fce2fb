"""Head heatmap: a ``[n_layers, n_heads]`` grid on a diverging scale; click selects a head."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import traitlets as t

from ...errors import InvalidOptionError, ShapeMismatchError
from .. import codec
from ..assets import esm
from ..base import LensWidget
from .values import head_grid
from ..messages import MessageRouter
from ..validation import Int, Nullable, Record, Schema

SCALES = ("diverging", "sequential")


class HeadHeatmap(LensWidget):
    """Per-head values; ``selected`` is ``{"layer": l, "head": h}`` or ``None``."""

    _esm = esm("heatmap")

    values = t.Dict(default_value=codec.empty()).tag(sync=True)
    labels = t.List(t.Unicode()).tag(sync=True)
    row_labels = t.List(t.Unicode()).tag(sync=True)
    col_labels = t.List(t.Unicode()).tag(sync=True)
    scale = t.Unicode("diverging").tag(sync=True)
    vmin = t.Float(None, allow_none=True).tag(sync=True)
    vmax = t.Float(None, allow_none=True).tag(sync=True)
    cell_size = t.Int(22).tag(sync=True)  # row height (and narrowest column), CSS px
    fit_width = t.Bool(True).tag(sync=True)  # columns stretch to the width the output has
    value_label = t.Unicode("").tag(sync=True)  # what the values are, shown on the legend
    selected = t.Dict(default_value=None, allow_none=True).tag(sync=True)

    @property
    def shape(self) -> tuple[int, int]:
        shape = self.values.get("shape", [0, 0])
        return (int(shape[0]), int(shape[1])) if len(shape) == 2 else (0, 0)

    def browser_writable(self) -> Mapping[str, Schema]:
        return {"selected": self._selection_schema()}

    def _add_messages(self, router: MessageRouter) -> None:
        router.add("select", lambda m: self.select(m["layer"], m["head"]),
                   lambda: {"layer": Nullable(Int(0, self.shape[0] - 1)), "head": Nullable(Int(0, self.shape[1] - 1))})

    def _selection_schema(self) -> Schema:
        rows, cols = self.shape
        return Nullable(Record({"layer": Int(0, rows - 1), "head": Int(0, cols - 1)}))

    def select(self, layer: int | None, head: int | None = None) -> None:
        """Select cell ``(layer, head)``; ``select(None)`` clears the selection."""
        self.selected = None if layer is None or head is None else {"layer": layer, "head": head}

    @t.validate("selected")
    def _check_selected(self, proposal: Any) -> Any:
        try:
            return self._selection_schema().check(proposal["value"], "selected")
        except Exception as exc:
            raise t.TraitError(str(exc)) from exc

    @t.validate("scale")
    def _check_scale(self, proposal: Any) -> str:
        if proposal["value"] not in SCALES:
            raise t.TraitError(str(InvalidOptionError("scale", proposal["value"], SCALES)))
        return proposal["value"]

    def value(self, layer: int, head: int) -> float:
        """The value shown in cell ``(layer, head)``."""
        return float(codec.decode(self.values)[layer, head])

    def link(self, inspector: Any) -> Any:
        """Show the clicked head in ``inspector`` (an AttentionInspector); see ``link_heatmap_to_attention``."""
        from .link import link_heatmap_to_attention

        return link_heatmap_to_attention(self, inspector)


def head_heatmap(values: Any, labels: Sequence[str] | None = None, title: str = "", *,
                 n_heads: int | None = None, scale: str = "diverging", vmin: float | None = None,
                 vmax: float | None = None, row_labels: Sequence[str] | None = None,
                 col_labels: Sequence[str] | None = None, cell_size: int = 22, fit_width: bool = True,
                 value_label: str = "") -> HeadHeatmap:
    """A :class:`HeadHeatmap` of per-head values (torch or numpy).

    ``values`` is ``[n_layers, n_heads]`` (patching sweeps, reshaped DLA) or
    ``[n_layers * n_heads]`` with ``labels`` ``L{l}H{h}`` (``stack_head_results``) or
    ``n_heads=``. The diverging scale is centred at 0 and spans ``±max|v|`` unless
    ``vmin``/``vmax`` are given; ``scale="sequential"`` spans ``[min, max]``.
    ``value_label`` names the values on the legend (e.g. ``"logit diff"``); rows are
    ``cell_size`` px tall and, with ``fit_width``, columns stretch to the output's width.
    """
    grid, cell_labels = head_grid(values, labels, n_heads)
    if scale not in SCALES:
        raise InvalidOptionError("scale", scale, SCALES)
    rows, cols = grid.shape
    row_labels = [str(x) for x in row_labels] if row_labels is not None else [f"L{l}" for l in range(rows)]
    col_labels = [str(x) for x in col_labels] if col_labels is not None else [f"H{h}" for h in range(cols)]
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ShapeMismatchError(f"{len(row_labels)} row / {len(col_labels)} column labels for a {rows}x{cols} grid")
    lo, hi = _limits(grid, scale, vmin, vmax)
    return HeadHeatmap(values=codec.encode(grid, "float32"), labels=cell_labels, row_labels=row_labels,
                       col_labels=col_labels, title=title, scale=scale, vmin=lo, vmax=hi, cell_size=cell_size,
                       fit_width=bool(fit_width), value_label=str(value_label))


def _limits(grid: np.ndarray, scale: str, vmin: float | None, vmax: float | None) -> tuple[float, float]:
    finite = grid[np.isfinite(grid)]
    if scale == "diverging":
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        hi = float(vmax) if vmax is not None else (abs(float(vmin)) if vmin is not None else bound)
        hi = hi if hi > 0 and math.isfinite(hi) else 1.0
        return -hi, hi
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
