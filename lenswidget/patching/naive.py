"""The reference path: one full hooked forward pass per patch (TransformerLens's loop).

Exact by construction and slow; ``method="naive"`` selects it. The fast engine is tested
against loops like this one.
"""

from __future__ import annotations

from typing import Callable, List, Sequence

import torch

from .metric import MetricAdapter
from .progress import Progress

__all__ = ["run_naive"]


def run_naive(
    model,
    tokens: torch.Tensor,
    hook_names: Sequence[str],
    clean_acts: Sequence[torch.Tensor],
    setter: Callable,
    rows: List[list],
    metric: MetricAdapter,
    progress: Progress,
    out: torch.Tensor,
) -> None:
    """Fill ``out[i]`` with the metric of ``rows[i]``'s patched run."""
    for i, row in enumerate(rows):
        progress.check(out)
        clean = clean_acts[i]

        def hook(act, hook, row=row, clean=clean):
            return setter(act, row, clean)

        with torch.no_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_names[i], hook)])
        out[i] = metric.scalar(metric.metric(logits))
        progress.advance(1)
