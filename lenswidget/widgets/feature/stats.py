"""Bounded per-feature statistics of a pass over a corpus, updated one batch at a time.

* :class:`TopContexts`: each feature's ``k`` best windows (by the feature's maximum over the
  window's positions), with that position: ``[d_sae, k]`` values and indices, whatever the
  corpus size. A window appears at most once per feature.
* :class:`LogHistogram`: each feature's non-zero activations counted in fixed log-spaced
  bins (``BINS_PER_DECADE`` per decade over ``[10**LOG_LO, 10**LOG_HI)``; values outside go
  to the end bins), plus how many positions it fired on: ``[d_sae, n_bins]`` counts.

Both take feature activations ``[batch, pos, d_sae]`` and a ``[batch, pos]`` mask of the
positions that count.
"""

from __future__ import annotations

import math

import torch

LOG_LO, LOG_HI, BINS_PER_DECADE = -4, 6, 10


class TopContexts:
    def __init__(self, d_sae: int, k: int):
        self.k = int(k)
        self.values = torch.full((d_sae, self.k), -math.inf)
        self.window = torch.full((d_sae, self.k), -1, dtype=torch.long)
        self.pos = torch.full((d_sae, self.k), -1, dtype=torch.long)

    def update(self, acts: torch.Tensor, valid: torch.Tensor, window_ids: torch.Tensor) -> None:
        """Merge a batch: ``acts`` [b, p, d_sae], ``valid`` [b, p], ``window_ids`` [b]."""
        masked = acts.float().masked_fill(~valid[..., None], -math.inf)
        best, where = masked.max(dim=1)  # [b, d_sae]: each window's maximum and its position
        values = torch.cat([self.values, best.T], dim=1)
        window = torch.cat([self.window, window_ids[None, :].expand(best.shape[1], -1)], dim=1)
        pos = torch.cat([self.pos, where.T], dim=1)
        keep = values.topk(min(self.k, values.shape[1]), dim=1)
        self.values = keep.values
        self.window = window.gather(1, keep.indices)
        self.pos = pos.gather(1, keep.indices)

    def of(self, feature: int) -> list[tuple[float, int, int]]:
        """``(value, window, position)`` of the feature's windows where it fired, best first."""
        out = []
        for v, w, p in zip(self.values[feature].tolist(), self.window[feature].tolist(), self.pos[feature].tolist()):
            if w >= 0 and v > 0:
                out.append((float(v), int(w), int(p)))
        return out


class LogHistogram:
    def __init__(self, d_sae: int):
        self.n_bins = (LOG_HI - LOG_LO) * BINS_PER_DECADE
        self.counts = torch.zeros((d_sae, self.n_bins), dtype=torch.long)
        self.fired = torch.zeros(d_sae, dtype=torch.long)
        self.total = 0  # positions seen (per feature: the same for every feature)
        self.sum = torch.zeros(d_sae, dtype=torch.float64)
        self.max = torch.zeros(d_sae)

    def update(self, acts: torch.Tensor, valid: torch.Tensor) -> None:
        flat = acts.float()[valid]  # [n, d_sae]
        self.total += int(flat.shape[0])
        on = flat > 0
        self.fired += on.sum(0)
        self.sum += flat.clamp_min(0).sum(0, dtype=torch.float64)
        if flat.shape[0]:
            self.max = torch.maximum(self.max, flat.max(0).values.clamp_min(0))
        rows, feats = on.nonzero(as_tuple=True)
        if rows.numel():
            bins = bin_of(flat[rows, feats])
            self.counts.view(-1).index_add_(0, feats * self.n_bins + bins, torch.ones_like(bins))

    def edges(self) -> torch.Tensor:
        """[n_bins + 1] bin edges (the first and last bins also hold what falls outside)."""
        return torch.logspace(LOG_LO, LOG_HI, self.n_bins + 1, dtype=torch.float64).float()

    def of(self, feature: int) -> dict:
        """The feature's histogram trimmed to its non-empty range, and its summary numbers."""
        counts = self.counts[feature]
        nz = counts.nonzero()
        fired = int(self.fired[feature])
        if nz.numel():
            lo, hi = int(nz[0]), int(nz[-1]) + 1
        else:
            lo = hi = 0
        edges = self.edges()
        return {"counts": counts[lo:hi].float(), "edges": edges[lo:hi + 1] if hi > lo else edges[:0],
                "fired": fired, "total": int(self.total),
                "frequency": fired / self.total if self.total else 0.0,
                "mean": float(self.sum[feature]) / fired if fired else 0.0, "max": float(self.max[feature])}


def bin_of(values: torch.Tensor) -> torch.Tensor:
    """Log-spaced bin index of positive ``values`` (clamped into the first / last bin)."""
    n_bins = (LOG_HI - LOG_LO) * BINS_PER_DECADE
    raw = torch.floor((torch.log10(values.double()) - LOG_LO) * BINS_PER_DECADE)
    return raw.clamp(0, n_bins - 1).long()
