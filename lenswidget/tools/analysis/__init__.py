"""Single-call analyses on top of the hooked model and its ActivationCache.

>>> from lenswidget.tools.analysis import direct_logit_attribution, get_act_patch_direct_path
"""

from .direct_logit_attribution import DirectLogitAttribution, direct_logit_attribution
from .direct_path_patching import get_act_patch_direct_path, get_act_patch_direct_path_all_sources

__all__ = [
    "DirectLogitAttribution",
    "direct_logit_attribution",
    "get_act_patch_direct_path",
    "get_act_patch_direct_path_all_sources",
]
