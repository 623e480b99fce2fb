"""Keep freed activation memory in the process for the next forward (glibc malloc tuning).

``run_with_cache`` keeps every activation alive, so each call asks the C allocator for a few
hundred MB of fresh memory. glibc hands blocks over 128 KiB out as new ``mmap`` pages and gives
freed heap tops back to the kernel, so every call pays a page fault (and a page zeroing) per
4 KiB: on SmolLM2-135M at batch 4 x 64 that is ~120k faults and about a third of the run time.
Raising the mmap threshold to its maximum (32 MiB) and the trim threshold beyond it lets the
next call reuse the memory of the previous, already freed cache instead.

The cost: memory freed by a dropped cache stays in the process (resident size stays at its
peak, ready for reuse) instead of going back to the system. Set ``LENSWIDGET_MALLOC_TUNING=0``
before the first ``run_with_cache`` to keep glibc's defaults. Other platforms are untouched.
``tests/test_hooks.py`` counts the page faults of a second ``run_with_cache`` with and without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_MMAP_MAX_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
_TRIM_THRESHOLD = 1 << 30

_state: dict = {}


def keep_freed_memory() -> bool:
    """Apply the tuning once per process (Linux/glibc only); True if it is in effect."""
    if "on" in _state:
        return _state["on"]
    _state["on"] = False
    if os.environ.get("LENSWIDGET_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    _state["on"] = bool(ok)
    return _state["on"]


__all__ = ["keep_freed_memory"]
