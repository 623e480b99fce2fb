"""Thumbnails: square attention patterns max-pooled to at most ``size x size``.

Max (not mean) pooling keeps a one-token-wide stripe visible in a small thumbnail.
Position 0 (the BOS token, where most heads park attention: the "sink") keeps a bin of
its own, so the thumbnail's first row and column are exactly the sink's and the browser
can hide it; positions ``1..n-1`` are split into ``size - 1`` bins of ``k`` or ``k + 1``
positions (the wider ones first). The bin edges travel with the thumbnails, so the
browser maps a thumbnail cell back to token positions without re-deriving the rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def thumb_edges(n: int, size: int) -> list[int]:
    """Bin edges (``len = bins + 1``, from 0 to ``n``) of an ``n``-position pattern's thumbnail."""
    size = max(2, int(size))
    if n <= size:
        return list(range(n + 1))
    k, wider = divmod(n - 1, size - 1)
    edges = [0, 1]
    for i in range(size - 1):
        edges.append(edges[-1] + k + (1 if i < wider else 0))
    return edges


def pool_max(patterns: Any, edges: list[int]) -> np.ndarray:
    """Max over the bins ``edges`` (from :func:`thumb_edges`) of the last two axes.

    numpy, single-threaded on purpose: torch's two-thread reductions stall badly when the
    cores are shared (a busy notebook machine or CI), numpy's cost stays predictable.
    """
    x = np.asarray(patterns)
    n = x.shape[-1]
    if len(edges) == n + 1:
        return x
    rows = _pool_rows(x, edges)
    return np.ascontiguousarray(_pool_rows(np.ascontiguousarray(rows.swapaxes(-1, -2)), edges).swapaxes(-1, -2))


def _pool_rows(x: np.ndarray, edges: list[int]) -> np.ndarray:
    """Max over row bins. Consecutive bins of one width are reduced together through a view
    (no copy of the big input): at most three runs (the sink, the wider bins, the rest)."""
    parts = []
    i = 0
    while i < len(edges) - 1:
        width = edges[i + 1] - edges[i]
        j = i
        while j < len(edges) - 1 and edges[j + 1] - edges[j] == width:
            j += 1
        block = x[..., edges[i]:edges[j], :]
        parts.append(block.reshape(block.shape[:-2] + (j - i, width, block.shape[-1])).max(axis=-2))
        i = j
    return np.concatenate(parts, axis=-2)
