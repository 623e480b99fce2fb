"""Head heatmap: inputs (DLA / patching shapes, torch or numpy), traits, selection, linking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

from lenswidget.errors import InvalidOptionError, ShapeMismatchError
from lenswidget.widgets import HeadHeatmap, attention, codec, head_heatmap, link_heatmap_to_attention
from lenswidget.widgets.fake import FakeAttentionModel

DLA_LABELS = [f"L{l}H{h}" for l in range(3) for h in range(4)]


def test_grid_from_patching_sweep_torch():
    values = torch.arange(12, dtype=torch.float32).reshape(3, 4) - 6
    w = head_heatmap(values, title="Patching")
    assert isinstance(w, HeadHeatmap) and w.shape == (3, 4)
    assert w.values["dtype"] == "float32"  # small grids go exact
    np.testing.assert_array_equal(codec.decode(w.values), values.numpy())
    assert w.labels[:2] == ["L0H0", "L0H1"] and w.row_labels == ["L0", "L1", "L2"] and w.col_labels[-1] == "H3"
    assert (w.vmin, w.vmax) == (-6.0, 6.0)  # diverging, centred at 0
    assert w.title == "Patching" and w.scale == "diverging"


def test_flat_dla_with_stack_head_results_labels():
    flat = np.arange(12, dtype=np.float32)
    w = head_heatmap(flat, labels=DLA_LABELS)
    assert w.shape == (3, 4)
    assert w.value(2, 1) == 9.0


def test_flat_dla_in_any_order_and_missing_heads():
    labels = ["L1H0", "L0H1", "L2H2"]
    w = head_heatmap(np.array([1.0, 2.0, 3.0]), labels=labels)
    assert w.shape == (3, 3)
    grid = codec.decode(w.values)
    assert grid[1, 0] == 1 and grid[0, 1] == 2 and grid[2, 2] == 3 and np.isnan(grid[0, 0])


def test_flat_values_with_n_heads_and_custom_labels():
    w = head_heatmap(torch.ones(6), n_heads=3, labels=[f"h{i}" for i in range(6)])
    assert w.shape == (2, 3) and w.labels[4] == "h4"


@pytest.mark.parametrize("values, kwargs", [
    (np.ones(6), {}),                                   # flat, no labels, no n_heads
    (np.ones(7), {"n_heads": 3}),
    (np.ones((2, 3, 4)), {}),
    (np.ones((2, 2)), {"labels": ["a"]}),
    (np.ones(2), {"labels": ["L0H0", "L0H0"]}),
    (np.ones((0, 3)), {}),
    (np.ones(1), {"labels": ["L99999999H0"]}),
])
def test_bad_shapes_raise(values, kwargs):
    with pytest.raises(ShapeMismatchError):
        head_heatmap(values, **kwargs)


def test_sequential_scale_and_limits():
    w = head_heatmap(np.array([[0.2, 0.8]]), scale="sequential")
    assert (w.vmin, w.vmax) == pytest.approx((0.2, 0.8))
    w = head_heatmap(np.zeros((2, 2)))
    assert (w.vmin, w.vmax) == (-1.0, 1.0)  # all-zero grid still gets a usable scale
    with pytest.raises(InvalidOptionError):
        head_heatmap(np.zeros((2, 2)), scale="rainbow")


def test_selection_from_python_and_browser_is_observable():
    w = head_heatmap(np.zeros((3, 4)))
    seen = []
    w.observe(lambda c: seen.append(c["new"]), "selected")
    w.set_state({"selected": {"layer": 1, "head": 3}})  # browser click
    w.select(2, 0)                                       # Python
    w.set_state({"selected": None})
    assert seen == [{"layer": 1, "head": 3}, {"layer": 2, "head": 0}, None]
    with pytest.raises(traitlets.TraitError):
        w.selected = {"layer": 3, "head": 0}
    w._handle_custom_msg({"type": "select", "layer": 0, "head": 1}, [])
    assert w.selected == {"layer": 0, "head": 1}


def test_state_serialises_with_one_binary_buffer():
    from ipywidgets.widgets.widget import _remove_buffers

    w = head_heatmap(np.ones((30, 9)))
    state, paths, buffers = _remove_buffers(w.get_state())
    assert state["values"]["shape"] == [30, 9]
    assert paths == [["values", "buffer"]] and len(buffers) == 1


def test_link_to_attention_inspector():
    model = FakeAttentionModel(n_layers=3, n_heads=4)
    ins = attention(model, "a b c", layers=[0, 2])
    hm = head_heatmap(np.zeros((3, 4)))
    link = hm.link(ins)
    hm.set_state({"selected": {"layer": 2, "head": 3}})
    assert (ins.layer, ins.head) == (2, 3)
    ins.select(0, 1)  # inspector -> heatmap
    assert hm.selected == {"layer": 0, "head": 1}
    hm.set_state({"selected": {"layer": 1, "head": 0}})  # layer 1 is not shown in the inspector
    assert "not shown" in hm.error and (ins.layer, ins.head) == (0, 1)
    hm.select(None)
    assert ins.head is None
    link.unlink()
    hm.select(2, 2)
    assert ins.head is None
    with pytest.raises(TypeError):
        link_heatmap_to_attention(ins, hm)
