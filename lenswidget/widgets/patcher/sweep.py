"""Grid-wide results for the patcher's overlay: exact sweeps and attribution estimates.

``exact_sweep`` patches every cell of the current grid on its own, through
:mod:`lenswidget.patching` (its fast batched engine, with ``on_progress`` / ``should_stop``):

=========================  ==============================================  ===============
grid                       patching call                                   result
=========================  ==============================================  ===============
resid_pre / resid_mid /    ``get_act_patch_<act>``                         [layer, pos]
attn_out / mlp_out
z / q / k / v / pattern,   ``get_act_patch_attn_head_<out|q|k|v|pattern>``  [layer, head]
every position             ``_all_pos``
z / q / k / v / pattern    ``generic_activation_patch`` over (layer, pos,   [layer, head]
at position p              head) / (layer, head, dest) rows with pos = p
=========================  ==============================================  ===============

``attribution_sweep`` is the first-order estimate of the same grid from one forward and
one backward pass on the corrupted run (``lenswidget.patching.attribution``, the same
table with ``_by_pos`` estimates sliced at p): ``metric(corrupted) + sum((clean -
corrupted) * d metric / d activation)`` over each cell's region.
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import torch

from ... import patching
from .patches import POSITION_ACTS
from .runs import Runs

_HEAD_SWEEPS = {"z": "out", "q": "q", "k": "k", "v": "v", "pattern": "pattern"}


def exact_sweep(runs: Runs, act: str, position: int | None, on_progress: Callable | None = None,
                should_stop: Callable | None = None, **engine_options: Any) -> torch.Tensor:
    """The metric of every single-cell patch of the grid of ``act`` (see the module table)."""
    model, tokens, cache = runs.model, runs.corrupted_tokens, runs.clean_cache
    opts = dict(verbose=False, on_progress=on_progress, should_stop=should_stop, **engine_options)
    if act in POSITION_ACTS:
        fn = getattr(patching, f"get_act_patch_{act}")
        return fn(model, tokens, cache, runs.metric, **opts).cpu()
    if position is None:
        fn = getattr(patching, f"get_act_patch_attn_head_{_HEAD_SWEEPS[act]}_all_pos")
        return fn(model, tokens, cache, runs.metric, **opts).cpu()
    n_layers, n_cols = runs.dims.n_layers, runs.dims.cols(act)
    if act == "pattern":
        rows = [(l, h, position) for l in range(n_layers) for h in range(n_cols)]
        df = pd.DataFrame(rows, columns=["layer", "head_index", "dest_pos"])
        setter = patching.layer_head_pos_pattern_patch_setter
    else:
        rows = [(l, position, h) for l in range(n_layers) for h in range(n_cols)]
        df = pd.DataFrame(rows, columns=["layer", "pos", "head"])
        setter = patching.layer_pos_head_vector_patch_setter
    flat = patching.generic_activation_patch(model, tokens, cache, runs.metric, setter, act, index_df=df, **opts)
    return flat.reshape(n_layers, n_cols).cpu()


def sweep_size(runs: Runs, act: str, position: int | None) -> int:
    """Number of patched runs of :func:`exact_sweep` (for the progress bar)."""
    return runs.dims.n_layers * runs.dims.cols(act)


def attribution_sweep(runs: Runs, act: str, position: int | None) -> torch.Tensor:
    """The attribution patching estimate of :func:`exact_sweep`'s grid (``patching.attribution``)."""
    from ...patching import attribution

    args = (runs.model, runs.corrupted_tokens, runs.clean_cache, runs.metric)
    if act in POSITION_ACTS:
        return getattr(attribution, f"get_act_patch_{act}")(*args).cpu()
    name = f"get_act_patch_attn_head_{_HEAD_SWEEPS[act]}_{'all_pos' if position is None else 'by_pos'}"
    est = getattr(attribution, name)(*args).cpu()
    if position is None:
        return est  # [layer, head]
    return est[:, :, position] if act == "pattern" else est[:, position, :]  # [layer, head, dest] / [layer, pos, head]
