"""The width (last dimension) and device of a hook point's activation, before any forward pass.

Used to refuse a mismatched SAE before it is attached. Common hook names are read off the
config; any other hook is measured once with a one-token forward pass (remembered per model).
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["hook_width", "hook_device"]

_D_MODEL = ("hook_embed", "hook_pos_embed", "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
            "hook_mlp_out", "hook_mlp_in", "hook_normalized", "mlp.hook_in", "hook_attn_in", "hook_q_input",
            "hook_k_input", "hook_v_input", "hook_result")
_D_MLP = ("mlp.hook_pre", "mlp.hook_post", "mlp.hook_pre_linear")
_HEADS = {"attn.hook_z": "q", "attn.hook_q": "q", "attn.hook_rot_q": "q", "attn.hook_k": "kv", "attn.hook_v": "kv",
          "attn.hook_rot_k": "kv"}


def _static_width(model, name: str, z_flat: bool) -> Optional[int]:
    cfg = model.cfg
    if name.endswith(_D_MLP):
        return cfg.d_mlp
    if name.endswith(_D_MODEL):
        return cfg.d_model
    for suffix, kind in _HEADS.items():
        if name.endswith(suffix):
            if not z_flat:
                return cfg.d_head
            heads = cfg.n_heads
            if kind == "kv" and cfg.is_gqa and not cfg.ungroup_grouped_query_attention:
                heads = cfg.n_key_value_heads
            return heads * cfg.d_head
    return None


def _probe(model, name: str) -> Optional[tuple]:
    memo = model.__dict__.setdefault("_lenswidget_hook_shapes", {})
    if name not in memo:
        seen = {}

        def grab(act, hook):
            seen[hook.name] = tuple(act.shape)

        tokens = torch.zeros((1, 1), dtype=torch.long, device=model.embed.W_E.device)
        with torch.no_grad():
            model.run_with_hooks(tokens, fwd_hooks=[(name, grab)], return_type=None)
        memo[name] = seen.get(name)
    return memo[name]


def hook_width(model, name: str, z_flat: bool = False) -> Optional[int]:
    """Last dimension of the activation at ``name`` (heads flattened when ``z_flat``); None if unknown."""
    width = _static_width(model, name, z_flat)
    if width is not None:
        return width
    shape = _probe(model, name)
    if not shape:
        return None
    if z_flat and len(shape) >= 2:
        return shape[-1] * shape[-2]
    return shape[-1]


def hook_device(model, name: str) -> Optional[torch.device]:
    """Device of the parameters that compute ``name`` (the block's, or the embedding's / unembedding's)."""
    parts = name.split(".")
    module = None
    if parts[0] == "blocks" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(model.blocks):
        module = model.blocks[int(parts[1])]
    elif parts[0] in ("ln_final", "unembed"):
        module = model.unembed
    else:
        module = model.embed
    for p in module.parameters():
        return p.device
    return None
