"""Single-call analyses on top of the hooked model and its ActivationCache.

>>> from lenswidget.tools.analysis import direct_logit_attribution
"""

from .direct_logit_attribution import DirectLogitAttribution, direct_logit_attribution

__all__ = ["DirectLogitAttribution", "direct_logit_attribution"]
