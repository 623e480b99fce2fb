"""Progress reporting and cancellation for patching sweeps.

``on_progress(done, total)`` is called as cells finish; ``should_stop()`` is polled between
chunks and, when it returns True, the sweep raises :class:`PatchingCancelled` carrying the
partial result (NaN where not computed). A widget uses both to show progress and cancel:

>>> stop = {"now": False}
>>> p = Progress(total=4, verbose=False, should_stop=lambda: stop["now"])
>>> p.advance(2); p.done
2
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..errors import LensWidgetError

__all__ = ["Progress", "PatchingCancelled"]


class PatchingCancelled(LensWidgetError, RuntimeError):
    """Raised when ``should_stop()`` returned True; ``.partial`` holds the results so far."""

    def __init__(self, done: int, total: int, partial: Optional[torch.Tensor] = None):
        super().__init__(f"patching sweep cancelled after {done} of {total} patches; partial results in .partial")
        self.done, self.total, self.partial = done, total, partial


class Progress:
    """tqdm bar (when ``verbose``) + callback + cancellation check."""

    def __init__(
        self,
        total: int,
        verbose: bool = True,
        on_progress: Optional[Callable[[int, int], None]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        desc: str = "patching",
    ):
        self.total, self.done = int(total), 0
        self.on_progress, self.should_stop = on_progress, should_stop
        self.bar = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=desc)

    def advance(self, n: int) -> None:
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(int(n))
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    def check(self, partial: Optional[torch.Tensor] = None) -> None:
        """Raise PatchingCancelled if ``should_stop()`` says so."""
        if self.should_stop is not None and self.should_stop():
            raise PatchingCancelled(self.done, self.total, partial)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
