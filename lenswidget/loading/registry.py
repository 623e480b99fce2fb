"""Which family converter handles an HF config (by ``model_type``, then by architecture)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from lenswidget.errors import UnknownNameError

from .families import FAMILY_MODULES

_BY_MODEL_TYPE: dict[str, ModuleType] = {}
_BY_ARCHITECTURE: dict[str, ModuleType] = {}


def register(module: ModuleType) -> ModuleType:
    """Register a converter module (see :mod:`lenswidget.loading.families`)."""
    for name in ("config_from_hf", "convert_state_dict", "MODEL_TYPES", "ARCHITECTURES"):
        if not hasattr(module, name):
            raise TypeError(f"family module {module.__name__} lacks {name}")
    for t in module.MODEL_TYPES:
        _BY_MODEL_TYPE[t] = module
    for a in module.ARCHITECTURES:
        _BY_ARCHITECTURE[a] = module
    return module


def _ensure_loaded() -> None:
    if not _BY_MODEL_TYPE:
        for name in FAMILY_MODULES:
            register(importlib.import_module(f"{__package__}.families.{name}"))


def supported_model_types() -> list[str]:
    _ensure_loaded()
    return sorted(_BY_MODEL_TYPE)


def family_for(hf_config: Any) -> ModuleType:
    """The converter module for ``hf_config``; ``UnknownNameError`` lists the supported ones."""
    _ensure_loaded()
    model_type = getattr(hf_config, "model_type", None)
    if model_type in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[model_type]
    for arch in getattr(hf_config, "architectures", None) or ():
        if arch in _BY_ARCHITECTURE:
            return _BY_ARCHITECTURE[arch]
    supported = supported_model_types()
    raise UnknownNameError("model_type", model_type, supported,
                           hint="lenswidget converts these HF model types only: " + ", ".join(supported)
                           + " (architectures: " + ", ".join(sorted(_BY_ARCHITECTURE)) + ")")
