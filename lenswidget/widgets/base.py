"""Base class of every lenswidget widget: validated browser input, an error banner.

Browser -> kernel traffic arrives two ways, and both are validated in full before
anything changes:

* state updates (``model.set(...); model.save_changes()``) may only touch the traits in
  :meth:`LensWidget.browser_writable`, each checked by its schema;
* custom messages (``model.send({type, ...})``) are routed by :class:`MessageRouter`.

A rejected update or message sets the ``error`` trait (shown as a banner), re-syncs
the browser's copy of the touched traits and returns; it never raises into the comm.
Subclasses put failable work (tokenising, running the model) in traitlets
cross-validators that raise ``TraitError``, so traitlets rolls the change back.

Every browser message carries a request id (``request_id`` in a custom message, the
reserved key ``_request`` in a state update). Once the message is handled, accepted or
not, ``reply`` becomes ``{"id": <that id>, "ok": <accepted>}`` in the same update as the
results, so the browser clears its busy state on the answer to its newest request only
(src/shared/requests.ts).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping, Optional

import anywidget
import traitlets as t
from ipywidgets import widget_serialization

from ..errors import LensWidgetError, WidgetMessageError
from .assets import Bundle, shared_bundle
from .messages import MessageRouter
from .validation import Schema, check_state, describe

log = logging.getLogger("lenswidget.widgets")

REQUEST_KEY = "_request"  # in a browser state update
REQUEST_FIELD = "request_id"  # in a browser custom message
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class LensWidget(anywidget.AnyWidget):
    """Common traits (``title``, ``error``, ``revision``, ``reply``) and the validation plumbing."""

    title = t.Unicode("").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    # Bumped after every browser message is handled (accepted or not).
    revision = t.Int(0).tag(sync=True)
    # The answer to the browser's latest request: {"id": str, "ok": bool} ({} before any).
    reply = t.Dict().tag(sync=True)
    # How long the browser waits for the kernel to start on a request before it says
    # "kernel not responding" (the kernel may be busy running another cell).
    reply_timeout_ms = t.Int(10_000).tag(sync=True)
    # The front-end code, shared by every widget of this kind (assets.py); `_esm` is a loader.
    _bundle = t.Instance(Bundle, allow_none=True).tag(sync=True, **widget_serialization)

    def __init__(self, **kwargs: Any) -> None:
        bundle = shared_bundle(getattr(type(self), "_esm", None))
        if bundle is not None:
            kwargs.setdefault("_bundle", bundle)
        super().__init__(**kwargs)
        self._router = MessageRouter()
        self._router.add("clear_error", lambda _: self.clear_error())
        self._add_messages(self._router)

    # -- per-widget hooks -------------------------------------------------------------
    def browser_writable(self) -> Mapping[str, Schema]:
        """Traits the browser may set, with schemas built from the current state."""
        return {}

    def _add_messages(self, router: MessageRouter) -> None:
        """Register custom message types (besides ``clear_error``)."""

    # -- public helpers ---------------------------------------------------------------
    def clear_error(self) -> None:
        self.error = ""

    # -- comm entry points ------------------------------------------------------------
    def _handle_msg(self, msg: Any) -> None:
        """Everything the browser sends enters here; nothing escapes."""
        try:
            data = msg["content"]["data"]
            method = data["method"] if isinstance(data, dict) else None
        except Exception:
            self._reject(WidgetMessageError(f"malformed comm message {describe(msg)}"))
            return
        request = None
        try:
            if method == "update":
                if data.get("buffer_paths"):  # browser -> kernel carries indices, never tensors
                    raise WidgetMessageError("binary buffers are not accepted from the browser")
                state = data.get("state")
                if isinstance(state, dict) and REQUEST_KEY in state:
                    state = dict(state)
                    request = _request_id(state.pop(REQUEST_KEY))
                self._apply_state(state, request)
            elif method == "custom":
                content = data.get("content")
                if isinstance(content, dict) and REQUEST_FIELD in content:
                    content = dict(content)
                    request = _request_id(content.pop(REQUEST_FIELD))
                self._apply_custom(content, request)
            elif method == "request_state":
                self.send_state()
            else:
                raise WidgetMessageError(f"unknown comm method {describe(method)}; valid: update, custom, request_state")
        except Exception as exc:  # noqa: BLE001 - the comm must never see an exception
            self._reject(exc, request=request)

    def set_state(self, sync_data: Any) -> None:
        """Apply a browser state update if every key and value is valid."""
        self._apply_state(sync_data, None)

    def _apply_state(self, sync_data: Any, request: Optional[str]) -> None:
        try:
            clean = check_state(sync_data, self.browser_writable())
        except Exception as exc:  # noqa: BLE001
            self._reject(exc, sync_data, request)
            return
        before = {k: getattr(self, k) for k in clean}
        try:
            with self.hold_sync():
                self.error = ""  # before applying, so observers may report their own errors
                super().set_state(clean)
                self._send_reply(request, True)
        except Exception as exc:  # noqa: BLE001
            self._restore(before)
            self._reject(exc, clean, request)

    def _handle_custom_msg(self, content: Any, buffers: Any) -> None:
        self._apply_custom(content, None)

    def _apply_custom(self, content: Any, request: Optional[str]) -> None:
        try:
            handler, fields = self._router.parse(content)
        except Exception as exc:  # noqa: BLE001
            self._reject(exc, request=request)
            return
        try:
            with self.hold_sync():
                self.error = ""
                handler(fields)
                self._send_reply(request, True)
        except Exception as exc:  # noqa: BLE001
            self._reject(exc, request=request)

    def _send_reply(self, request: Optional[str], ok: bool) -> None:
        """Bump ``revision`` and, for a browser request, set ``reply`` (inside the caller's hold_sync)."""
        self.revision += 1
        if request is not None:
            self.reply = {"id": request, "ok": ok}

    # -- rejection --------------------------------------------------------------------
    def _reject(self, exc: BaseException, touched: Any = None, request: Optional[str] = None) -> None:
        """Show ``exc`` in the banner, re-sync the browser's copy of ``touched`` traits, answer ``request``."""
        try:
            with self.hold_sync():
                self.error = format_error(exc)
                self._send_reply(request, False)
            keys = [k for k in touched if type(k) is str and k in self.keys] if isinstance(touched, dict) else []
            if keys:
                self.send_state(keys)
        except Exception:  # noqa: BLE001 - last resort: log, never raise into the comm
            log.exception("lenswidget: failed to report a rejected message")

    def _restore(self, before: dict) -> None:
        """Put back trait values changed by a partially applied update."""
        try:
            with self.hold_trait_notifications():
                for key, value in before.items():
                    if getattr(self, key) != value:
                        self.set_trait(key, value)
        except Exception:  # noqa: BLE001
            log.exception("lenswidget: could not restore state after a failed update")


def _request_id(value: Any) -> str:
    if type(value) is not str or not _REQUEST_ID.match(value):
        raise WidgetMessageError(f"request id {describe(value)}: expected 1-64 characters of [A-Za-z0-9_.:-]")
    return value


def format_error(exc: BaseException) -> str:
    """Banner text for ``exc``: our typed errors speak for themselves, others get their type."""
    cause = exc.__cause__ if isinstance(exc, t.TraitError) and isinstance(exc.__cause__, LensWidgetError) else exc
    if isinstance(cause, WidgetMessageError):
        return f"Rejected a message from the browser: {cause}"
    if isinstance(cause, (LensWidgetError, t.TraitError)):
        return str(cause)
    return f"{type(cause).__name__}: {cause}"
