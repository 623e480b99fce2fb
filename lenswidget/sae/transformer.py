"""``HookedSAETransformer``: a HookedTransformer that runs SAEs and transcoders on its hook points.

The API is SAELens's, so a SAELens notebook runs after changing the import::

    from lenswidget import HookedSAETransformer, SAE

    model = HookedSAETransformer.from_pretrained("SmolLM2-135M-Instruct")
    sae = SAE.load_from_disk(folder)                       # cfg.json + sae_weights.safetensors
    logits, cache = model.run_with_cache_with_saes(prompt, saes=[sae])
    cache["blocks.15.hook_resid_post.hook_sae_acts_post"]  # [batch, pos, d_sae]

``add_sae`` attaches until ``reset_saes``; ``run_with_saes``, ``run_with_cache_with_saes``,
``run_with_hooks_with_saes`` and the ``saes()`` context attach for one call and then restore
what was attached before. Every block's MLP gets a ``mlp.hook_in`` hook point (its input), as
in SAELens, for transcoders that read it.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Any, Dict, Iterable, List, Optional, Union

import torch

from lenswidget.errors import ConfigError, ShapeMismatchError, UnknownNameError
from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h
from lenswidget.model import HookedTransformer

from .attach import SAEAttachment
from .sae import SAE
from .saelens import from_saelens, is_saelens_sae
from .widths import hook_device, hook_width

__all__ = ["HookedSAETransformer", "resolve_sae"]

_SPECIAL_TOKEN_ATTRS = ("bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "cls_token_id",
                        "decoder_start_token_id")


def _mlp_forward_with_hook_in(self, x, *args, **kwargs):
    return type(self).forward(self, _h(self.hook_in, x), *args, **kwargs)


def _add_hook_in(mlp: torch.nn.Module) -> None:
    if "hook_in" in mlp._modules:
        return
    mlp.hook_in = HookPoint()
    mlp.forward = types.MethodType(_mlp_forward_with_hook_in, mlp)


class HookedSAETransformer(HookedTransformer):
    """HookedTransformer + SAEs (see the module docstring)."""

    def __init__(self, *model_args: Any, **model_kwargs: Any):
        super().__init__(*model_args, **model_kwargs)
        for block in self.blocks:
            if "mlp" in block._modules:
                _add_hook_in(block.mlp)
        self._acts_to_saes: Dict[str, SAEAttachment] = {}
        self.setup()

    # ------------------------------------------------------------------ state
    @property
    def acts_to_saes(self) -> Dict[str, SAE]:
        """Input hook name -> attached SAE."""
        return {name: att.sae for name, att in self._attached().items()}

    def _attached(self) -> Dict[str, SAEAttachment]:
        if "_acts_to_saes" not in self.__dict__:
            self.__dict__["_acts_to_saes"] = {}
        return self.__dict__["_acts_to_saes"]

    # ------------------------------------------------------------------ attach
    def _as_sae(self, sae: Any) -> SAE:
        if isinstance(sae, SAE):
            return sae
        if is_saelens_sae(sae):
            cached = getattr(sae, "_lenswidget_sae", None)
            if cached is None:
                cached = from_saelens(SAE, sae)
                sae.__dict__["_lenswidget_sae"] = cached
            return cached
        raise TypeError(f"expected a lenswidget.SAE (or a SAELens SAE), got {type(sae).__name__}")

    def _check_sae(self, sae: SAE) -> None:
        """Every check before anything changes: names, widths, dtype, device."""
        sae.check()
        cfg = sae.cfg
        attached = self._attached()
        for role, name in (("hook_name", cfg.hook_name), ("hook_name_out", cfg.hook_name_out)):
            if name not in self.hook_dict:
                raise UnknownNameError(f"hook for the SAE's {role}", name,
                                       [n for n in self.hook_dict if ".hook_sae_" not in n])
            if ".hook_sae_" in name:
                raise UnknownNameError(f"hook for the SAE's {role} (an SAE cannot read another SAE's hooks)", name,
                                       [n for n in self.hook_dict if ".hook_sae_" not in n])
        out_users = {a.hook_name_out: k for k, a in attached.items() if k != cfg.hook_name}
        if cfg.hook_name_out in out_users:
            raise ConfigError(f"hook {cfg.hook_name_out!r} already carries the output of the SAE attached at "
                              f"{out_users[cfg.hook_name_out]!r}; reset_saes({out_users[cfg.hook_name_out]!r}) first")
        width_in = hook_width(self, cfg.hook_name, z_flat=cfg.reshape_activations == "hook_z")
        if width_in is not None and width_in != cfg.d_in:
            raise ShapeMismatchError(f"SAE d_in={cfg.d_in} does not match hook {cfg.hook_name!r}, whose activation "
                                     f"has width {width_in} on this model")
        width_out = hook_width(self, cfg.hook_name_out, z_flat=cfg.reshape_activations == "hook_z")
        if width_out is not None and width_out != cfg.d_out:
            raise ShapeMismatchError(f"SAE d_out={cfg.d_out} does not match output hook {cfg.hook_name_out!r}, "
                                     f"whose activation has width {width_out} on this model")
        for name in {cfg.hook_name, cfg.hook_name_out}:
            dev = hook_device(self, name)
            if dev is not None and (dev.type != sae.device.type or (
                    dev.index is not None and sae.device.index is not None and dev.index != sae.device.index)):
                raise ConfigError(f"SAE for {cfg.hook_name!r} is on {sae.device} but the model computes {name!r} on "
                                  f"{dev}; move it with sae.to({str(dev)!r})")

    def add_sae(self, sae: Any, use_error_term: Optional[bool] = None,
                exclude_special_tokens: Union[bool, List[int]] = False) -> None:
        """Attach ``sae`` at ``sae.cfg.metadata.hook_name`` until :meth:`reset_saes`.

        Replaces an SAE already attached there. ``use_error_term=None`` keeps ``sae.use_error_term``.
        ``exclude_special_tokens``: True (the tokenizer's BOS/EOS/PAD/...) or a list of token ids
        whose positions bypass the SAE. A bad SAE raises before anything changes.
        """
        lw = self._as_sae(sae)
        self._check_sae(lw)
        if not (isinstance(exclude_special_tokens, bool) or (
                isinstance(exclude_special_tokens, (list, tuple)) and all(isinstance(t, int) for t in exclude_special_tokens))):
            raise TypeError("exclude_special_tokens must be a bool or a list of token ids, got "
                            f"{type(exclude_special_tokens).__name__}")
        use = lw.use_error_term if use_error_term is None else bool(use_error_term)
        name = lw.cfg.hook_name
        if name in self._attached():
            self._reset_sae(name)
        att = SAEAttachment(lw, use, exclude_special_tokens)
        att.attach(self.hook_dict[name], self.hook_dict[lw.cfg.hook_name_out])
        self._attached()[name] = att
        self.setup()

    def _reset_sae(self, act_name: str, previous: Optional[SAEAttachment] = None) -> None:
        att = self._attached().pop(act_name, None)
        if att is not None:
            att.detach()
            self.setup()
            att.sae.setup()
        if previous is not None:
            previous.attach(self.hook_dict[previous.hook_name], self.hook_dict[previous.hook_name_out])
            self._attached()[act_name] = previous
            self.setup()

    def reset_saes(self, act_names: Union[str, List[str], None] = None) -> None:
        """Detach the SAEs at ``act_names`` (input hook names; default: all)."""
        if isinstance(act_names, str):
            act_names = [act_names]
        names = list(self._attached()) if act_names is None else list(act_names)
        unknown = [n for n in names if n not in self._attached()]
        if unknown:
            raise UnknownNameError("attached SAE", unknown[0], list(self._attached()),
                                   hint="reset_saes takes the input hook names in model.acts_to_saes")
        for name in names:
            self._reset_sae(name)
        self.setup()

    # ------------------------------------------------------------------ scoped SAEs
    @contextmanager
    def saes(self, saes: Union[Any, Iterable[Any]] = (), reset_saes_end: bool = True,
             use_error_term: Optional[bool] = None, exclude_special_tokens: Union[bool, List[int]] = False):
        """Attach ``saes`` inside the block; on exit restore what was attached before (also on error)."""
        if not isinstance(saes, (list, tuple)):
            saes = [saes]
        converted = [self._as_sae(s) for s in saes]
        for s in converted:  # all checks first: a bad SAE changes nothing
            self._check_sae(s)
        restore: list = []
        try:
            for s in converted:
                name = s.cfg.hook_name
                prev = self._attached().get(name)
                restore.append((name, prev))
                self.add_sae(s, use_error_term=use_error_term, exclude_special_tokens=exclude_special_tokens)
            yield self
        finally:
            if reset_saes_end:
                for name, prev in reversed(restore):
                    self._reset_sae(name, prev)
                self.setup()

    def run_with_saes(self, *model_args: Any, saes: Union[Any, Iterable[Any]] = (), reset_saes_end: bool = True,
                      use_error_term: Optional[bool] = None, exclude_special_tokens: Union[bool, List[int]] = False,
                      **model_kwargs: Any):
        """Forward pass with ``saes`` attached for this call."""
        with self.saes(saes, reset_saes_end, use_error_term, exclude_special_tokens):
            return self(*model_args, **model_kwargs)

    def run_with_cache_with_saes(self, *model_args: Any, saes: Union[Any, Iterable[Any]] = (),
                                 reset_saes_end: bool = True, use_error_term: Optional[bool] = None,
                                 exclude_special_tokens: Union[bool, List[int]] = False,
                                 return_cache_object: bool = True, remove_batch_dim: bool = False, **kwargs: Any):
        """``run_with_cache`` with ``saes`` attached for this call (their hooks are cached too)."""
        with self.saes(saes, reset_saes_end, use_error_term, exclude_special_tokens):
            return self.run_with_cache(*model_args, return_cache_object=return_cache_object,
                                       remove_batch_dim=remove_batch_dim, **kwargs)

    def run_with_hooks_with_saes(self, *model_args: Any, saes: Union[Any, Iterable[Any]] = (),
                                 reset_saes_end: bool = True, use_error_term: Optional[bool] = None,
                                 exclude_special_tokens: Union[bool, List[int]] = False, fwd_hooks: Iterable = (),
                                 bwd_hooks: Iterable = (), reset_hooks_end: bool = True, clear_contexts: bool = False,
                                 **model_kwargs: Any):
        """``run_with_hooks`` with ``saes`` attached for this call."""
        with self.saes(saes, reset_saes_end, use_error_term, exclude_special_tokens):
            return self.run_with_hooks(*model_args, fwd_hooks=fwd_hooks, bwd_hooks=bwd_hooks,
                                       reset_hooks_end=reset_hooks_end, clear_contexts=clear_contexts, **model_kwargs)

    # ------------------------------------------------------------------ forward
    def _special_ids(self, spec: Union[bool, List[int]]) -> List[int]:
        if isinstance(spec, (list, tuple)):
            return [int(t) for t in spec]
        if self.tokenizer is None:
            return []
        return sorted({int(v) for a in _SPECIAL_TOKEN_ATTRS if (v := getattr(self.tokenizer, a, None)) is not None})

    def forward(self, input: Any, *args: Any, **kwargs: Any):
        atts = [a for a in self._attached().values() if a.exclude_special_tokens is not False]
        if atts:
            tokens = kwargs.get("tokens") if kwargs.get("start_at_layer") is not None else None
            if tokens is None and not (isinstance(input, torch.Tensor) and input.is_floating_point()):
                if isinstance(input, torch.Tensor):
                    tokens = input if input.dim() == 2 else input[None]
                else:
                    tokens = self.to_tokens(input, prepend_bos=kwargs.get("prepend_bos"),
                                            padding_side=kwargs.get("padding_side"))
            for a in atts:
                if tokens is None:
                    a.token_mask = None
                    continue
                ids = torch.tensor(self._special_ids(a.exclude_special_tokens), dtype=torch.long)
                a.token_mask = torch.isin(tokens.cpu(), ids)
        try:
            return super().forward(input, *args, **kwargs)
        finally:
            for a in self._attached().values():
                a.token_mask = None
                a._captured = None


def resolve_sae(model: Any, sae: Any) -> SAE:
    """``sae`` as a lenswidget SAE for ``model``, which must be a :class:`HookedSAETransformer`."""
    if not isinstance(model, HookedSAETransformer):
        raise TypeError(f"SAE features need a HookedSAETransformer, got {type(model).__name__}; load the model with "
                        "lenswidget.HookedSAETransformer.from_pretrained(...) (it is a HookedTransformer too)")
    return model._as_sae(sae)
