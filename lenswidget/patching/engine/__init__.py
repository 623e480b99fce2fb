"""The patching engine: validates a sweep, picks a path, runs it, returns flat results.

Paths (``method``):

* ``"fast"``: batched, prefix-reusing, position-truncated recompute (:mod:`.fast`).
* ``"hooks"``: batched runs through the model's own forward with hooks (:mod:`.hooks_path`).
* ``"naive"``: one hooked forward per patch, as TransformerLens does (:mod:`..naive`).
* ``"auto"`` (default): ``"fast"`` when the activation and model allow it, else ``"hooks"``.
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional

import torch

from ...errors import InvalidOptionError
from ..metric import MetricAdapter
from ..naive import run_naive
from ..progress import Progress
from ..validation import check_clean_shape, check_tokens, clean_activation, hook_name
from .fast import FastPathUnavailable, run_fast
from .hooks_path import run_hooks_path
from .ops import unsupported_reason
from .sites import FAST_ACTS

__all__ = ["run_sweep", "METHODS", "DEFAULT_MEMORY_BUDGET", "fast_path_reason"]

logger = logging.getLogger("lenswidget.patching")

METHODS = ("auto", "fast", "hooks", "naive")
DEFAULT_MEMORY_BUDGET = 512 * 2**20


def _padding_mask(model, tokens) -> Optional[torch.Tensor]:
    try:
        return model._input_tokens(tokens, None, None, 0)[1]
    except Exception:  # pragma: no cover - older/other models
        return None


def fast_path_reason(model, act: str, tokens: torch.Tensor) -> Optional[str]:
    """Why ``act`` on ``model`` takes the hook-based path (None when the fast path applies)."""
    if act not in FAST_ACTS:
        return f"activation {act!r} has no fast site (fast: {', '.join(FAST_ACTS)})"
    reason = unsupported_reason(model)
    if reason:
        return reason
    if _padding_mask(model, tokens) is not None:
        return "the tokens contain left padding (attention mask)"
    return None


def run_sweep(
    model,
    corrupted_tokens,
    clean_cache,
    patching_metric: Callable,
    patch_setter: Callable,
    activation_name: str,
    rows: List[list],
    *,
    verbose: bool = True,
    method: str = "auto",
    memory_budget: Optional[int] = None,
    max_batch: Optional[int] = None,
    on_progress: Optional[Callable[[int, int], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    desc: Optional[str] = None,
) -> torch.Tensor:
    """Metric of every patched run, flat, in the order of ``rows`` (on the model's device)."""
    if method not in METHODS:
        raise InvalidOptionError("method", method, METHODS)
    tokens = check_tokens(corrupted_tokens).to(model.cfg.device)
    names = {}
    for l in sorted({int(r[0]) for r in rows}):
        names[l] = hook_name(model, activation_name, l)
    clean = {}
    for l, name in names.items():
        act = clean_activation(clean_cache, name, activation_name)
        check_clean_shape(tokens, name, act)
        clean[l] = act.to(tokens.device)
    metric = MetricAdapter(patching_metric, tokens.shape[1])
    if not rows:
        return torch.zeros(0, device=model.cfg.device)
    act = names[min(names)].split(".")[-1].replace("hook_", "")  # short name, e.g. "z"
    hook_names = [names[int(r[0])] for r in rows]
    out = torch.full((len(rows),), float("nan"))
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    clean_of = clean.__getitem__
    path = method
    if method == "auto":
        reason = fast_path_reason(model, act, tokens)
        path = "fast" if reason is None else "hooks"
        if reason is not None:
            logger.info("patching %s: hook-based path (%s)", activation_name, reason)
    elif method == "fast":
        reason = fast_path_reason(model, act, tokens)
        if reason is not None:
            raise InvalidOptionError(f"method for {activation_name!r} ({reason})", method, ["auto", "hooks", "naive"])
    with Progress(len(rows), verbose, on_progress, should_stop, desc or f"patching {activation_name}") as progress, \
            torch.no_grad():
        if path == "fast":
            try:
                run_fast(model, tokens, act, patch_setter, rows, clean_of, _keys(clean_cache), metric, progress,
                         out, budget, max_batch)
            except FastPathUnavailable as exc:
                if method == "fast":
                    raise
                logger.warning("patching %s: falling back to the hook-based path: %s", activation_name, exc)
                path = "hooks"
        if path == "hooks":
            run_hooks_path(model, tokens, hook_names, patch_setter, rows, clean_of, metric, progress, out,
                           budget, max_batch, _padding_mask(model, tokens))
        elif path == "naive":
            run_naive(model, tokens, hook_names, [clean_of(int(r[0])) for r in rows], patch_setter, rows,
                      metric, progress, out)
    return out.to(model.cfg.device)


def _keys(cache) -> list:
    try:
        return list(cache.keys())
    except Exception:
        return []
