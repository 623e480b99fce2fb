"""One pass of the model over the corpus windows, in batches: SAE feature activations only.

``run_with_cache_with_saes`` (error term on, stopped after the SAE's layer) caches only the
SAE's ``hook_sae_acts_post``. Nothing is kept but :mod:`.stats`' bounded summaries;
``on_progress(done, total)`` is called after each batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..saes import acts_name, sae_cache
from .stats import LogHistogram, TopContexts
from .windows import Windows


@dataclass
class Scan:
    top: TopContexts
    hist: LogHistogram
    windows: Windows


@torch.no_grad()
def feature_acts(model: Any, sae: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, pos, d_sae]`` feature activations of ``sae`` on ``tokens`` (float32, CPU)."""
    name = acts_name(sae)
    return sae_cache(model, [sae], tokens, [name])[name].float().cpu()


def scan(model: Any, sae: Any, windows: Windows, k: int, batch_size: int,
         on_progress: Optional[Callable[[int, int], None]] = None) -> Scan:
    """Feature statistics of every feature over ``windows`` (see the module docstring)."""
    d_sae = int(sae.cfg.d_sae)
    top, hist = TopContexts(d_sae, k), LogHistogram(d_sae)
    n = windows.n
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        length = int(windows.lengths()[start:stop].max())  # trim padding shared by the batch
        acts = feature_acts(model, sae, windows.tokens[start:stop, :length])
        valid = windows.valid[start:stop, :length]
        top.update(acts, valid, torch.arange(start, stop))
        hist.update(acts, valid)
        if on_progress is not None:
            on_progress(stop, n)
    return Scan(top, hist, windows)
