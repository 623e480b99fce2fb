"""Custom browser -> kernel messages: ``{"type": <name>, ...fields}`` routed to handlers.

Each message type has a :class:`~lenswidget.widgets.validation.Record` schema for its
fields; :meth:`MessageRouter.parse` validates the whole message (type, keys, values)
before any handler runs, so a rejected message has no effect.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..errors import WidgetMessageError
from .validation import Record, Schema, describe

Handler = Callable[[dict], None]


class MessageRouter:
    """Message type -> (schema, handler)."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[Callable[[], Record], Handler]] = {}

    def add(self, kind: str, handler: Handler, fields: Callable[[], Mapping[str, Schema]] | None = None,
            optional: frozenset = frozenset()) -> None:
        """Route ``kind`` to ``handler``; ``fields`` builds the field schemas from current state."""
        fields = fields or dict
        self._routes[kind] = (lambda: Record(dict(fields()), optional), handler)

    @property
    def kinds(self) -> list[str]:
        return list(self._routes)

    def parse(self, content: Any) -> tuple[Handler, dict]:
        """Validate ``content`` fully; return its handler and cleaned fields."""
        if not isinstance(content, dict):
            raise WidgetMessageError(f"message: got {describe(content)}; expected an object with a 'type' key")
        kind = content.get("type")
        if type(kind) is not str or kind not in self._routes:
            raise WidgetMessageError(f"message: unknown type {describe(kind)}; valid types: " + ", ".join(self._routes))
        schema, handler = self._routes[kind]
        fields = {k: v for k, v in content.items() if k != "type"}
        return handler, schema().check(fields, f"message {kind!r}")
