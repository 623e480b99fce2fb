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

from .answers import Answers
from .source import Run


class Attribution:
    def __init__(self, model: Any, run: Run, answers: Answers, shared: Optional[dict[str, Any]] = None):
        self.model, self.run, self.answers = model, run, answers
        self._components: Optional[tuple[torch.Tensor, list[str]]] = None
        self._heads: Optional[torch.Tensor] = None
        self._neurons: dict[int, torch.Tensor] = {}
        self._direction: Optional[torch.Tensor] = None
        self._actual: Optional[torch.Tensor] = None
        # answer-independent pieces, shared by every attribution of the same run
        self._shared: dict[str, Any] = shared if shared is not None else {"head_stack": None, "tops": {}}

    def with_answers(self, answers: Answers) -> "Attribution":
        """An attribution of the same run for other answers, reusing what does not depend on them."""
        return Attribution(self.model, self.run, answers, self._shared)

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
                x = (self.model.ln_final(final) if getattr(self.model, "ln_final", None) is not None else final)[:, 0]
                value = self._final_logit(x, self.answers.ids)
                if self.answers.incorrect is not None:
                    value = value - self._final_logit(x, self.answers.incorrect)
            self._actual = value.float().cpu()
        return self._actual

    def _final_logit(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``logit[b, ids[b]] - b_U[ids[b]]`` from the final normalised residual ``x`` [batch, d_model]."""
        W_U, b_U = self.model.W_U, self.model.b_U
        ids = ids.to(W_U.device)
        logit = (x.to(W_U.dtype) * W_U[:, ids].T).sum(-1) + b_U[ids]
        cap = float(getattr(self.model.cfg, "output_logits_soft_cap", 0) or 0)
        if cap > 0:  # elementwise, so only the picked logits are needed
            logit = cap * torch.tanh(logit / cap)
        return logit - b_U[ids]

    # -- heads ----------------------------------------------------------------------------
    def _head_stack(self) -> torch.Tensor:
        """``[n_layers * n_heads, batch, d_model]``: stack_head_results at the attributed position."""
        if self._shared["head_stack"] is None:
            with torch.no_grad():
                self._shared["head_stack"] = self.cache.stack_head_results(layer=-1, pos_slice=self.pos)
        return self._shared["head_stack"]

    def heads(self) -> torch.Tensor:
        """``[n_layers, n_heads, batch]`` head attributions (logit_attrs of the head stack)."""
        if self._heads is None:
            with torch.no_grad():
                values = self.cache.logit_attrs(self._head_stack(), self.answers.ids, self.answers.incorrect,
                                                pos_slice=self.pos)
            cfg = self.model.cfg
            self._heads = values.float().cpu().reshape(cfg.n_layers, cfg.n_heads, -1)
        return self._heads

    def head_bias(self, layer: int) -> torch.Tensor:
        """``[batch]``: the attribution of layer ``layer``'s ``b_O`` (attn_out = heads + b_O)."""
        return self._bias(getattr(self.model.blocks[layer].attn, "b_O", None))

    def head_vector(self, layer: int, head: int) -> torch.Tensor:
        """``[batch, d_model]``: the head's output at the attributed position."""
        return self._head_stack()[layer * self.model.cfg.n_heads + head]

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

    def top_effects(self, kind: str, layer: int, index: int, prompt: Optional[int], k: int) -> tuple[Any, Any]:
        """The ``k`` most promoted and most suppressed tokens of a head / neuron (``topk`` results), memoised.

        One vector through ``W_U`` (a matrix-vector product: its cost is reading ``W_U``).
        """
        tops = self._shared["tops"]
        k = min(int(k), int(self.model.cfg.d_vocab_out))
        key = (kind, layer, index, prompt, k)
        if key not in tops:
            vectors = self.head_vector(layer, index) if kind == "head" else self.neuron_vector(layer, index)
            effect = self.effects(vectors[None], prompt)[0]  # [d_vocab]
            tops[key] = (effect.topk(k), (-effect).topk(k))
        return tops[key]

    def effects(self, vectors: torch.Tensor, prompt: Optional[int]) -> torch.Tensor:
        """``[n, d_vocab]`` direct effect on every logit of ``vectors`` [n, batch, d_model] (one prompt or the mean)."""
        with torch.no_grad():
            scaled = self.cache.apply_ln_to_stack(vectors, layer=-1, pos_slice=self.pos)
            v = scaled.mean(1) if prompt is None else scaled[:, prompt]
            return (v @ self.model.W_U).float().cpu()

