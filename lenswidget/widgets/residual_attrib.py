"""Direct logit attribution of one run and one answer, computed lazily from the cache.

Every number is a component's contribution to the answer's logit (or to the logit
difference answer - incorrect) at the attributed position, per prompt (``[..., batch]``):

* components: ``logit_attrs(decompose_resid(pos_slice=pos))``;
* heads: ``logit_attrs(stack_head_results(pos_slice=pos))``, plus each layer's ``b_O``;
* neurons of one layer: ``post[n] * W_out[n] . d``, with ``d`` the answer direction put
  through the final norm's cached scale (``apply_ln_to_stack`` is linear and, for
  LayerNorm, self-adjoint), plus the layer's ``b_out`` - the same numbers as
  ``logit_attrs(stack_neuron_results(...))`` without building ``d_mlp`` residual vectors.

Nothing reruns the model; each piece is computed once and memoised.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .residual_answers import Answers
from .residual_source import Run


class Attribution:
    def __init__(self, model: Any, run: Run, answers: Answers):
        self.model, self.run, self.answers = model, run, answers
        self._components: Optional[tuple[torch.Tensor, list[str]]] = None
        self._heads: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._neurons: dict[int, torch.Tensor] = {}
        self._direction: Optional[torch.Tensor] = None
        self._actual: Optional[torch.Tensor] = None

    @property
    def cache(self) -> Any:
        return self.run.cache

    @property
    def pos(self) -> int:
        return self.run.pos

    # -- components ---------------------------------------------------------------------
    def components(self) -> tuple[torch.Tensor, list[str]]:
        """``([n_components, batch], labels)`` from decompose_resid + logit_attrs."""
        if self._components is None:
            with torch.no_grad():
                stack, labels = self.cache.decompose_resid(layer=-1, pos_slice=self.pos, return_labels=True)
                values = self.cache.logit_attrs(stack, self.answers.ids, self.answers.incorrect, pos_slice=self.pos)
            self._components = (values.float().cpu(), list(labels))
        return self._components

    def component(self, label: str) -> torch.Tensor:
        values, labels = self.components()
        return values[labels.index(label)]

    def actual(self) -> torch.Tensor:
        """The model's own value per prompt: ``logit - b_U`` (or the logit diff minus the b_U diff)."""
        if self._actual is None:
            with torch.no_grad():
                final = self.cache["resid_post", -1][:, self.pos : self.pos + 1]
                x = self.model.ln_final(final) if getattr(self.model, "ln_final", None) is not None else final
                logits = self.model.unembed(x)[:, 0]
                cap = float(getattr(self.model.cfg, "output_logits_soft_cap", 0) or 0)
                if cap > 0:
                    logits = cap * torch.tanh(logits / cap)
                logits = logits - self.model.b_U
                value = _pick(logits, self.answers.ids)
                if self.answers.incorrect is not None:
                    value = value - _pick(logits, self.answers.incorrect)
            self._actual = value.float().cpu()
        return self._actual

    # -- heads ----------------------------------------------------------------------------
    def _head_stack(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._heads is None:
            with torch.no_grad():
                stack = self.cache.stack_head_results(layer=-1, pos_slice=self.pos)
                values = self.cache.logit_attrs(stack, self.answers.ids, self.answers.incorrect, pos_slice=self.pos)
            self._heads = (stack, values.float().cpu())
        return self._heads

    def heads(self) -> torch.Tensor:
        """``[n_layers, n_heads, batch]`` head attributions."""
        cfg = self.model.cfg
        return self._head_stack()[1].reshape(cfg.n_layers, cfg.n_heads, -1)

    def head_bias(self, layer: int) -> torch.Tensor:
        """``[batch]``: the attribution of layer ``layer``'s ``b_O`` (attn_out = heads + b_O)."""
        return self._bias(getattr(self.model.blocks[layer].attn, "b_O", None))

    def head_vector(self, layer: int, head: int) -> torch.Tensor:
        """``[batch, d_model]``: the head's output at the attributed position."""
        return self._head_stack()[0][layer * self.model.cfg.n_heads + head]

    # -- neurons --------------------------------------------------------------------------
    def neurons(self, layer: int) -> torch.Tensor:
        """``[d_mlp, batch]`` attributions of layer ``layer``'s neurons."""
        if layer not in self._neurons:
            with torch.no_grad():
                post = self._post(layer)  # [batch, d_mlp]
                W_out = self.model.blocks[layer].mlp.W_out  # [d_mlp, d_model]
                d = self.direction().to(W_out.device, W_out.dtype)  # [batch, d_model]
                self._neurons[layer] = (post.T * (W_out @ d.T)).float().cpu()
        return self._neurons[layer]

    def neuron_bias(self, layer: int) -> torch.Tensor:
        """``[batch]``: the attribution of layer ``layer``'s ``b_out`` (mlp_out = neurons + b_out)."""
        return self._bias(getattr(self.model.blocks[layer].mlp, "b_out", None))

    def neuron_vector(self, layer: int, neuron: int) -> torch.Tensor:
        """``[batch, d_model]``: the neuron's output at the attributed position."""
        post = self._post(layer)[:, neuron]
        return post[:, None] * self.model.blocks[layer].mlp.W_out[neuron].to(post.device, post.dtype)

    def activation(self, layer: int, neuron: int) -> torch.Tensor:
        return self._post(layer)[:, neuron].float().cpu()

    def _post(self, layer: int) -> torch.Tensor:
        return self.cache["post", layer][:, self.pos]

    # -- helpers ----------------------------------------------------------------------------
    def direction(self) -> torch.Tensor:
        """``[batch, d_model]``: the answer direction through the final norm's scale (per prompt)."""
        if self._direction is None:
            with torch.no_grad():
                W_U = self.model.W_U
                d = W_U[:, self.answers.ids.to(W_U.device)].T
                if self.answers.incorrect is not None:
                    d = d - W_U[:, self.answers.incorrect.to(W_U.device)].T
                self._direction = self.cache.apply_ln_to_stack(d[None], layer=-1, pos_slice=self.pos)[0]
        return self._direction

    def _bias(self, bias: Optional[torch.Tensor]) -> torch.Tensor:
        d = self.direction()
        if bias is None:
            return torch.zeros(d.shape[0])
        with torch.no_grad():
            return (d @ bias.to(d.device, d.dtype)).float().cpu()

    def effect(self, vectors: torch.Tensor, prompt: Optional[int]) -> torch.Tensor:
        """``[d_vocab]`` direct effect on every logit of ``vectors`` [batch, d_model] (one prompt or the mean)."""
        with torch.no_grad():
            scaled = self.cache.apply_ln_to_stack(vectors[None], layer=-1, pos_slice=self.pos)[0]
            v = scaled.mean(0) if prompt is None else scaled[prompt]
            return (v @ self.model.W_U).float().cpu()


def _pick(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return logits.gather(-1, ids.to(logits.device)[:, None])[:, 0]
