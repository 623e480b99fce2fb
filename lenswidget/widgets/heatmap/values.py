"""Normalising per-head values (DLA, patching sweeps) into a ``[n_layers, n_heads]`` grid."""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from ...errors import ShapeMismatchError
from ..codec import to_numpy

_HEAD_LABEL = re.compile(r"^L(\d+)H(\d+)$")


def head_grid(values: Any, labels: Sequence[str] | None = None, n_heads: int | None = None
              ) -> tuple[np.ndarray, list[str]]:
    """``(grid[n_layers, n_heads], cell_labels)`` from a 1-D or 2-D torch/numpy input.

    * ``[n_layers, n_heads]``: used as is (leading size-1 dims are dropped).
    * ``[n_layers * n_heads]`` with labels ``L{l}H{h}`` (``cache.stack_head_results``
      order or any other): each value goes to its labelled cell; missing cells are NaN.
    * ``[n_layers * n_heads]`` with ``n_heads=``: reshaped layer-major.
    """
    arr = to_numpy(values)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    labels = None if labels is None else [str(x) for x in np.asarray(labels, dtype=object).reshape(-1)]
    if labels is not None and len(labels) != arr.size:
        raise ShapeMismatchError(f"{len(labels)} labels for {arr.size} head values")
    placed = False
    if arr.ndim == 2:
        grid = arr
    elif arr.ndim == 1 and labels is not None and all(_HEAD_LABEL.match(x) for x in labels):
        grid, placed = _place_by_label(arr, labels), True
    elif arr.ndim == 1 and n_heads:
        if arr.size % n_heads:
            raise ShapeMismatchError(f"{arr.size} values do not split into rows of n_heads={n_heads}")
        grid = arr.reshape(-1, n_heads)
    else:
        raise ShapeMismatchError(
            f"head values of shape {list(arr.shape)}: expected [n_layers, n_heads], or [n_layers*n_heads] "
            "with labels 'L{l}H{h}' or n_heads="
        )
    default = [f"L{l}H{h}" for l in range(grid.shape[0]) for h in range(grid.shape[1])]
    cell_labels = default if labels is None or placed else labels
    if grid.size == 0:
        raise ShapeMismatchError(f"head values of shape {list(arr.shape)} are empty")
    return np.ascontiguousarray(grid, dtype=np.float32), cell_labels


def _place_by_label(flat: np.ndarray, labels: list[str]) -> np.ndarray:
    if len(labels) != flat.size:
        raise ShapeMismatchError(f"{len(labels)} labels for {flat.size} values")
    cells = [tuple(int(g) for g in _HEAD_LABEL.match(x).groups()) for x in labels]  # type: ignore[union-attr]
    if len(set(cells)) != len(cells):
        raise ShapeMismatchError("duplicate head labels")
    n_layers = max(c[0] for c in cells) + 1
    n_heads = max(c[1] for c in cells) + 1
    if n_layers * n_heads > 64 * len(cells) + 1024:
        raise ShapeMismatchError(f"head labels span {n_layers}x{n_heads} cells for only {len(cells)} values")
    grid = np.full((n_layers, n_heads), np.nan, dtype=np.float32)
    for (l, h), v in zip(cells, flat):
        grid[l, h] = v
    return grid
