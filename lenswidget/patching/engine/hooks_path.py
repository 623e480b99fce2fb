"""The exact hook-based path: many patched runs per forward, through the model's own code.

Runs that patch the same layer are stacked along the batch (``runs x batch``) and start at
that layer from the corrupted residual (``start_at_layer``); one hook applies each run's
setter to its slice of the batch. Used for activations and configurations the fast path
does not handle (any hook point, padding masks, bidirectional attention, attached hooks).
"""

from __future__ import annotations

from itertools import groupby
from typing import Callable, List, Optional

import torch

from ..metric import MetricAdapter
from ..progress import Progress
from .planner import chunk_size

__all__ = ["run_hooks_path"]


def run_hooks_path(
    model,
    tokens: torch.Tensor,
    hook_names: List[str],
    setter: Callable,
    rows: List[list],
    clean_of: Callable[[int], torch.Tensor],
    metric: MetricAdapter,
    progress: Progress,
    out: torch.Tensor,
    memory_budget: int,
    max_batch: Optional[int],
    attention_mask: Optional[torch.Tensor] = None,
) -> None:
    """Fill ``out[i]`` with the metric of ``rows[i]``'s patched run."""
    cfg = model.cfg
    B, T = tokens.shape
    resid_names = sorted({f"blocks.{int(r[0])}.hook_resid_pre" for r in rows})
    _, cache = model.run_with_cache(
        tokens, names_filter=resid_names, attention_mask=attention_mask, return_cache_object=False
    )
    spe = None
    if cfg.positional_embedding_type == "shortformer":
        spe = model.input_to_embed(tokens, attention_mask=attention_mask)[2]
    item = torch.finfo(cfg.dtype).bits // 8
    d_mlp = 0 if cfg.attn_only else cfg.d_mlp * 3
    per_run = B * T * (14 * cfg.d_model + d_mlp + 4 * cfg.n_heads * T + 2 * cfg.d_vocab_out) * item
    size = chunk_size(per_run, memory_budget, max_batch)
    order = sorted(range(len(rows)), key=lambda i: (int(rows[i][0]), i))
    for l, idx in groupby(order, key=lambda i: int(rows[i][0])):
        idx = list(idx)
        for start in range(0, len(idx), size):
            progress.check(out)
            chunk = idx[start : start + size]
            R = len(chunk)
            clean = clean_of(l)

            def hook(act, hook, chunk=chunk, clean=clean):
                for j, i in enumerate(chunk):
                    view = act[j * B : (j + 1) * B]
                    res = setter(view, rows[i], clean)
                    if res is not view:
                        view.copy_(res)
                return act

            x = cache[f"blocks.{l}.hook_resid_pre"].repeat(R, 1, 1)
            mask = None if attention_mask is None else attention_mask.repeat(R, 1)
            kwargs = dict(start_at_layer=l, tokens=tokens.repeat(R, 1), attention_mask=mask)
            if spe is not None:
                kwargs["shortformer_pos_embed"] = spe.repeat(R, 1, 1)
            logits = model.run_with_hooks(x, fwd_hooks=[(hook_names[chunk[0]], hook)], **kwargs)
            logits = logits.view(R, B, T, -1)[:, :, metric.positions]
            out[chunk] = metric.evaluate(logits)
            progress.advance(R)
