"""The fast exact path: batched patched runs recomputing only what a patch can change.

Per sweep: one cached corrupted forward (:class:`Baseline`), a self-check of the recompute
against the model, then chunks of runs sharing a first changed position ``p0``: sites
(:mod:`.sites`) turn patches into residuals entering later blocks, the staircase
(:mod:`.runner`) recomputes the blocks on positions ``p0..end-1`` only, and only the logits
the metric reads are unembedded.
"""

from __future__ import annotations

from itertools import groupby
from typing import Callable, List, Optional

import torch

from ..metric import MetricAdapter
from ..progress import Progress
from .baseline import Baseline
from .ops import ModelOps
from .planner import Cell, apply_setter, chunk_size, plan_cells
from .runner import run_staircase
from .sites import DEST_ACTS, SPREADING_ACTS, build_entry

__all__ = ["run_fast", "FastPathUnavailable", "SELF_CHECK_TOL"]

SELF_CHECK_TOL = {torch.float32: 1e-4, torch.float64: 1e-8}


class FastPathUnavailable(RuntimeError):
    """The fast path cannot reproduce this model exactly; the caller falls back."""


def _extra_hooks(act: str, layers) -> List[str]:
    from lenswidget.utils import get_act_name

    names = [get_act_name(act, l) for l in layers]
    if act in ("v", "attn_scores"):
        names += [get_act_name("pattern", l) for l in layers]
    return names


def _per_run_bytes(model, B: int, S: int, end: int, n_out: int, n_sel: int, act: str) -> int:
    cfg = model.cfg
    item = torch.finfo(cfg.dtype).bits // 8
    d_mlp = 0 if cfg.attn_only else cfg.d_mlp * (3 if cfg.gated_mlp else 2)
    per_pos = 12 * cfg.d_model + d_mlp + 4 * cfg.n_heads * end
    if act in DEST_ACTS:
        per_pos += 2 * cfg.n_heads * end
    return B * (S * per_pos + (n_out + 2 * n_sel) * cfg.d_vocab_out) * item


def run_fast(
    model,
    tokens: torch.Tensor,
    act: str,
    setter: Callable,
    rows: List[list],
    clean_of: Callable[[int], torch.Tensor],
    clean_keys,
    metric: MetricAdapter,
    progress: Progress,
    out: torch.Tensor,
    memory_budget: int,
    max_batch: Optional[int],
) -> None:
    """Fill ``out[i]`` with the metric of ``rows[i]``'s patched run."""
    cfg = model.cfg
    B, T = tokens.shape
    ops = ModelOps(model, seq_len=T)
    layers = sorted({int(r[0]) for r in rows})
    bl = Baseline(model, ops, tokens, clean_keys, _extra_hooks(act, layers))
    tol = SELF_CHECK_TOL.get(cfg.dtype, 2e-2)
    err = bl.self_check(ops)  # also with one position (then it recomputes that position)
    if not err <= tol:
        raise FastPathUnavailable(f"the fast recompute differs from the model by {err:.2e} (relative) > {tol:.0e}")

    read = sorted(set(metric.positions))
    end = read[-1] + 1
    base_sel = bl.logits[:, metric.positions][None]
    base_value = metric.evaluate(base_sel)[0]

    def corr_of(l):
        return bl.get(act, l)

    cells = plan_cells(act, rows, setter, corr_of, clean_of, read[-1])
    noop = [c.index for c in cells if c.p0 < 0]
    if noop:
        out[noop] = base_value
        progress.advance(len(noop))
    live = sorted((c for c in cells if c.p0 >= 0), key=lambda c: (c.p0, c.layer, c.index))
    for p0, group in groupby(live, key=lambda c: c.p0):
        group = list(group)
        S = end - p0
        read_abs = [p for p in read if p >= p0]
        read_rel = torch.tensor([p - p0 for p in read_abs], device=tokens.device)
        per_run = _per_run_bytes(model, B, S, end, len(read_abs), len(metric.positions), act)
        size = chunk_size(per_run, memory_budget, max_batch)
        for start in range(0, len(group), size):
            progress.check(out)
            chunk = group[start : start + size]
            vals, order = _run_chunk(ops, bl, act, setter, rows, clean_of, chunk, p0, end, read_rel, read_abs, metric,
                                     lambda: progress.check(out))
            out[order] = vals
            progress.advance(len(chunk))


def _run_chunk(ops, bl, act, setter, rows, clean_of, chunk: List[Cell], p0, end, read_rel, read_abs, metric, check):
    entries, ids = {}, {}
    for l, cells in groupby(chunk, key=lambda c: c.layer):
        cells = list(cells)
        corr, clean = bl.get(act, l), clean_of(l)
        patched = torch.stack([_suffix(act, apply_setter(setter, corr, rows[c.index], clean), p0, end) for c in cells])
        if act in SPREADING_ACTS:
            U = torch.arange(end - p0, device=patched.device)
        else:
            U = torch.nonzero(torch.stack([c.changed[p0:end] for c in cells]).any(0)).flatten()
        e, x = build_entry(act, ops, bl, l, p0, end, patched, U)
        entries.setdefault(e, []).append(x)
        ids.setdefault(e, []).extend(c.index for c in cells)
    entries = {e: torch.cat(xs, 0) if len(xs) > 1 else xs[0] for e, xs in entries.items()}
    order = [i for e in sorted(ids) for i in ids[e]]
    final = run_staircase(ops, bl.prefix_kv, entries, p0, read_rel, check)
    logits = ops.logits(final)  # [R, B, len(read_abs), V]
    sel = _assemble(logits, bl.logits, metric.positions, read_abs)
    return metric.evaluate(sel), order


def _suffix(act: str, patched: torch.Tensor, p0: int, end: int) -> torch.Tensor:
    if act in DEST_ACTS:
        return patched[:, :, p0:end]
    return patched[:, p0:end]


def _assemble(logits: torch.Tensor, base: torch.Tensor, positions, read_abs) -> torch.Tensor:
    """[R, B, len(positions), V]: recomputed logits where available, corrupted ones elsewhere."""
    R = logits.shape[0]
    where = {p: j for j, p in enumerate(read_abs)}
    if list(positions) == list(read_abs):
        return logits
    parts = []
    for p in positions:
        if p in where:
            parts.append(logits[:, :, where[p]])
        else:
            parts.append(base[:, p].unsqueeze(0).expand(R, -1, -1))
    return torch.stack(parts, dim=2)
