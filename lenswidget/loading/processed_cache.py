"""Processed weights, cached next to a converted model in lenswidget's cache.

Folding and centring touch most weights, which costs more than loading them. For directories
lenswidget itself created (GGUF conversions, e.g. the default model), the processed float32
state dict is saved once per (processing flags, model layout) as ``processed-<key>.safetensors``
(written tensor by tensor while the model loads) and later memory-mapped copy-on-write, so a
processed reload is as cheap as a raw one.

Each tensor is stored as its contiguous underlying storage plus the permutation that restores
the parameter's shape, so the model's memory layout survives the round trip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from .checkpoint import (SafetensorsCheckpoint, StreamingWriter, inverse_order, read_metadata,
                         storage_order)
from .disk_cache import cache_root

logger = logging.getLogger("lenswidget.loading")

#: Bump when processing results change, to invalidate cached processed weights.
PROCESSING_VERSION = 1
#: Processed variants kept per directory (least recently used ones are deleted).
KEEP = 3


def is_cache_owned(directory: Path) -> bool:
    """Whether ``directory`` lies inside lenswidget's cache (so we may add files to it)."""
    try:
        Path(directory).resolve().relative_to(cache_root().resolve())
        return True
    except ValueError:
        return False


def cache_key(directory: Path, flags: dict[str, bool], layout: dict[str, torch.Tensor]) -> str:
    """Digest of the checkpoint files (name, size, mtime), the processing flags and the model's
    parameter names, shapes and strides."""
    weights = [(p.name, p.stat().st_size, p.stat().st_mtime_ns)
               for p in sorted(Path(directory).iterdir())
               if p.suffix in (".safetensors", ".bin") and not p.name.startswith("processed-")]
    desc = {
        "version": PROCESSING_VERSION,
        "weights": weights,
        "flags": sorted(flags.items()),
        "layout": sorted((k, list(v.shape), list(v.stride())) for k, v in layout.items()),
    }
    return hashlib.sha256(json.dumps(desc).encode()).hexdigest()[:16]


class Writer:
    """Writes ``processed-<key>.safetensors`` tensor by tensor, atomically (see :meth:`finish`)."""

    def __init__(self, directory: Path, key: str, names: list[str]):
        self.target = Path(directory) / f"processed-{key}.safetensors"
        tmp = self.target.with_name(f".{self.target.name}.tmp-{os.getpid()}")
        reserve = 1024 + sum(2 * len(n) + 160 for n in names)
        self._orders: dict[str, list[int]] = {}
        self._failed = False
        try:
            self._out = StreamingWriter(tmp, reserve)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        logger.warning("lenswidget: could not cache processed weights in %s (%s)", self.target.parent, exc)
        self._failed = True
        out = getattr(self, "_out", None)
        if out is not None:
            out.abort()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if self._failed:
            return
        order = storage_order(tensor)
        try:
            self._out.write(name, tensor.permute(order))
        except OSError as exc:
            self._fail(exc)
        self._orders[name] = order

    def finish(self, norm_type: str | None) -> None:
        if self._failed:
            return
        try:
            self._out.finish({"orders": json.dumps(self._orders), "normalization_type": json.dumps(norm_type)})
            os.replace(self._out.path, self.target)
            _evict(self.target.parent)
        except OSError as exc:
            self._fail(exc)

    def abort(self) -> None:
        if not self._failed:
            self._out.abort()
            self._failed = True


def save(directory: Path, key: str, state_dict: dict[str, torch.Tensor], norm_type: str | None) -> None:
    """Write ``processed-<key>.safetensors`` atomically; failures only log a warning."""
    writer = Writer(directory, key, list(state_dict))
    for k, v in state_dict.items():
        writer.write(k, v)
    writer.finish(norm_type)


def _evict(directory: Path) -> None:
    """Delete all but the ``KEEP`` most recently used processed variants."""
    files = sorted(directory.glob("processed-*.safetensors"), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)


def load(directory: Path, key: str) -> tuple[dict[str, torch.Tensor], str | None, SafetensorsCheckpoint] | None:
    """The processed state dict (memory-mapped views, copy-on-write), its normalization type and
    the checkpoint they are views of (for :meth:`SafetensorsCheckpoint.release`)."""
    path = Path(directory) / f"processed-{key}.safetensors"
    if not path.is_file():
        return None
    try:
        meta = read_metadata(path)
        orders = json.loads(meta["orders"])
        norm_type = json.loads(meta["normalization_type"])
        ckpt = SafetensorsCheckpoint([path])
        os.utime(path)  # mark as recently used
        out = {k: ckpt[k].permute(inverse_order(orders[k])) for k in ckpt}
        return out, norm_type, ckpt
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        logger.warning("lenswidget: ignoring unreadable processed-weight cache %s (%s)", path, exc)
        return None
