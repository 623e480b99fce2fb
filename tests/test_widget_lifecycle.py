"""Request ids: every browser message's id comes back in ``reply``, in the same update as the results.

The browser clears its busy state only on the reply to its newest request
(src/shared/requests.ts, tests/js/requests.test.ts); these tests pin the kernel's half.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lenswidget.widgets import attention, head_heatmap
from lenswidget.widgets.fake import FakeAttentionModel


def _record(widget) -> list[dict]:
    """Capture what the widget sends over its comm (state updates and echoes)."""
    sent: list[dict] = []

    def fake_send(msg: Any, buffers: Any = None) -> None:
        sent.append(msg)

    widget._send = fake_send
    return sent


def _update(widget, state: dict) -> None:
    widget._handle_msg({"content": {"data": {"method": "update", "state": state}}, "buffers": []})


def _custom(widget, content: Any) -> None:
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def _updates(sent: list[dict]) -> list[dict]:
    return [m["state"] for m in sent if m.get("method") == "update"]


@pytest.fixture
def heatmap():
    return head_heatmap(np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)


def test_accepted_update_is_answered_with_its_id(heatmap):
    sent = _record(heatmap)
    _update(heatmap, {"selected": {"layer": 1, "head": 2}, "_request": "ab12:1"})
    assert heatmap.selected == {"layer": 1, "head": 2} and heatmap.error == ""
    assert heatmap.reply == {"id": "ab12:1", "ok": True}
    # One kernel -> browser update carries the reply (the selection itself is the browser's own).
    assert [u["reply"] for u in _updates(sent) if "reply" in u] == [{"id": "ab12:1", "ok": True}]
    assert "_request" not in heatmap.keys


def test_rejected_update_is_answered_not_ok_and_changes_nothing(heatmap):
    _update(heatmap, {"selected": {"layer": 5, "head": 0}, "_request": "ab12:2"})
    assert heatmap.selected is None
    assert heatmap.reply == {"id": "ab12:2", "ok": False}
    assert "selected" in heatmap.error and "0..1" in heatmap.error


def test_custom_message_is_answered_with_its_id(heatmap):
    sent = _record(heatmap)
    _custom(heatmap, {"type": "select", "layer": 0, "head": 1, "request_id": "zz:7"})
    assert heatmap.selected == {"layer": 0, "head": 1}
    # The result and the reply travel in one message, so the browser never sees one without the other.
    carrying = [u for u in _updates(sent) if "reply" in u]
    assert carrying == [{"selected": {"layer": 0, "head": 1}, "revision": heatmap.revision,
                         "reply": {"id": "zz:7", "ok": True}}]
    _custom(heatmap, {"type": "select", "layer": 0, "head": 9, "request_id": "zz:8"})
    assert heatmap.reply == {"id": "zz:8", "ok": False} and heatmap.selected == {"layer": 0, "head": 1}


def test_queued_requests_are_answered_in_order(heatmap):
    replies = []
    heatmap.observe(lambda c: replies.append(c["new"]["id"]), "reply")
    _update(heatmap, {"selected": {"layer": 0, "head": 0}, "_request": "s:1"})
    _custom(heatmap, {"type": "clear_error", "request_id": "s:2"})
    _update(heatmap, {"selected": None, "_request": "s:3"})
    assert replies == ["s:1", "s:2", "s:3"]
    assert heatmap.selected is None


@pytest.mark.parametrize("bad", [3, None, "", "x" * 65, "<img>", ["s:1"]])
def test_malformed_request_ids_are_rejected(heatmap, bad):
    _update(heatmap, {"selected": {"layer": 1, "head": 1}, "_request": bad})
    assert heatmap.selected is None and "request id" in heatmap.error and heatmap.reply == {}
    heatmap.error = ""
    _custom(heatmap, {"type": "select", "layer": 1, "head": 1, "request_id": bad})
    assert heatmap.selected is None and "request id" in heatmap.error


def test_messages_without_ids_still_work_and_leave_reply_alone(heatmap):
    revision = heatmap.revision
    _update(heatmap, {"selected": {"layer": 1, "head": 0}})
    assert heatmap.selected == {"layer": 1, "head": 0} and heatmap.reply == {} and heatmap.revision == revision + 1


def test_prompt_rerun_answers_with_the_new_tokens_in_the_same_update():
    w = attention(FakeAttentionModel(n_layers=2, n_heads=2), "the cat")
    sent = _record(w)
    _update(w, {"prompt": "the cat sat on", "_request": "k:4"})
    carrying = [u for u in _updates(sent) if "reply" in u]
    assert len(carrying) == 1 and carrying[0]["reply"] == {"id": "k:4", "ok": True}
    assert {"tokens", "thumbs", "pattern"} <= set(carrying[0]), "results and reply arrive together"
    assert carrying[0]["tokens"] == w.tokens and len(w.tokens) > 2


# -- the front-end bundle travels once, not once per widget --------------------------------------


def test_widgets_share_one_bundle_and_carry_a_small_loader(heatmap, monkeypatch):
    from lenswidget.widgets import assets

    other = head_heatmap(np.ones((1, 2), dtype=np.float32))
    assert heatmap._bundle is other._bundle and heatmap._bundle.name == "heatmap"
    state = other.get_state()
    assert state["_bundle"] == f"IPY_MODEL_{heatmap._bundle.model_id}"
    assert len(state["_esm"]) < 1500, "each widget carries only the loader"
    assert heatmap._bundle.code == assets.source("heatmap")
    # A closed bundle model (e.g. Widget.close_all()) is replaced by a fresh one.
    heatmap._bundle.close()
    assert head_heatmap(np.ones((1, 1), dtype=np.float32))._bundle is not heatmap._bundle
    # The live-reload dev loop points anywidget at the bundle file, as plain anywidget does.
    monkeypatch.setenv("ANYWIDGET_HMR", "1")
    if (assets.STATIC / "heatmap.js").is_file():
        assert assets.esm("heatmap") == assets.STATIC / "heatmap.js"
    monkeypatch.setenv("ANYWIDGET_HMR", "0")
    assert isinstance(assets.esm("heatmap"), assets.EsmRef)
