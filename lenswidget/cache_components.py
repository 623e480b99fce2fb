"""ActivationCache's per-component stacks: attention heads, MLP neurons, the full decomposition.

A mixin of :class:`lenswidget.cache.ActivationCache`. Every stack is written into one
preallocated tensor ``[components, *batch_and_pos, d]``. ``project_output_onto`` (a
``[d_model]`` or ``[d_model, k]`` tensor, as in TransformerLens 3.9) folds a projection into
the weights (``W_O @ P``, ``W_out @ P``) before any per-component expansion, so the
``[..., d_mlp, d_model]`` neuron tensor is never built. With ``apply_ln`` too, the cached norm
scale is applied in projected space: ``LN_s(c) @ P = (c @ P - mean(c) * sum(P)) / s``, where
``mean(c)`` comes along as one extra projection column.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch

from .errors import ConfigError, OutOfRangeError, ShapeMismatchError
from .utils import Slice, SliceInput

_CENTRED = ("LN", "LNPre")
_NORMED = ("LN", "LNPre", "RMS", "RMSPre")


def _as_slice(s: Union[Slice, SliceInput]) -> Slice:
    return s if isinstance(s, Slice) else Slice(s)


class ComponentStacks:
    """Heads, neurons and the full residual decomposition (see the module docstring)."""

    # ------------------------------------------------------------------ projection helpers
    def _projection(self, project_output_onto: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], bool]:
        """``(P [d_model, k], squeeze)`` from a ``[d_model]`` / ``[d_model, k]`` tensor (or None)."""
        if project_output_onto is None:
            return None, False
        P = torch.as_tensor(project_output_onto)
        d_model = self.model.cfg.d_model
        if P.ndim not in (1, 2) or P.shape[0] != d_model:
            raise ShapeMismatchError(
                f"project_output_onto must be [d_model={d_model}] or [d_model={d_model}, k], got {tuple(P.shape)}"
            )
        return (P[:, None], True) if P.ndim == 1 else (P, False)

    def _folded(self, P: Optional[torch.Tensor], apply_ln: bool) -> Optional[torch.Tensor]:
        """The projection to fill with when ``apply_ln`` is folded into it: P plus, for centring
        norms, a ``1/d_model`` column that yields each component's mean."""
        if P is None or not apply_ln or self.model.cfg.normalization_type not in _NORMED:
            return None
        if self.model.cfg.normalization_type in _CENTRED:
            return torch.cat([P, P.new_full((P.shape[0], 1), 1.0 / P.shape[0])], dim=1)
        return P

    def _ln_in_projection(self, out: torch.Tensor, P: torch.Tensor, layer: int, mlp_input: bool,
                          pos_slice: Slice) -> torch.Tensor:
        """Finish a stack filled with ``_folded(P)``: centre (LN) and divide by the cached scale."""
        k = P.shape[1]
        if out.shape[-1] > k:  # the mean column
            out = out[..., :k] - out[..., k:] * P.sum(0).to(out.device, out.dtype)
        scale = self._pos(self._scale(layer, mlp_input), pos_slice).to(out.device, out.dtype)
        return out / scale

    def _project(self, x: torch.Tensor, P: Optional[torch.Tensor]) -> torch.Tensor:
        return x if P is None else x @ P.to(x.device, x.dtype)

    # ------------------------------------------------------------------ heads
    def compute_head_results(self) -> None:
        """Store ``blocks.{l}.attn.hook_result`` [*batch_and_pos, head, d_model] for every layer.

        ``attn_out[l]`` equals the sum of these over heads plus ``b_O[l]``. (The stacking
        methods compute head results on the fly and do not store them.)
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

    def _fill_heads(self, out: torch.Tensor, n_layers: int, pos_slice: Slice, P: Optional[torch.Tensor] = None) -> None:
        """Write every head result of layers < n_layers into ``out`` [n_layers*n_heads, *bp, d]
        (d = d_model, or k when projecting onto ``P`` [d_model, k])."""
        H = self.model.cfg.n_heads
        for l in range(n_layers):
            res_name = f"blocks.{l}.attn.hook_result"
            if res_name in self.cache_dict:
                res = self._project(self._pos(self.cache_dict[res_name], pos_slice, -3), P)
                out[l * H : (l + 1) * H] = res.movedim(-2, 0)
            else:
                z = self._pos(self._z(l), pos_slice, -3)
                W_O = self.model.blocks[l].attn.W_O.to(z.device, z.dtype)
                out[l * H : (l + 1) * H] = torch.einsum("...hd,hdm->h...m", z, self._project(W_O, P))

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
        project_output_onto: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Each neuron's contribution ``post[..., n] * W_out[n]``: [*batch_and_pos, neurons, d_model].

        Not cached (cheap to compute, expensive to store). An int ``neuron_slice`` drops the
        neuron dim. ``project_output_onto`` [d_model, k] gives [..., neurons, k] instead, and a
        [d_model] vector [..., neurons], computed as ``post * (W_out @ P)``.
        """
        layer = self._block_layer(layer)
        P, squeeze = self._projection(project_output_onto)
        neuron_slice, pos_slice = _as_slice(neuron_slice), _as_slice(pos_slice)
        acts = self._pos(self._post(layer), pos_slice)
        W_out = self.model.blocks[layer].mlp.W_out.to(acts.device, acts.dtype)
        acts = neuron_slice.apply(acts, -1, what="neuron_slice")
        W_out = self._project(neuron_slice.apply(W_out, 0, what="neuron_slice"), P)
        out = acts[..., None] * W_out
        return out.squeeze(-1) if squeeze else out

    def _neuron_ids(self, neuron_slice: Slice) -> np.ndarray:
        d_mlp = self.model.cfg.d_mlp
        ids = neuron_slice.indices(d_mlp)
        return np.asarray(ids) % d_mlp

    def _fill_neurons(self, out: torch.Tensor, n_layers: int, pos_slice: Slice, neuron_slice: Slice,
                      P: Optional[torch.Tensor] = None) -> None:
        """Write neuron results of layers < n_layers into ``out`` [n_layers*k, *bp, d] in place."""
        k = len(self._neuron_ids(neuron_slice))
        for l in range(n_layers):
            acts = self._pos(self._post(l), pos_slice)
            acts = neuron_slice.apply(acts, -1, what="neuron_slice")
            W_out = self.model.blocks[l].mlp.W_out.to(acts.device, acts.dtype)
            W_out = self._project(neuron_slice.apply(W_out, 0, what="neuron_slice"), P)
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
        project_output_onto: Optional[torch.Tensor] = None,
    ):
        """Every neuron's contribution for layers < ``layer``: [layer * neurons (+1), *bp, d_model].

        Labels ``'L{l}N{n}'`` (+ ``'remainder'``). Memory is layer x d_mlp x batch x pos x
        d_model floats: narrow it with ``pos_slice`` / ``neuron_slice``, or pass
        ``project_output_onto`` ([d_model] or [d_model, k]; the last dim becomes k, or goes).
        """
        layer = self._layers_covered(layer)
        pos_slice, neuron_slice = _as_slice(pos_slice), _as_slice(neuron_slice)
        P, squeeze = self._projection(project_output_onto)
        folded = self._folded(P, apply_ln)
        fill = folded if folded is not None else P
        ids = self._neuron_ids(neuron_slice)
        ref = self._bp_template(layer, False, pos_slice)
        n = layer * len(ids)
        d = ref.shape[-1] if fill is None else fill.shape[1]
        out = ref.new_empty((n + int(incl_remainder),) + tuple(ref.shape[:-1]) + (d,))
        self._fill_neurons(out[:n], layer, pos_slice, neuron_slice, fill)
        labels = [f"L{l}N{i}" for l in range(layer) for i in ids]
        if incl_remainder:
            out[n] = self._project(ref, fill) - out[:n].sum(0)
            labels.append("remainder")
        if folded is not None:
            out = self._ln_in_projection(out, P, layer, False, pos_slice)
            apply_ln = False
        out = self._finish_stack(out, labels, layer, False, pos_slice, apply_ln and P is None, return_labels)
        return _squeezed(out, squeeze)

    # ------------------------------------------------------------------ full decomposition
    def get_full_resid_decomposition(
        self,
        layer: Optional[int] = None,
        mlp_input: bool = False,
        expand_neurons: bool = True,
        apply_ln: bool = False,
        pos_slice: Union[Slice, SliceInput] = None,
        return_labels: bool = False,
        project_output_onto: Optional[torch.Tensor] = None,
    ):
        """The residual stream into ``layer`` split into heads, neurons (or MLP layers), embeds and bias.

        Labels: ``'L{l}H{h}'`` heads, then ``'L{l}N{n}'`` neurons (or ``'{l}_mlp_out'`` with
        ``expand_neurons=False``), ``'embed'``, ``'pos_embed'``, and ``'bias'`` (the summed
        b_O / b_out). The components sum exactly to the residual stream they decompose
        (``resid_mid[layer]`` with ``mlp_input``, which includes that layer's heads).
        ``project_output_onto`` ([d_model] or [d_model, k]) projects every component without
        building the d_model-wide neuron stack (see the module docstring).
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
        P, squeeze = self._projection(project_output_onto)
        folded = self._folded(P, apply_ln)
        fill = folded if folded is not None else P
        H = cfg.n_heads
        reads_attn = mlp_input and not self._parallel()  # the MLP input includes this layer's attn
        head_layers = layer + int(reads_attn)
        mlp_layers = layer if self._has_mlp() else 0
        ref = self._bp_template(layer, mlp_input, pos_slice)
        embeds = [(n, lab) for n, lab in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")) if n in self.cache_dict]
        n_mlp = mlp_layers * (cfg.d_mlp if expand_neurons else 1)
        total = head_layers * H + n_mlp + len(embeds) + 1
        d = ref.shape[-1] if fill is None else fill.shape[1]
        out = ref.new_empty((total,) + tuple(ref.shape[:-1]) + (d,))
        labels = [f"L{l}H{h}" for l in range(head_layers) for h in range(H)]
        i = head_layers * H
        self._fill_heads(out[:i], head_layers, pos_slice, fill)
        if expand_neurons:
            self._fill_neurons(out[i : i + n_mlp], mlp_layers, pos_slice, Slice(None), fill)
            labels += [f"L{l}N{n}" for l in range(mlp_layers) for n in range(cfg.d_mlp)]
        else:
            for l in range(mlp_layers):
                out[i + l] = self._project(self._pos(self._get(f"blocks.{l}.hook_mlp_out"), pos_slice), fill)
            labels += [f"{l}_mlp_out" for l in range(mlp_layers)]
        i += n_mlp
        for name, lab in embeds:
            out[i] = self._project(self._pos(self.cache_dict[name], pos_slice), fill)
            labels.append(lab)
            i += 1
        bias = self.model.accumulated_bias(layer, reads_attn, include_mlp_biases=expand_neurons)
        out[i] = self._project(bias.to(out.device, out.dtype), fill)
        labels.append("bias")
        if folded is not None:
            out = self._ln_in_projection(out, P, layer, mlp_input, pos_slice)
            return _squeezed((out, labels) if return_labels else out, squeeze)
        out = self._finish_stack(out, labels, layer, mlp_input, pos_slice, apply_ln and P is None, return_labels)
        return _squeezed(out, squeeze)


def _squeezed(result, squeeze: bool):
    """Drop the projection's last dim of a stack (or of ``(stack, labels)``) for a 1-D projection."""
    if not squeeze:
        return result
    if isinstance(result, tuple):
        return result[0].squeeze(-1), result[1]
    return result.squeeze(-1)


__all__ = ["ComponentStacks"]
