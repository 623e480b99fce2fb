"""Processed weights, cached next to a converted model in lenswidget's cache.

Folding and centring touch most weights, which costs more than loading them. For directories
lenswidget itself created (GGUF conversions, e.g. the default model), the processed float32
state dict is saved once per (processing flags, model layout) as ``processed-<key>.safetensors``
and later memory-mapped copy-on-write, so a processed reload is as cheap as a raw one.

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


def _storage_order(t: torch.Tensor) -> list[int]:
    """Dimension order in which ``t``'s memory is contiguous (outermost first)."""
    return sorted(range(t.dim()), key=lambda d: (-t.stride(d) if t.shape[d] > 1 else 0, d))


def save(directory: Path, key: str, state_dict: dict[str, torch.Tensor], norm_type: str | None) -> None:
    """Write ``processed-<key>.safetensors`` atomically; failures only log a warning."""
    from safetensors.torch import save_file

    target = Path(directory) / f"processed-{key}.safetensors"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tensors, orders = {}, {}
    for k, v in state_dict.items():
        order = _storage_order(v)
        stored = v.permute(order)
        tensors[k] = stored if stored.is_contiguous() else stored.contiguous()
        orders[k] = order
    try:
        save_file(tensors, str(tmp), metadata={"orders": json.dumps(orders),
                                                "normalization_type": json.dumps(norm_type)})
        os.replace(tmp, target)
        _evict(Path(directory))
    except OSError as exc:
        logger.warning("lenswidget: could not cache processed weights in %s (%s)", directory, exc)
        tmp.unlink(missing_ok=True)


def _evict(directory: Path) -> None:
    """Delete all but the ``KEEP`` most recently used processed variants."""
    files = sorted(directory.glob("processed-*.safetensors"), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)


def load(directory: Path, key: str) -> tuple[dict[str, torch.Tensor], str | None] | None:
    """The processed state dict (memory-mapped, copy-on-write) and its normalization type."""
    from .sources import MmapCheckpoint

    path = Path(directory) / f"processed-{key}.safetensors"
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n <= path.stat().st_size - 8:
                raise ValueError("not a safetensors file")
            meta = json.loads(fh.read(n)).get("__metadata__", {})
        orders = json.loads(meta["orders"])
        norm_type = json.loads(meta["normalization_type"])
        ckpt = MmapCheckpoint([path])
        os.utime(path)  # mark as recently used
        out = {}
        for k in ckpt:
            inverse = [0] * len(orders[k])
            for pos, dim in enumerate(orders[k]):
                inverse[dim] = pos
            out[k] = ckpt[k].permute(inverse)
        return out, norm_type
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        logger.warning("lenswidget: ignoring unreadable processed-weight cache %s (%s)", path, exc)
        return None

