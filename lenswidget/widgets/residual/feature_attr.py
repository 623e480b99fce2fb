"""SAE features of one explorer run: each SAE's direct feature attribution at the attributed
position, memoised per (run, answers).

The run's tokens go once through ``run_with_cache_with_saes`` with every explorer SAE
attached (error term on, so the forward pass is the model's own), caching only the SAE
hooks and the final norm's scale. All maths is
:func:`lenswidget.sae.attribution.direct_feature_attribution`'s; this module only slices the
attributed position and puts the batch axis last (the explorer's ``[..., batch]``
convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..saes import sae_cache
from .answers import Answers
from .source import Run

_SAE_HOOKS = ("hook_sae_input", "hook_sae_acts_post", "hook_sae_error", "hook_sae_output")


@dataclass(frozen=True)
class SAEAttribution:
    """One SAE's attribution at the attributed position; every tensor ends in a batch axis."""

    features: torch.Tensor  # [d_sae, batch]: each feature's direct attribution
    terms: dict[str, torch.Tensor]  # label -> [batch]: decoder bias, skip (transcoders), error
    total: torch.Tensor  # [batch]: the direct attribution of the hooked activation (= sum of everything)
    acts: torch.Tensor  # [batch, n_tokens, d_sae]: feature activations on every token


class RunFeatures:
    """Memoised SAE attributions of one (run, answers)."""

    def __init__(self, model: Any, saes: list, run: Run, answers: Answers, cache: Optional[Any] = None):
        self.model, self.saes, self.run, self.answers = model, saes, run, answers
        self._attr: dict[str, SAEAttribution] = {}
        self._cache = cache  # answer-independent: shared by every answer of the same run

    def with_answers(self, answers: Answers) -> "RunFeatures":
        return RunFeatures(self.model, self.saes, self.run, answers, self._cache)

    @property
    def cache(self) -> Any:
        if self._cache is None:
            names = [f"{s.cfg.hook_name_out}.{h}" for s in self.saes for h in _SAE_HOOKS]
            if "ln_final.hook_scale" in self.model.hook_dict:
                names.append("ln_final.hook_scale")
            self._cache = sae_cache(self.model, self.saes, self.run.tokens, names, full=True)
        return self._cache

    def of(self, sae: Any) -> SAEAttribution:
        hook = str(sae.cfg.hook_name)
        if hook not in self._attr:
            self._attr[hook] = self._compute(sae)
        return self._attr[hook]

    @torch.no_grad()
    def _compute(self, sae: Any) -> SAEAttribution:
        from ...sae.attribution import direct_feature_attribution

        a = self.answers
        res = direct_feature_attribution(self.model, sae, answer_tokens=a.ids, incorrect_tokens=a.incorrect,
                                         cache=self.cache)
        p = self.run.pos
        terms = {"b_dec": res.bias[:, p]}
        if sae.cfg.has_skip:
            terms["skip"] = res.skip[:, p]
        terms["error"] = res.error[:, p]
        return SAEAttribution(res.features[:, p].float().cpu().T, {k: v.float().cpu() for k, v in terms.items()},
                              res.component[:, p].float().cpu(), res.acts.float().cpu())
