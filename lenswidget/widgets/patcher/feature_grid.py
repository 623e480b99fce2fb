"""The patcher's feature grid: features x positions of one SAE, top-k by attribution.

Both sweeps are ``lenswidget.sae.patching``'s (sae-core's one implementation), on the
patcher's runs and metric:

* ``attribution``: ``feature_attribution_patch``, the gradient estimate for every feature
  at every position at once (a few forward-equivalents); it also picks the grid's rows:
  the ``k`` features whose estimate moves the metric most at some position;
* ``exact``: ``patch_features`` for each cell of the grid on its own (batched on the
  patching engine).

Values are the metric after patching the cell's clean feature activation into the
corrupted run (like the activation grids' sweeps): the corrupted run's metric plus the
change.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from .runs import Runs


def estimate(runs: Runs, sae: Any, clean_cache: Any) -> torch.Tensor:
    """``[n_pos, d_sae]``: estimated metric after patching each (position, feature) alone."""
    from ...sae.patching import feature_attribution_patch

    est = feature_attribution_patch(runs.model, sae, runs.corrupted_tokens, clean_cache, runs.metric)
    return (est.value + est.features).float().cpu()


def top_features(est: torch.Tensor, baseline: float, k: int) -> list[int]:
    """The ``k`` features whose estimated effect (at their strongest position) is largest."""
    strength = (est - baseline).abs().max(dim=0).values  # [d_sae]
    k = max(1, min(int(k), strength.numel()))
    return [int(i) for i in strength.topk(k).indices.tolist()]


def exact(runs: Runs, sae: Any, clean_cache: Any, features: list[int], on_progress: Optional[Callable] = None,
          should_stop: Optional[Callable] = None, **engine_options: Any) -> torch.Tensor:
    """``[len(features), n_pos]``: the metric after patching each (feature, position) alone."""
    from ...sae.patching import feature_grid, patch_features

    cells = feature_grid(features, range(runs.n_pos))  # feature-major
    values = patch_features(runs.model, sae, runs.corrupted_tokens, clean_cache, runs.metric, cells,
                            on_progress=on_progress, should_stop=should_stop, verbose=False, **engine_options)
    return values.float().cpu().reshape(len(features), runs.n_pos)
