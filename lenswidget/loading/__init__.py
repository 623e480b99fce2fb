"""Loading pretrained models: HF config -> lenswidget config, one converter per family, GGUF,
local directories, in-memory HF models and the built-in default model.

Public entry points::

    from_pretrained(cls, name_or_dir, ...)  # what HookedTransformer.from_pretrained calls
    default_model_dir()                     # float32 HF dir of SmolLM2-135M-Instruct (cached)
    resolve_source(name_or_dir, hf_model=None, tokenizer=None)
    family_for(hf_config), register(module), supported_model_types()
"""

from .default_model import DEFAULT_MODEL, default_gguf_path, default_model_dir, is_default_model
from .disk_cache import cache_root, cached_dir, is_complete
from .gguf import gguf_dir
from .pretrained import from_pretrained, tokenizer_prepends_bos
from .registry import family_for, register, supported_model_types
from .sources import Source, resolve_source

__all__ = [
    "DEFAULT_MODEL", "Source", "cache_root", "cached_dir", "default_gguf_path", "default_model_dir",
    "family_for", "from_pretrained", "gguf_dir", "is_complete", "is_default_model", "register",
    "resolve_source", "supported_model_types", "tokenizer_prepends_bos",
]
