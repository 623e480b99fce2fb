"""Sparse autoencoders and transcoders on hook points (SAELens-compatible).

>>> from lenswidget import HookedSAETransformer, SAE                    # doctest: +SKIP
>>> sae = SAE.load_from_disk(folder)                                    # doctest: +SKIP
>>> logits, cache = model.run_with_cache_with_saes(prompt, saes=[sae])  # doctest: +SKIP

Modules: :mod:`.config` (cfg.json fields), :mod:`.sae` (the SAE), :mod:`.files` (folders),
:mod:`.saelens` (SAELens objects), :mod:`.attach` and :mod:`.transformer`
(``HookedSAETransformer``), :mod:`.attribution` (direct feature attribution),
:mod:`.patching` (exact and attribution patching of features), :mod:`.default`
(the small SAE trained on SmolLM2 at setup). See docs/sae.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SAE": "lenswidget.sae.sae",
    "SAEConfig": "lenswidget.sae.config",
    "SAEMetadata": "lenswidget.sae.config",
    "HookedSAETransformer": "lenswidget.sae.transformer",
    "direct_feature_attribution": "lenswidget.sae.attribution",
    "FeatureAttribution": "lenswidget.sae.attribution",
    "feature_logit_effects": "lenswidget.sae.attribution",
    "patch_features": "lenswidget.sae.patching",
    "feature_attribution_patch": "lenswidget.sae.patching",
    "compare_feature_patching": "lenswidget.sae.patching",
    "load_default_sae": "lenswidget.sae.default",
    "default_sae_dir": "lenswidget.sae.default",
    "load_corpus": "lenswidget.sae.corpus",
    "feature_activations": "lenswidget.sae.activations",
    "demo_features": "lenswidget.sae.default",
    "feature_grid": "lenswidget.sae.patching",
    "FeatureAttributionPatch": "lenswidget.sae.patching",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lenswidget.sae' has no attribute {name!r}")


def __dir__() -> list:
    return __all__
