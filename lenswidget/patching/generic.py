"""``generic_activation_patch``: patch one activation at every index of a sweep.

>>> from lenswidget import patching
>>> results = patching.generic_activation_patch(                                # doctest: +SKIP
...     model, corrupted_tokens, clean_cache, metric,
...     patch_setter=patching.layer_pos_patch_setter, activation_name="resid_pre",
...     index_axis_names=("layer", "pos"))                                      # [n_layers, pos]
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import pandas as pd
import torch

from .engine import run_sweep
from .indexing import axis_sizes, index_table, make_df_from_ranges
from .progress import PatchingCancelled

__all__ = ["generic_activation_patch", "head_count"]

_KV_ACTS = ("k", "v", "rot_k", "key", "value")


def head_count(model, activation_name: str) -> int:
    """Heads on the activation's head axis: key/value heads for grouped GQA ``k``/``v``."""
    cfg = model.cfg
    short = activation_name.split(".")[-1].replace("hook_", "")
    if short in _KV_ACTS and cfg.is_gqa and not cfg.ungroup_grouped_query_attention:
        return cfg.n_key_value_heads
    return cfg.n_heads


def generic_activation_patch(
    model,
    corrupted_tokens: torch.Tensor,
    clean_cache,
    patching_metric: Callable,
    patch_setter: Callable,
    activation_name: str,
    index_axis_names: Optional[Sequence[str]] = None,
    index_df: Optional[pd.DataFrame] = None,
    return_index_df: bool = False,
    *,
    verbose: bool = True,
    method: str = "auto",
    memory_budget: Optional[int] = None,
    max_batch: Optional[int] = None,
    on_progress: Optional[Callable[[int, int], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
):
    """Run the corrupted prompts once per index, patching ``activation_name`` from the clean cache.

    ``index_axis_names`` (e.g. ``("layer", "pos")``) sweeps every combination and returns a
    tensor shaped by the axes; ``index_df`` (first column ``layer``) sweeps its rows and
    returns a flat tensor in row order. ``return_index_df=True`` also returns the index frame.
    ``patch_setter(corrupted_activation, index, clean_activation)`` writes the patch.

    Engine options: ``method`` ("auto" | "fast" | "hooks" | "naive"), ``memory_budget``
    (bytes per chunk of runs, default 512 MiB), ``max_batch`` (runs per chunk),
    ``verbose`` (tqdm), ``on_progress(done, total)``, ``should_stop()`` (cancel; raises
    :class:`~lenswidget.patching.PatchingCancelled` with the partial result).
    """
    n_pos = int(corrupted_tokens.shape[-1])
    sizes = axis_sizes(model, n_pos, head_count(model, activation_name))
    rows, shape, _ = index_table(sizes, index_axis_names, index_df)
    try:
        flat = run_sweep(
            model, corrupted_tokens, clean_cache, patching_metric, patch_setter, activation_name, rows,
            verbose=verbose, method=method, memory_budget=memory_budget, max_batch=max_batch,
            on_progress=on_progress, should_stop=should_stop,
        )
    except PatchingCancelled as exc:
        if exc.partial is not None and exc.partial.numel() == len(rows):
            exc.partial = exc.partial.reshape(shape)
        raise
    result = flat.reshape(shape)
    if return_index_df:
        if index_df is None:
            index_df = make_df_from_ranges(shape, list(index_axis_names))
        return result, index_df
    return result
