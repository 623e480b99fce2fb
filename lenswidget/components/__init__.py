"""Building blocks of HookedTransformer, one per file."""

from lenswidget.components.attention import Attention, GroupedQueryAttention, make_attention
from lenswidget.components.block import TransformerBlock
from lenswidget.components.embed import Embed
from lenswidget.components.mlp import MLP, GatedMLP, make_mlp
from lenswidget.components.norms import LayerNorm, LayerNormPre, RMSNorm, RMSNormPre, make_norm
from lenswidget.components.pos_embed import PosEmbed
from lenswidget.components.rotary import RotaryTable, apply_rotary
from lenswidget.components.unembed import Unembed

__all__ = [
    "Attention",
    "GroupedQueryAttention",
    "make_attention",
    "TransformerBlock",
    "Embed",
    "MLP",
    "GatedMLP",
    "make_mlp",
    "LayerNorm",
    "LayerNormPre",
    "RMSNorm",
    "RMSNormPre",
    "make_norm",
    "PosEmbed",
    "RotaryTable",
    "apply_rotary",
    "Unembed",
]
