"""lenswidget: a JupyterLab workbench for mechanistic interpretability.

The Python API is TransformerLens's ``HookedTransformer`` API; a notebook written for it runs
after changing only the import::

    from lenswidget import HookedTransformer, ActivationCache, FactoredMatrix, utils, patching

    model = HookedTransformer.from_pretrained("SmolLM2-135M-Instruct")
    logits, cache = model.run_with_cache("The capital of France is")

Names are resolved lazily, so ``import lenswidget`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "HookedTransformer": "lenswidget.model",
    "HookedTransformerConfig": "lenswidget.config",
    "HookPoint": "lenswidget.hooks",
    "HookedRootModule": "lenswidget.hooks",
    "ActivationCache": "lenswidget.cache",
    "FactoredMatrix": "lenswidget.factored",
    "HookedTransformerKeyValueCache": "lenswidget.kv_cache",
    "HookedTransformerKeyValueCacheEntry": "lenswidget.kv_cache",
    "Output": "lenswidget.model",
    # sparse autoencoders (SAELens-compatible)
    "HookedSAETransformer": "lenswidget.sae",
    "SAE": "lenswidget.sae",
    # widgets
    "head_heatmap": "lenswidget.widgets",
    "attention": "lenswidget.widgets",
    "link_heatmap_to_attention": "lenswidget.widgets",
    "residual": "lenswidget.widgets",
    "patcher": "lenswidget.widgets",
    "feature": "lenswidget.widgets",
}

_SUBMODULES = {
    "utils", "hook_points", "hooks", "patching", "tools", "loading", "processing", "widgets",
    "config", "cache", "factored", "components", "errors", "kv_cache", "model", "sae",
}

__all__ = sorted(set(_EXPORTS) | _SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"lenswidget.{name}")
    else:
        raise AttributeError(f"module 'lenswidget' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
