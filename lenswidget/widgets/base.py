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
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import anywidget
import traitlets as t

from ..errors import LensWidgetError, WidgetMessageError
from .messages import MessageRouter
from .validation import Schema, check_state, describe

log = logging.getLogger("lenswidget.widgets")


class LensWidget(anywidget.AnyWidget):
    """Common traits (``title``, ``error``, ``revision``) and the validation plumbing."""

    title = t.Unicode("").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    # Bumped after every browser message is handled (accepted or not): the browser's
    # "busy" indicator waits for it, since an answer may leave every other trait equal.
    revision = t.Int(0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
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
        try:
            if method == "update":
                if data.get("buffer_paths"):  # browser -> kernel carries indices, never tensors
                    raise WidgetMessageError("binary buffers are not accepted from the browser")
                self.set_state(data.get("state"))
            elif method == "custom":
                self._handle_custom_msg(data.get("content"), msg.get("buffers") or [])
            elif method == "request_state":
                self.send_state()
            else:
                raise WidgetMessageError(f"unknown comm method {describe(method)}; valid: update, custom, request_state")
        except Exception as exc:  # noqa: BLE001 - the comm must never see an exception
            self._reject(exc)

    def set_state(self, sync_data: Any) -> None:
        """Apply a browser state update if every key and value is valid."""
        try:
            clean = check_state(sync_data, self.browser_writable())
        except Exception as exc:  # noqa: BLE001
            self._reject(exc, sync_data)
            return
        before = {k: getattr(self, k) for k in clean}
        try:
            with self.hold_sync():
                self.error = ""  # before applying, so observers may report their own errors
                super().set_state(clean)
                self.revision += 1
        except Exception as exc:  # noqa: BLE001
            self._restore(before)
            self._reject(exc, clean)

    def _handle_custom_msg(self, content: Any, buffers: Any) -> None:
        try:
            handler, fields = self._router.parse(content)
        except Exception as exc:  # noqa: BLE001
            self._reject(exc)
            return
        try:
            with self.hold_sync():
                self.error = ""
                handler(fields)
                self.revision += 1
        except Exception as exc:  # noqa: BLE001
            self._reject(exc)

    # -- rejection --------------------------------------------------------------------
    def _reject(self, exc: BaseException, touched: Any = None) -> None:
        """Show ``exc`` in the banner and re-sync the browser's copy of ``touched`` traits."""
        try:
            self.error = format_error(exc)
            self.revision += 1
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


def format_error(exc: BaseException) -> str:
    """Banner text for ``exc``: our typed errors speak for themselves, others get their type."""
    cause = exc.__cause__ if isinstance(exc, t.TraitError) and isinstance(exc.__cause__, LensWidgetError) else exc
    if isinstance(cause, WidgetMessageError):
        return f"Rejected a message from the browser: {cause}"
    if isinstance(cause, (LensWidgetError, t.TraitError)):
        return str(cause)
    return f"{type(cause).__name__}: {cause}"
