"""Head heatmap widget (Python side of ``src/heatmap/``) and its link to an attention inspector."""

from .link import HeadLink, link_heatmap_to_attention
from .widget import HeadHeatmap, head_heatmap

__all__ = ["HeadHeatmap", "HeadLink", "head_heatmap", "link_heatmap_to_attention"]
