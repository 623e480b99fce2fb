"""Analysis tools: ``lenswidget.tools.analysis`` (direct logit attribution, ...)."""

from . import analysis

__all__ = ["analysis"]
