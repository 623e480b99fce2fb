"""SAE features of one explorer run: each SAE's feature attribution at the attributed
position, memoised per (run, answers).

All maths is :mod:`lenswidget.sae.attribution`'s (``direct_feature_attribution``,
``feature_logit_effects``); this module only feeds it the run's cache and reshapes the
result into the explorer's ``[..., batch]`` convention. Feature activations on every token
of the prompt are the SAE's own ``encode`` of the hooked activation.

An SAE whose input hook the explorer's run did not cache (e.g. ``mlp.hook_in``) gets its
activation from one extra forward pass, stopped after its layer, memoised with the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..saes import hook_activation
from .answers import Answers
from .source import Run


@dataclass(frozen=True)
class SAEAttribution:
    """One SAE's attribution at the attributed position; every tensor ends in a batch axis."""

    features: torch.Tensor  # [d_sae, batch]: each feature's direct attribution
    terms: dict[str, torch.Tensor]  # label -> [batch]: the other terms (decoder bias, error, ...)
    total: torch.Tensor  # [batch]: the direct attribution of the hooked activation (= sum of everything)
    acts: torch.Tensor  # [batch, n_tokens, d_sae]: feature activations on every token


class RunFeatures:
    """Memoised SAE attributions of one (run, answers)."""

    def __init__(self, model: Any, run: Run, answers: Answers, acts_memo: Optional[dict] = None):
        self.model, self.run, self.answers = model, run, answers
        self._attr: dict[str, SAEAttribution] = {}
        # answer-independent: activations per hook (shared across answers of the same run)
        self._acts: dict[str, torch.Tensor] = acts_memo if acts_memo is not None else {}

    def with_answers(self, answers: Answers) -> "RunFeatures":
        return RunFeatures(self.model, self.run, answers, self._acts)

    def activation(self, hook: str) -> torch.Tensor:
        """The model's activation at ``hook`` on the run's tokens (from the cache when it has it)."""
        if hook not in self._acts:
            cache = self.run.cache
            if hook in cache:
                self._acts[hook] = cache[hook]
            else:
                self._acts[hook] = hook_activation(self.model, hook, self.run.tokens)
        return self._acts[hook]

    def of(self, sae: Any) -> SAEAttribution:
        hook = str(sae.cfg.hook_name)
        if hook not in self._attr:
            self._attr[hook] = self._compute(sae)
        return self._attr[hook]

    @torch.no_grad()
    def _compute(self, sae: Any) -> SAEAttribution:
        from ...sae.attribution import direct_feature_attribution

        act = self.activation(str(sae.cfg.hook_name))
        res = direct_feature_attribution(self.model, self.run.cache, sae, self.answers.ids, self.answers.incorrect,
                                         pos=self.run.pos, activation=act)
        feats = res.features.float().cpu().T  # [batch, d_sae] -> [d_sae, batch]
        terms = {name: v.float().cpu() for name, v in res.terms().items()}
        acts = sae.encode(act.to(sae.device), hooks=False).float().cpu()
        return SAEAttribution(feats, terms, res.total.float().cpu(), acts)
