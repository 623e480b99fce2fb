"""TransformerLens-compatible alias: ``from lenswidget.hook_points import HookPoint``."""

from lenswidget.hooks import HookedRootModule, HookFunction, HookPoint, LensHandle, NamesFilter

__all__ = ["HookPoint", "HookedRootModule", "LensHandle", "HookFunction", "NamesFilter"]
