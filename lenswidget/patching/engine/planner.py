"""Which positions each patch changes, and how patches are grouped into chunks.

For the built-in setters the changed positions come from the region the setter writes
intersected with where clean and corrupted differ; for a custom setter, from applying it to
a copy of the corrupted activation and diffing. ``p0``, the first changed position, decides
how much of the sequence must be recomputed; a patch that changes nothing the metric can
see is answered from the corrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

from ..setters import region_of
from .sites import DEST_ACTS

__all__ = ["Cell", "plan_cells", "changed_positions", "apply_setter", "chunk_size"]


@dataclass
class Cell:
    index: int  # position in the sweep's output
    layer: int
    p0: int  # first changed position; -1 when the patch changes nothing
    changed: Optional[torch.Tensor]  # bool [T]: positions (dests) that change


def _reduce_to_positions(diff: torch.Tensor, act: str) -> torch.Tensor:
    """bool activation-shaped (without batch) -> bool [T] over its position axis."""
    if act in DEST_ACTS:  # [H, dest, src]
        return diff.any(-1).any(0)
    return diff.reshape(diff.shape[0], -1).any(-1)  # [pos, ...]


def changed_positions(act: str, corr: torch.Tensor, patched: torch.Tensor) -> torch.Tensor:
    """bool [T]: positions where ``patched`` differs from ``corr`` (both [batch, ...])."""
    return _reduce_to_positions((patched != corr).any(0), act)


def apply_setter(setter: Callable, corr: torch.Tensor, row: list, clean: torch.Tensor) -> torch.Tensor:
    """The patched activation: ``setter`` on a copy of ``corr`` (the cache is never edited)."""
    out = setter(corr.clone(), row, clean)
    if not isinstance(out, torch.Tensor) or out.shape != corr.shape:
        from ...errors import ShapeMismatchError

        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeMismatchError(
            f"patch_setter must return the activation with its shape {tuple(corr.shape)}; got {got}"
        )
    return out


def plan_cells(
    act: str,
    rows: List[list],
    setter: Callable,
    corr_of: Callable[[int], torch.Tensor],
    clean_of: Callable[[int], torch.Tensor],
    read_max: int,
) -> List[Cell]:
    """One :class:`Cell` per row (``p0 = -1`` for patches that cannot change the metric)."""
    ne: Dict[int, torch.Tensor] = {}
    cells = []
    for i, row in enumerate(rows):
        l = int(row[0])
        corr, clean = corr_of(l), clean_of(l)
        region = region_of(setter, row)
        if region is not None:
            if l not in ne:
                ne[l] = (clean.to(corr.device) != corr).any(0)
            mask = torch.zeros_like(ne[l])
            mask[region] = True
            changed = _reduce_to_positions(ne[l] & mask, act)
        else:
            changed = changed_positions(act, corr, apply_setter(setter, corr, row, clean))
        hits = torch.nonzero(changed[: read_max + 1]).flatten()
        p0 = int(hits[0]) if hits.numel() else -1
        cells.append(Cell(i, l, p0, changed))
    return cells


def chunk_size(per_run_bytes: int, memory_budget: int, max_batch: Optional[int]) -> int:
    """Runs per chunk: as many as fit the budget, at least 1, at most ``max_batch``."""
    n = max(1, int(memory_budget // max(1, per_run_bytes)))
    if max_batch is not None:
        n = min(n, max(1, int(max_batch)))
    return n
