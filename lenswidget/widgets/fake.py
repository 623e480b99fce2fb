"""Alias of :mod:`lenswidget.widgets.attention.fake` (its home since the attention package)."""

from .attention.fake import FakeAttentionModel, causal_patterns

__all__ = ["FakeAttentionModel", "causal_patterns"]
