"""Browser -> kernel validation: schemas, routing, and a fuzz of malformed messages.

Every rejected message must leave the widget's state exactly as it was, show an error,
and never raise; the widget must stay usable afterwards.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from lenswidget.errors import WidgetMessageError
from lenswidget.widgets import attention, head_heatmap
from lenswidget.widgets.fake import FakeAttentionModel
from lenswidget.widgets.messages import MessageRouter
from lenswidget.widgets.validation import Bool, Float, Int, ListOf, Nullable, OneOf, Record, Str, check_state

# -- schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, 1.0, "1", None, -1, 10, 2**70, [1], {"a": 1}, float("nan")])
def test_int_rejects_non_ints_and_out_of_range(value):
    with pytest.raises(WidgetMessageError, match=r"layer: got .*; expected an integer in 0\.\.9"):
        Int(0, 9).check(value, "layer")


def test_schemas_accept_valid_values():
    assert Int(0, 9).check(3, "x") == 3
    assert OneOf((1, 5)).check(5, "x") == 5
    assert Nullable(Int(0, 1)).check(None, "x") is None
    assert Str(5).check("abc", "x") == "abc"
    assert Float(0, 1).check(1, "x") == 1.0
    assert Bool().check(False, "x") is False
    assert ListOf(Int(0, 3), 2).check([0, 3], "x") == [0, 3]
    assert Record({"a": Int(0, 1)}, frozenset({"b"})).check({"a": 1}, "x") == {"a": 1}


@pytest.mark.parametrize("schema, value, match", [
    (OneOf((1, 5)), True, "one of 1, 5"),        # bool is not int here
    (OneOf((1, 5)), 1.0, "one of"),
    (Str(3), "abcd", "too long"),
    (Str(3), b"ab", "a string"),
    (Float(), float("inf"), "finite"),
    (Bool(), 0, "true or false"),
    (ListOf(Int(0, 1), 2), [0, 1, 0], "at most 2"),
    (Record({"a": Int(0, 1)}), {}, "missing key 'a'"),
    (Record({"a": Int(0, 1)}), {"a": 0, "zz": 1}, "unknown key 'zz'"),
    (Record({"a": Int(0, 1)}), [("a", 0)], "an object"),
])
def test_schema_errors_name_the_problem(schema, value, match):
    with pytest.raises(WidgetMessageError, match=match):
        schema.check(value, "field")


def test_check_state_is_all_or_nothing():
    writable = {"layer": Int(0, 3), "head": Nullable(Int(0, 1))}
    assert check_state({"layer": 2, "head": None}, writable) == {"layer": 2, "head": None}
    with pytest.raises(WidgetMessageError, match="cannot be set from the browser; writable: layer, head"):
        check_state({"layer": 2, "pattern": 1}, writable)
    with pytest.raises(WidgetMessageError):
        check_state({}, writable)


def test_router_validates_before_dispatch():
    seen = []
    router = MessageRouter()
    router.add("select", seen.append, lambda: {"layer": Int(0, 2)})
    handler, fields = router.parse({"type": "select", "layer": 1})
    handler(fields)
    assert seen == [{"layer": 1}]
    for bad in [{"type": "select"}, {"type": "select", "layer": 3}, {"type": "nope"}, {"layer": 1}, [], None,
                {"type": ["select"]}, {"type": "select", "layer": 1, "extra": 0}]:
        with pytest.raises(WidgetMessageError):
            router.parse(bad)
    assert seen == [{"layer": 1}]


def test_error_messages_are_short_for_huge_junk():
    junk = {"type": "x" * 100_000}
    with pytest.raises(WidgetMessageError) as info:
        MessageRouter().parse(junk)
    assert len(str(info.value)) < 300


# -- fuzz ---------------------------------------------------------------------------------------

def _junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON-ish value biased towards the nasty cases."""
    kind = rng.randrange(14 if depth < 4 else 10)
    if kind == 0:
        return rng.choice([0, 1, -1, 2, 3, 7, 29, 30, 2**31, 2**63, -(2**63), 10**100])
    if kind == 1:
        return rng.choice([math.nan, math.inf, -math.inf, 0.5, -0.0, 1.0, 1e308])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice(["", "a", "layer", "<img src=x onerror=alert(1)>", "\x00\ud800", "😀" * 50, "x" * 30_000])
    if kind == 4:
        return rng.choice(["clear_error", "select", "update", "custom", "request_state", "selected", "head"])
    if kind == 5:
        return b"\x00\x01\x02"
    if kind == 6:
        return {"layer": rng.choice([0, 1, 2, -1, 99, None, "0", 1.0]), "head": rng.choice([0, 1, -1, 5, None, True])}
    if kind == 7:
        return rng.randrange(-5, 10)
    if kind in (8, 9):
        return rng.choice([0, 1, 2, None])
    if kind in (10, 11):
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    nested: Any = {str(_junk(rng, 4)): _junk(rng, depth + 1) for _ in range(rng.randrange(4))}
    if kind == 13:  # deep nesting
        for _ in range(200):
            nested = {"a": [nested]}
    return nested


def _message(rng: random.Random, keys: list[str]) -> Any:
    """A comm message from a confused or hostile browser."""
    form = rng.randrange(8)
    if form == 0:
        return _junk(rng)
    if form == 1:
        return {"content": {"data": _junk(rng)}, "buffers": _junk(rng)}
    if form == 2:
        data = {"method": _junk(rng), "state": _junk(rng)}
        return {"content": {"data": data}, "buffers": []}
    if form in (3, 4, 5):
        state = {rng.choice(keys + ["pattern", "tokens", "error", "_esm", "zz", "revision", "reply", "_request"]): _junk(rng)
                 for _ in range(rng.randrange(1, 4))}
        data: dict = {"method": "update", "state": state}
        if rng.random() < 0.1:
            data["buffer_paths"] = [["x"]]
        return {"content": {"data": data}, "buffers": []}
    content = {"type": rng.choice(["select", "clear_error", "patch", None, 3])}
    for _ in range(rng.randrange(3)):
        content[rng.choice(["layer", "head", "x", "type", "request_id"])] = _junk(rng)
    if rng.random() < 0.2:
        content = _junk(rng)
    return {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}


def _state(w) -> dict:
    return {k: getattr(w, k) for k in w.keys if k not in ("error", "revision", "reply")}


def _method(msg: Any) -> Any:
    try:
        return msg["content"]["data"]["method"]
    except Exception:
        return None


def _fuzz(widget, keys: list[str], check_valid, n: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    rejected = accepted = 0
    for _ in range(n):
        widget.error = ""
        before = _state(widget)
        revision = widget.revision
        msg = _message(rng, keys)
        widget._handle_msg(msg)  # must never raise
        if _method(msg) == "request_state":  # legitimate: re-sends state, changes nothing
            assert not widget.error and _state(widget) == before
            continue
        assert widget.revision > revision, "every message gets an answer"
        if widget.error:
            rejected += 1
            assert _state(widget) == before, f"rejected message changed state: {widget.error}"
        else:
            accepted += 1
        check_valid(widget)
    return rejected, accepted


def test_fuzz_head_heatmap():
    w = head_heatmap(np.random.default_rng(0).standard_normal((3, 2)))

    def valid(w):
        assert w.selected is None or (0 <= w.selected["layer"] < 3 and 0 <= w.selected["head"] < 2)

    rejected, accepted = _fuzz(w, ["selected"], valid, 3000, seed=1)
    assert rejected > 2000 and accepted > 20
    w._handle_msg({"content": {"data": {"method": "update", "state": {"selected": {"layer": 2, "head": 1}}}}})
    assert w.selected == {"layer": 2, "head": 1} and w.error == ""


def test_fuzz_attention_inspector():
    model = FakeAttentionModel(n_layers=3, n_heads=2)
    w = attention(model, "the cat sat")

    def valid(w):
        assert w.layer in w.layers and (w.head is None or w.head in w.heads)
        n = len(w.tokens)
        assert w.pattern["shape"] == [2, n, n] and w.thumbs["shape"][:2] == [3, 2]

    rejected, accepted = _fuzz(w, ["layer", "head", "prompt"], valid, 3000, seed=2)
    assert rejected > 2000 and accepted > 20
    w._handle_msg({"content": {"data": {"method": "update", "state": {"prompt": "a new prompt"}}}})
    assert w.tokens == ["<bos>", "a", " new", " prompt"] and w.error == ""


def test_rejected_update_resyncs_the_browser(monkeypatch):
    w = head_heatmap(np.zeros((2, 2)))
    sent = []
    monkeypatch.setattr(w, "send_state", lambda key=None: sent.append(key))
    w.set_state({"selected": {"layer": 5, "head": 0}})
    assert ["selected"] in sent
    assert "selected.layer" in w.error and "0..1" in w.error


def test_failed_apply_is_rolled_back():
    """A value that passes the schema but fails later (the model rejects the prompt)."""
    model = FakeAttentionModel()
    w = attention(model, "one two", max_tokens=4)
    before = _state(w)
    w.set_state({"prompt": "one two three four five"})
    assert "at most max_tokens=4" in w.error
    assert _state(w) == before
    w.set_state({"prompt": "one two three"})
    assert w.error == "" and len(w.tokens) == 4
