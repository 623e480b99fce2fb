"""Analysis helpers mixed into :class:`~lenswidget.model.HookedTransformer`."""

from __future__ import annotations


class AnalysisMixin:
    """tokens_to_residual_directions, accumulated_bias, QK/OV, composition scores, head labels."""
