"""The patching-metric contract.

A *plain* metric is TransformerLens's: ``metric(logits) -> scalar`` with logits
``[batch, pos, d_vocab]``. It always works; the engine then rebuilds the full logits of every
patched run (corrupted logits where the patch cannot reach) and calls it once per run.

A *declared* metric says which positions it reads, and may take many runs at once, so the
engine unembeds only those positions and calls it once per chunk of runs:

>>> import torch
>>> answers = torch.tensor([[3, 5]])                      # [batch, (right, wrong)]
>>> def logit_diff(logits):                              # logits [runs, batch, 1, d_vocab]
...     last = logits[:, :, -1]
...     right = last.gather(-1, answers[None, :, :1].expand(len(last), -1, -1))
...     wrong = last.gather(-1, answers[None, :, 1:].expand(len(last), -1, -1))
...     return (right - wrong).mean((1, 2))                # -> [runs]
>>> metric = batched_metric(logit_diff, positions=[-1])
>>> metric(torch.zeros(1, 4, 8)).shape                    # still a plain metric too
torch.Size([])

``batched_metric(fn, positions, batched=False)`` declares positions for a per-run metric:
``fn(logits[batch, n_positions, d_vocab]) -> scalar`` (so ``logits[:, -1]`` keeps meaning the
last position when ``positions=[-1]``). Any callable with attributes ``positions`` and
``batched`` follows the same contract.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch

from ..errors import OutOfRangeError, ShapeMismatchError

__all__ = ["PatchingMetric", "batched_metric", "MetricAdapter"]


class PatchingMetric:
    """A metric with declared positions (see the module doc). Callable as a plain metric."""

    def __init__(self, fn: Callable, positions: Optional[Sequence[int]] = (-1,), batched: bool = True):
        self.fn = fn
        self.positions = None if positions is None else tuple(int(p) for p in positions)
        self.batched = bool(batched)
        self.__name__ = getattr(fn, "__name__", "metric")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Plain call: ``logits [batch, pos, d_vocab] -> scalar``."""
        sel = logits if self.positions is None else logits[:, list(self.positions)]
        if self.batched:
            return self.fn(sel[None])[0]
        return self.fn(sel)

    def __repr__(self) -> str:
        return f"batched_metric({self.__name__}, positions={self.positions}, batched={self.batched})"


def batched_metric(fn: Optional[Callable] = None, positions: Optional[Sequence[int]] = (-1,), batched: bool = True):
    """Declare the logit positions a metric reads (``None`` = all); usable as a decorator.

    ``batched=True``: ``fn(logits[runs, batch, n_positions, d_vocab]) -> [runs]``.
    ``batched=False``: ``fn(logits[batch, n_positions, d_vocab]) -> scalar``, once per run.
    """
    if fn is None:
        return lambda f: PatchingMetric(f, positions, batched)
    return PatchingMetric(fn, positions, batched)


def _advice() -> str:
    return (
        "reduce over the batch (e.g. .mean()), or declare a batched metric with "
        "lenswidget.patching.batched_metric(fn, positions=[-1]) that maps logits "
        "[runs, batch, n_positions, d_vocab] to [runs]"
    )


class MetricAdapter:
    """How the engine calls one metric: which positions to unembed and how to evaluate."""

    def __init__(self, metric: Callable, n_pos: int):
        if not callable(metric):
            raise ShapeMismatchError(f"patching_metric must be callable; got {type(metric).__name__}")
        self.metric = metric
        self.n_pos = n_pos
        declared = hasattr(metric, "positions") and hasattr(metric, "batched")
        self.declared = declared
        self.batched = bool(getattr(metric, "batched", False)) if declared else False
        positions = getattr(metric, "positions", None) if declared else None
        if positions is None:
            self.positions: List[int] = list(range(n_pos))
        else:
            out = []
            for p in positions:
                if not -n_pos <= int(p) < n_pos:
                    raise OutOfRangeError("metric position", p, -n_pos, n_pos - 1)
                out.append(int(p) % n_pos)
            self.positions = out
        # a plain metric sees the full logits; a declared one its positions (in its order)
        self.full = not declared

    @property
    def max_position(self) -> int:
        return max(self.positions)

    def evaluate(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [runs, batch, n_sel, d_vocab]`` (n_sel = len(positions)) -> ``[runs]`` float."""
        runs = logits.shape[0]
        if self.batched:
            out = self.metric.fn(logits) if isinstance(self.metric, PatchingMetric) else self.metric(logits)
            out = torch.as_tensor(out)
            if out.shape != (runs,):
                raise ShapeMismatchError(
                    f"the batched patching_metric must return one value per run, shape ({runs},), for logits "
                    f"{tuple(logits.shape)} [runs, batch, n_positions, d_vocab]; it returned shape {tuple(out.shape)}"
                )
            return out.detach().float().cpu()
        fn = self.metric.fn if isinstance(self.metric, PatchingMetric) else self.metric
        vals = [self.scalar(fn(logits[r])) for r in range(runs)]
        return torch.stack(vals) if vals else torch.zeros(0)

    @staticmethod
    def scalar(out) -> torch.Tensor:
        """Check a per-run metric value is a scalar and return it as a 0-d float tensor."""
        t = torch.as_tensor(out)
        if t.numel() != 1:
            raise ShapeMismatchError(
                f"patching_metric must return a scalar (one number per patched run); it returned a tensor of "
                f"shape {tuple(t.shape)}: {_advice()}"
            )
        return t.detach().reshape(()).float().cpu()
