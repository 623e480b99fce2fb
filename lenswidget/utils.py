"""Small helpers shared across lenswidget (TransformerLens ``utils``-compatible).

>>> get_act_name("resid_pre", 5)
'blocks.5.hook_resid_pre'
>>> get_act_name("z", 2, "attn")
'blocks.2.attn.hook_z'
>>> Slice((1, 3)).apply(torch.arange(5))
tensor([1, 2])
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError
from .utils_tl import *  # noqa: F401,F403  (the rest of TransformerLens's utils)
from .utils_tl import __all__ as _tl_all

__all__ = [
    "get_act_name",
    "Slice",
    "SliceInput",
    "lm_cross_entropy_loss",
    "to_numpy",
    "get_device",
    "remove_batch_dim",
    "get_attention_mask",
    "test_prompt",
    "transpose",
    "get_corner",
    "composition_scores",
    "tokenize_and_concatenate",
    "sample_logits",
    *_tl_all,
]

# --------------------------------------------------------------------------- hook names

_LAYER_TYPE_ALIAS = {"a": "attn", "m": "mlp", "b": "", "block": "", "blocks": "", "attention": "attn"}
_ACT_ALIAS = {
    "attn": "pattern",
    "attn_logits": "attn_scores",
    "key": "k",
    "query": "q",
    "value": "v",
    "mlp_pre": "pre",
    "mlp_mid": "mid",
    "mlp_post": "post",
}
_ATTN_ACTS = {"k", "v", "q", "z", "rot_k", "rot_q", "result", "pattern", "attn_scores"}
_MLP_ACTS = {"pre", "post", "mid", "pre_linear"}
_NORM_ACTS = {"scale", "normalized"}


def get_act_name(name: str, layer: Optional[int] = None, layer_type: Optional[str] = None) -> str:
    """Full hook name from a short activation name.

    ``name`` may be a full hook name (returned unchanged), a short name (``"resid_pre"``,
    ``"pattern"``/``"attn"``, ``"q"``, ``"post"``, ``"scale"`` ...) or a compact one such as
    ``"k6a"`` (= ``k``, layer 6, attn). ``layer_type`` is ``"attn"``/``"a"``, ``"mlp"``/``"m"``,
    ``"ln1"``, ``"ln2"``...; attention and MLP internals infer it from the name.

    >>> get_act_name("scale", 3, "ln1"), get_act_name("scale"), get_act_name("k6a")
    ('blocks.3.ln1.hook_scale', 'ln_final.hook_scale', 'blocks.6.attn.hook_k')
    """
    if ("." in name or name.startswith("hook_")) and layer is None and layer_type is None:
        return name
    m = re.fullmatch(r"([a-z_]+?)(\d+)([a-z][a-z0-9_]*)?", name)
    if m is not None and layer is None:
        name, layer, layer_type = m.group(1), int(m.group(2)), (m.group(3) or layer_type)
    name = _ACT_ALIAS.get(name, name)
    out = "" if layer is None else f"blocks.{int(layer)}."
    if name in _ATTN_ACTS:
        layer_type = "attn"
    elif name in _MLP_ACTS:
        layer_type = "mlp"
    elif layer_type in _LAYER_TYPE_ALIAS:
        layer_type = _LAYER_TYPE_ALIAS[layer_type]
    if layer_type:
        out += f"{layer_type}."
    out += f"hook_{name}"
    if name in _NORM_ACTS and layer is None:
        out = f"ln_final.{out}"
    return out


# --------------------------------------------------------------------------- Slice

SliceInput = Optional[
    Union[int, Tuple[int], Tuple[int, int], Tuple[int, int, int], List[int], torch.Tensor, np.ndarray, slice]
]


class Slice:
    """A reusable index along one dimension.

    ``int`` picks one element (and drops the dimension), a tuple is ``slice(*tuple)``, a list /
    array / tensor picks those elements, ``None`` keeps everything.

    >>> x = torch.arange(10)
    >>> Slice(-1).apply(x), Slice((2, 8, 3)).apply(x), Slice([0, 4]).apply(x)
    (tensor(9), tensor([2, 5]), tensor([0, 4]))
    >>> Slice((2, 5)).indices(10)
    array([2, 3, 4])
    """

    def __init__(self, input_slice: Union["Slice", SliceInput] = None):
        if isinstance(input_slice, Slice):
            self.slice, self.mode = input_slice.slice, input_slice.mode
        elif input_slice is None:
            self.slice, self.mode = slice(None), "identity"
        elif isinstance(input_slice, (bool, np.bool_)):
            raise InvalidOptionError("slice", input_slice, ["int", "tuple", "slice", "list", "tensor", None])
        elif isinstance(input_slice, (int, np.integer)):
            self.slice, self.mode = int(input_slice), "int"
        elif isinstance(input_slice, torch.Tensor) and input_slice.ndim == 0:
            self.slice, self.mode = int(input_slice.item()), "int"
        elif isinstance(input_slice, tuple):
            self.slice, self.mode = slice(*input_slice), "slice"
        elif isinstance(input_slice, slice):
            self.slice, self.mode = input_slice, "slice"
        elif isinstance(input_slice, (list, np.ndarray, torch.Tensor)):
            arr = to_numpy(input_slice)
            if arr.dtype == bool:
                arr = np.nonzero(arr)[0]
            self.slice, self.mode = arr.astype(np.int64).reshape(-1), "array"
        else:
            raise InvalidOptionError(
                "slice", input_slice, ["int", "tuple", "slice", "list", "np.ndarray", "torch.Tensor", None]
            )

    def _check(self, size: int, what: str) -> None:
        if self.mode == "int":
            if not -size <= self.slice < size:
                raise OutOfRangeError(what, self.slice, -size, size - 1)
        elif self.mode == "array":
            if self.slice.size and (self.slice.max() >= size or self.slice.min() < -size):
                bad = int(self.slice.max()) if self.slice.max() >= size else int(self.slice.min())
                raise OutOfRangeError(what, bad, -size, size - 1)
        elif self.mode == "slice" and size > 0 and len(range(size)[self.slice]) == 0:
            raise OutOfRangeError(what, (self.slice.start, self.slice.stop, self.slice.step), -size, size - 1,
                                  hint="the slice selects nothing")

    def apply(self, tensor: torch.Tensor, dim: int = 0, what: str = "index") -> torch.Tensor:
        """Index ``tensor`` along ``dim``; out-of-range indices raise OutOfRangeError named ``what``."""
        if self.mode == "identity":
            return tensor
        if not -tensor.ndim <= dim < tensor.ndim:
            raise OutOfRangeError(f"{what} dimension", dim, -tensor.ndim, tensor.ndim - 1)
        self._check(tensor.shape[dim], what)
        idx: list[Any] = [slice(None)] * tensor.ndim
        if self.mode == "array":
            idx[dim] = torch.as_tensor(self.slice, device=tensor.device)
        else:
            idx[dim] = self.slice
        return tensor[tuple(idx)]

    def indices(self, max_ctx: Optional[int] = None) -> np.ndarray:
        """The indices this slice picks from ``range(max_ctx)`` as a numpy array."""
        if self.mode == "int":
            return np.array([self.slice])
        if self.mode == "array":
            return self.slice.copy()
        if max_ctx is None:
            raise InvalidOptionError("max_ctx for a range slice", None, ["a positive int"])
        return np.arange(max_ctx)[self.slice]

    def __repr__(self) -> str:
        return f"Slice({self.slice!r})"

    @classmethod
    def unwrap(cls, slice_input: Union["Slice", SliceInput]) -> "Slice":
        """A Slice from a Slice input, where a plain int keeps its axis (``-1`` -> ``[-1]``).

        This is how TransformerLens reads ``run_with_cache(pos_slice=...)``.

        >>> Slice.unwrap(-1).apply(torch.arange(5)), Slice.unwrap(Slice(-1)).apply(torch.arange(5))
        (tensor([4]), tensor(4))
        """
        if isinstance(slice_input, Slice):
            return slice_input
        if isinstance(slice_input, (int, np.integer)) and not isinstance(slice_input, (bool, np.bool_)):
            return cls([int(slice_input)])
        return cls(slice_input)


# --------------------------------------------------------------------------- tensors & devices


def to_numpy(tensor: Any) -> np.ndarray:
    """A numpy copy of a tensor / list / number (detached, on CPU)."""
    if isinstance(tensor, np.ndarray):
        return tensor
    if isinstance(tensor, torch.Tensor):
        t = tensor.detach().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.numpy()
    if isinstance(tensor, (list, tuple)):
        return np.array(tensor)
    if isinstance(tensor, (int, float, bool, np.number)):
        return np.array(tensor)
    raise InvalidOptionError("to_numpy input type", type(tensor).__name__, ["torch.Tensor", "np.ndarray", "list", "number"])


def get_device() -> torch.device:
    """The best available device: cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available() and mps.is_built():
        return torch.device("mps")
    return torch.device("cpu")


def remove_batch_dim(tensor: torch.Tensor) -> torch.Tensor:
    """Drop a leading batch dimension of size 1 (other tensors are returned unchanged)."""
    return tensor[0] if tensor.ndim > 0 and tensor.shape[0] == 1 else tensor


def transpose(tensor: torch.Tensor) -> torch.Tensor:
    """Swap the last two dimensions."""
    return tensor.transpose(-1, -2)


def get_corner(tensor: Any, n: int = 3) -> Any:
    """The top-left ``n`` x ... x ``n`` corner of a tensor or FactoredMatrix."""
    from .factored import FactoredMatrix

    if isinstance(tensor, FactoredMatrix):
        return tensor.get_corner(n)
    return tensor[tuple(slice(n) for _ in range(tensor.ndim))]


def composition_scores(left: Any, right: Any, broadcast_dims: bool = True) -> torch.Tensor:
    """||left @ right||_F / (||left||_F ||right||_F) for FactoredMatrix arguments.

    With ``broadcast_dims`` the leading dims of ``left`` come first in the output, followed by
    those of ``right`` (an outer product over heads); otherwise they broadcast together.
    """
    if broadcast_dims:
        nl, nr = left.ndim - 2, right.ndim - 2
        for _ in range(nr):
            left = left.unsqueeze(nl)
        for i in range(nl):
            right = right.unsqueeze(i)
    return (left @ right).norm() / left.norm() / right.norm()


# --------------------------------------------------------------------------- losses & masks


def lm_cross_entropy_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    per_token: bool = False,
) -> torch.Tensor:
    """Next-token cross-entropy of ``logits`` [batch, pos, vocab] against ``tokens`` [batch, pos].

    Returns the mean loss (a scalar), or with ``per_token=True`` the loss per predicted
    position, shape [batch, pos - 1]. ``attention_mask`` (1 = real token) leaves padding out of
    the mean (a prediction counts when both it and its target are real tokens).

    >>> logits = torch.zeros(1, 3, 5)
    >>> round(lm_cross_entropy_loss(logits, torch.tensor([[0, 1, 2]])).item(), 4)  # log(5)
    1.6094
    """
    if logits.shape[:-1] != tokens.shape:
        raise ShapeMismatchError(
            f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} must agree on [batch, pos]"
        )
    log_probs = F.log_softmax(logits.float(), dim=-1)
    target = tokens[..., 1:].to(log_probs.device)
    per = -log_probs[..., :-1, :].gather(-1, target.unsqueeze(-1)).squeeze(-1)
    if attention_mask is not None:
        mask = attention_mask.to(per.device)
        mask = (mask[..., 1:] * mask[..., :-1]).to(per.dtype)
        per = per * mask
        if per_token:
            return per
        return per.sum() / mask.sum().clamp(min=1)
    return per if per_token else per.mean()


def get_attention_mask(tokenizer: Any, tokens: torch.Tensor, prepend_bos: bool,
                       padding_side: Optional[str] = None) -> torch.Tensor:
    """1 for real tokens and 0 for padding, on ``padding_side`` (default ``tokenizer.padding_side``).

    Padding is the run of pad tokens at the padded end; when pad and BOS share an id, the BOS
    we prepended (``prepend_bos``) still counts as real.
    """
    if padding_side is not None and padding_side not in ("left", "right"):
        raise InvalidOptionError("padding_side", padding_side, ("left", "right"))
    pad = tokenizer.pad_token_id
    if pad is None:
        return torch.ones_like(tokens)
    real = tokens != pad
    if (padding_side or getattr(tokenizer, "padding_side", "right")) == "left":
        mask = (real.long().cumsum(-1) > 0).long()
        if prepend_bos and tokenizer.bos_token_id == pad:
            bos_pos = (mask.argmax(-1, keepdim=True) - 1).clamp(min=0)
            mask.scatter_(-1, bos_pos, 1)
    else:
        mask = (real.long().flip(-1).cumsum(-1).flip(-1) > 0).long()
        if prepend_bos and tokenizer.bos_token_id == pad:
            mask[..., 0] = 1
    return mask


# --------------------------------------------------------------------------- prompts


def test_prompt(
    prompt: str,
    answer: Union[str, Sequence[str]],
    model: Any,
    prepend_space_to_answer: bool = True,
    print_details: bool = True,
    prepend_bos: Optional[bool] = None,
    top_k: int = 10,
) -> None:
    """Print how a model ranks each token of ``answer`` after ``prompt``.

    For every answer token: its rank, logit and probability, then the ``top_k`` predictions
    (``Top 0th token. Logit: 20.62 Prob: 84.42% Token: | 3|``), and finally the ranks.

    >>> test_prompt("The capital of France is", "Paris", model)   # doctest: +SKIP
    Tokenized prompt: ['<|endoftext|>', 'The', ' capital', ' of', ' France', ' is']
    Tokenized answer: [' Paris']
    ...
    """
    answers = [answer] if isinstance(answer, str) else list(answer)
    if prepend_space_to_answer:
        answers = [" " + a.lstrip() for a in answers]
    kw = {} if prepend_bos is None else {"prepend_bos": prepend_bos}
    prompt_tokens = model.to_tokens(prompt, **kw)
    prompt_str = model.to_str_tokens(prompt_tokens[0])
    answer_toks = [model.to_tokens(a, prepend_bos=False) for a in answers]
    answer_strs = [list(model.to_str_tokens(t[0])) for t in answer_toks]
    if print_details:
        print("Tokenized prompt:", list(prompt_str))
        if len(answers) > 1:
            print("Tokenized answers:", answer_strs)
        else:
            print("Tokenized answer:", answer_strs[0])
    n_prompt = prompt_tokens.shape[-1]
    for toks, strs in zip(answer_toks, answer_strs):
        full = torch.cat([prompt_tokens, toks.to(prompt_tokens.device)], dim=-1)
        with torch.no_grad():
            logits = model(full)
        logits = logits[0].float()
        probs = logits.softmax(dim=-1)
        ranks = []
        for i, tok_str in enumerate(strs):
            pos = n_prompt + i - 1
            tok = int(full[0, n_prompt + i])
            order = torch.argsort(probs[pos], descending=True)
            rank = int((order == tok).nonzero()[0, 0])
            ranks.append((tok_str, rank))
            if print_details:
                print("Performance on answer token:")
                print(
                    f"Rank: {rank: <8} Logit: {logits[pos, tok].item():5.2f} "
                    f"Prob: {probs[pos, tok].item():6.2%} Token: |{tok_str}|"
                )
                for k in range(min(top_k, order.numel())):
                    t = int(order[k])
                    print(
                        f"Top {k}th token. Logit: {logits[pos, t].item():5.2f} "
                        f"Prob: {probs[pos, t].item():6.2%} Token: |{model.to_string(torch.tensor([t]))}|"
                    )
        print(f"Ranks of the answer tokens: {ranks}")


test_prompt.__test__ = False  # not a pytest test


def tokenize_and_concatenate(
    dataset: Any,
    tokenizer: Any,
    streaming: bool = False,
    max_length: int = 1024,
    column_name: str = "text",
    add_bos_token: bool = True,
    num_proc: int = 10,
    set_format: bool = True,
) -> Any:
    """Tokenize a text dataset, join it with EOS separators and cut it into ``max_length`` rows.

    Works on a HuggingFace ``datasets.Dataset`` (returns one with a ``tokens`` column) or on a
    plain list of strings (returns an int64 tensor [rows, max_length]).
    """
    def chunk(texts: Sequence[str]) -> np.ndarray:
        eos = tokenizer.eos_token or ""
        ids = tokenizer(eos.join(texts), add_special_tokens=False)["input_ids"]
        seq = max_length - 1 if add_bos_token else max_length
        n = len(ids) // seq
        arr = np.asarray(ids[: n * seq], dtype=np.int64).reshape(n, seq)
        if add_bos_token:
            arr = np.concatenate([np.full((n, 1), tokenizer.bos_token_id, dtype=np.int64), arr], axis=1)
        return arr

    if isinstance(dataset, (list, tuple)):
        return torch.from_numpy(chunk(list(dataset)))
    cols = [c for c in dataset.column_names if c != column_name]
    if cols:
        dataset = dataset.remove_columns(cols)
    out = dataset.map(
        lambda ex: {"tokens": chunk(ex[column_name])},
        batched=True,
        remove_columns=[column_name],
        **({} if streaming else {"num_proc": num_proc}),
    )
    return out.with_format(type="torch") if set_format else out


def __getattr__(name: str) -> Any:
    # TransformerLens keeps its sampler in utils; ours lives in lenswidget.sampling (imported
    # lazily because sampling is used by the model, which imports this module).
    if name == "sample_logits":
        from .sampling import sample_logits

        return sample_logits
    raise AttributeError(f"module 'lenswidget.utils' has no attribute {name!r}")
