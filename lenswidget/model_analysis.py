"""Analysis helpers mixed into :class:`~lenswidget.model.HookedTransformer`.

>>> model.tokens_to_residual_directions(" Paris").shape       # doctest: +SKIP
torch.Size([576])
>>> model.OV.shape                                            # doctest: +SKIP
torch.Size([30, 9, 576, 576])
>>> model.all_composition_scores("Q").shape                   # doctest: +SKIP
torch.Size([30, 9, 30, 9])
"""

from __future__ import annotations

from typing import Any, List, Union

import numpy as np
import torch

from .errors import InvalidOptionError, OutOfRangeError, TokenizationError
from .factored import FactoredMatrix

__all__ = ["AnalysisMixin", "to_single_token"]


def to_single_token(model: Any, string: str) -> int:
    """The id of ``string`` if it is exactly one token, else TokenizationError listing its tokens."""
    toks = model.to_tokens(string, prepend_bos=False)
    if toks.numel() != 1:
        pieces = list(model.to_str_tokens(toks[0])) if toks.numel() else []
        raise TokenizationError(
            f"{string!r} is {toks.numel()} tokens {pieces}, not one; pass a token id or a string that "
            "is a single token (answers usually need their leading space, e.g. ' Paris')"
        )
    return int(toks.reshape(-1)[0])


def _stack(blocks: Any, attr: str, owner: str) -> List[Any]:
    return [getattr(getattr(b, owner), attr, None) for b in blocks]


class AnalysisMixin:
    """tokens_to_residual_directions, accumulated_bias, QK/OV circuits, composition scores, head labels.

    Expects ``self.cfg``, ``self.blocks`` (each with ``attn.W_Q/W_K/W_V/W_O/b_O`` and
    ``mlp.b_out``), ``self.W_U`` and the tokenisation methods of HookedTransformer.
    """

    def tokens_to_residual_directions(self, tokens: Union[str, int, torch.Tensor, List[int]]) -> torch.Tensor:
        """The unembedding direction(s) ``W_U[:, token]`` of ``tokens``.

        A string (must be one token), an int or a one-element tensor gives [d_model]; a tensor of
        shape [*dims] with more than one element gives [*dims, d_model].
        Use a model with fold_ln so these are the true logit directions.

        >>> model.tokens_to_residual_directions(torch.tensor([[1, 2], [3, 4]])).shape   # doctest: +SKIP
        torch.Size([2, 2, 576])
        """
        W_U = self.W_U
        if isinstance(tokens, str):
            return W_U[:, to_single_token(self, tokens)]
        if isinstance(tokens, (bool, np.bool_)):
            raise InvalidOptionError("tokens", tokens, ["str", "int", "torch.Tensor"])
        if isinstance(tokens, (int, np.integer)):
            tok = int(tokens)
        else:
            t = torch.as_tensor(tokens)
            if t.is_floating_point():
                raise InvalidOptionError("tokens dtype", t.dtype, ["an integer tensor of token ids"])
            if t.numel() > 1:
                self._check_vocab(t)
                return W_U[:, t.to(W_U.device)].movedim(0, -1)
            if t.numel() == 0:
                raise InvalidOptionError("tokens", "an empty tensor", ["str", "int", "a non-empty tensor"])
            tok = int(t.reshape(-1)[0])
        self._check_vocab(torch.tensor(tok))
        return W_U[:, tok]

    def _check_vocab(self, t: torch.Tensor) -> None:
        d_vocab = self.W_U.shape[-1]
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= d_vocab:
            raise OutOfRangeError("token id", lo if lo < 0 else hi, 0, d_vocab - 1)

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True) -> torch.Tensor:
        """Sum of the output biases (b_O, and b_out unless ``include_mlp_biases=False``) before ``layer``.

        ``layer`` in 0..n_layers; ``mlp_input`` also adds b_O of ``layer`` itself.
        """
        n = self.cfg.n_layers
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer <= n:
            raise OutOfRangeError("layer", layer, 0, n)
        if mlp_input and layer == n:
            raise OutOfRangeError("layer with mlp_input=True", layer, 0, n - 1)
        ref = self.W_U
        total = torch.zeros(self.cfg.d_model, device=ref.device, dtype=ref.dtype)
        for l in range(layer + int(mlp_input)):
            block = self.blocks[l]
            b_O = getattr(block.attn, "b_O", None)
            if b_O is not None:
                total = total + b_O
            if include_mlp_biases and l < layer and hasattr(block, "mlp"):
                b_out = getattr(block.mlp, "b_out", None)
                if b_out is not None:
                    total = total + b_out
        return total

    @property
    def QK(self) -> FactoredMatrix:
        """``W_Q @ W_K.T`` per head: FactoredMatrix [n_layers, n_heads, d_model, d_model]."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    @property
    def OV(self) -> FactoredMatrix:
        """``W_V @ W_O`` per head: FactoredMatrix [n_layers, n_heads, d_model, d_model]."""
        return FactoredMatrix(self.W_V, self.W_O)

    def all_composition_scores(self, mode: str) -> torch.Tensor:
        """Composition scores of every head pair: [L1, H1, L2, H2], zero unless L1 < L2.

        ``score = ||OV_1 @ X_2||_F / (||OV_1||_F ||X_2||_F)`` with ``X_2`` = QK (``"Q"``),
        QK.T (``"K"``) or OV (``"V"``). Computed from the singular vectors of each head's
        circuit, so no d_model x d_model product is ever formed.
        """
        if mode not in ("Q", "K", "V"):
            raise InvalidOptionError("composition mode", mode, ["Q", "K", "V"])
        left = self.OV
        right = {"Q": self.QK, "K": self.QK.T, "V": self.OV}[mode]
        _, S1, V1 = left.svd()  # left = U1 diag(S1) V1^T
        U2, S2, _ = right.svd()  # right = U2 diag(S2) V2^T
        # ||diag(S1) V1^T U2 diag(S2)||_F, one earlier layer at a time to bound memory
        L, H = S1.shape[:2]
        scores = S1.new_zeros(L, H, L, H)
        n1, n2 = S1.norm(dim=-1), S2.norm(dim=-1)
        for l1 in range(L - 1):
            C = torch.einsum("hdk,mgdj->hmgkj", V1[l1], U2[l1 + 1 :])
            C = C * S1[l1][:, None, None, :, None] * S2[l1 + 1 :][None, :, :, None, :]
            num = C.pow(2).sum((-2, -1)).sqrt()
            scores[l1, :, l1 + 1 :] = num / n1[l1][:, None, None] / n2[l1 + 1 :][None]
        return scores

    def all_head_labels(self) -> List[str]:
        """``['L0H0', 'L0H1', ...]`` for every head, layer-major."""
        return [f"L{l}H{h}" for l in range(self.cfg.n_layers) for h in range(self.cfg.n_heads)]

    @property
    def n_params_total(self) -> int:
        """Every parameter, embeddings, biases and norm weights included (``cfg.n_params`` counts
        only the attention and MLP weight matrices)."""
        return sum(p.numel() for p in self.parameters())
