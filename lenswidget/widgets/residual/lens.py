"""Logit lens: the accumulated residual stream through the final norm and the unembedding.

``accumulated_resid(apply_ln=True)`` at every layer (``incl_mid`` for the answer curve)
times ``W_U`` plus ``b_U``, so the ``final_post`` row is the model's own output. The
vocabulary-sized logits are never kept: each prompt's are computed in chunks and reduced
to what is shown (the answer's rank, probability and logit; the top-k tokens of a cell).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .answers import Answers
from .source import Run

_CHUNK_ROWS = 256  # logits rows per matmul: 256 x 49152 floats = 50 MB


class LogitLens:
    def __init__(self, model: Any, run: Run):
        self.model, self.run = model, run
        self._curve_stack: Optional[tuple[torch.Tensor, list[str]]] = None
        self._curves: dict[tuple, dict[str, torch.Tensor]] = {}
        self._grids: dict[tuple[int, int], dict[str, Any]] = {}

    def curve_stack(self) -> tuple[torch.Tensor, list[str]]:
        """``([n_resid, batch, d_model], labels)``: every layer and mid-layer at the attributed position."""
        if self._curve_stack is None:
            with torch.no_grad():
                stack, labels = self.run.cache.accumulated_resid(
                    layer=-1, incl_mid=True, apply_ln=True, pos_slice=self.run.pos, return_labels=True)
            self._curve_stack = (stack, list(labels))
        return self._curve_stack

    def curve(self, answers: Answers) -> dict[str, torch.Tensor]:
        """``rank`` (0 = top), ``prob``, ``logit`` of the answer per ``[layer, prompt]``; ``diff`` with incorrect."""
        key = answers.key()
        if key not in self._curves:
            stack, _ = self.curve_stack()
            ranks, probs, logits, diffs = [], [], [], []
            for b in range(stack.shape[1]):
                x = self._logits(stack[:, b])  # [n_resid, d_vocab]
                a = int(answers.ids[b])
                la = x[:, a]
                ranks.append((x > la[:, None]).sum(-1))
                probs.append(torch.exp(la - torch.logsumexp(x, -1)))
                logits.append(la)
                if answers.incorrect is not None:
                    diffs.append(la - x[:, int(answers.incorrect[b])])
            out = {"rank": torch.stack(ranks, 1).float(), "prob": torch.stack(probs, 1).float(),
                   "logit": torch.stack(logits, 1).float()}
            if diffs:
                out["diff"] = torch.stack(diffs, 1).float()
            self._curves = {key: {k: v.cpu() for k, v in out.items()}}  # keep only the latest answer's
        return self._curves[key]

    def grid(self, prompt: int, k: int) -> dict[str, Any]:
        """Top-``k`` tokens at every position x layer (``resid_pre`` of each layer and ``final_post``).

        ``ids`` and ``probs`` are ``[n_tokens, n_layers + 1, k]``; ``labels`` name the layers.
        """
        key = (prompt, k)
        if key not in self._grids:
            with torch.no_grad():
                stack, labels = self.run.cache.accumulated_resid(layer=-1, apply_ln=True, return_labels=True)
                x = stack[:, prompt].transpose(0, 1)  # [pos, n_resid, d_model]
                n, r, d = x.shape
                logits = self._logits(x.reshape(n * r, d), top_k=k)
            probs, ids = logits
            self._grids = {key: {"labels": list(labels), "ids": ids.reshape(n, r, k).cpu(),
                                 "probs": probs.reshape(n, r, k).float().cpu()}}  # latest prompt only
        return self._grids[key]

    def _logits(self, rows: torch.Tensor, top_k: Optional[int] = None) -> Any:
        """``rows @ W_U + b_U`` in chunks; with ``top_k`` only the top-k probabilities and ids."""
        W_U, b_U = self.model.W_U, self.model.b_U
        rows = rows.to(W_U.device, W_U.dtype)
        parts, part_ids = [], []
        with torch.no_grad():
            for start in range(0, rows.shape[0], _CHUNK_ROWS):
                logits = rows[start : start + _CHUNK_ROWS] @ W_U + b_U
                if top_k is None:
                    parts.append(logits)
                    continue
                top, ids = logits.topk(min(top_k, logits.shape[-1]), dim=-1)
                parts.append(torch.exp(top - torch.logsumexp(logits, -1, keepdim=True)))
                part_ids.append(ids)
        if top_k is None:
            return torch.cat(parts)
        return torch.cat(parts), torch.cat(part_ids)
