"""One pass of the model over the corpus windows, in batches: SAE feature activations only.

The model runs up to the SAE's input hook (``stop_at_layer``) with only that hook cached,
and the SAE encodes it: ``sae.encode(cache[hook])``, the SAE's own encoder. When this very
SAE is attached to the model (``HookedSAETransformer.add_sae``), its cached
``hook_sae_acts_post`` is read instead. Nothing is kept but :mod:`.stats`' bounded
summaries; ``on_progress(done, total)`` is called after each batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..saes import hook_activation
from .stats import LogHistogram, TopContexts
from .windows import Windows


@dataclass
class Scan:
    top: TopContexts
    hist: LogHistogram
    windows: Windows


def input_hook(sae: Any) -> str:
    return str(sae.cfg.hook_name)


def _attached(model: Any, sae: Any) -> bool:
    table = getattr(model, "acts_to_saes", None)
    if not isinstance(table, dict):
        return False
    att = table.get(input_hook(sae))
    return att is sae or getattr(att, "sae", None) is sae


@torch.no_grad()
def feature_acts(model: Any, sae: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, pos, d_sae]`` feature activations of ``sae`` on ``tokens`` (float32, CPU)."""
    hook = input_hook(sae)
    if _attached(model, sae):
        return hook_activation(model, f"{hook}.hook_sae_acts_post", tokens).float().cpu()
    act = hook_activation(model, hook, tokens)
    return sae.encode(act.to(sae.device), hooks=False).float().cpu()


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
