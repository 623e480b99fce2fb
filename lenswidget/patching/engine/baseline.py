"""The corrupted run, cached once per sweep, and a self-check of the fast recompute.

The corrupted activations come from the model's own forward pass, with the same hook
points cached as in the clean cache, so both runs take the same numerical code paths: a
patch that writes a clean value equal to the corrupted one (e.g. at a shared BOS token) is
recognised as a no-op exactly.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

from .ops import ModelOps
from .runner import run_staircase

__all__ = ["Baseline", "NEEDED"]

# per-layer hooks the sites read, by short name
NEEDED = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "q", "k", "v", "rot_q", "rot_k", "z")


class Baseline:
    """Corrupted activations by hook name, logits [batch, pos, d_vocab] and shared prefix K/V."""

    def __init__(self, model, ops: ModelOps, tokens: torch.Tensor, clean_keys, extra: List[str]):
        cfg = model.cfg
        wanted = set(clean_keys) | set(extra)
        for l in range(cfg.n_layers):
            for short in NEEDED:
                wanted.add(_name(short, l))
        wanted &= set(model.hook_dict)
        logits, cache = model.run_with_cache(tokens, names_filter=sorted(wanted), return_cache_object=False)
        self.acts: Dict[str, torch.Tensor] = cache
        self.logits = logits
        self.tokens = tokens
        self.rotary = cfg.positional_embedding_type == "rotary"
        # keys (rotated) and values of every layer, [B, H_kv, T, d_head], shared by all runs
        self.prefix_kv: List[Tuple[torch.Tensor, torch.Tensor]] = []
        for l in range(cfg.n_layers):
            k = self.get("rot_k" if self.rotary else "k", l)
            v = self.get("v", l)
            self.prefix_kv.append((k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()))

    def get(self, short: str, l: int) -> torch.Tensor:
        return self.acts[_name(short, l)]

    def has(self, short: str, l: int) -> bool:
        return _name(short, l) in self.acts

    def self_check(self, ops: ModelOps) -> float:
        """Max |logit difference| between the fast recompute and the model, on the second half.

        Recomputes every block for positions >= T//2 with the first half's keys/values taken
        from the cache, exactly as patched runs do.
        """
        T = self.tokens.shape[1]
        p0 = T // 2
        x = self.get("resid_pre", 0)[:, p0:][None]
        read = torch.arange(T - p0, device=x.device)
        out = run_staircase(ops, self.prefix_kv, {0: x}, p0, read)
        mine = ops.logits(out)[0]
        ref = self.logits[:, p0:]
        return float((mine.float() - ref.float()).abs().max()) / max(1.0, float(ref.float().abs().max()))


def _name(short: str, l: int) -> str:
    from lenswidget.utils import get_act_name

    return get_act_name(short, l)
