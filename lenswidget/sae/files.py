"""SAELens-format folders: ``cfg.json`` + ``sae_weights.safetensors``, read and written natively.

>>> import tempfile
>>> from lenswidget.sae import SAE
>>> sae = SAE.from_dict({"d_in": 4, "d_sae": 8, "metadata": {"hook_name": "blocks.0.hook_resid_post"}}, seed=0)
>>> folder = tempfile.mkdtemp()
>>> _ = sae.save_model(folder)
>>> torch.equal(SAE.load_from_disk(folder).W_dec, sae.W_dec)
True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

import torch

from lenswidget.errors import ConfigError, ModelNotAvailableError

from .config import SAEConfig, dtype_from_str

__all__ = ["load_folder", "save_folder", "CFG_FILENAME", "WEIGHTS_FILENAME"]

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"


def load_folder(cls, path: Union[str, os.PathLike], device: str = "cpu", dtype: Optional[str] = None,
                fold_W_dec_norm: bool = False):
    """``cls`` (an SAE class) loaded from a SAELens folder, on ``device``, in ``dtype`` (default: cfg's)."""
    from safetensors import safe_open

    folder = Path(path)
    cfg_path, weights_path = folder / CFG_FILENAME, folder / WEIGHTS_FILENAME
    missing = [p.name for p in (cfg_path, weights_path) if not p.is_file()]
    if missing:
        raise ModelNotAvailableError(f"{folder} is not a SAELens SAE folder: missing {', '.join(missing)} "
                                     f"(it needs {CFG_FILENAME} and {WEIGHTS_FILENAME})")
    try:
        raw = json.loads(cfg_path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{cfg_path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_path} must hold a JSON object, got {type(raw).__name__}")
    overrides = {"device": str(device)}
    if dtype is not None:
        overrides["dtype"] = dtype
    cfg = SAEConfig.from_dict(raw, **overrides)
    dt = dtype_from_str(cfg.dtype)
    state = {}
    try:
        with safe_open(str(weights_path), framework="pt", device="cpu") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types
        raise ConfigError(f"cannot read {weights_path}: {exc}") from None
    if "log_threshold" in state and "threshold" not in state:  # older JumpReLU checkpoints
        state["threshold"] = torch.exp(state.pop("log_threshold"))
    scaling = state.pop("scaling_factor", None)
    if scaling is not None and not torch.allclose(scaling, torch.ones_like(scaling)):
        raise ConfigError(f"{weights_path} has a non-trivial scaling_factor; fold it into W_dec first")
    sae = cls(cfg, seed=0)
    own = dict(sae.named_parameters())
    unexpected = sorted(set(state) - set(own))
    absent = sorted(set(own) - set(state))
    if unexpected or absent:
        raise ConfigError(f"{weights_path} does not match a {cfg.architecture} SAE: "
                          + (f"missing {absent}" if absent else "")
                          + ("; " if absent and unexpected else "")
                          + (f"unexpected {unexpected}" if unexpected else "")
                          + f" (expected tensors: {sorted(own)})")
    with torch.no_grad():
        for key, value in state.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise ConfigError(f"{weights_path}: {key} has shape {tuple(value.shape)} but cfg.json "
                                  f"(d_in={cfg.d_in}, d_sae={cfg.d_sae}, d_out={cfg.d_out}) needs {tuple(own[key].shape)}")
            own[key].data = value.to(device=device, dtype=dt).contiguous()
    sae.cfg.device = str(sae.W_enc.device)
    if fold_W_dec_norm:
        sae.fold_W_dec_norm()
    return sae


def save_folder(sae, path: Union[str, os.PathLike]):
    """Write ``sae`` as a SAELens folder; returns (weights path, cfg path)."""
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in sae.state_dict().items()}
    weights, cfg = folder / WEIGHTS_FILENAME, folder / CFG_FILENAME
    save_file(state, str(weights))
    cfg.write_text(json.dumps(sae.cfg.to_dict(), indent=1))
    return weights, cfg
