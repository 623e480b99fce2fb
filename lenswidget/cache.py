"""ActivationCache: the activations of one forward pass, keyed by hook name.

>>> logits, cache = model.run_with_cache("Why did the chicken cross the")     # doctest: +SKIP
>>> cache["resid_post", -1].shape          # == cache["blocks.{n-1}.hook_resid_post"]  # doctest: +SKIP
torch.Size([1, 7, 64])
>>> stack, labels = cache.decompose_resid(return_labels=True)                # doctest: +SKIP
>>> cache.logit_attrs(stack, " road").shape                                  # doctest: +SKIP
torch.Size([18, 1, 7])
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Literal, Optional, Tuple, Union

import numpy as np
import torch

from .cache_components import ComponentStacks
from .errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, UnknownNameError
from .utils import Slice, SliceInput, get_act_name

__all__ = ["ActivationCache"]

_NORM_TYPES = ("LN", "LNPre", "RMS", "RMSPre")
_MODES = ("all", "mlp", "attn")


def _as_slice(s: Union[Slice, SliceInput]) -> Slice:
    return s if isinstance(s, Slice) else Slice(s)


class ActivationCache(ComponentStacks):
    """A dict of hook name -> activation tensor, with residual-stream analysis helpers.

    Index by full hook name (``cache["blocks.5.hook_resid_post"]``) or by short name and
    layer (``cache["resid_post", -1]``, ``cache["pattern", 3]``, ``cache["z", 2, "attn"]``,
    ``cache["scale", 4, "ln2"]``); negative layers count from the end.

    Stacking methods return ``[components, *batch_and_pos, d_model]`` tensors whose components
    sum to the residual stream they decompose. Activations may lack the batch dim
    (``has_batch_dim=False``, e.g. after :meth:`remove_batch_dim`).
    """

    def __init__(self, cache_dict: Dict[str, torch.Tensor], model: Any, has_batch_dim: bool = True):
        self.cache_dict = cache_dict
        self.model = model
        self.has_batch_dim = has_batch_dim

    # ------------------------------------------------------------------ dict interface
    @property
    def has_embed(self) -> bool:
        return "hook_embed" in self.cache_dict

    @property
    def has_pos_embed(self) -> bool:
        return "hook_pos_embed" in self.cache_dict

    @property
    def _n_layers(self) -> int:
        return self.model.cfg.n_layers

    def _missing(self, name: str, key: Any = None, hint: str = "") -> UnknownNameError:
        shown = name if key is None or key == name else f"{name} (from {key!r})"
        hint = hint or "the hook may exist but was not cached (check the names_filter of run_with_cache)"
        return UnknownNameError("cache key", shown, self.cache_dict.keys(), hint=hint)

    def _get(self, name: str, hint: str = "") -> torch.Tensor:
        try:
            return self.cache_dict[name]
        except KeyError:
            raise self._missing(name, hint=hint) from None

    def __getitem__(self, key: Union[str, Tuple]) -> torch.Tensor:
        if isinstance(key, str):
            if key in self.cache_dict:
                return self.cache_dict[key]
            name = get_act_name(key)
        elif isinstance(key, tuple) and key and isinstance(key[0], str):
            layer = key[1] if len(key) > 1 else None
            if layer is not None:
                n = self._n_layers
                if not isinstance(layer, (int, np.integer)) or not -n <= layer < n:
                    raise OutOfRangeError("layer", layer, -n, n - 1)
                layer = int(layer) % n
            name = get_act_name(key[0], layer, *key[2:3])
        else:
            raise InvalidOptionError("cache key", key, ["hook name", "(name, layer)", "(name, layer, layer_type)"])
        if name not in self.cache_dict:
            raise self._missing(name, key)
        return self.cache_dict[name]

    def __contains__(self, key: Any) -> bool:
        return key in self.cache_dict

    def __len__(self) -> int:
        return len(self.cache_dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache_dict)

    def keys(self):
        """Hook names, in forward order (``['hook_embed', 'hook_pos_embed', 'blocks.0.hook_resid_pre', ...]``)."""
        return self.cache_dict.keys()

    def values(self):
        return self.cache_dict.values()

    def items(self):
        return self.cache_dict.items()

    def __repr__(self) -> str:
        return f"ActivationCache with keys {list(self.cache_dict.keys())}"

    # ------------------------------------------------------------------ whole-cache ops
    def to(self, device: Union[str, torch.device], move_model: bool = False) -> "ActivationCache":
        """Move every activation (and optionally the model) to ``device``, in place; returns self."""
        self.cache_dict = {k: v.to(device) for k, v in self.cache_dict.items()}
        if move_model:
            self.model.to(device)
        return self

    def toggle_autodiff(self, mode: bool = False) -> None:
        """``torch.set_grad_enabled(mode)`` (global state; prefer ``torch.inference_mode()``)."""
        torch.set_grad_enabled(mode)

    def remove_batch_dim(self) -> "ActivationCache":
        """Drop the batch dim of a batch-size-1 cache, in place; returns self."""
        if not self.has_batch_dim:
            return self
        sizes = {v.shape[0] for v in self.cache_dict.values() if v.ndim > 0}
        if sizes - {1}:
            raise ShapeMismatchError(
                f"remove_batch_dim needs batch size 1 but the cache has batch size {max(sizes)}; "
                "use cache.apply_slice_to_batch_dim(i) to pick one prompt"
            )
        self.cache_dict = {k: v[0] for k, v in self.cache_dict.items()}
        self.has_batch_dim = False
        return self

    def apply_slice_to_batch_dim(self, batch_slice: Union[Slice, SliceInput]) -> "ActivationCache":
        """A new cache holding ``batch_slice`` of every activation (an int drops the batch dim)."""
        batch_slice = _as_slice(batch_slice)
        if not self.has_batch_dim:
            if batch_slice.mode != "identity":
                raise InvalidOptionError("batch_slice for a cache without a batch dim", batch_slice.slice, [None])
            return ActivationCache(dict(self.cache_dict), self.model, False)
        new = {k: batch_slice.apply(v, 0, what="batch_slice") for k, v in self.cache_dict.items()}
        return ActivationCache(new, self.model, batch_slice.mode != "int")

    # ------------------------------------------------------------------ argument helpers
    def _layers_covered(self, layer: Optional[int]) -> int:
        """None / -1 -> n_layers; otherwise 0..n_layers (a count of blocks)."""
        n = self._n_layers
        if layer is None or layer == -1:
            return n
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer <= n:
            raise OutOfRangeError("layer", layer, -1, n, hint=f"0..{n} counts the blocks covered; -1 or None means all")
        return int(layer)

    def _check_mlp_input(self, layer: int, mlp_input: bool) -> None:
        if mlp_input and layer >= self._n_layers:
            raise OutOfRangeError(
                "layer with mlp_input=True", layer, 0, self._n_layers - 1,
                hint="the final residual stream feeds the unembed, not an MLP",
            )

    def _parallel(self) -> bool:
        return bool(getattr(self.model.cfg, "parallel_attn_mlp", False))

    def _has_mlp(self) -> bool:
        return not getattr(self.model.cfg, "attn_only", False)

    def _pos(self, t: torch.Tensor, pos_slice: Slice, dim: int = -2) -> torch.Tensor:
        return pos_slice.apply(t, dim, what="pos_slice")

    def _resid_input(self, layer: int, mlp_input: bool = False) -> torch.Tensor:
        """The residual stream read by block ``layer`` (the final residual for layer == n_layers)."""
        if mlp_input:
            name = f"blocks.{layer}.hook_resid_{'pre' if self._parallel() else 'mid'}"
            return self._get(name)
        if layer == self._n_layers:
            return self._get(f"blocks.{layer - 1}.hook_resid_post")
        name = f"blocks.{layer}.hook_resid_pre"
        if name not in self.cache_dict and layer > 0:
            name = f"blocks.{layer - 1}.hook_resid_post"
        return self._get(name)

    # ------------------------------------------------------------------ layer norm
    def _scale(self, layer: int, mlp_input: bool) -> torch.Tensor:
        if layer == self._n_layers:
            name = "ln_final.hook_scale"
        else:
            name = f"blocks.{layer}.ln{2 if mlp_input else 1}.hook_scale"
        return self._get(name, hint=f"apply_ln needs the norm scale {name!r}; cache it to apply layer norm")

    def apply_ln_to_stack(
        self,
        residual_stack: torch.Tensor,
        layer: Optional[int] = None,
        mlp_input: bool = False,
        pos_slice: Union[Slice, SliceInput] = None,
        batch_slice: Union[Slice, SliceInput] = None,
        has_batch_dim: bool = True,
        recompute_ln: bool = False,
    ) -> torch.Tensor:
        """Scale each component as the norm before ``layer`` would, using its cached scale.

        ``layer`` in 0..n_layers (None / -1 = ln_final, before the unembed); ``mlp_input`` picks
        ln2 instead of ln1. LayerNorm types also centre each component. ``pos_slice`` /
        ``batch_slice`` are those already applied to ``residual_stack``; the cached scale is
        sliced to match and broadcast over the leading component dims.

        ``recompute_ln=True`` with the final layer (the logit lens) instead runs ``model.ln_final``
        on each component, with statistics computed from that component (and the norm's
        weights, if the model still has them), as TransformerLens 3.9 does.

        >>> final = cache["resid_post", -1][:, -1]                        # doctest: +SKIP
        >>> cache.apply_ln_to_stack(final, layer=-1, pos_slice=-1).shape   # doctest: +SKIP
        torch.Size([8, 576])
        """
        if recompute_ln and self._layers_covered(layer) == self._n_layers and self.model.ln_final is not None:
            if has_batch_dim:
                residual_stack = _as_slice(batch_slice).apply(residual_stack, 1, what="batch_slice")
            return self._recompute_final_ln(residual_stack)
        return self._apply_ln(residual_stack, layer, mlp_input, pos_slice, batch_slice, has_batch_dim, False)

    def _recompute_final_ln(self, stack: torch.Tensor) -> torch.Tensor:
        """``model.ln_final`` applied to each component of ``stack`` (one batched call)."""
        if getattr(self.model.cfg, "normalization_type", None) not in _NORM_TYPES:
            return stack
        ln = self.model.ln_final
        ref = next(iter(ln.parameters()), None)  # a folded norm has no weights: any device will do
        if ref is None or ref.device == stack.device:
            return ln(stack)
        return ln(stack.to(ref.device)).to(stack.device)

    def _finish_stack(self, stack, labels, layer, mlp_input, pos_slice, apply_ln, return_labels):
        """The end of every decomposition: scale the (freshly built) stack in place when ``apply_ln``,
        then return it, with its labels when ``return_labels``."""
        if apply_ln:
            stack = self._apply_ln(stack, layer, mlp_input, pos_slice, None, True, True)
        return (stack, labels) if return_labels else stack

    def _apply_ln(self, stack, layer, mlp_input, pos_slice, batch_slice, has_batch_dim, inplace):
        norm = getattr(self.model.cfg, "normalization_type", None)
        layer = self._layers_covered(layer)
        self._check_mlp_input(layer, mlp_input)
        if norm not in _NORM_TYPES:
            return stack
        pos_slice, batch_slice = _as_slice(pos_slice), _as_slice(batch_slice)
        if has_batch_dim and batch_slice.mode != "identity":
            stack = batch_slice.apply(stack, 1, what="batch_slice")
            inplace = False
        scale = self._pos(self._scale(layer, mlp_input), pos_slice)
        if self.has_batch_dim:
            scale = batch_slice.apply(scale, 0, what="batch_slice")
        scale = scale.to(stack.device)
        if norm in ("LN", "LNPre"):
            mean = stack.mean(-1, keepdim=True)
            stack = stack.sub_(mean) if inplace else stack - mean
            inplace = True
        return stack.div_(scale) if inplace else stack / scale

    # ------------------------------------------------------------------ residual stacks
    def accumulated_resid(
        self,
        layer: Optional[int] = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: Union[Slice, SliceInput] = None,
        mlp_input: bool = False,
        return_labels: bool = False,
    ):
        """The residual stream at each layer up to the input of ``layer`` (logit lens).

        Labels ``'{l}_pre'`` (and ``'{l}_mid'`` with ``incl_mid``), plus ``'final_post'`` when
        ``layer`` is None / -1 / n_layers. ``mlp_input`` appends ``'{layer}_mid'``.

        ``apply_ln`` up to the final layer applies ``model.ln_final`` to each residual with its
        own statistics (``apply_ln_to_stack(..., recompute_ln=True)``), so ``stack @ W_U + b_U``
        is the logit lens; for an earlier ``layer`` the cached scale of that layer's norm is used.

        >>> acc, labels = cache.accumulated_resid(apply_ln=True, pos_slice=-1, return_labels=True)  # doctest: +SKIP
        >>> labels[0], labels[-1], acc.shape                                     # doctest: +SKIP
        ('0_pre', 'final_post', torch.Size([31, 1, 576]))
        """
        layer = self._layers_covered(layer)
        self._check_mlp_input(layer, mlp_input)
        pos_slice = _as_slice(pos_slice)
        n = self._n_layers
        mids = not self._parallel()
        parts, labels = [], []
        for l in range(layer + 1):
            if l == n:
                parts.append(self._get(f"blocks.{n - 1}.hook_resid_post"))
                labels.append("final_post")
                continue
            parts.append(self._resid_input(l))
            labels.append(f"{l}_pre")
            if mids and ((incl_mid and l < layer) or (mlp_input and l == layer)):
                parts.append(self._get(f"blocks.{l}.hook_resid_mid"))
                labels.append(f"{l}_mid")
        stack = torch.stack([self._pos(p, pos_slice) for p in parts])
        if apply_ln and layer == n and self.model.ln_final is not None:
            # The logit lens: each residual gets its own final-norm statistics (TL 3.9).
            stack = self._recompute_final_ln(stack)
            return (stack, labels) if return_labels else stack
        return self._finish_stack(stack, labels, layer, mlp_input, pos_slice, apply_ln, return_labels)

    def decompose_resid(
        self,
        layer: Optional[int] = None,
        mlp_input: bool = False,
        mode: Literal["all", "mlp", "attn"] = "all",
        apply_ln: bool = False,
        pos_slice: Union[Slice, SliceInput] = None,
        incl_embeds: bool = True,
        return_labels: bool = False,
    ):
        """The residual stream into ``layer`` split into embed, pos_embed and sublayer outputs.

        Labels ``'embed'``, ``'pos_embed'`` (absolute position models), ``'{l}_attn_out'``,
        ``'{l}_mlp_out'``. The components sum to ``resid_pre[layer]`` (``resid_mid[layer]``
        with ``mlp_input``; the final residual for layer None / -1 / n_layers).
        ``mode`` keeps only ``"attn"`` or ``"mlp"`` outputs.
        """
        if mode not in _MODES:
            raise InvalidOptionError("mode", mode, _MODES)
        layer = self._layers_covered(layer)
        self._check_mlp_input(layer, mlp_input)
        pos_slice = _as_slice(pos_slice)
        incl_attn = mode != "mlp"
        incl_mlp = mode != "attn" and self._has_mlp()
        parts, labels = [], []
        if incl_embeds:
            for name, label in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")):
                if name in self.cache_dict:
                    parts.append(self.cache_dict[name])
                    labels.append(label)
        for l in range(layer):
            if incl_attn:
                parts.append(self._get(f"blocks.{l}.hook_attn_out"))
                labels.append(f"{l}_attn_out")
            if incl_mlp:
                parts.append(self._get(f"blocks.{l}.hook_mlp_out"))
                labels.append(f"{l}_mlp_out")
        if mlp_input and incl_attn and not self._parallel():
            parts.append(self._get(f"blocks.{layer}.hook_attn_out"))
            labels.append(f"{layer}_attn_out")
        if parts:
            stack = torch.stack([self._pos(p, pos_slice) for p in parts])
        else:
            ref = self._pos(self._resid_input(layer, mlp_input), pos_slice)
            stack = ref.new_zeros((0,) + tuple(ref.shape))
        return self._finish_stack(stack, labels, layer, mlp_input, pos_slice, apply_ln, return_labels)

    # ------------------------------------------------------------------ logit attribution
    def _token_tensor(self, tokens: Any) -> torch.Tensor:
        if isinstance(tokens, str):
            from .model_analysis import to_single_token

            return torch.tensor(to_single_token(self.model, tokens))
        if isinstance(tokens, (int, np.integer)):
            return torch.tensor(int(tokens))
        return torch.as_tensor(tokens)

    def logit_attrs(
        self,
        residual_stack: torch.Tensor,
        tokens: Union[str, int, torch.Tensor],
        incorrect_tokens: Union[str, int, torch.Tensor, None] = None,
        pos_slice: Union[Slice, SliceInput] = None,
        batch_slice: Union[Slice, SliceInput] = None,
        has_batch_dim: bool = True,
    ) -> torch.Tensor:
        """Each component's contribution to the logit of ``tokens`` (minus ``incorrect_tokens``).

        Applies the final norm scaling (``apply_ln_to_stack(layer=-1)``) itself, so pass an
        *unscaled* stack. ``tokens`` is a single-token string, an id, or a tensor broadcasting
        against the stack's batch/pos dims ([batch] when ``pos_slice`` picks one position).
        With a processed (fold_ln) model the sum over a complete decomposition equals
        ``logits[..., token] - b_U[token]``.

        >>> stack, labels = cache.decompose_resid(pos_slice=-1, return_labels=True)   # doctest: +SKIP
        >>> cache.logit_attrs(stack, " road", pos_slice=-1).shape                     # doctest: +SKIP
        torch.Size([18, 1])
        """
        tok = self._token_tensor(tokens)
        directions = self.model.tokens_to_residual_directions(tok)
        if incorrect_tokens is not None:
            bad = self._token_tensor(incorrect_tokens)
            if bad.shape != tok.shape:
                raise ShapeMismatchError(
                    f"tokens {tuple(tok.shape)} and incorrect_tokens {tuple(bad.shape)} must have the same shape"
                )
            directions = directions - self.model.tokens_to_residual_directions(bad)
        scaled = self.apply_ln_to_stack(
            residual_stack, layer=-1, pos_slice=pos_slice, batch_slice=batch_slice, has_batch_dim=has_batch_dim
        )
        directions = directions.to(scaled.device, scaled.dtype)
        try:
            torch.broadcast_shapes(scaled.shape, directions.shape)
        except RuntimeError:
            raise ShapeMismatchError(
                f"token directions {tuple(directions.shape)} do not broadcast against the residual stack "
                f"{tuple(scaled.shape)}; tokens should match the stack's batch/pos dims"
            ) from None
        return (scaled * directions).sum(-1)
