"""The attention kernel: scores, mask, softmax and the weighted sum of values, in one place.

The model's forward (:class:`~lenswidget.components.attention.Attention`), the patching
engine and the patcher widget all call :func:`attend`; the engine's sites also reuse
:func:`pattern_from_scores` and :func:`weighted_values` on cached activations.

Heads come before positions here: ``q`` [*L, H, n_q, d_head], ``k``/``v`` [*L, H_kv, S, d_head].
Grouped-query heads (``H = G * H_kv``; query head ``h`` reads key/value head ``h // G``) are
folded into the query rows, so keys and values are never repeated. Any leading dims ``*L``
broadcast (the engine uses [runs, batch]).

Two paths compute the same thing:

* ``F.scaled_dot_product_attention`` when nobody looks at the scores or the pattern;
* an explicit one when ``hook_attn_scores``/``hook_pattern`` are hooked, a soft cap applies
  or keys of earlier positions are shared by several runs (``prefix``).

In float16/bfloat16 the explicit path computes in float32 and rounds once at the end. Hooks
see scores and patterns in the model's dtype; when they only read them (e.g. caching), the
output is taken from SDPA as if nothing were hooked, so a watched run is bit-identical to an
unhooked one. A hook that edits them changes the run, as it should, computed in float32.

>>> q, k, v = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
>>> from lenswidget.components.masking import attention_spec
>>> spec = attention_spec(None, 3, 3, None)
>>> fast = attend(q, k, v, spec, scale=8 ** 0.5)
>>> slow = attend(q, k, v, spec, scale=8 ** 0.5, explicit=True)
>>> fast.shape, bool((fast - slow).abs().max() < 1e-5)
(torch.Size([1, 4, 3, 8]), True)
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from lenswidget.components.masking import AttentionSpec
from lenswidget.components.hooking import is_hooked, watch

__all__ = ["attend", "pattern_from_scores", "weighted_values", "SDPA_HAS_GQA"]

LOW_PRECISION = (torch.float16, torch.bfloat16)

#: ``enable_gqa`` exists from torch 2.5; older versions repeat keys/values instead.
SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in LOW_PRECISION else dtype


def pattern_from_scores(scores: torch.Tensor, fix_empty_rows: bool = True) -> torch.Tensor:
    """Softmax over keys; rows with nothing to attend to (all ``-inf``) become zeros (as TL)."""
    pattern = torch.softmax(scores, dim=-1)
    if fix_empty_rows:  # in place unless autograd needs the softmax output
        pattern = pattern.nan_to_num(nan=0.0) if pattern.requires_grad else pattern.nan_to_num_(nan=0.0)
    return pattern


def weighted_values(
    pattern: torch.Tensor, v: torch.Tensor, v_pre: Optional[torch.Tensor] = None, out_dtype=None
) -> torch.Tensor:
    """z [*L, H, n_q, d_head] = pattern @ v, per query head, in the compute precision.

    ``pattern`` [*L', H, n_q, P + S] (its leading dims broadcast against ``v``'s);
    ``v`` [*L, H_kv, S, d_head]; ``v_pre`` [B, H_kv, P, d_head] values of the first ``P`` keys
    shared by every run (then ``L == [R, B]``).
    """
    H, n = pattern.shape[-3], pattern.shape[-2]
    Hk = v.shape[-3]
    G = H // Hk
    cd = _compute_dtype(v.dtype)
    pf = pattern.reshape(*pattern.shape[:-3], Hk, G * n, pattern.shape[-1]).to(cd)
    P = 0 if v_pre is None else v_pre.shape[-2]
    z = torch.matmul(pf[..., P:] if P else pf, v.to(cd))  # [*L, Hk, G*n, d]
    if P:
        R, B = z.shape[0], z.shape[1]
        rows = G * n
        pp = pf[..., :P].expand(R, B, Hk, rows, P).permute(1, 2, 0, 3, 4).reshape(B, Hk, R * rows, P)
        zp = torch.matmul(pp, v_pre.to(cd)).view(B, Hk, R, rows, -1).permute(2, 0, 1, 3, 4)
        z = z + zp
    z = z.reshape(*z.shape[:-3], H, n, z.shape[-1])
    return z.to(out_dtype or v.dtype)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    spec: AttentionSpec,
    scale: float,
    soft_cap: float = -1.0,
    prefix: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    scores_hook=None,
    pattern_hook=None,
    explicit: bool = False,
) -> torch.Tensor:
    """Attention output z [*L, H, n_q, d_head] (heads first, in ``q``'s dtype).

    ``spec`` masks the ``n_q`` queries against the ``P + S`` keys (see
    :mod:`~lenswidget.components.masking`); scores are divided by ``scale`` and, when
    ``soft_cap > 0``, soft-capped before masking. ``prefix`` = (k_pre, v_pre) [B, H_kv, P, d]:
    keys/values of positions before ``k``'s, shared by all ``R`` runs of q [R, B, ...].
    ``scores_hook``/``pattern_hook``: hook points that see [*L, H, n_q, P + S].
    """
    needs_explicit = explicit or soft_cap > 0 or prefix is not None
    if not needs_explicit and not (is_hooked(scores_hook) or is_hooked(pattern_hook)):
        return _sdpa(q, k, v, spec, scale)
    return _explicit(q, k, v, spec, scale, soft_cap, prefix, scores_hook, pattern_hook, needs_explicit)


def _sdpa(q, k, v, spec: AttentionSpec, scale: float) -> torch.Tensor:
    lead = q.shape[:-3]
    mask = spec.sdpa_mask
    if len(lead) > 1 and k.shape[:-3] == lead and (mask is None or mask.shape[0] == 1) and (
            spec.zero_rows is None or spec.zero_rows.shape[0] == 1):
        # fused GPU kernels take [batch, heads, pos, d_head]: fold the extra leading dims into batch
        z = _sdpa(q.reshape(-1, *q.shape[-3:]), k.reshape(-1, *k.shape[-3:]), v.reshape(-1, *v.shape[-3:]),
                  spec, scale)
        return z.view(*lead, *z.shape[-3:])
    G = q.shape[-3] // k.shape[-3]
    extra = {}
    if G > 1:
        if SDPA_HAS_GQA and mask is None:
            extra["enable_gqa"] = True
        else:
            k = k.repeat_interleave(G, dim=-3)
            v = v.repeat_interleave(G, dim=-3)
    z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=spec.is_causal, scale=1.0 / scale, **extra)
    if spec.zero_rows is not None:
        z = z.masked_fill(spec.zero_rows, 0.0)
    return z


def _explicit(q, k, v, spec: AttentionSpec, scale, soft_cap, prefix, scores_hook, pattern_hook,
              needs_explicit: bool) -> torch.Tensor:
    *L, H, n, d = q.shape
    Hk = k.shape[-3]
    G, rows = H // Hk, (H // Hk) * n
    cd = _compute_dtype(q.dtype)
    qf = q.reshape(*L, Hk, rows, d).to(cd)  # rows ordered (group member, position)
    scores = torch.matmul(qf, k.to(cd).transpose(-1, -2))  # [*L, Hk, rows, S]
    v_pre = None
    if prefix is not None:
        k_pre, v_pre = prefix
        R, B = L
        P = k_pre.shape[-2]
        qp = qf.permute(1, 2, 0, 3, 4).reshape(B, Hk, R * rows, d)
        sp = torch.matmul(qp, k_pre.to(cd).transpose(-1, -2)).view(B, Hk, R, rows, P).permute(2, 0, 1, 3, 4)
        scores = torch.cat([sp, scores], dim=-1)
    scores.div_(scale)  # in place on the fresh matmul output
    if soft_cap > 0:
        scores = soft_cap * torch.tanh(scores / soft_cap)
    scores = scores.view(*L, H, n, scores.shape[-1])
    mask = spec.score_mask()
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    hooked = is_hooked(scores_hook) or is_hooked(pattern_hook)
    scores, edited = watch(scores_hook, scores, q.dtype)
    pattern = pattern_from_scores(scores, fix_empty_rows=hooked or spec.zero_rows is not None)
    pattern, edited_p = watch(pattern_hook, pattern, q.dtype)
    if not (needs_explicit or edited or edited_p) and cd != q.dtype:
        return _sdpa(q, k, v, spec, scale)  # hooks only watched: exactly the unhooked result
    return weighted_values(pattern, v, v_pre, out_dtype=q.dtype)
