"""Safetensors checkpoints, memory-mapped copy-on-write, read one tensor at a time.

:class:`SafetensorsCheckpoint` maps tensor names to views of a private (copy-on-write) mapping
of each file: nothing is read until a tensor is used, writing to a view never touches the file,
and a view can become a parameter without a copy. When the weights are copied elsewhere
(another dtype, another device, disk offload), :meth:`SafetensorsCheckpoint.release` hands the
pages of tensors already consumed back to the kernel, so the file's pages do not pile up in the
process's resident memory while a large model loads.

:class:`StreamingWriter` writes a safetensors file one tensor at a time (the header is written
last, into space reserved at the start), so a processed model can be cached without holding
all of it in memory.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable

import torch

ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
             "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
             "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
_ST_NAMES = {v: k for k, v in ST_DTYPES.items()}
_PAGE = mmap.PAGESIZE


def storage_order(t: torch.Tensor) -> list[int]:
    """Dimension order in which ``t``'s memory is contiguous (outermost first)."""
    return sorted(range(t.dim()), key=lambda d: (-t.stride(d) if t.shape[d] > 1 else 0, d))


def inverse_order(order: list[int]) -> list[int]:
    inverse = [0] * len(order)
    for pos, dim in enumerate(order):
        inverse[dim] = pos
    return inverse


def read_header(path: Path) -> tuple[dict, int]:
    """(header dict without ``__metadata__`` moved aside, byte offset of the data section)."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        size = os.fstat(fh.fileno()).st_size
        if not 0 < n <= size - 8:
            raise ValueError(f"{path} is not a safetensors file")
        header = json.loads(fh.read(n))
    return header, 8 + n


def read_metadata(path: Path) -> dict:
    """The ``__metadata__`` strings of a safetensors file."""
    return read_header(path)[0].get("__metadata__", {}) or {}


class SafetensorsCheckpoint(Mapping):
    """Read-only mapping over safetensors files (see the module docstring)."""

    def __init__(self, files: Iterable[Path]):
        self._maps: list[tuple[mmap.mmap, torch.Tensor, int, int]] = []
        self._where: dict[str, tuple[torch.Tensor, int, int, torch.dtype, list[int]]] = {}
        for f in files:
            header, base = read_header(Path(f))
            header.pop("__metadata__", None)
            with open(f, "rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
            buf = torch.frombuffer(mm, dtype=torch.uint8)
            self._maps.append((mm, buf, buf.data_ptr(), len(mm)))
            for key, info in header.items():
                start, end = info["data_offsets"]
                self._where[key] = (buf, base + start, base + end, ST_DTYPES[info["dtype"]],
                                    info["shape"])

    def __getitem__(self, key: str) -> torch.Tensor:
        buf, start, end, dtype, shape = self._where[key]
        raw = buf[start:end]
        try:
            return raw.view(dtype).reshape(shape)
        except RuntimeError:  # misaligned data (old writers): copy instead
            return raw.clone().view(dtype).reshape(shape)

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def dtype_of(self, key: str) -> torch.dtype:
        return self._where[key][3]

    def nbytes(self) -> int:
        return sum(end - start for _, start, end, _, _ in self._where.values())

    def release(self, tensors: Iterable[torch.Tensor]) -> None:
        """Drop the resident pages under ``tensors`` (views of this checkpoint).

        Only for tensors that were never written to: a released page is read again from the
        file if it is used later, so it must still hold the file's bytes.
        """
        advise = getattr(mmap, "MADV_DONTNEED", None)
        if advise is None:  # pragma: no cover - platforms without madvise
            return
        for t in tensors:
            if t.device.type != "cpu" or not t.numel():
                continue
            lo = t.data_ptr()
            hi = lo + (1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride()))) * t.element_size()
            for mm, _, addr, size in self._maps:
                if addr <= lo < addr + size:
                    start = -(-(lo - addr) // _PAGE) * _PAGE
                    end = min(hi - addr, size) // _PAGE * _PAGE
                    if end > start:
                        mm.madvise(advise, start, end - start)
                    break


class StreamingWriter:
    """Write a safetensors file tensor by tensor; :meth:`finish` writes the header.

    The header goes into ``header_reserve`` bytes kept free at the start (padded with spaces,
    as the format allows); if it does not fit, the file is rewritten once with a larger one.
    """

    def __init__(self, path: Path, header_reserve: int):
        self.path = Path(path)
        self._reserve = -(-int(header_reserve) // 8) * 8  # keep the data 8-byte aligned
        self._fh = open(self.path, "wb")
        self._fh.seek(8 + self._reserve)
        self._entries: dict[str, dict] = {}
        self._offset = 0

    def write(self, key: str, tensor: torch.Tensor) -> None:
        """Append ``tensor`` (contiguous, on the CPU) under ``key``."""
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        data = t.reshape(-1).view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8)
        self._fh.write(memoryview(data.numpy()))
        n = data.numel()
        self._entries[key] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                              "data_offsets": [self._offset, self._offset + n]}
        self._offset += n

    def finish(self, metadata: dict[str, str] | None = None) -> None:
        header = dict(self._entries)
        if metadata:
            header["__metadata__"] = metadata
        raw = json.dumps(header, separators=(",", ":")).encode()
        if len(raw) <= self._reserve:
            self._fh.seek(0)
            self._fh.write(self._reserve.to_bytes(8, "little"))
            self._fh.write(raw + b" " * (self._reserve - len(raw)))
            self._fh.close()
            return
        # Rare: the reserve was too small. Move the data behind a header of the right size.
        self._fh.close()
        tmp = self.path.with_name(self.path.name + ".grow")
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(len(raw).to_bytes(8, "little"))
            dst.write(raw)
            src.seek(8 + self._reserve)
            while chunk := src.read(64 << 20):
                dst.write(chunk)
        os.replace(tmp, self.path)

    def abort(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)
