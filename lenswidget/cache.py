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

from .errors import ConfigError, InvalidOptionError, OutOfRangeError, ShapeMismatchError, UnknownNameError
from .utils import Slice, SliceInput, get_act_name

__all__ = ["ActivationCache"]

_NORM_TYPES = ("LN", "LNPre", "RMS", "RMSPre")
_MODES = ("all", "mlp", "attn")


def _as_slice(s: Union[Slice, SliceInput]) -> Slice:
    return s if isinstance(s, Slice) else Slice(s)


class ActivationCache:
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
    ) -> torch.Tensor:
        """Scale each component as the norm before ``layer`` would, using its cached scale.

        ``layer`` in 0..n_layers (None / -1 = ln_final, before the unembed); ``mlp_input`` picks
        ln2 instead of ln1. LayerNorm types also centre each component. ``pos_slice`` /
        ``batch_slice`` are those already applied to ``residual_stack``; the cached scale is
        sliced to match and broadcast over the leading component dims.

        >>> final = cache["resid_post", -1][:, -1]                        # doctest: +SKIP
        >>> cache.apply_ln_to_stack(final, layer=-1, pos_slice=-1).shape   # doctest: +SKIP
        torch.Size([8, 576])
        """
        return self._apply_ln(residual_stack, layer, mlp_input, pos_slice, batch_slice, has_batch_dim, False)

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

    # ------------------------------------------------------------------ heads
    def compute_head_results(self) -> None:
        """Store ``blocks.{l}.attn.hook_result`` [*batch_and_pos, head, d_model] for every layer.

        ``attn_out[l]`` equals the sum of these over heads plus ``b_O[l]``.
        """
        for l in range(self._n_layers):
            key = f"blocks.{l}.attn.hook_result"
            if key not in self.cache_dict:
                z = self._z(l)
                W_O = self.model.blocks[l].attn.W_O.to(z.device, z.dtype)
                self.cache_dict[key] = torch.einsum("...hd,hdm->...hm", z, W_O)

    def _z(self, l: int) -> torch.Tensor:
        name = f"blocks.{l}.attn.hook_z"
        return self._get(
            name,
            hint=f"head results need {name!r} (or 'blocks.{l}.attn.hook_result') in the cache; "
            "run run_with_cache without a names_filter that drops the attention z hooks",
        )

    def _fill_heads(self, out: torch.Tensor, n_layers: int, pos_slice: Slice) -> None:
        """Write every head result of layers < n_layers into ``out`` [n_layers*n_heads, *bp, d_model]."""
        H = self.model.cfg.n_heads
        for l in range(n_layers):
            res_name = f"blocks.{l}.attn.hook_result"
            if res_name in self.cache_dict:
                res = self._pos(self.cache_dict[res_name], pos_slice, -3)
                out[l * H : (l + 1) * H] = res.movedim(-2, 0)
            else:
                z = self._pos(self._z(l), pos_slice, -3)
                W_O = self.model.blocks[l].attn.W_O.to(z.device, z.dtype)
                out[l * H : (l + 1) * H] = torch.einsum("...hd,hdm->h...m", z, W_O)

    def _bp_template(self, layer: int, mlp_input: bool, pos_slice: Slice) -> torch.Tensor:
        return self._pos(self._resid_input(layer, mlp_input), pos_slice)

    def stack_head_results(
        self,
        layer: int = -1,
        return_labels: bool = False,
        incl_remainder: bool = False,
        pos_slice: Union[Slice, SliceInput] = None,
        apply_ln: bool = False,
    ):
        """Every attention head's output (its residual-stream contribution) for layers < ``layer``.

        Shape [layer * n_heads (+1), *batch_and_pos, d_model], labels ``'L{l}H{h}'``; with
        ``incl_remainder`` a final ``'remainder'`` term makes the stack sum to the residual
        stream into ``layer``. Computed from the cached ``z`` in one einsum per layer.
        """
        layer = self._layers_covered(layer)
        pos_slice = _as_slice(pos_slice)
        H = self.model.cfg.n_heads
        ref = self._bp_template(layer, False, pos_slice) if incl_remainder else None
        if ref is None:
            probe = self._pos(self._z(0), pos_slice, -3) if layer > 0 else self._bp_template(0, False, pos_slice)
            bp = tuple(probe.shape[:-2]) if layer > 0 else tuple(probe.shape[:-1])
            dtype, device = probe.dtype, probe.device
        else:
            bp, dtype, device = tuple(ref.shape[:-1]), ref.dtype, ref.device
        d_model = self.model.cfg.d_model
        n = layer * H
        out = torch.empty((n + int(incl_remainder),) + bp + (d_model,), dtype=dtype, device=device)
        self._fill_heads(out[:n], layer, pos_slice)
        labels = [f"L{l}H{h}" for l in range(layer) for h in range(H)]
        if incl_remainder:
            out[n] = ref - out[:n].sum(0)
            labels.append("remainder")
        return self._finish_stack(out, labels, layer, False, pos_slice, apply_ln, return_labels)

    def stack_activation(self, activation_name: str, layer: int = -1, sublayer_type: Optional[str] = None) -> torch.Tensor:
        """Stack ``activation_name`` over layers < ``layer``: [layers_covered, ...].

        >>> cache.stack_activation("pattern").shape         # [n_layers, batch, head, q, k]  # doctest: +SKIP
        """
        layer = self._layers_covered(layer)
        return torch.stack([self[(activation_name, l, sublayer_type)] for l in range(layer)])

    # ------------------------------------------------------------------ neurons
    def _post(self, l: int) -> torch.Tensor:
        name = f"blocks.{l}.mlp.hook_post"
        return self._get(name, hint=f"neuron results need {name!r} in the cache")

    def _block_layer(self, layer: int) -> int:
        n = self._n_layers
        if not isinstance(layer, (int, np.integer)) or not -n <= layer < n:
            raise OutOfRangeError("layer", layer, -n, n - 1)
        return int(layer) % n

    def get_neuron_results(
        self,
        layer: int,
        neuron_slice: Union[Slice, SliceInput] = None,
        pos_slice: Union[Slice, SliceInput] = None,
    ) -> torch.Tensor:
        """Each neuron's contribution ``post[..., n] * W_out[n]``: [*batch_and_pos, neurons, d_model].

        Not cached (cheap to compute, expensive to store). An int ``neuron_slice`` drops the
        neuron dim.
        """
        layer = self._block_layer(layer)
        neuron_slice, pos_slice = _as_slice(neuron_slice), _as_slice(pos_slice)
        acts = self._pos(self._post(layer), pos_slice)
        W_out = self.model.blocks[layer].mlp.W_out.to(acts.device, acts.dtype)
        acts = neuron_slice.apply(acts, -1, what="neuron_slice")
        W_out = neuron_slice.apply(W_out, 0, what="neuron_slice")
        return acts[..., None] * W_out

    def _neuron_ids(self, neuron_slice: Slice) -> np.ndarray:
        d_mlp = self.model.cfg.d_mlp
        ids = neuron_slice.indices(d_mlp)
        return np.asarray(ids) % d_mlp

    def _fill_neurons(self, out: torch.Tensor, n_layers: int, pos_slice: Slice, neuron_slice: Slice) -> None:
        """Write neuron results of layers < n_layers into ``out`` [n_layers*k, *bp, d_model] in place."""
        k = len(self._neuron_ids(neuron_slice))
        for l in range(n_layers):
            acts = self._pos(self._post(l), pos_slice)
            acts = neuron_slice.apply(acts, -1, what="neuron_slice")
            W_out = self.model.blocks[l].mlp.W_out.to(acts.device, acts.dtype)
            W_out = neuron_slice.apply(W_out, 0, what="neuron_slice")
            if neuron_slice.mode == "int":
                acts, W_out = acts[..., None], W_out[None]
            a = acts.movedim(-1, 0)[..., None]  # [k, *bp, 1]
            w = W_out.reshape((k,) + (1,) * (a.ndim - 2) + (W_out.shape[-1],))
            dest = out[l * k : (l + 1) * k]
            if torch.is_grad_enabled() and (a.requires_grad or w.requires_grad):
                dest.copy_(a * w)  # out= cannot record gradients
            else:
                torch.mul(a, w, out=dest)

    def stack_neuron_results(
        self,
        layer: int,
        pos_slice: Union[Slice, SliceInput] = None,
        neuron_slice: Union[Slice, SliceInput] = None,
        return_labels: bool = False,
        incl_remainder: bool = False,
        apply_ln: bool = False,
    ):
        """Every neuron's contribution for layers < ``layer``: [layer * neurons (+1), *bp, d_model].

        Labels ``'L{l}N{n}'`` (+ ``'remainder'``). Memory is layer x d_mlp x batch x pos x
        d_model floats: narrow it with ``pos_slice`` / ``neuron_slice`` on big models.
        """
        layer = self._layers_covered(layer)
        pos_slice, neuron_slice = _as_slice(pos_slice), _as_slice(neuron_slice)
        ids = self._neuron_ids(neuron_slice)
        ref = self._bp_template(layer, False, pos_slice)
        n = layer * len(ids)
        out = ref.new_empty((n + int(incl_remainder),) + tuple(ref.shape))
        self._fill_neurons(out[:n], layer, pos_slice, neuron_slice)
        labels = [f"L{l}N{i}" for l in range(layer) for i in ids]
        if incl_remainder:
            out[n] = ref - out[:n].sum(0)
            labels.append("remainder")
        return self._finish_stack(out, labels, layer, False, pos_slice, apply_ln, return_labels)

    # ------------------------------------------------------------------ full decomposition
    def get_full_resid_decomposition(
        self,
        layer: Optional[int] = None,
        mlp_input: bool = False,
        expand_neurons: bool = True,
        apply_ln: bool = False,
        pos_slice: Union[Slice, SliceInput] = None,
        return_labels: bool = False,
    ):
        """The residual stream into ``layer`` split into heads, neurons (or MLP layers), embeds and bias.

        Labels: ``'L{l}H{h}'`` heads, then ``'L{l}N{n}'`` neurons (or ``'{l}_mlp_out'`` with
        ``expand_neurons=False``), ``'embed'``, ``'pos_embed'``, and ``'bias'`` (the summed
        b_O / b_out). The components sum exactly to the residual stream they decompose
        (``resid_mid[layer]`` with ``mlp_input``, which includes that layer's heads).
        """
        layer = self._layers_covered(layer)
        self._check_mlp_input(layer, mlp_input)
        pos_slice = _as_slice(pos_slice)
        cfg = self.model.cfg
        if getattr(cfg, "use_normalization_before_and_after", False):
            raise ConfigError(
                "get_full_resid_decomposition: this model normalises each sublayer's output "
                "(use_normalization_before_and_after), so head and neuron results do not add up to "
                "the residual stream; use decompose_resid or stack_head_results(incl_remainder=True)"
            )
        H = cfg.n_heads
        reads_attn = mlp_input and not self._parallel()  # the MLP input includes this layer's attn
        head_layers = layer + int(reads_attn)
        mlp_layers = layer if self._has_mlp() else 0
        ref = self._bp_template(layer, mlp_input, pos_slice)
        embeds = [(n, lab) for n, lab in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")) if n in self.cache_dict]
        n_mlp = mlp_layers * (cfg.d_mlp if expand_neurons else 1)
        total = head_layers * H + n_mlp + len(embeds) + 1
        out = ref.new_empty((total,) + tuple(ref.shape))
        labels = [f"L{l}H{h}" for l in range(head_layers) for h in range(H)]
        i = head_layers * H
        self._fill_heads(out[:i], head_layers, pos_slice)
        if expand_neurons:
            self._fill_neurons(out[i : i + n_mlp], mlp_layers, pos_slice, Slice(None))
            labels += [f"L{l}N{n}" for l in range(mlp_layers) for n in range(cfg.d_mlp)]
        else:
            for l in range(mlp_layers):
                out[i + l] = self._pos(self._get(f"blocks.{l}.hook_mlp_out"), pos_slice)
            labels += [f"{l}_mlp_out" for l in range(mlp_layers)]
        i += n_mlp
        for name, lab in embeds:
            out[i] = self._pos(self.cache_dict[name], pos_slice)
            labels.append(lab)
            i += 1
        bias = self.model.accumulated_bias(layer, reads_attn, include_mlp_biases=expand_neurons)
        out[i] = bias.to(out.device, out.dtype)
        labels.append("bias")
        return self._finish_stack(out, labels, layer, mlp_input, pos_slice, apply_ln, return_labels)

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
