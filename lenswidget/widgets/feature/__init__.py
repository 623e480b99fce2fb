"""SAE feature dashboard widget (Python side of ``src/feature/``)."""

from .widget import FeatureDashboard, feature

__all__ = ["FeatureDashboard", "feature"]
