"""anywidget views (Python side): head heatmap and live attention inspector.

Shared foundation for later widgets: :mod:`.codec` (binary tensor transport),
:mod:`.validation` / :mod:`.messages` (browser input schemas), :mod:`.base`
(:class:`LensWidget`: error banner, validated updates).
"""

from .attention import AttentionInspector, attention
from .base import LensWidget
from .codec import decode as decode_tensor
from .codec import encode as encode_tensor
from .feature import FeatureDashboard, feature
from .heatmap import HeadHeatmap, HeadLink, head_heatmap, link_heatmap_to_attention
from .patcher import Patcher, patcher
from .residual import ResidualExplorer, residual

__all__ = [
    "AttentionInspector",
    "FeatureDashboard",
    "HeadHeatmap",
    "HeadLink",
    "LensWidget",
    "Patcher",
    "ResidualExplorer",
    "attention",
    "decode_tensor",
    "encode_tensor",
    "feature",
    "head_heatmap",
    "link_heatmap_to_attention",
    "patcher",
    "residual",
]
