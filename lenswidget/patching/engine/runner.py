"""Recompute the blocks after a patch, for many runs at once, on the positions it can reach.

A *chunk* is a set of runs whose first changed position ``p0`` is the same. Each run enters
at its own layer (the first block it must recompute); runs are stacked layer by layer as
they enter (a staircase), so every block works on one big batch ``[runs, batch, S, d_model]``
where ``S = end - p0``. Keys/values of positions ``< p0`` are the corrupted run's, shared by
all runs. The last block only computes the outputs of the positions the metric reads.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from .ops import LayerOps, ModelOps

__all__ = ["run_block", "run_staircase"]


def run_block(
    lops: LayerOps,
    ops: ModelOps,
    x: torch.Tensor,
    p0: int,
    prefix: Optional[Tuple[torch.Tensor, torch.Tensor]],
    out_rel: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Block ``lops.l`` on ``x`` [R, B, S, d_model] (positions p0..p0+S-1) -> resid_post.

    ``out_rel``: relative positions whose outputs are needed (None = all); the keys and
    values of every position are still computed.
    """
    S = x.shape[2]
    pos = torch.arange(p0, p0 + S, device=x.device)
    q, k, v = lops.qkv(lops.attn_in(x))
    if out_rel is not None:
        q, x, q_pos = q[:, :, out_rel], x[:, :, out_rel], pos[out_rel]
    else:
        q_pos = pos
    q = lops.rotate(q, q_pos)
    k = lops.rotate(k, pos)
    z = lops.attend(q, k, v, prefix, q_pos)
    return finish_block(lops, ops, x, lops.attn_out(z))


def finish_block(lops: LayerOps, ops: ModelOps, resid_pre: torch.Tensor, attn_out: torch.Tensor, mlp_out=None):
    """resid_post from resid_pre and hook_attn_out (and hook_mlp_out for parallel blocks, if known)."""
    if ops.attn_only:
        return resid_pre + attn_out
    if ops.parallel:
        if mlp_out is None:
            mlp_out = lops.mlp_out(resid_pre)
        return resid_pre + attn_out + mlp_out
    resid_mid = resid_pre + attn_out
    return resid_mid + lops.mlp_out(resid_mid)


def run_staircase(
    ops: ModelOps,
    prefix_kv: Sequence[Tuple[torch.Tensor, torch.Tensor]],
    entries: Dict[int, torch.Tensor],
    p0: int,
    read_rel: torch.Tensor,
    check: Optional[Callable[[], None]] = None,
) -> torch.Tensor:
    """Residual at the read positions for every run, stacked in order of entry layer.

    ``entries[e]`` [R_e, B, S, d_model]: runs whose block ``e`` is the first to recompute
    (``e == n_layers``: nothing to recompute). ``prefix_kv[l]`` = (k, v) [B, H_kv, T, d_head]
    of the corrupted run (rotated keys). Returns [sum R_e, B, len(read_rel), d_model].
    ``check()`` is called before every block (it may raise to cancel).
    """
    L = ops.n_layers
    state: Optional[torch.Tensor] = None
    layers = sorted(entries)
    for l in range(layers[0], L):
        if l in entries:
            state = entries[l] if state is None else torch.cat([state, entries[l]], dim=0)
        if state is None:
            continue
        if check is not None:
            check()
        prefix = None
        if p0 > 0:
            k, v = prefix_kv[l]
            prefix = (k[:, :, :p0], v[:, :, :p0])
        last = l == L - 1
        state = run_block(ops.layers[l], ops, state, p0, prefix, read_rel if last else None)
    if L in entries:
        tail = entries[L][:, :, read_rel]
        state = tail if state is None else torch.cat([state, tail], dim=0)
    return state
