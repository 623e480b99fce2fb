"""Browser -> kernel messages of the patcher and their schemas.

=================  =====================================================================
type               fields
=================  =====================================================================
``add_patch``      ``act``, ``layers: [first, last]``, ``positions: [first, last] | null``,
                   ``heads: [first, last] | null``, ``mode: "clean" | "zero" | "mean"``
``remove_patch``   ``id``
``toggle_patch``   ``id``, ``enabled: bool``
``clear_patches``  (none)
``sweep``          ``kind: "exact" | "attribution"``
``cancel_sweep``   (none)
``set_prompts``    ``clean: str``, ``corrupted: str`` (only when ``editable``)
=================  =====================================================================

Ranges are inclusive ``[first, last]`` pairs: a dragged rectangle of cells. Schemas check
types and grid bounds; the widget then checks the patch itself (heads of ``k``/``v``,
``mean`` on ``pattern``) before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..messages import MessageRouter
from .patches import MODES
from ..validation import Bool, Int, Nullable, Schema, Str, choices, fail

MAX_PROMPT_CHARS = 2000
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Span(Schema):
    """An inclusive ``[first, last]`` pair of ints with ``0 <= first <= last < size``."""

    size: int

    def check(self, value: Any, where: str) -> list:
        expected = f"[first, last] with 0 <= first <= last <= {self.size - 1}"
        if not isinstance(value, list) or len(value) != 2 or any(type(v) is not int for v in value):
            raise fail(where, value, expected)
        if not 0 <= value[0] <= value[1] < self.size:
            raise fail(where, value, expected)
        return list(value)


def register(router: MessageRouter, widget: Any) -> None:
    """Route the patcher's messages to ``widget``'s methods (schemas built from its state)."""

    def dims() -> Any:
        return widget.runs.dims

    def add_fields() -> Mapping[str, Schema]:
        d = dims()
        return {"act": choices(widget.acts), "layers": Span(d.n_layers), "positions": Nullable(Span(d.n_pos)),
                "heads": Nullable(Span(max(d.n_heads, d.n_kv_heads))), "mode": choices(MODES)}

    def span(pair: list | None) -> range | None:
        return None if pair is None else range(pair[0], pair[1] + 1)

    add: Callable[[dict], Any] = lambda m: widget.add_patch(
        m["act"], span(m["layers"]), positions=span(m["positions"]), heads=span(m["heads"]), mode=m["mode"])
    router.add("add_patch", add, add_fields)
    router.add("remove_patch", lambda m: widget.remove_patch(m["id"]), lambda: {"id": Int(0, MAX_ID)})
    router.add("toggle_patch", lambda m: widget.toggle_patch(m["id"], m["enabled"]),
               lambda: {"id": Int(0, MAX_ID), "enabled": Bool()})
    router.add("clear_patches", lambda m: widget.clear_patches())
    router.add("sweep", lambda m: widget.run_sweep(kind=m["kind"], block=m["kind"] != "exact"),
               lambda: {"kind": choices(("exact", "attribution"))})
    router.add("cancel_sweep", lambda m: widget.cancel_sweep())
    router.add("set_prompts", lambda m: widget._set_prompts_from_browser(m["clean"], m["corrupted"]),
               lambda: {"clean": Str(MAX_PROMPT_CHARS), "corrupted": Str(MAX_PROMPT_CHARS)})
