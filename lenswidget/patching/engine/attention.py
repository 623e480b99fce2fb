"""Causal attention for many patched runs that share one cached prefix.

Runs ``r`` differ only at positions ``>= p0``; the keys/values of positions ``< p0`` come from
the corrupted run and are the same for every run, so they are stored once ([batch, ...]) and
broadcast: for the prefix part the runs are folded into the query rows, which turns the
shared keys into one matmul with no per-run copy. GQA query heads of one key/value head are
folded the same way, so grouped keys are never repeated.

>>> import torch
>>> R, B, H, dh = 2, 1, 2, 4
>>> q = torch.randn(R, B, 3, H, dh); k = torch.randn(R, B, 3, H, dh); v = torch.randn(R, B, 3, H, dh)
>>> z, _ = attend(q, k, v, None, None, torch.arange(3), scale=2.0)
>>> z.shape
torch.Size([2, 1, 3, 2, 4])
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

__all__ = ["attend", "allowed_keys"]

_LOW = (torch.float16, torch.bfloat16)


def allowed_keys(q_pos: torch.Tensor, n_keys: int, window: Optional[int]) -> torch.Tensor:
    """Bool [n_q, n_keys]: key j visible from query position ``q_pos[i]`` (causal, sliding window)."""
    kj = torch.arange(n_keys, device=q_pos.device)[None, :]
    qi = q_pos[:, None]
    ok = kj <= qi
    if window is not None:
        ok &= (qi - kj) < window
    return ok


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_pre: Optional[torch.Tensor],
    v_pre: Optional[torch.Tensor],
    q_pos: torch.Tensor,
    scale: float,
    soft_cap: float = -1.0,
    window: Optional[int] = None,
    want_pattern: bool = False,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """z [R, B, n_q, H, d_head] (and the pattern [R, B, H, n_q, n_keys] when asked).

    ``q`` [R, B, n_q, H, d_head]: rotated queries at absolute positions ``q_pos`` [n_q].
    ``k``, ``v`` [R, B, S, H_kv, d_head]: per-run keys/values of positions ``P .. P+S-1``.
    ``k_pre``, ``v_pre`` [B, H_kv, P, d_head]: shared keys/values of positions ``0 .. P-1``
    (None when P = 0).
    """
    R, B, n_q, H, dh = q.shape
    S, Hk = k.shape[2], k.shape[3]
    G = H // Hk
    P = 0 if k_pre is None else k_pre.shape[2]
    cd = torch.float32 if q.dtype in _LOW else q.dtype
    rows = G * n_q
    # query rows ordered (group member, position) inside each key/value head
    qh = q.reshape(R, B, n_q, Hk, G, dh).permute(0, 1, 3, 4, 2, 5).reshape(R, B, Hk, rows, dh).to(cd)
    scores = torch.matmul(qh, k.permute(0, 1, 3, 4, 2).to(cd))  # [R, B, Hk, rows, S]
    if P:
        qp = qh.permute(1, 2, 0, 3, 4).reshape(B, Hk, R * rows, dh)
        sp = torch.matmul(qp, k_pre.transpose(-1, -2).to(cd))
        sp = sp.view(B, Hk, R, rows, P).permute(2, 0, 1, 3, 4)
        scores = torch.cat([sp, scores], dim=-1)
    scores = scores / scale
    if soft_cap > 0:
        scores = soft_cap * torch.tanh(scores / soft_cap)
    ok = allowed_keys(q_pos, P + S, window).repeat(G, 1)  # [rows, P + S]
    scores = scores.masked_fill(~ok, float("-inf"))
    pattern = torch.softmax(scores, dim=-1)
    pv = pattern.to(v.dtype)
    z = torch.matmul(pv[..., P:], v.permute(0, 1, 3, 2, 4))  # [R, B, Hk, rows, dh]
    if P:
        pp = pv[..., :P].permute(1, 2, 0, 3, 4).reshape(B, Hk, R * rows, P)
        zp = torch.matmul(pp, v_pre).view(B, Hk, R, rows, dh).permute(2, 0, 1, 3, 4)
        z = z + zp
    z = z.reshape(R, B, Hk, G, n_q, dh).permute(0, 1, 4, 2, 3, 5).reshape(R, B, n_q, H, dh)
    pat = pattern.reshape(R, B, H, n_q, P + S) if want_pattern else None
    return z, pat
