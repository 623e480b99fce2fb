"""Activation patching (TransformerLens's ``patching`` module), exact and fast.

>>> from lenswidget import patching                                             # doctest: +SKIP
>>> metric = patching.batched_metric(logit_diff, positions=[-1])                # doctest: +SKIP
>>> patching.get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)  # [layer, pos]  # doctest: +SKIP

Same names, arguments, output shapes and numbers as TransformerLens; many patched runs
share each forward pass and only what a patch can change is recomputed (see
``docs/patching.md``). Gradient estimates live in :mod:`lenswidget.patching.attribution`.
"""

from .generic import generic_activation_patch
from .indexing import make_df_from_ranges
from .metric import PatchingMetric, batched_metric
from .progress import PatchingCancelled
from .setters import (
    layer_head_dest_src_pos_pattern_patch_setter,
    layer_head_pattern_patch_setter,
    layer_head_pos_pattern_patch_setter,
    layer_head_vector_patch_setter,
    layer_pos_head_vector_patch_setter,
    layer_pos_patch_setter,
)
from .sweeps import (
    get_act_patch_attn_head_all_pos_every,
    get_act_patch_attn_head_by_pos_every,
    get_act_patch_attn_head_k_all_pos,
    get_act_patch_attn_head_k_by_pos,
    get_act_patch_attn_head_out_all_pos,
    get_act_patch_attn_head_out_by_pos,
    get_act_patch_attn_head_pattern_all_pos,
    get_act_patch_attn_head_pattern_by_pos,
    get_act_patch_attn_head_pattern_dest_src_pos,
    get_act_patch_attn_head_q_all_pos,
    get_act_patch_attn_head_q_by_pos,
    get_act_patch_attn_head_v_all_pos,
    get_act_patch_attn_head_v_by_pos,
    get_act_patch_attn_out,
    get_act_patch_block_every,
    get_act_patch_mlp_out,
    get_act_patch_resid_mid,
    get_act_patch_resid_pre,
)


def __getattr__(name):
    if name == "attribution":
        import importlib

        return importlib.import_module(f"{__name__}.attribution")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "generic_activation_patch", "make_df_from_ranges", "batched_metric", "PatchingMetric", "PatchingCancelled",
    "layer_pos_patch_setter", "layer_pos_head_vector_patch_setter", "layer_head_vector_patch_setter",
    "layer_head_pattern_patch_setter", "layer_head_pos_pattern_patch_setter",
    "layer_head_dest_src_pos_pattern_patch_setter",
    "get_act_patch_resid_pre", "get_act_patch_resid_mid", "get_act_patch_attn_out", "get_act_patch_mlp_out",
    "get_act_patch_attn_head_out_by_pos", "get_act_patch_attn_head_q_by_pos", "get_act_patch_attn_head_k_by_pos",
    "get_act_patch_attn_head_v_by_pos", "get_act_patch_attn_head_pattern_by_pos",
    "get_act_patch_attn_head_pattern_dest_src_pos", "get_act_patch_attn_head_out_all_pos",
    "get_act_patch_attn_head_q_all_pos", "get_act_patch_attn_head_k_all_pos", "get_act_patch_attn_head_v_all_pos",
    "get_act_patch_attn_head_pattern_all_pos", "get_act_patch_attn_head_all_pos_every",
    "get_act_patch_attn_head_by_pos_every", "get_act_patch_block_every", "attribution",
]
