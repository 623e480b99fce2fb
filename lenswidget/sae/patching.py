"""Patching SAE features: exact (on the patching engine) and by attribution (one backward pass).

The corrupted prompts run with the SAE attached (by default with its error term, so the
unpatched run is exactly the model's corrupted run). A *patch* sets chosen features at chosen
positions to their clean values (``clean_cache`` from ``run_with_cache_with_saes`` on the clean
prompts) or to 0 (``ablate=True``); everything downstream of the SAE is recomputed.

>>> patches = [[(-1, 123)], [(-1, 123), (-2, 77)]]          # one run per list of (pos, feature)  # doctest: +SKIP
>>> patch_features(model, sae, corrupted_tokens, clean_cache, metric, patches)         # doctest: +SKIP
tensor([0.41, 1.37])                                         # the metric of each patched run
>>> est = feature_attribution_patch(model, sae, corrupted_tokens, clean_cache, metric)  # doctest: +SKIP
>>> est.features.shape                          # [pos, d_sae]: every feature x position  # doctest: +SKIP
>>> compare_feature_patching(model, sae, corrupted_tokens, clean_cache, metric, n=64)  # doctest: +SKIP
{'pearson': 0.93, ...}

Exact patches are batched by :func:`lenswidget.patching.engine.run_sweep` (its hook-based path:
many runs per forward, each starting at the SAE's block). Attribution patching estimates every
feature x position at once, ``(clean - corrupted) * d metric / d act`` summed over the batch,
from one corrupted forward and one backward that stops at the SAE (about 3 forward passes, 4
with the clean run).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, UnknownNameError

from .transformer import resolve_sae

__all__ = ["patch_features", "feature_attribution_patch", "FeatureAttributionPatch", "compare_feature_patching",
           "feature_grid"]


def _sae_layer(sae) -> int:
    layers = []
    for name in (sae.cfg.hook_name, sae.cfg.hook_name_out):
        parts = name.split(".")
        if parts[0] != "blocks" or not parts[1].isdigit():
            raise InvalidOptionError("SAE hook for feature patching", name, ["a hook inside a block (blocks.<L>.*)"])
        layers.append(int(parts[1]))
    return min(layers)


def _clean_acts(clean_cache, name: str) -> torch.Tensor:
    try:
        present = name in clean_cache
    except TypeError:
        present = False
    if not present:
        raise UnknownNameError("clean_cache entry", name, [k for k in clean_cache.keys() if ".hook_sae_" in k],
                               hint="cache the clean run with model.run_with_cache_with_saes(clean_tokens, saes=[sae])")
    return clean_cache[name]


def _normalize_patches(patches: Sequence, n_pos: int, d_sae: int) -> List[List[Tuple[int, int]]]:
    out = []
    for i, group in enumerate(patches):
        if isinstance(group, tuple) and len(group) == 2 and all(isinstance(v, int) for v in group):
            group = [group]  # a bare (pos, feature) pair is a run of its own
        pairs = []
        for item in group:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise InvalidOptionError(f"patch {i} entry", item, ["(pos, feature) pairs"])
            pos, feat = int(item[0]), int(item[1])
            if not -n_pos <= pos < n_pos:
                raise OutOfRangeError("patch position", pos, -n_pos, n_pos - 1)
            if not 0 <= feat < d_sae:
                raise OutOfRangeError("feature", feat, 0, d_sae - 1)
            pairs.append((pos % n_pos, feat))
        out.append(pairs)
    return out


def feature_grid(features: Sequence[int], positions: Sequence[int]) -> List[List[Tuple[int, int]]]:
    """One single-entry patch per (feature, position), feature-major: ``[[(p, f)] for f for p]``."""
    return [[(int(p), int(f))] for f in features for p in positions]


def patch_features(
    model: Any,
    sae: Any,
    corrupted_tokens: torch.Tensor,
    clean_cache: Any,
    patching_metric: Callable,
    patches: Sequence,
    *,
    ablate: bool = False,
    use_error_term: bool = True,
    **engine_options: Any,
) -> torch.Tensor:
    """The metric of each patched run, ``[len(patches)]``.

    ``patches``: a list of runs, each a list of ``(pos, feature)`` pairs patched together (a bare
    pair is a one-entry run). ``clean_cache`` needs ``{hook}.hook_sae_acts_post`` (not needed with
    ``ablate=True``). ``engine_options`` as for ``generic_activation_patch`` (``verbose``,
    ``memory_budget``, ``max_batch``, ``on_progress``, ``should_stop``); ``method`` may be
    ``"hooks"`` (default) or ``"naive"``.
    """
    from lenswidget.patching.engine import run_sweep
    from lenswidget.patching.validation import check_tokens

    sae = resolve_sae(model, sae)
    tokens = check_tokens(corrupted_tokens)
    B, T = tokens.shape
    layer = _sae_layer(sae)
    name = f"{sae.cfg.hook_name_out}.hook_sae_acts_post"
    runs = _normalize_patches(patches, T, sae.cfg.d_sae)
    if ablate:
        source = torch.zeros(B, T, sae.cfg.d_sae, dtype=sae.dtype, device=sae.device)
    else:
        source = _clean_acts(clean_cache, name)
        if tuple(source.shape) != (B, T, sae.cfg.d_sae):
            raise ShapeMismatchError(f"clean_cache[{name!r}] has shape {tuple(source.shape)}; the corrupted tokens "
                                     f"need [batch={B}, pos={T}, d_sae={sae.cfg.d_sae}]")
    method = engine_options.pop("method", "hooks")
    if method not in ("hooks", "naive"):
        raise InvalidOptionError("method for feature patching", method, ["hooks", "naive"])
    rows = [[layer, i] for i in range(len(runs))]

    def setter(acts, row, clean):
        for pos, feat in runs[int(row[1])]:
            acts[:, pos, feat] = clean[:, pos, feat].to(acts.dtype)
        return acts

    engine_options.setdefault("desc", f"patching features of {sae.cfg.hook_name_out}")
    with model.saes([sae], use_error_term=use_error_term):
        return run_sweep(model, tokens, {name: source}, patching_metric, setter, name, rows, method=method,
                         **engine_options)


@dataclass
class FeatureAttributionPatch:
    """Attribution-patching estimates of the metric *change* (sum over the batch).

    ``features`` [pos, d_sae]: patching one feature at one position; ``error`` [pos]: patching
    the error term; ``value``: the corrupted metric. ``clean``/``corrupted``: the activations.
    """

    features: torch.Tensor
    error: Optional[torch.Tensor]
    value: float
    clean: torch.Tensor
    corrupted: torch.Tensor

    def top(self, k: int = 10, absolute: bool = True) -> List[tuple]:
        """The ``k`` largest estimates as ``[(pos, feature, delta)]``."""
        flat = self.features.flatten()
        k = max(0, min(int(k), flat.numel()))
        _, idx = torch.topk(flat.abs() if absolute else flat, k)
        d = self.features.shape[-1]
        return [(int(i) // d, int(i) % d, float(flat[i])) for i in idx.tolist()]


def feature_attribution_patch(
    model: Any,
    sae: Any,
    corrupted_tokens: torch.Tensor,
    clean_cache: Any,
    patching_metric: Callable,
    *,
    use_error_term: bool = True,
) -> FeatureAttributionPatch:
    """Estimate patching every feature at every position (and the error term) from one backward.

    ``patching_metric(logits) -> scalar`` must be differentiable. No hooks, SAEs or parameter
    gradients are left behind.
    """
    from lenswidget.patching.validation import check_tokens

    sae = resolve_sae(model, sae)
    tokens = check_tokens(corrupted_tokens)
    out = sae.cfg.hook_name_out
    acts_name, err_name = f"{out}.hook_sae_acts_post", f"{out}.hook_sae_error"
    clean = _clean_acts(clean_cache, acts_name)
    clean_err = clean_cache[err_name] if (use_error_term and err_name in clean_cache) else None
    if use_error_term and clean_err is None:
        raise UnknownNameError("clean_cache entry", err_name, [k for k in clean_cache.keys() if ".hook_sae_" in k],
                               hint="cache the clean run with use_error_term=True to estimate the error term's effect")
    saved = {}

    def leaf(act, hook):  # a leaf: the backward pass stops here and fills .grad
        act = act.detach().requires_grad_(True)
        saved[hook.name] = act
        return act

    hooks = [(acts_name, leaf)] + ([(err_name, leaf)] if use_error_term else [])
    with model.saes([sae], use_error_term=use_error_term), model.hooks(fwd_hooks=hooks), torch.enable_grad():
        value = torch.as_tensor(patching_metric(model(tokens)))
        if value.numel() != 1:
            raise ShapeMismatchError(f"patching_metric must return a scalar; it returned shape {tuple(value.shape)} "
                                     "(reduce over the batch, e.g. .mean())")
        if not value.requires_grad:
            raise ShapeMismatchError("patching_metric's value does not depend on the logits differentiably "
                                     "(avoid .item(), argmax or detach inside the metric)")
        leaves = [saved[n] for n in (acts_name, err_name) if n in saved]
        grads = torch.autograd.grad(value.reshape(()), leaves, allow_unused=True)
    corrupted = saved[acts_name].detach()
    g = grads[0] if grads[0] is not None else torch.zeros_like(corrupted)
    feats = ((clean.to(corrupted.dtype) - corrupted) * g).float().sum(0)
    err = None
    if use_error_term:
        ge = grads[1] if grads[1] is not None else torch.zeros_like(saved[err_name])
        diff = (clean_err.to(ge.dtype) - saved[err_name].detach()) * ge
        err = diff.float().flatten(2).sum(-1).sum(0)  # hook_z errors carry [heads, d_head]
    return FeatureAttributionPatch(feats, err, float(value.detach()), clean, corrupted)


def compare_feature_patching(
    model: Any,
    sae: Any,
    corrupted_tokens: torch.Tensor,
    clean_cache: Any,
    patching_metric: Callable,
    n: int = 64,
    seed: int = 0,
    estimate: Optional[FeatureAttributionPatch] = None,
    **engine_options: Any,
) -> dict:
    """Pearson r between attribution estimates and exact patching on a sample of feature x position.

    The sample is the ``n // 2`` largest estimates plus ``n - n // 2`` random entries among those
    whose clean and corrupted activations differ (entries that are 0 in both runs agree trivially).
    Returns ``{"pearson", "entries" [(pos, feature)], "estimate", "exact"}`` (changes in the metric).
    """
    from lenswidget.patching.attribution import pearson

    est = estimate if estimate is not None else feature_attribution_patch(
        model, sae, corrupted_tokens, clean_cache, patching_metric)
    differs = (est.clean.to(est.corrupted.dtype) != est.corrupted).any(0)  # [pos, d_sae]
    cand = differs.nonzero().tolist()
    if not cand:
        raise ShapeMismatchError("no feature differs between the clean and corrupted runs; nothing to compare")
    order = sorted(cand, key=lambda pf: -abs(float(est.features[pf[0], pf[1]])))
    top = order[: n // 2]
    rest = order[n // 2:]
    rng = random.Random(seed)
    picked = top + rng.sample(rest, min(len(rest), n - len(top)))
    entries = [(int(p), int(f)) for p, f in picked]
    engine_options.setdefault("verbose", False)
    exact = patch_features(model, sae, corrupted_tokens, clean_cache, patching_metric, [[e] for e in entries],
                           **engine_options).cpu() - est.value
    estimated = torch.tensor([float(est.features[p, f]) for p, f in entries])
    return {"pearson": pearson(estimated, exact), "entries": entries, "estimate": estimated, "exact": exact}
