"""GGUF checkpoints: dequantised once by transformers into a float32 HF directory in the cache."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from .disk_cache import cached_dir

logger = logging.getLogger("lenswidget.loading")

#: Bump when the layout of converted directories changes, to invalidate old caches.
FORMAT_VERSION = 1


def gguf_cache_name(gguf_path: str | os.PathLike) -> str:
    """Cache directory name for a GGUF file: its stem plus a digest of path, size and mtime."""
    p = Path(gguf_path).resolve()
    st = p.stat()
    key = f"{FORMAT_VERSION}:{p}:{st.st_size}:{st.st_mtime_ns}".encode()
    return f"{p.stem}-{hashlib.sha256(key).hexdigest()[:12]}"


def convert_gguf(gguf_path: str | os.PathLike, out_dir: Path) -> None:
    """Write ``config.json``, ``model.safetensors`` (float32) and tokenizer files for a GGUF."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(gguf_path).resolve()
    logger.warning("lenswidget: converting %s to float32 (one time, cached in %s)", p.name, out_dir.parent)
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain float32
    config.dtype = torch.float32
    state = model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt", "source": p.name})
    config.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def gguf_dir(gguf_path: str | os.PathLike) -> Path:
    """The cached float32 HF directory for ``gguf_path`` (converted on first use)."""
    return cached_dir(gguf_cache_name(gguf_path), lambda tmp: convert_gguf(gguf_path, tmp))
