"""Patch sites: from a patched activation at layer ``l`` to the residual entering later blocks.

Each site does the least work its activation allows, on the suffix ``p0 .. end-1`` only:

* ``resid_pre``: nothing; block ``l`` is recomputed from the patched residual.
* ``resid_post``: nothing; blocks from ``l+1``.
* ``resid_mid`` / ``attn_out`` / ``mlp_out`` / ``z`` / ``result``: layer ``l``'s remaining
  per-position work (O projection, MLP) at the changed positions only; no attention.
* ``q`` / ``k`` (and ``rot_q`` / ``rot_k``): layer ``l``'s attention for the changed heads
  against the cached keys/values; other heads keep the corrupted ``z``.
* ``v`` / ``pattern`` / ``attn_scores``: ``z = pattern @ v`` for the changed heads (no
  projections, no scores for ``v``).

Every site returns ``(entry_layer, resid [R, B, S, d_model])``.
"""

from __future__ import annotations

from typing import Tuple

import torch

from lenswidget.components.attention_kernel import pattern_from_scores, weighted_values

from .baseline import Baseline
from .ops import LayerOps, ModelOps
from .runner import finish_block

__all__ = ["build_entry", "FAST_ACTS", "DEST_ACTS", "SPREADING_ACTS"]

DEST_ACTS = ("pattern", "attn_scores")  # [batch, head, dest, src]: the position axis is dest
SPREADING_ACTS = ("k", "v", "rot_k")  # a change at position p reaches every later destination
FAST_ACTS = (
    "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out",
    "z", "result", "q", "k", "v", "rot_q", "rot_k", "pattern", "attn_scores",
)


def build_entry(
    act: str,
    ops: ModelOps,
    bl: Baseline,
    l: int,
    p0: int,
    end: int,
    patched: torch.Tensor,
    U: torch.Tensor,
) -> Tuple[int, torch.Tensor]:
    """``patched`` [R, ...] is the patched activation on the suffix (dest rows for patterns);
    ``U`` the relative positions where the residual after layer ``l`` can change."""
    lops = ops.layers[l]
    R = patched.shape[0]

    def corr(short):
        return bl.get(short, l)[:, p0:end]

    if act == "resid_pre":
        return l, patched
    if act == "resid_post":
        return l + 1, patched
    if act == "resid_mid":
        rm = patched[:, :, U]
        post = rm + lops.mlp_out(rm)
    elif act == "mlp_out":
        mo = patched[:, :, U]
        if ops.parallel:
            post = corr("resid_pre")[:, U] + corr("attn_out")[:, U] + mo
        else:
            post = corr("resid_mid")[:, U] + mo
    else:
        ao = _attn_out(act, lops, bl, l, p0, end, patched, U)
        mo = corr("mlp_out")[:, U] if ops.parallel else None
        post = finish_block(lops, ops, corr("resid_pre")[:, U], ao, mo)
    x = corr("resid_post").unsqueeze(0).expand(R, -1, -1, -1).clone()
    x[:, :, U] = post
    return l + 1, x


def _attn_out(act, lops: LayerOps, bl: Baseline, l, p0, end, patched, U) -> torch.Tensor:
    """hook_attn_out [R, B, |U|, d_model] of the patched runs at relative positions U."""
    if act == "attn_out":
        return patched[:, :, U]
    if act == "result":
        return lops.attn_out_from_result(patched[:, :, U])
    z = patched if act == "z" else _patched_z(act, lops, bl, l, p0, end, patched)
    return lops.attn_out(z[:, :, U])


def _patched_z(act, lops: LayerOps, bl: Baseline, l, p0, end, patched) -> torch.Tensor:
    """z [R, B, S, H, d_head] after patching q/k/v/pattern/scores; unchanged heads keep the cache."""
    H = lops.n_heads
    z_corr = bl.get("z", l)[:, p0:end]
    G = H // lops.hook_kv
    if act in DEST_ACTS:
        corr = bl.get(act, l)[:, :, p0:end]
        changed = (patched != corr).flatten(3).any(-1).any(1)  # [R, H]
        pattern = pattern_from_scores(patched) if act == "attn_scores" else patched
        v = bl.get("v", l).transpose(1, 2)  # [B, hook_kv, T, dh]
        z_new = weighted_values(pattern, v).transpose(-2, -3)
    else:
        corr = bl.get(act, l)[:, p0:end]
        changed = (patched != corr).transpose(2, 3).flatten(3).any(-1).any(1)  # [R, heads of act]
        if changed.shape[1] != H:
            changed = changed.repeat_interleave(G, dim=1)
        if act in ("q", "k") and lops.qk_norm_across_heads:  # one head's change moves every head's norm
            changed = changed.any(1, keepdim=True).expand_as(changed)
        z_new = _recompute_z(act, lops, bl, l, p0, end, patched)
    return torch.where(changed[:, None, None, :, None], z_new, z_corr)


def _recompute_z(act, lops: LayerOps, bl: Baseline, l, p0, end, patched) -> torch.Tensor:
    R = patched.shape[0]
    pos = torch.arange(p0, end, device=patched.device)
    rotary = bl.rotary

    def suffix(short):
        t = bl.get(short, l)[:, p0:end]
        return t.unsqueeze(0).expand(R, *t.shape)

    k_all, v_all = bl.prefix_kv[l]
    prefix = (k_all[:, :, :p0], v_all[:, :, :p0])
    if act == "v":
        pattern = bl.get("pattern", l)[:, :, p0:end, :end]  # [B, H, S, end]
        v_pre = bl.get("v", l)[:, :p0].unsqueeze(0).expand(R, -1, -1, -1, -1)
        v = torch.cat([v_pre, patched], dim=2).transpose(2, 3)  # [R, B, hook_kv, end, dh]
        return weighted_values(pattern, v).transpose(-2, -3)
    # hook_q / hook_k are before qk-norm and rotary; hook_rot_q / hook_rot_k after both
    if act in ("q", "rot_q"):
        q = lops.rotate(lops.norm_q(patched), pos) if act == "q" else patched
        k, v = suffix("rot_k" if rotary else "k"), suffix("v")
    else:  # k, rot_k
        k = lops.rotate(lops.norm_k(patched), pos) if act == "k" else patched
        q, v = suffix("rot_q" if rotary else "q"), suffix("v")
    return lops.attend(q, k, v, prefix if p0 > 0 else None, pos)
