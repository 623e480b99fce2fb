"""TransformerLens's ``get_act_patch_*`` sweeps, with its output shapes.

================================================  ==========================  ==================
function                                          patches                     result
================================================  ==========================  ==================
get_act_patch_resid_pre / resid_mid               residual at (layer, pos)    [layer, pos]
get_act_patch_attn_out / mlp_out                  sublayer output             [layer, pos]
get_act_patch_attn_head_{out,q,k,v}_by_pos        head vector at one pos      [layer, pos, head]
get_act_patch_attn_head_pattern_by_pos            pattern row (dest)          [layer, head, dest]
get_act_patch_attn_head_pattern_dest_src_pos      one pattern entry           [layer, head, dest, src]
get_act_patch_attn_head_{out,q,k,v,pattern}_all_pos  head at every position   [layer, head]
get_act_patch_attn_head_all_pos_every             out, q, k, v, pattern       [5, layer, head]
get_act_patch_attn_head_by_pos_every              out, q, k, v, pattern       [5, layer, pos, head]
get_act_patch_block_every                         resid_pre, attn_out, mlp    [3, layer, pos]
================================================  ==========================  ==================

"out" patches the head's ``z`` (its output before ``W_O``). With grouped-query attention
``k`` / ``v`` sweeps index the key/value heads (their hooks' head axis); the ``*_every``
stacks repeat each key/value head's result over the query heads that share it.
Every function takes the engine options of :func:`generic_activation_patch` as keywords.
"""

from __future__ import annotations

from typing import Callable, Optional

import einops
import torch

from .generic import generic_activation_patch, head_count
from .setters import (
    layer_head_dest_src_pos_pattern_patch_setter,
    layer_head_pattern_patch_setter,
    layer_head_pos_pattern_patch_setter,
    layer_head_vector_patch_setter,
    layer_pos_head_vector_patch_setter,
    layer_pos_patch_setter,
)

__all__ = [
    "get_act_patch_resid_pre", "get_act_patch_resid_mid", "get_act_patch_attn_out", "get_act_patch_mlp_out",
    "get_act_patch_attn_head_out_by_pos", "get_act_patch_attn_head_q_by_pos", "get_act_patch_attn_head_k_by_pos",
    "get_act_patch_attn_head_v_by_pos", "get_act_patch_attn_head_pattern_by_pos",
    "get_act_patch_attn_head_pattern_dest_src_pos", "get_act_patch_attn_head_out_all_pos",
    "get_act_patch_attn_head_q_all_pos", "get_act_patch_attn_head_k_all_pos", "get_act_patch_attn_head_v_all_pos",
    "get_act_patch_attn_head_pattern_all_pos", "get_act_patch_attn_head_all_pos_every",
    "get_act_patch_attn_head_by_pos_every", "get_act_patch_block_every",
]


def _sweep(name: str, activation: str, setter: Callable, axes: tuple, what: str) -> Callable:
    def sweep(
        model,
        corrupted_tokens: torch.Tensor,
        clean_cache,
        patching_metric: Callable,
        index_axis_names=axes,
        index_df=None,
        return_index_df: bool = False,
        **engine_options,
    ):
        if index_df is not None and index_axis_names == axes:
            index_axis_names = None
        return generic_activation_patch(
            model, corrupted_tokens, clean_cache, patching_metric, setter, activation,
            index_axis_names, index_df, return_index_df, **engine_options,
        )

    shape = ", ".join(axes)
    sweep.__name__ = sweep.__qualname__ = name
    sweep.__doc__ = (
        f"Patch {what} from the clean cache into the corrupted run; returns [{shape}] "
        f"(or a flat tensor in row order for ``index_df``).\n\n"
        f"Hook: ``{activation}``; setter: ``{setter.__name__}``. Engine options as for "
        "``generic_activation_patch``."
    )
    return sweep


LP, LPH, LH = ("layer", "pos"), ("layer", "pos", "head"), ("layer", "head")

get_act_patch_resid_pre = _sweep("get_act_patch_resid_pre", "resid_pre", layer_pos_patch_setter, LP,
                                 "the residual stream before each block, one position at a time")
get_act_patch_resid_mid = _sweep("get_act_patch_resid_mid", "resid_mid", layer_pos_patch_setter, LP,
                                 "the residual stream between attention and MLP")
get_act_patch_attn_out = _sweep("get_act_patch_attn_out", "attn_out", layer_pos_patch_setter, LP,
                                "each attention layer's output at one position")
get_act_patch_mlp_out = _sweep("get_act_patch_mlp_out", "mlp_out", layer_pos_patch_setter, LP,
                               "each MLP layer's output at one position")
get_act_patch_attn_head_out_by_pos = _sweep("get_act_patch_attn_head_out_by_pos", "z",
                                            layer_pos_head_vector_patch_setter, LPH,
                                            "one head's output (z) at one position")
get_act_patch_attn_head_q_by_pos = _sweep("get_act_patch_attn_head_q_by_pos", "q",
                                          layer_pos_head_vector_patch_setter, LPH, "one head's query at one position")
get_act_patch_attn_head_k_by_pos = _sweep("get_act_patch_attn_head_k_by_pos", "k",
                                          layer_pos_head_vector_patch_setter, LPH,
                                          "one (key/value) head's key at one position")
get_act_patch_attn_head_v_by_pos = _sweep("get_act_patch_attn_head_v_by_pos", "v",
                                          layer_pos_head_vector_patch_setter, LPH,
                                          "one (key/value) head's value at one position")
get_act_patch_attn_head_pattern_by_pos = _sweep("get_act_patch_attn_head_pattern_by_pos", "pattern",
                                                layer_head_pos_pattern_patch_setter,
                                                ("layer", "head_index", "dest_pos"),
                                                "one head's attention pattern row for one destination")
get_act_patch_attn_head_pattern_dest_src_pos = _sweep("get_act_patch_attn_head_pattern_dest_src_pos", "pattern",
                                                      layer_head_dest_src_pos_pattern_patch_setter,
                                                      ("layer", "head_index", "dest_pos", "src_pos"),
                                                      "one entry of one head's attention pattern")
get_act_patch_attn_head_out_all_pos = _sweep("get_act_patch_attn_head_out_all_pos", "z",
                                             layer_head_vector_patch_setter, LH,
                                             "one head's output (z) at every position")
get_act_patch_attn_head_q_all_pos = _sweep("get_act_patch_attn_head_q_all_pos", "q", layer_head_vector_patch_setter,
                                           LH, "one head's queries at every position")
get_act_patch_attn_head_k_all_pos = _sweep("get_act_patch_attn_head_k_all_pos", "k", layer_head_vector_patch_setter,
                                           LH, "one (key/value) head's keys at every position")
get_act_patch_attn_head_v_all_pos = _sweep("get_act_patch_attn_head_v_all_pos", "v", layer_head_vector_patch_setter,
                                           LH, "one (key/value) head's values at every position")
get_act_patch_attn_head_pattern_all_pos = _sweep("get_act_patch_attn_head_pattern_all_pos", "pattern",
                                                 layer_head_pattern_patch_setter, LH,
                                                 "one head's whole attention pattern")


class _Combined:
    """Progress of several sub-sweeps reported as one ``on_progress(done, total)``."""

    def __init__(self, on_progress: Optional[Callable], total: int):
        self.on_progress, self.total, self.offset = on_progress, total, 0

    def part(self, size: int) -> Optional[Callable]:
        if self.on_progress is None:
            return None
        offset = self.offset
        self.offset += size
        return lambda done, _total: self.on_progress(offset + done, self.total)


def _to_query_heads(model, activation: str, result: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Repeat key/value-head results over their query heads (grouped-query attention)."""
    n = head_count(model, activation)
    if n == model.cfg.n_heads:
        return result
    return result.repeat_interleave(model.cfg.n_heads // n, dim=head_dim)


def get_act_patch_attn_head_all_pos_every(model, corrupted_tokens, clean_cache, metric, **engine_options):
    """[5, layer, head]: head output (z), q, k, v and pattern, each patched at every position."""
    cfg = model.cfg
    kv = head_count(model, "k")
    sizes = [cfg.n_heads, cfg.n_heads, kv, kv, cfg.n_heads]
    progress = _Combined(engine_options.pop("on_progress", None), cfg.n_layers * sum(sizes))
    out = []
    for (fn, act), size in zip(
        [(get_act_patch_attn_head_out_all_pos, "z"), (get_act_patch_attn_head_q_all_pos, "q"),
         (get_act_patch_attn_head_k_all_pos, "k"), (get_act_patch_attn_head_v_all_pos, "v"),
         (get_act_patch_attn_head_pattern_all_pos, "pattern")],
        sizes,
    ):
        res = fn(model, corrupted_tokens, clean_cache, metric,
                 on_progress=progress.part(cfg.n_layers * size), **engine_options)
        out.append(_to_query_heads(model, act, res, 1))
    return torch.stack(out, dim=0)


def get_act_patch_attn_head_by_pos_every(model, corrupted_tokens, clean_cache, metric, **engine_options):
    """[5, layer, pos, head]: head output (z), q, k, v at one position, and the pattern row of one dest."""
    cfg = model.cfg
    T = int(corrupted_tokens.shape[-1])
    kv = head_count(model, "k")
    sizes = [cfg.n_heads, cfg.n_heads, kv, kv, cfg.n_heads]
    progress = _Combined(engine_options.pop("on_progress", None), cfg.n_layers * T * sum(sizes))
    out = []
    for (fn, act), size in zip(
        [(get_act_patch_attn_head_out_by_pos, "z"), (get_act_patch_attn_head_q_by_pos, "q"),
         (get_act_patch_attn_head_k_by_pos, "k"), (get_act_patch_attn_head_v_by_pos, "v")],
        sizes,
    ):
        res = fn(model, corrupted_tokens, clean_cache, metric,
                 on_progress=progress.part(cfg.n_layers * T * size), **engine_options)
        out.append(_to_query_heads(model, act, res, 2))
    pattern = get_act_patch_attn_head_pattern_by_pos(model, corrupted_tokens, clean_cache, metric,
                                                     on_progress=progress.part(cfg.n_layers * T * cfg.n_heads),
                                                     **engine_options)
    out.append(einops.rearrange(pattern, "layer head pos -> layer pos head"))
    return torch.stack(out, dim=0)


def get_act_patch_block_every(model, corrupted_tokens, clean_cache, metric, **engine_options):
    """[3, layer, pos]: the residual stream (resid_pre), attention output and MLP output."""
    cfg = model.cfg
    T = int(corrupted_tokens.shape[-1])
    progress = _Combined(engine_options.pop("on_progress", None), 3 * cfg.n_layers * T)
    out = []
    for fn in (get_act_patch_resid_pre, get_act_patch_attn_out, get_act_patch_mlp_out):
        out.append(fn(model, corrupted_tokens, clean_cache, metric,
                      on_progress=progress.part(cfg.n_layers * T), **engine_options))
    return torch.stack(out, dim=0)
