"""One pass over the corpus windows, in batches: feature activations from
:func:`lenswidget.sae.feature_activations` (sae-core's: the model up to the SAE's block, the
SAE's encoder), folded into :mod:`.stats`' bounded summaries batch by batch and dropped, so
memory does not grow with the corpus. ``on_progress(done, total)`` is called after each batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from .stats import LogHistogram, TopContexts
from .windows import Windows


@dataclass
class Scan:
    top: TopContexts
    hist: LogHistogram
    windows: Windows


def padded_acts(model: Any, sae: Any, texts: Sequence[str], first: int,
                features: Optional[Sequence[int]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``([b, max_len, n_features], valid [b, max_len])`` for one batch of window texts;
    ``valid`` marks the positions that count (not BOS, not padding)."""
    from ...sae import feature_activations

    acts = feature_activations(model, sae, list(texts), features=features, batch_size=max(1, len(texts)))
    width = max(int(a.shape[0]) for a in acts)
    out = torch.zeros((len(acts), width, int(acts[0].shape[-1])))
    valid = torch.zeros((len(acts), width), dtype=torch.bool)
    for i, a in enumerate(acts):
        out[i, : a.shape[0]] = a
        valid[i, first: a.shape[0]] = True
    return out, valid


def scan(model: Any, sae: Any, windows: Windows, k: int, batch_size: int,
         on_progress: Optional[Callable[[int, int], None]] = None) -> Scan:
    """Statistics of every feature over ``windows`` (see the module docstring)."""
    d_sae = int(sae.cfg.d_sae)
    top, hist = TopContexts(d_sae, k), LogHistogram(d_sae)
    n = windows.n
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        acts, valid = padded_acts(model, sae, windows.texts[start:stop], windows.first)
        top.update(acts, valid, torch.arange(start, stop))
        hist.update(acts, valid)
        if on_progress is not None:
            on_progress(stop, n)
    return Scan(top, hist, windows)
