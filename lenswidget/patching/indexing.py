"""Index tables of a patching sweep: one row per patch, the layer first.

>>> make_df_from_ranges([2, 3], ["layer", "pos"]).shape
(6, 2)
"""

from __future__ import annotations

import itertools
from typing import Dict, List, Sequence

import pandas as pd

from ..errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError

__all__ = ["make_df_from_ranges", "axis_sizes", "index_table", "AXIS_NAMES"]

AXIS_NAMES = ("layer", "pos", "head_index", "head", "src_pos", "dest_pos")


def make_df_from_ranges(column_max_ranges: Sequence[int], column_names: Sequence[str]) -> pd.DataFrame:
    """Every combination of ``range(n)`` for each column, in row-major order."""
    rows = list(itertools.product(*[range(int(n)) for n in column_max_ranges]))
    return pd.DataFrame(rows, columns=list(column_names))


def axis_sizes(model, n_pos: int, n_heads: int | None = None) -> Dict[str, int]:
    """The size of each named axis; ``n_heads`` overrides the head count (grouped k/v)."""
    heads = model.cfg.n_heads if n_heads is None else n_heads
    return {
        "layer": model.cfg.n_layers,
        "pos": n_pos,
        "src_pos": n_pos,
        "dest_pos": n_pos,
        "head_index": heads,
        "head": heads,
    }


def index_table(sizes: Dict[str, int], index_axis_names=None, index_df=None):
    """``(rows, result_shape)``: a list of integer index rows and the output shape.

    ``result_shape`` is the axis sizes for ``index_axis_names`` and ``(len(rows),)`` for an
    ``index_df`` (flat output, in row order). Every entry is range-checked so a bad row fails
    before any forward pass.
    """
    if index_df is None:
        if index_axis_names is None:
            raise InvalidOptionError("index_axis_names (with index_df=None)", None, [tuple(AXIS_NAMES[:2])])
        names = list(index_axis_names)
        for n in names:
            if n not in sizes:
                raise InvalidOptionError("index axis name", n, list(sizes))
        shape = tuple(sizes[n] for n in names)
        rows = [list(r) for r in itertools.product(*[range(s) for s in shape])]
        return rows, shape, names
    if index_axis_names is not None:
        raise InvalidOptionError(
            "combination of index_axis_names and index_df", "both given", ["index_axis_names only", "index_df only"]
        )
    if not isinstance(index_df, pd.DataFrame):
        raise InvalidOptionError("index_df type", type(index_df).__name__, ["pandas.DataFrame"])
    names = [str(c) for c in index_df.columns]
    if not names or names[0] != "layer":
        raise ShapeMismatchError(f"index_df's first column must be 'layer'; got columns {names}")
    rows: List[list] = [[int(v) for v in r] for r in index_df.itertuples(index=False, name=None)]
    for r in rows:
        for i, (n, v) in enumerate(zip(names, r)):
            size = sizes.get(n)
            if size is None:
                continue
            if not -size <= v < size:
                raise OutOfRangeError(f"index_df column {n!r}", v, -size, size - 1)
            r[i] = v % size  # negative entries count from the end, as Python indexing does
    return rows, (len(rows),), names
