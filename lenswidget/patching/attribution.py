"""Attribution patching: first-order estimates of every activation patch from one backward pass.

For an activation ``A`` the estimate of patching clean into corrupted is
``metric(corrupted) + sum((A_clean - A_corrupted) * d metric / d A)`` evaluated on the
corrupted run, summed over whatever the sweep's index does not keep. One corrupted forward
and one backward serve every sweep; the clean activations come from ``clean_cache``.

Each estimate has the shape (and meaning: a patched metric value) of the exact function of
the same name in :mod:`lenswidget.patching`:

>>> from lenswidget.patching import attribution
>>> est = attribution.get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)  # doctest: +SKIP
>>> out = attribution.attribution_patch(model, corrupted_tokens, clean_cache, metric,  # doctest: +SKIP
...                                     sweeps=("resid_pre", "attn_head_out_all_pos"))
>>> attribution.compare_with_exact(model, corrupted_tokens, clean_cache, metric)  # doctest: +SKIP
{'resid_pre': 0.97, ...}
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch

from ..errors import InvalidOptionError, ShapeMismatchError
from .validation import check_clean_shape, check_tokens, clean_activation, hook_name

__all__ = ["attribution_patch", "compare_with_exact", "SWEEPS", "pearson"] + [f"get_act_patch_{s}" for s in (
    "resid_pre", "resid_mid", "attn_out", "mlp_out",
    "attn_head_out_by_pos", "attn_head_q_by_pos", "attn_head_k_by_pos", "attn_head_v_by_pos",
    "attn_head_pattern_by_pos", "attn_head_pattern_dest_src_pos",
    "attn_head_out_all_pos", "attn_head_q_all_pos", "attn_head_k_all_pos", "attn_head_v_all_pos",
    "attn_head_pattern_all_pos",
)]

# sweep -> (activation, function reducing (clean - corr) * grad [batch, ...] to the sweep's index)
SWEEPS: Dict[str, tuple] = {
    "resid_pre": ("resid_pre", lambda x: x.sum((0, 2))),  # [pos]
    "resid_mid": ("resid_mid", lambda x: x.sum((0, 2))),
    "attn_out": ("attn_out", lambda x: x.sum((0, 2))),
    "mlp_out": ("mlp_out", lambda x: x.sum((0, 2))),
    "attn_head_out_by_pos": ("z", lambda x: x.sum((0, 3))),  # [pos, head]
    "attn_head_q_by_pos": ("q", lambda x: x.sum((0, 3))),
    "attn_head_k_by_pos": ("k", lambda x: x.sum((0, 3))),
    "attn_head_v_by_pos": ("v", lambda x: x.sum((0, 3))),
    "attn_head_pattern_by_pos": ("pattern", lambda x: x.sum((0, 3))),  # [head, dest]
    "attn_head_pattern_dest_src_pos": ("pattern", lambda x: x.sum(0)),  # [head, dest, src]
    "attn_head_out_all_pos": ("z", lambda x: x.sum((0, 1, 3))),  # [head]
    "attn_head_q_all_pos": ("q", lambda x: x.sum((0, 1, 3))),
    "attn_head_k_all_pos": ("k", lambda x: x.sum((0, 1, 3))),
    "attn_head_v_all_pos": ("v", lambda x: x.sum((0, 1, 3))),
    "attn_head_pattern_all_pos": ("pattern", lambda x: x.sum((0, 2, 3))),  # [head]
}
DEFAULT_COMPARE = ("resid_pre", "attn_out", "mlp_out", "attn_head_out_all_pos", "attn_head_v_all_pos",
                   "attn_head_pattern_all_pos")


def _check_sweeps(sweeps: Sequence[str]) -> list:
    sweeps = [sweeps] if isinstance(sweeps, str) else list(sweeps)
    for s in sweeps:
        if s not in SWEEPS:
            raise InvalidOptionError("attribution sweep", s, list(SWEEPS))
    return sweeps


def attribution_patch(model, corrupted_tokens, clean_cache, patching_metric: Callable, sweeps=tuple(SWEEPS),
                      return_delta: bool = False) -> Dict[str, torch.Tensor]:
    """Estimates for several sweeps from one corrupted forward and one backward.

    Returns ``{sweep: tensor}`` shaped like the exact sweep (``[layer, ...]``). Values are
    estimated patched metrics; ``return_delta=True`` gives the estimated change instead.
    Grouped (GQA) ``k``/``v`` sweeps index key/value heads, as the exact ones do.
    """
    sweeps = _check_sweeps(sweeps)
    tokens = check_tokens(corrupted_tokens).to(model.cfg.device)
    L = model.cfg.n_layers
    acts = sorted({SWEEPS[s][0] for s in sweeps})
    names = {(a, l): hook_name(model, a, l) for a in acts for l in range(L)}
    clean = {}
    for (a, l), name in names.items():
        c = clean_activation(clean_cache, name, a)
        check_clean_shape(tokens, name, c)
        clean[name] = c.to(tokens.device)
    value, grads, corr = _corrupted_grads(model, tokens, list(names.values()), patching_metric)
    out = {}
    for s in sweeps:
        a, reduce = SWEEPS[s]
        per_layer = []
        for l in range(L):
            name = names[(a, l)]
            g = grads[name]
            contrib = (clean[name] - corr[name]) * (g if g is not None else torch.zeros_like(corr[name]))
            per_layer.append(reduce(contrib.float()))
        est = torch.stack(per_layer)
        out[s] = est if return_delta else est + value
    return out


def _corrupted_grads(model, tokens, names, metric):
    """metric(corrupted) and d metric / d activation for every hook in ``names``."""
    saved: Dict[str, torch.Tensor] = {}
    first = "blocks.0.hook_resid_pre"

    def leaf(act, hook):  # everything downstream requires grad, whatever the parameters do
        act = act.detach().requires_grad_(True)
        if hook.name in wanted:
            saved[hook.name] = act
        return act

    def keep(act, hook):
        saved[hook.name] = act
        return act

    wanted = set(names)
    fwd = [(first, leaf)] + [(n, keep) for n in names if n != first]
    with torch.enable_grad(), model.hooks(fwd_hooks=fwd):
        logits = model(tokens)
        value = torch.as_tensor(metric(logits))
        if value.numel() != 1:
            raise ShapeMismatchError(
                f"patching_metric must return a scalar; it returned shape {tuple(value.shape)} "
                "(attribution patching differentiates it, so reduce over the batch, e.g. .mean())"
            )
        if not value.requires_grad:
            raise ShapeMismatchError(
                "patching_metric's value does not depend on the logits differentiably "
                "(attribution patching needs gradients; avoid .item(), argmax or detach inside the metric)"
            )
        order = [n for n in names if n in saved and saved[n].requires_grad]
        grads = torch.autograd.grad(value.reshape(()), [saved[n] for n in order], allow_unused=True)
    g = {n: None for n in names}
    g.update({n: (x.detach() if x is not None else None) for n, x in zip(order, grads)})
    corr = {n: saved[n].detach() for n in names}
    return float(value.detach()), g, corr


def _single(sweep: str) -> Callable:
    def fn(model, corrupted_tokens, clean_cache, patching_metric, return_delta: bool = False):
        return attribution_patch(model, corrupted_tokens, clean_cache, patching_metric, (sweep,), return_delta)[sweep]

    fn.__name__ = fn.__qualname__ = f"get_act_patch_{sweep}"
    fn.__doc__ = (f"Attribution-patching estimate of ``patching.get_act_patch_{sweep}`` (same shape): one "
                  "corrupted forward and one backward.")
    return fn


for _s in SWEEPS:
    globals()[f"get_act_patch_{_s}"] = _single(_s)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tensors' entries (NaN when either is constant)."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else float("nan")


def compare_with_exact(model, corrupted_tokens, clean_cache, patching_metric, sweeps=DEFAULT_COMPARE,
                       return_values: bool = False, **engine_options):
    """Pearson r between attribution estimates and exact patching, per sweep.

    ``{sweep: r}``; with ``return_values=True``, ``{sweep: (r, estimate, exact)}``. Exact
    results use the fast engine (``engine_options`` as for ``generic_activation_patch``).
    """
    from . import sweeps as exact

    sweeps = _check_sweeps(sweeps)
    est = attribution_patch(model, corrupted_tokens, clean_cache, patching_metric, sweeps)
    out = {}
    for s in sweeps:
        ex = getattr(exact, f"get_act_patch_{s}")(model, corrupted_tokens, clean_cache, patching_metric,
                                                  **engine_options)
        r = pearson(est[s].cpu(), ex.cpu())
        out[s] = (r, est[s], ex) if return_values else r
    return out
