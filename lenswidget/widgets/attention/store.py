"""What the kernel keeps of the shown heads' attention: float16 patterns under a memory cap.

A run (a model forward, a cache, a tensor) hands the shown heads' patterns to a
:class:`StoreBuilder` one layer at a time; nothing else of the forward pass is kept.

* Every layer is max-pooled into the thumbnails (float32 ``[L, H, t, t]``, small).
* When the float16 patterns of all shown layers, ``L * H * n * n * 2`` bytes, fit in
  ``cap_bytes`` (``max_pattern_mb``, default 1024 MiB), all are kept: switching layers
  is a slice.
* Otherwise only the selected layer is kept (``H * n * n * 2`` bytes) and another layer
  is fetched when the browser asks for it (``loader``: a model rerun up to that layer, or
  a slice of the cache / tensor the widget was built from). :attr:`PatternStore.note`
  says so, and the widget shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ...errors import LensWidgetError, ShapeMismatchError
from .thumbs import pool_max, thumb_edges

DEFAULT_CAP_MB = 1024
MIB = 1 << 20
FLOAT16_MAX = 65504.0

Loader = Callable[[int], "torch.Tensor | np.ndarray"]


class PatternMemoryError(LensWidgetError, MemoryError):
    """Even one layer of patterns does not fit in the memory cap."""


def mib(nbytes: int) -> str:
    return f"{nbytes / MIB:,.1f} MiB" if nbytes < 1024 * MIB else f"{nbytes / (1024 * MIB):,.2f} GiB"


@dataclass
class PatternStore:
    """The patterns of one run: thumbnails of every shown head, full patterns under a cap."""

    tokens: list[str]
    thumbs: np.ndarray  # float32 [L, H, t, t]
    edges: list[int]  # thumbnail bin edges over positions (len t + 1)
    full: np.ndarray | None  # [L, H, n, n] (float16; float32 for values beyond float16) or None
    current: tuple[int, np.ndarray]  # (layer index, [H, n, n]) - always the last layer served
    cap_bytes: int
    all_bytes: int  # what `full` takes (or would take)
    loader: Loader | None = None
    loader_kind: str = ""
    note: str = ""
    loads: int = field(default=0)  # how many layers were fetched on demand (tests, benchmarks)

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def capped(self) -> bool:
        return self.full is None

    @property
    def nbytes(self) -> int:
        """Bytes of pattern data held (thumbnails + full patterns or the current layer)."""
        held = self.full.nbytes if self.full is not None else self.current[1].nbytes
        return int(self.thumbs.nbytes + held)

    def layer(self, index: int) -> np.ndarray:
        """``[H, n, n]`` patterns of shown layer ``index`` (fetched and kept when capped)."""
        if self.full is not None:
            return self.full[index]
        if self.current[0] != index:
            if self.loader is None:  # pragma: no cover - every capped store has a loader
                raise PatternMemoryError(f"layer index {index} is not kept and cannot be recomputed")
            self.current = (index, _as_store_dtype(self.loader(index), self.current[1].dtype))
            self.loads += 1
        return self.current[1]

    def all_layers(self) -> np.ndarray:
        """``[L, H, n, n]`` patterns; raises a clear error when they were over the cap."""
        if self.full is None:
            raise PatternMemoryError(
                f"{self.note} Use layer_patterns(layer) for one layer, or raise max_pattern_mb to at least "
                f"{-(-self.all_bytes // MIB)} to keep every layer.")
        return self.full


class StoreBuilder:
    """Collects one run's patterns layer by layer (``add``), within ``cap_bytes``."""

    def __init__(self, tokens: list[str], n_layers: int, n_heads: int, *, thumb_size: int, cap_bytes: int,
                 keep: int, loader: Loader | None, loader_kind: str, dtype: Any = np.float16, check: bool = False):
        n = len(tokens)
        self.tokens, self.keep, self.check = tokens, keep, check
        self.dtype = np.dtype(dtype)
        self.edges = thumb_edges(n, thumb_size)
        t = len(self.edges) - 1
        self.thumbs = np.zeros((n_layers, n_heads, t, t), dtype=np.float32)
        layer_bytes = n_heads * n * n * self.dtype.itemsize
        self.all_bytes = n_layers * layer_bytes
        self.cap_bytes = int(cap_bytes)
        if layer_bytes > self.cap_bytes:
            raise PatternMemoryError(
                f"one layer of attention patterns ({n_heads} heads x {n}^2 positions, {mib(layer_bytes)} as "
                f"{self.dtype.name}) is over max_pattern_mb={self.cap_bytes / MIB:g}; show fewer heads (heads=...), "
                "use a shorter prompt, or raise max_pattern_mb")
        keep_all = self.all_bytes <= self.cap_bytes
        if not keep_all and loader is None:
            raise PatternMemoryError(f"attention patterns of all shown layers take {mib(self.all_bytes)}, over "
                                     f"max_pattern_mb={self.cap_bytes / MIB:g}, and this source cannot fetch layers on demand")
        self.full = np.empty((n_layers, n_heads, n, n), dtype=self.dtype) if keep_all else None
        self.current: np.ndarray | None = None
        self.loader, self.loader_kind = loader, loader_kind
        self.seen = np.zeros(n_layers, dtype=bool)

    def add(self, index: int, pattern: Any) -> None:
        """Layer ``index``'s ``[H, n, n]`` patterns (torch or numpy, any float dtype)."""
        p = as_numpy(pattern)
        n = len(self.tokens)
        if p.ndim != 3 or p.shape[-1] != n or p.shape[-2] != n or p.shape[0] != self.thumbs.shape[1]:
            raise ShapeMismatchError(f"attention of shape {list(p.shape)} does not match {self.thumbs.shape[1]} heads "
                                     f"and {n} tokens (expected [{self.thumbs.shape[1]}, {n}, {n}])")
        if self.check and not np.isfinite(p).all():
            raise ShapeMismatchError("attention patterns contain NaN or inf")
        self.thumbs[index] = pool_max(p, self.edges)
        if self.full is not None:
            np.copyto(self.full[index], p, casting="same_kind")
        elif index == self.keep:
            self.current = p.astype(self.dtype)
        self.seen[index] = True

    def finish(self) -> PatternStore:
        if not self.seen.all():
            missing = [int(i) for i in np.flatnonzero(~self.seen)]
            raise ShapeMismatchError(f"no attention pattern was recorded for shown layer indices {missing}")
        note = ""
        if self.full is None:
            note = (f"Attention patterns of all shown layers would take {mib(self.all_bytes)} as {self.dtype.name}, over "
                    f"max_pattern_mb={self.cap_bytes / MIB:g}: the kernel keeps the selected layer only "
                    f"({mib(self.thumbs.shape[1] * len(self.tokens) ** 2 * self.dtype.itemsize)}) and "
                    f"{self.loader_kind} when you switch layers.")
            current = (self.keep, self.current)
        else:
            current = (self.keep, self.full[self.keep])
        assert current[1] is not None
        return PatternStore(tokens=self.tokens, thumbs=self.thumbs, edges=self.edges, full=self.full, current=current,
                            cap_bytes=self.cap_bytes, all_bytes=self.all_bytes, loader=self.loader,
                            loader_kind=self.loader_kind, note=note)


def store_dtype(max_abs: float) -> Any:
    """float16 unless values beyond its range (e.g. raw scores) need float32."""
    return np.float16 if max_abs <= FLOAT16_MAX else np.float32


def as_numpy(pattern: Any) -> np.ndarray:
    """A float32 (or float16) numpy view/copy of a torch or numpy pattern."""
    if isinstance(pattern, torch.Tensor):
        p = pattern.detach().cpu()
        if p.dtype not in (torch.float32, torch.float16):
            p = p.float()  # bfloat16, float64
        return p.numpy()
    return np.asarray(pattern, dtype=np.float32) if np.asarray(pattern).dtype != np.float16 else np.asarray(pattern)


def _as_store_dtype(pattern: Any, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(as_numpy(pattern), dtype=dtype)
