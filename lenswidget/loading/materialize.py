"""Converted weights -> processed, in the target dtype, on their devices, one group at a time.

``materialize`` walks the converted state dict in *groups*: each block on its own, then the
rest (embedding, positional embedding, final norm and unembedding together, since ``fold_ln``
folds the final norm into the unembedding). A group is copied into the work dtype (float32,
or float64 when asked) on the device it will run on, processed, cast to the target dtype and
handed on; the checkpoint pages it came from are then released. At most one group exists in
the work dtype at a time, so a load peaks near the model's size in the target dtype,
whatever the checkpoint's dtype.

Every processing step touches either one block or only the non-block weights, so processing
group by group gives the same result as processing the whole state dict at once
(``tests/test_loading_lean.py`` checks this for every family).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import torch

from lenswidget import processing
from lenswidget.errors import ConfigError

from .checkpoint import storage_order
from .placement import unit_of

_LOCAL = "blocks.0."


def group_of(key: str) -> str:
    """Processing group of a parameter name: ``blocks.{i}``, or ``""`` for everything else."""
    unit = unit_of(key)
    return unit if unit.startswith("blocks.") else ""


def grouped(keys) -> dict[str, list[str]]:
    """Keys by processing group: blocks in order, then the rest."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(group_of(k), []).append(k)
    blocks = sorted((g for g in groups if g), key=lambda g: int(g.split(".")[1]))
    return {g: groups[g] for g in blocks + ([""] if "" in groups else [])}


def folded_norm_type(cfg: Any, flags: Mapping[str, bool]) -> Optional[str]:
    """The normalization type the model has after processing with ``flags``."""
    only_fold = {k: (k == "fold_ln" and bool(v)) for k, v in flags.items()}  # the others keep it
    return processing.process_state_dict({}, cfg, **only_fold)[1]


def process_group(sd: dict[str, torch.Tensor], cfg: Any, group: str, flags: Mapping[str, bool],
                  inplace: bool = True) -> dict[str, torch.Tensor]:
    """Process one group as if it were a whole model (one block, or no block)."""
    if not any(flags.values()):
        return sd
    prefix = group + "." if group else ""
    local = {(_LOCAL + k[len(prefix):]) if prefix else k: v for k, v in sd.items()}
    view = dict(vars(cfg), n_layers=1 if group else 0)
    out, _ = processing.process_state_dict(local, view, **flags, inplace=inplace)
    return {(prefix + k[len(_LOCAL):]) if prefix else k: v for k, v in out.items()}


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and the same strides on every dimension that has more than one element."""
    return a.shape == b.shape and all(n <= 1 or sa == sb
                                      for n, sa, sb in zip(a.shape, a.stride(), b.stride()))


def _byte_range(t: torch.Tensor) -> tuple[int, int, int]:
    """(storage address, first byte, one past the last byte) that ``t`` can touch."""
    extent = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride())) if t.numel() else 0
    start = t.storage_offset() * t.element_size()
    return t.untyped_storage().data_ptr(), start, start + extent * t.element_size()


def _like(ref: Optional[torch.Tensor], v: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An empty tensor for ``v``'s values in ``ref``'s memory layout (contiguous without ``ref``)."""
    if ref is None:
        return torch.empty(v.shape, dtype=dtype, device=device)
    return torch.empty_strided(ref.shape, ref.stride(), dtype=dtype, device=device)


def _slices(rest: list[str], cfg: Any, flags: Mapping[str, bool]) -> list[tuple[list[str], dict[str, int]]]:
    """The non-block group as independent parts, each with the dimension of each tensor along
    which it may be processed in slices (tensors without one go whole, in the first slice).

    Every processing step treats a row of ``W_E``/``W_pos`` (one token or position) on its own,
    and, unless a LayerNorm is folded into it (which centres each column), a row of ``W_U``
    (one residual direction) together with the same entry of the final norm's weight.
    """
    parts: list[tuple[list[str], dict[str, int]]] = []
    head = []
    for k in rest:
        if unit_of(k) in ("embed", "pos_embed"):
            parts.append(([k], {k: 0}))
        else:
            head.append(k)
    if head:
        column_centred = flags.get("fold_ln") and getattr(cfg, "normalization_type", None) == "LN"
        parts.append((head, {} if column_centred else
                      {k: 0 for k in head if k in ("unembed.W_U", "ln_final.w")}))
    return parts


def materialize(
    converted: dict[str, torch.Tensor],
    cfg: Any,
    layout: Mapping[str, torch.Tensor],
    *,
    flags: Mapping[str, bool],
    work_dtype: torch.dtype,
    target_dtype: torch.dtype,
    work_device: Callable[[str], torch.device],
    deliver: Callable[[str, torch.Tensor], None],
    zero_copy: bool = False,
    release: Optional[Callable[[list], None]] = None,
    record: Optional[Callable[[str, torch.Tensor], None]] = None,
    slice_bytes: int = 16 << 20,
) -> None:
    """Process ``converted`` group by group and ``deliver(name, tensor)`` each final tensor.

    ``layout``: the model's parameters (meta tensors are fine), whose shapes are checked and
    whose memory layout the results get. ``work_device(group)``: where a group is processed.
    ``zero_copy``: the converted tensors are private copy-on-write views that may be processed
    in place and kept as they are (CPU, target dtype == work dtype). ``release(tensors)``:
    called with source tensors once they were copied. ``record(name, tensor)``: sees each
    processed tensor in the work dtype (for the processed-weight cache).
    ``slice_bytes``: embedding and unembedding tensors larger than this in the work dtype are
    first copied into their final tensors, then processed there slice by slice (see
    :func:`_slices`), so no work-dtype copy of a whole vocabulary matrix is ever made.
    Entries are popped from ``converted`` as they are used.
    """
    run = _Run(converted, cfg, layout, flags, work_dtype, target_dtype, deliver, zero_copy, release, record,
               slice_bytes)
    for group, keys in grouped(list(converted)).items():
        dev = torch.device(work_device(group))
        if group or zero_copy or record is not None or not run.processing_on:
            run.whole(group, keys, dev)
            continue
        for part, dims in _slices(keys, cfg, flags):
            big = sum(converted[k].numel() for k in dims) * torch.finfo(work_dtype).bits // 8 > slice_bytes
            if big:
                run.sliced(part, dims, dev)
            else:
                run.whole("", part, dev)


class _Run:
    """State of one :func:`materialize` call."""

    def __init__(self, converted, cfg, layout, flags, work_dtype, target_dtype, deliver, zero_copy, release,
                 record, slice_bytes):
        self.converted, self.cfg, self.layout, self.flags = converted, cfg, layout, flags
        self.work_dtype, self.target_dtype, self.deliver = work_dtype, target_dtype, deliver
        self.zero_copy, self.release, self.record, self.slice_bytes = zero_copy, release, record, slice_bytes
        self.processing_on = any(flags.values())
        self.claimed: dict[int, list[tuple[int, int]]] = {}

    def _take(self, k: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        v = self.converted.pop(k)
        ref = self.layout.get(k)
        if ref is not None and ref.shape != v.shape:
            raise ConfigError(f"converted weight {k!r} has shape {tuple(v.shape)} but the model "
                              f"expects {tuple(ref.shape)}; the HF config and checkpoint disagree")
        return v, ref

    def whole(self, group: str, keys: list[str], dev: torch.device) -> None:
        """Copy a group to the work dtype, process it, cast and deliver it."""
        wdt = self.work_dtype if self.processing_on else self.target_dtype
        chunk: dict[str, torch.Tensor] = {}
        consumed: list[torch.Tensor] = []
        for k in keys:
            v, ref = self._take(k)
            if not v.is_floating_point():
                chunk[k] = v.to(dev, copy=True)
                continue
            ptr, lo, hi = _byte_range(v)
            if (self.zero_copy and v.dtype == wdt == self.target_dtype and dev.type == v.device.type == "cpu"
                    and (ref is None or _same_layout(v, ref))
                    and not any(lo < b and a < hi for a, b in self.claimed.get(ptr, ()))):
                self.claimed.setdefault(ptr, []).append((lo, hi))
                chunk[k] = v
                continue
            chunk[k] = _like(ref, v, wdt, dev).copy_(v)
            consumed.append(v)
        if self.release is not None and consumed:
            self.release(consumed)
        consumed.clear()
        chunk = process_group(chunk, self.cfg, group, self.flags)
        for k in list(chunk):
            v = chunk.pop(k)
            if self.record is not None:
                self.record(k, v)
            if v.is_floating_point() and v.dtype != self.target_dtype:
                ref = self.layout.get(k)
                v = _like(ref, v, self.target_dtype, v.device).copy_(v) if ref is not None else v.to(self.target_dtype)
            self.deliver(k, v)

    def _stage(self, v: torch.Tensor, ref: Optional[torch.Tensor], dev: torch.device) -> torch.Tensor:
        """``v`` copied into a new target-dtype tensor in ``ref``'s layout, slice by slice along
        its outermost dimension in memory, releasing each source slice once copied."""
        out = _like(ref, v, self.target_dtype if v.is_floating_point() else v.dtype, dev)
        if v.dim() == 0 or self.release is None:
            out.copy_(v)
        else:
            d = storage_order(v)[0]
            step = max(1, self.slice_bytes // max(1, v[(slice(None),) * d + (0,)].numel() * v.element_size()))
            for a in range(0, v.shape[d], step):
                src = v.narrow(d, a, min(step, v.shape[d] - a))
                out.narrow(d, a, src.shape[d]).copy_(src)
                self.release([src])
        return out

    def sliced(self, keys: list[str], dims: dict[str, int], dev: torch.device) -> None:
        """Process a part in slices along ``dims`` inside its final (target-dtype) tensors."""
        staged = {}
        for k in keys:
            v, ref = self._take(k)
            staged[k] = self._stage(v, ref, dev)
        n = staged[next(iter(dims))].shape[next(iter(dims.values()))]
        row = sum(staged[k].numel() // staged[k].shape[d] for k, d in dims.items())
        step = max(1, self.slice_bytes // (row * torch.finfo(self.work_dtype).bits // 8))
        kept: dict[str, torch.Tensor] = {}
        for a in range(0, n, step):
            m = min(step, n - a)
            part = {k: staged[k].narrow(d, a, m).to(self.work_dtype, copy=True) for k, d in dims.items()}
            if a == 0:  # tensors without a slice dimension are processed once, whole
                part.update({k: t.to(self.work_dtype, copy=True) if t.is_floating_point() else t
                             for k, t in staged.items() if k not in dims})
            out = process_group(part, self.cfg, "", self.flags)
            for k, v in out.items():
                if k in dims:
                    staged[k].narrow(dims[k], a, m).copy_(v)
                    kept.setdefault(k, staged[k])
                elif a == 0:
                    kept[k] = v if not v.is_floating_point() else v.to(self.target_dtype)
        for k, v in kept.items():  # what processing removed (a folded norm) is not delivered
            self.deliver(k, v)


__all__ = ["folded_norm_type", "group_of", "grouped", "materialize", "process_group"]
