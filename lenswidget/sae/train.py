"""Train a small TopK SAE on cached activations (CPU-sized: tens of thousands of tokens).

>>> acts = torch.randn(2000, 16)
>>> sae, stats = train_topk_sae(acts, d_sae=64, k=4, hook_name="blocks.0.hook_resid_post", steps=50, seed=0)
>>> sae.cfg.architecture, stats["steps"]
('topk', 50)

The recipe: inputs scaled so their mean norm is ``sqrt(d_in)`` (the scale is folded into the
weights at the end, so the SAE reads raw activations), decoder rows kept at unit norm, ``b_dec``
started at the data mean, encoder tied to the decoder at the start, Adam, and an auxiliary
TopK loss on features that have not fired for a while (so few features die).
"""

from __future__ import annotations

import math
import time
from typing import Optional

import torch

from .config import SAEConfig
from .sae import SAE

__all__ = ["train_topk_sae", "explained_variance"]


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """1 - ||x - x_hat||^2 / ||x - mean(x)||^2 over all rows."""
    resid = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0)).pow(2).sum()
    return float(1 - resid / total)


def train_topk_sae(
    acts: torch.Tensor,
    d_sae: int,
    k: int,
    hook_name: str,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    k_aux: Optional[int] = None,
    dead_after: int = 20_000,
    aux_coef: float = 1 / 32,
    model_name: Optional[str] = None,
    log_every: int = 0,
) -> tuple:
    """A float32 TopK :class:`SAE` fitted to ``acts`` [n, d_in], and training statistics.

    ``dead_after``: tokens without firing after which a feature counts as dead and joins the
    auxiliary loss (``k_aux`` dead features reconstruct the main reconstruction's error).
    """
    acts = acts.detach().float()
    n, d_in = acts.shape
    gen = torch.Generator().manual_seed(seed)
    scale = math.sqrt(d_in) / float(acts.norm(dim=-1).mean())
    x_all = acts * scale
    k_aux = k_aux or min(d_sae // 2, 8 * k)
    meta = {"hook_name": hook_name}
    if model_name:
        meta["model_name"] = model_name
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k, apply_b_dec_to_input=True, metadata=meta)
    sae = SAE(cfg, seed=seed)
    with torch.no_grad():
        w = torch.randn(d_sae, d_in, generator=gen)
        w /= w.norm(dim=-1, keepdim=True)
        sae.W_dec.copy_(w)
        sae.W_enc.copy_(w.T)
        sae.b_enc.zero_()
        sae.b_dec.copy_(x_all.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(d_sae)
    t0 = time.perf_counter()
    losses = []
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        x = x_all[idx]
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        vals, top = pre.topk(k, dim=-1)
        vals = vals.relu()
        acts_sparse = torch.zeros_like(pre).scatter(-1, top, vals)
        x_hat = acts_sparse @ sae.W_dec + sae.b_dec
        err = x - x_hat
        loss = err.pow(2).sum(-1).mean()
        fired = torch.zeros(d_sae, dtype=torch.bool).index_fill_(0, top[vals > 0].flatten().unique(), True)
        since_fired += batch_size
        since_fired[fired] = 0
        dead = since_fired > dead_after
        if dead.any():
            masked = pre.masked_fill(~dead, float("-inf"))
            ka = min(k_aux, int(dead.sum()))
            av, ai = masked.topk(ka, dim=-1)
            aux_hat = torch.zeros_like(pre).scatter(-1, ai, av.relu()) @ sae.W_dec
            target = err.detach()
            aux = (target - aux_hat).pow(2).sum(-1).mean() / (target - target.mean(0)).pow(2).sum(-1).mean().clamp(min=1e-8)
            loss = loss + aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            sae.W_dec.div_(sae.W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-8))
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {float(loss):.3f}  dead {int(dead.sum())}")
        losses.append(float(loss.detach()))
    train_s = time.perf_counter() - t0
    # fold the input scale: the SAE reads raw activations and writes raw reconstructions
    with torch.no_grad():
        sae.W_enc.mul_(scale)
        sae.b_dec.div_(scale)
        sae.W_dec.div_(scale)
    sae.zero_grad(set_to_none=True)
    with torch.no_grad():
        sample = acts[torch.randperm(n, generator=gen)[: min(n, 4096)]]
        f = sae.encode(sample, hooks=False)
        rec = sae.decode(f, hooks=False)
        fired_any = (sae.encode(acts, hooks=False) > 0).any(0)
    stats = {"steps": steps, "tokens": n, "epochs": steps * batch_size / n, "train_seconds": round(train_s, 2),
             "explained_variance": round(explained_variance(sample, rec), 4),
             "l0": round(float((f > 0).float().sum(-1).mean()), 2),
             "dead_fraction": round(float(1 - fired_any.float().mean()), 4), "final_loss": round(losses[-1], 4),
             "input_scale": scale}
    return sae, stats
