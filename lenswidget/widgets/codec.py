"""Binary tensor transport: torch/numpy -> a dict that ipywidgets ships as a binary buffer.

The wire format of one tensor is a JSON-able dict whose ``buffer`` entry is raw bytes
(ipywidgets strips it out of the JSON and sends it as a binary frame, so it reaches the
browser as a ``DataView``)::

    {"buffer": b"...", "shape": [2, 3], "dtype": "float16" | "float32" | "uint8",
     "scale": 1.0, "offset": 0.0, "max_abs_error": 1/510 | 0.0 | None}

Data is little-endian and C-ordered. ``uint8`` is a quantisation of values in ``[0, 1]``:
``code = round(v * 255)``, decoded as ``offset + scale * code`` with ``scale = 1/255`` and
``offset = 0``; the absolute error is at most half a step, ``1/510`` (declared in
``max_abs_error``). ``float16`` keeps NaN/inf; finite values beyond the float16 range are
sent as ``float32`` instead of overflowing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError

DTYPES = ("float16", "float32", "uint8")
UINT8_SCALE = 1.0 / 255.0
UINT8_MAX_ABS_ERROR = 1.0 / 510.0  # half a quantisation step
FLOAT16_MAX = 65504.0
# Values this far outside [0, 1] are treated as float noise (softmax sums) and clipped.
_UNIT_SLACK = 1e-4


def to_numpy(values: Any) -> np.ndarray:
    """A float32 numpy copy/view of a torch tensor, numpy array or nested list."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # torch.Tensor, without importing torch
        values = values.detach().cpu()
        if str(values.dtype) in ("torch.bfloat16", "torch.float16"):
            values = values.float()
        values = values.numpy()
    try:
        arr = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise ShapeMismatchError(f"cannot encode a ragged array: {exc}") from exc
    if arr.dtype == object:
        raise ShapeMismatchError(f"cannot encode a ragged or non-numeric array (dtype object, shape {arr.shape})")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ShapeMismatchError(f"cannot encode an array of dtype {arr.dtype}; expected numbers")
    return arr.astype(np.float32, copy=False)


def encode(values: Any, dtype: str = "float16") -> dict[str, Any]:
    """Encode ``values`` (torch, numpy or lists) for a binary trait; see the module docstring."""
    if dtype not in DTYPES:
        raise InvalidOptionError("tensor dtype", dtype, DTYPES)
    if dtype == "uint8" and isinstance(values, np.ndarray) and values.dtype == np.float16:
        codes = _float16_codes(values)
        if codes is not None:  # else out of range: the general path below says what is wrong
            return _payload(codes, values.shape, "uint8", UINT8_SCALE, UINT8_MAX_ABS_ERROR)
    arr = to_numpy(values)
    scale, offset, err = 1.0, 0.0, None
    if dtype == "uint8":
        arr = _check_unit(arr)
        data = np.rint(arr * 255.0).astype(np.uint8)
        scale, err = UINT8_SCALE, UINT8_MAX_ABS_ERROR
    elif dtype == "float16":
        finite = arr[np.isfinite(arr)]
        if finite.size and float(np.abs(finite).max()) > FLOAT16_MAX:
            dtype = "float32"  # would overflow to inf
            data = arr.astype("<f4")
        else:
            data = arr.astype("<f2")  # relative error <= 2**-11; no absolute bound
    else:
        data = arr.astype("<f4")
    return _payload(data, arr.shape, dtype, scale, 0.0 if dtype == "float32" else err, offset)


def _payload(data: np.ndarray, shape: Any, dtype: str, scale: float, err: float | None, offset: float = 0.0) -> dict[str, Any]:
    return {
        "buffer": np.ascontiguousarray(data).tobytes(),
        "shape": [int(s) for s in shape],
        "dtype": dtype,
        "scale": scale,
        "offset": offset,
        "max_abs_error": err,
    }


_F16_TABLES: tuple[np.ndarray, np.ndarray] | None = None


def _float16_codes(arr: np.ndarray) -> np.ndarray | None:
    """uint8 codes of a float16 array by table lookup over its 65,536 bit patterns (no float32
    copy); the same codes as the general path. None when a value is outside [0, 1]."""
    global _F16_TABLES
    if _F16_TABLES is None:
        every = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(every) & (every >= -_UNIT_SLACK) & (every <= 1 + _UNIT_SLACK)
        codes = np.rint(np.clip(np.where(ok, every, 0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
        _F16_TABLES = (ok, codes)
    ok, codes = _F16_TABLES
    bits = np.ascontiguousarray(arr).view(np.uint16)
    if bits.size and not ok[bits].all():
        return None
    return codes[bits]


def decode(payload: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode` (float32 result); used by tests and the kernel side."""
    dtype = payload.get("dtype")
    if dtype not in DTYPES:
        raise InvalidOptionError("tensor dtype", dtype, DTYPES)
    np_dtype = {"float16": "<f2", "float32": "<f4", "uint8": "u1"}[dtype]
    shape = tuple(int(s) for s in payload["shape"])
    raw = bytes(payload["buffer"])
    need = int(np.prod(shape, dtype=np.int64)) * np.dtype(np_dtype).itemsize
    if len(raw) != need:
        raise ShapeMismatchError(f"buffer has {len(raw)} bytes but shape {list(shape)} of {dtype} needs {need}")
    flat = np.frombuffer(raw, dtype=np_dtype)
    arr = flat.astype(np.float32).reshape(shape)
    if dtype == "uint8":
        arr = np.float32(payload.get("offset", 0.0)) + np.float32(payload.get("scale", UINT8_SCALE)) * arr
    return arr


def empty(dtype: str = "float32") -> dict[str, Any]:
    """An encoded empty tensor (shape ``[0]``): the default value of tensor traits."""
    return {"buffer": b"", "shape": [0], "dtype": dtype, "scale": 1.0, "offset": 0.0, "max_abs_error": 0.0}


def _check_unit(arr: np.ndarray) -> np.ndarray:
    if arr.size == 0:
        return arr
    if not np.isfinite(arr).all():
        raise OutOfRangeError("value for uint8 quantisation", "NaN/inf", 0, 1, "uint8 needs finite values in [0, 1]; use float16 (dtype='float16', or precision='float16' for attention)")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -_UNIT_SLACK or hi > 1 + _UNIT_SLACK:
        bad = lo if lo < -_UNIT_SLACK else hi
        raise OutOfRangeError("value for uint8 quantisation", round(bad, 6), 0, 1, "uint8 needs values in [0, 1] (attention patterns); use float16 (dtype='float16', or precision='float16' for attention)")
    return np.clip(arr, 0.0, 1.0)
