"""``SAE``: a sparse autoencoder or transcoder with SAELens's hook points and file format.

Architectures (``cfg.architecture``): ``standard`` (ReLU), ``jumprelu``, ``topk``, and the
transcoders ``transcoder``, ``jumprelu_transcoder``, ``skip_transcoder``,
``jumprelu_skip_transcoder`` (they read ``metadata.hook_name`` and write ``hook_name_out``).

>>> sae = SAE.from_dict({"d_in": 8, "d_sae": 16, "metadata": {"hook_name": "blocks.0.hook_resid_post"}})
>>> x = torch.randn(2, 3, 8)
>>> acts = sae.encode(x)                 # [2, 3, 16], ReLU features
>>> torch.allclose(sae.decode(acts), acts @ sae.W_dec + sae.b_dec)
True
>>> _, cache = sae.run_with_cache(x)
>>> sorted(cache)[:3]
['hook_sae_acts_post', 'hook_sae_acts_pre', 'hook_sae_input']

Hooks, in order: ``hook_sae_input`` (the input cast to the SAE's dtype), ``hook_sae_acts_pre``,
``hook_sae_acts_post`` (feature activations), ``hook_sae_recons`` (decoder output),
``hook_sae_error`` and ``hook_sae_output``. Weights: ``W_enc`` [d_in, d_sae], ``b_enc``,
``W_dec`` [d_sae, d_out], ``b_dec`` [d_out], ``threshold`` [d_sae] (JumpReLU), ``W_skip``
[d_out, d_in] (skip transcoders).
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Optional, Union

import torch
import torch.nn as nn

from lenswidget.errors import ConfigError, ShapeMismatchError
from lenswidget.hooks import HookedRootModule, HookPoint
from lenswidget.hooks import hook_or_pass as _h

from .config import SAEConfig, dtype_from_str, dtype_to_str

__all__ = ["SAE", "HOOK_NAMES"]

HOOK_NAMES = ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_output", "hook_sae_recons",
              "hook_sae_error")


def _passthrough(hp: HookPoint, x, hooks: bool):
    return _h(hp, x) if hooks else x


class SAE(HookedRootModule):
    """A sparse autoencoder / transcoder (see the module docstring)."""

    def __init__(self, cfg: Union[SAEConfig, Dict[str, Any]], use_error_term: bool = False, seed: Optional[int] = None):
        super().__init__()
        if isinstance(cfg, dict):
            cfg = SAEConfig.from_dict(cfg)
        self.cfg = cfg
        self.use_error_term = bool(use_error_term)
        dt, dev = dtype_from_str(cfg.dtype), torch.device(cfg.device)
        d_in, d_sae, d_out = cfg.d_in, cfg.d_sae, cfg.d_out
        gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
        w_dec = torch.empty(d_sae, d_out)
        bound = math.sqrt(6.0 / d_out)  # kaiming-uniform over the output width
        w_dec.uniform_(-bound, bound, generator=gen)
        w_enc = w_dec.T.clone() if d_out == d_in else torch.empty(d_in, d_sae).uniform_(-bound, bound, generator=gen)
        self.W_enc = nn.Parameter(w_enc.to(dev, dt).contiguous())
        self.b_enc = nn.Parameter(torch.zeros(d_sae, dtype=dt, device=dev))
        self.W_dec = nn.Parameter(w_dec.to(dev, dt).contiguous())
        self.b_dec = nn.Parameter(torch.zeros(d_out, dtype=dt, device=dev))
        if cfg.activation == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(d_sae, dtype=dt, device=dev))
        if cfg.has_skip:
            self.W_skip = nn.Parameter(torch.zeros(d_out, d_in, dtype=dt, device=dev))
        for name in HOOK_NAMES:
            setattr(self, name, HookPoint())
        self._norm_state: Optional[tuple] = None
        self._d_head: Optional[int] = None
        self.setup()

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"{c.architecture}, d_in={c.d_in}, d_sae={c.d_sae}" + (f", d_out={c.d_out}" if c.is_transcoder else "")
                + f", hook={c.hook_name!r}" + (f" -> {c.hook_name_out!r}" if c.is_transcoder else "")
                + f", dtype={dtype_to_str(self.dtype)}")

    def to(self, *args: Any, **kwargs: Any) -> "SAE":
        """``nn.Module.to`` that keeps ``cfg.dtype`` / ``cfg.device`` in step."""
        out = super().to(*args, **kwargs)
        self.cfg.dtype = dtype_to_str(self.W_enc.dtype)
        self.cfg.device = str(self.W_enc.device)
        return out

    # ------------------------------------------------------------------ encode / decode
    def _norm_in(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.cfg.normalize_activations
        if mode == "constant_norm_rescale":
            coeff = (self.cfg.d_in ** 0.5) / x.norm(dim=-1, keepdim=True)
            self._norm_state = ("scale", coeff)
            return x * coeff
        if mode == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            x = x - mu
            std = x.std(dim=-1, keepdim=True)
            self._norm_state = ("ln", mu, std)
            return x / (std + 1e-5)
        return x

    def _norm_out(self, x: torch.Tensor) -> torch.Tensor:
        state = self._norm_state
        if state is None:
            return x
        if state[0] == "scale":
            return x / state[1]
        return x * state[2] + state[1]

    def output_affine(self) -> tuple:
        """``(scale, shift)`` of the run-time output normalisation of the last encode (1, 0 if none).

        ``decode(acts) = (acts @ decoder_directions() + b_dec) * scale + shift``, per token.
        """
        state = self._norm_state
        if state is None:
            return 1.0, 0.0
        if state[0] == "scale":
            return 1.0 / state[1], 0.0
        return state[2], state[1]

    def process_sae_in(self, x: torch.Tensor, hooks: bool = True) -> torch.Tensor:
        """Cast to the SAE's dtype, flatten heads (hook_z SAEs), ``hook_sae_input``, normalise, minus b_dec."""
        x = x.to(self.dtype)
        if self.cfg.reshape_activations == "hook_z":
            if x.dim() < 2:
                raise ShapeMismatchError(f"a hook_z SAE needs [..., n_heads, d_head] input, got {tuple(x.shape)}")
            self._d_head = int(x.shape[-1])
            x = x.flatten(-2)
        if x.shape[-1] != self.cfg.d_in:
            raise ShapeMismatchError(f"SAE input has width {x.shape[-1]} but d_in={self.cfg.d_in} "
                                     f"(SAE for {self.cfg.hook_name!r})")
        x = _passthrough(self.hook_sae_input, x, hooks)
        x = self._norm_in(x)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        act = self.cfg.activation
        if act == "relu":
            return torch.relu(pre)
        if act == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold).to(pre.dtype)
        if self.cfg.rescale_acts_by_decoder_norm:
            pre = pre * self.W_dec.norm(dim=-1)
        values, idx = torch.topk(pre, k=self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, values.relu())

    def encode(self, x: torch.Tensor, hooks: bool = True) -> torch.Tensor:
        """Feature activations [..., d_sae] of ``x`` [..., d_in] (``hooks=False`` skips the hook points)."""
        sae_in = self.process_sae_in(x, hooks)
        pre = _passthrough(self.hook_sae_acts_pre, sae_in @ self.W_enc + self.b_enc, hooks)
        return _passthrough(self.hook_sae_acts_post, self._activate(pre), hooks)

    def decoder_directions(self) -> torch.Tensor:
        """The vector each unit of activation writes, [d_sae, d_out] (``W_dec``, or its rows
        normalised for TopK SAEs with ``rescale_acts_by_decoder_norm``)."""
        if self.cfg.rescale_acts_by_decoder_norm:
            return self.W_dec / self.W_dec.norm(dim=-1, keepdim=True)
        return self.W_dec

    def decode(self, feature_acts: torch.Tensor, hooks: bool = True) -> torch.Tensor:
        """Reconstruction [..., d_out] (heads restored for hook_z SAEs); no skip connection."""
        acts = feature_acts
        if self.cfg.rescale_acts_by_decoder_norm:
            acts = acts / self.W_dec.norm(dim=-1)
        out = _passthrough(self.hook_sae_recons, acts @ self.W_dec + self.b_dec, hooks)
        out = self._norm_out(out)
        if self.cfg.reshape_activations == "hook_z" and self._d_head is not None:
            out = out.unflatten(-1, (-1, self._d_head))
        return out

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        """The skip connection ``x @ W_skip.T`` of skip transcoders (0 otherwise)."""
        if not self.cfg.has_skip:
            return torch.zeros((), dtype=self.dtype, device=self.device)
        return x.to(self.dtype) @ self.W_skip.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standalone use: ``decode(encode(x))`` (+ skip), plus the error term when ``use_error_term``."""
        out = self.decode(self.encode(x))
        if self.cfg.has_skip:
            out = out + self.skip(x)
        if self.use_error_term and not self.cfg.is_transcoder:
            with torch.no_grad():
                clean = self.decode(self.encode(x, hooks=False), hooks=False)
                err = _h(self.hook_sae_error, x.to(clean.dtype) - clean)
            out = out + err
        return _h(self.hook_sae_output, out)

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Raise a clear error when the weights disagree with the config (shapes, dtypes, device)."""
        c = self.cfg
        want = {"W_enc": (c.d_in, c.d_sae), "b_enc": (c.d_sae,), "W_dec": (c.d_sae, c.d_out), "b_dec": (c.d_out,)}
        if c.activation == "jumprelu":
            want["threshold"] = (c.d_sae,)
        if c.has_skip:
            want["W_skip"] = (c.d_out, c.d_in)
        params = dict(self.named_parameters())
        for name, shape in want.items():
            if name not in params:
                raise ConfigError(f"SAE ({c.architecture}) is missing parameter {name} {shape}")
            if tuple(params[name].shape) != shape:
                raise ShapeMismatchError(f"SAE parameter {name} has shape {tuple(params[name].shape)}; its config "
                                         f"(d_in={c.d_in}, d_sae={c.d_sae}, d_out={c.d_out}) needs {shape}")
        dtypes = {p.dtype for p in params.values()}
        devices = {p.device for p in params.values()}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise ConfigError(f"SAE parameters must share one floating dtype; they have {sorted(map(str, dtypes))} "
                              "(convert with sae.to(torch.float32))")
        if len(devices) != 1:
            raise ConfigError(f"SAE parameters are on several devices {sorted(map(str, devices))}; move it with sae.to(device)")
        if dtype_to_str(self.dtype) != c.dtype:
            raise ConfigError(f"SAE weights are {dtype_to_str(self.dtype)} but cfg.dtype is {c.dtype!r}; "
                              "use sae.to(dtype) to change both")

    # ------------------------------------------------------------------ construction and files
    @classmethod
    def from_dict(cls, config_dict: Dict[str, Any], seed: Optional[int] = None) -> "SAE":
        """A randomly initialised SAE from a config dict (SAELens ``cfg.json`` layout)."""
        return cls(SAEConfig.from_dict(config_dict), seed=seed)

    @classmethod
    def load_from_disk(cls, path: Union[str, os.PathLike], device: str = "cpu", dtype: Optional[str] = None,
                       fold_W_dec_norm: bool = False) -> "SAE":
        """Load a SAELens-format folder (``cfg.json`` + ``sae_weights.safetensors``)."""
        from .files import load_folder

        return load_folder(cls, path, device=device, dtype=dtype, fold_W_dec_norm=fold_W_dec_norm)

    @classmethod
    def load_from_pretrained(cls, path: Union[str, os.PathLike], device: str = "cpu", dtype: Optional[str] = None) -> "SAE":
        """Alias of :meth:`load_from_disk` (SAELens's deprecated name)."""
        return cls.load_from_disk(path, device=device, dtype=dtype)

    @classmethod
    def from_pretrained(cls, release: str, sae_id: str, *args: Any, **kwargs: Any) -> "SAE":
        """Not available: nothing is downloaded from a model hub. Use :meth:`load_from_disk`."""
        from lenswidget.errors import ModelNotAvailableError

        raise ModelNotAvailableError(
            f"SAE.from_pretrained({release!r}, {sae_id!r}) would download from a model hub, which lenswidget does "
            "not do; download the SAELens folder yourself and use SAE.load_from_disk(folder)")

    @classmethod
    def from_saelens(cls, sae: Any) -> "SAE":
        """Wrap a SAELens ``SAE`` object (sharing its parameter tensors)."""
        from .saelens import from_saelens

        return from_saelens(cls, sae)

    def save_model(self, path: Union[str, os.PathLike]):
        """Write ``cfg.json`` + ``sae_weights.safetensors`` (SAELens format); returns both paths."""
        from .files import save_folder

        return save_folder(self, path)

    @torch.no_grad()
    def fold_W_dec_norm(self) -> None:
        """Scale decoder rows to unit norm and fold the norms into the encoder (same outputs)."""
        if self.cfg.architecture == "topk" and not self.cfg.rescale_acts_by_decoder_norm:
            raise ConfigError("fold_W_dec_norm would change which features a TopK SAE selects "
                              "(rescale_acts_by_decoder_norm=False)")
        norms = self.W_dec.norm(dim=-1).clamp(min=1e-8)
        self.W_dec.div_(norms[:, None])
        self.W_enc.mul_(norms[None, :])
        self.b_enc.mul_(norms)
        if hasattr(self, "threshold"):
            self.threshold.mul_(norms)
