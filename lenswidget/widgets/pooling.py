"""Downsampling square attention patterns into thumbnails."""

from __future__ import annotations

import numpy as np


def max_pool_square(patterns: np.ndarray, size: int) -> np.ndarray:
    """Max-pool the last two (square, ``n x n``) axes to at most ``size x size``.

    Max (not mean) pooling keeps a one-token-wide stripe visible in a small thumbnail.
    Blocks are the ``ceil(n / out)``-wide bins of an even split, so every position lands
    in exactly one output cell; ``n <= size`` is returned unchanged.
    """
    n = patterns.shape[-1]
    if n <= size:
        return patterns
    edges = np.linspace(0, n, size + 1).round().astype(int)
    rows = np.maximum.reduceat(patterns, edges[:-1], axis=-2)
    return np.maximum.reduceat(rows, edges[:-1], axis=-1)
