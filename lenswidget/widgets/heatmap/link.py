"""Kernel-side link: clicking a head heatmap cell shows that head in an attention inspector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .widget import HeadHeatmap

if TYPE_CHECKING:  # the attention package is imported when a link is made, not with the heatmap
    from ..attention import AttentionInspector


class HeadLink:
    """Keeps ``heatmap.selected`` and the inspector's (``layer``, locked ``head``) in step."""

    def __init__(self, heatmap: "HeadHeatmap", inspector: "AttentionInspector"):
        self.heatmap, self.inspector = heatmap, inspector
        heatmap.observe(self._from_heatmap, "selected")
        inspector.observe(self._from_inspector, ["layer", "head"])
        if heatmap.selected is not None:
            self._from_heatmap({"new": heatmap.selected})

    def unlink(self) -> None:
        self.heatmap.unobserve(self._from_heatmap, "selected")
        self.inspector.unobserve(self._from_inspector, ["layer", "head"])

    def _from_heatmap(self, change: Any) -> None:
        sel = change["new"]
        if sel is None:
            if self.inspector.head is not None:
                self.inspector.head = None
            return
        layer, head = sel["layer"], sel["head"]
        if layer not in self.inspector.layers or head not in self.inspector.heads:
            # Not an error of the heatmap itself: say so in its banner, keep the selection.
            self.heatmap.error = f"L{layer}H{head} is not shown in the linked attention inspector"
            return
        if (self.inspector.layer, self.inspector.head) != (layer, head):
            self.inspector.select(layer, head)

    def _from_inspector(self, change: Any) -> None:
        ins = self.inspector
        if ins.head is None:
            return
        rows, cols = self.heatmap.shape
        want = {"layer": ins.layer, "head": ins.head}
        if ins.layer < rows and ins.head < cols and self.heatmap.selected != want:
            self.heatmap.selected = want


def link_heatmap_to_attention(heatmap: "HeadHeatmap", inspector: "AttentionInspector") -> HeadLink:
    """Link ``heatmap`` clicks to ``inspector``; returns a :class:`HeadLink` (``.unlink()``)."""
    from ..attention import AttentionInspector

    if not isinstance(heatmap, HeadHeatmap) or not isinstance(inspector, AttentionInspector):
        raise TypeError("link_heatmap_to_attention(heatmap: HeadHeatmap, inspector: AttentionInspector)")
    return HeadLink(heatmap, inspector)
