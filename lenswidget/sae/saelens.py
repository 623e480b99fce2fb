"""Accept SAELens ``SAE`` objects (when sae_lens is installed; it never has to be).

A SAELens SAE is converted into a lenswidget :class:`~lenswidget.sae.SAE` that *shares* its
parameter tensors, so edits to either are seen by both.
"""

from __future__ import annotations

from typing import Any

from lenswidget.errors import InvalidOptionError

from .config import ARCHITECTURES, SAEConfig

__all__ = ["is_saelens_sae", "from_saelens"]


def is_saelens_sae(obj: Any) -> bool:
    """True for an instance of ``sae_lens.SAE`` (checked without importing sae_lens)."""
    for klass in type(obj).__mro__:
        if klass.__name__ == "SAE" and klass.__module__.startswith("sae_lens"):
            return True
    return False


def from_saelens(cls, sae: Any):
    """A ``cls`` instance with the same config and the same parameter tensors as ``sae``."""
    cfg = sae.cfg
    arch = cfg.architecture() if callable(getattr(cfg, "architecture", None)) else getattr(cfg, "architecture", None)
    if arch not in ARCHITECTURES:
        raise InvalidOptionError(f"SAELens architecture of {type(sae).__name__}", arch, list(ARCHITECTURES))
    data = cfg.to_dict()
    data["architecture"] = arch
    meta = data.get("metadata")
    data["metadata"] = dict(meta.to_dict() if hasattr(meta, "to_dict") else (meta or {}))
    out = cls(SAEConfig.from_dict(data), use_error_term=bool(getattr(sae, "use_error_term", False)), seed=0)
    theirs = dict(sae.named_parameters())
    for name in list(out._parameters):
        if name not in theirs:
            raise InvalidOptionError(f"SAELens {arch} SAE parameters (missing {name})", sorted(theirs),
                                     sorted(out._parameters))
        out._parameters[name] = theirs[name]
    out.cfg.dtype = str(out.W_enc.dtype).replace("torch.", "")
    out.cfg.device = str(out.W_enc.device)
    out.source = sae
    out.check()
    return out
