"""The two runs the patcher compares: tokens, caches, logits, answers and the metric.

``Runs.build(model, clean, corrupted, answer, incorrect, metric)`` tokenises both sides
(strings, lists of strings or token ids), checks that they line up position by position,
runs each once with caching, and builds the metric. The default metric is seed 004's
normalised logit difference: the mean over prompts (and answer tokens) of
``logit[answer] - logit[incorrect]`` at the last position, mapped so that the corrupted
run is 0 and the clean run is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ...errors import InvalidOptionError, ShapeMismatchError, TokenizationError
from ...patching.metric import MetricAdapter, PatchingMetric
from ...utils import get_act_name
from .patches import ACTS, Dims

MAX_SHOWN_TOKENS = 40


@dataclass
class Runs:
    model: Any
    clean_tokens: torch.Tensor  # [batch, pos]
    corrupted_tokens: torch.Tensor
    clean_str: list[list[str]]  # per prompt
    corrupted_str: list[list[str]]
    texts: tuple[list[str], list[str]] | None  # the prompts as given, when they were strings
    clean_cache: dict
    corrupted_cache: dict
    clean_logits: torch.Tensor  # [batch, pos, d_vocab]
    corrupted_logits: torch.Tensor
    answers: torch.Tensor | None  # [batch, 2, n] (answer, incorrect) for the default metric
    metric: Callable  # what the patching sweeps get
    adapter: MetricAdapter  # how the widget evaluates it
    default_metric: bool
    dims: Dims
    acts: tuple[str, ...]  # activations this model has hooks for

    @classmethod
    def build(cls, model: Any, clean: Any, corrupted: Any, answer: Any = None, incorrect: Any = None,
              metric: Callable | None = None) -> "Runs":
        clean_tokens, clean_texts = _tokens(model, clean, "clean")
        corrupted_tokens, corrupted_texts = _tokens(model, corrupted, "corrupted")
        check_aligned(model, clean_tokens, corrupted_tokens)
        cfg = model.cfg
        acts = tuple(a for a in ACTS if get_act_name(a, 0) in model.hook_dict)
        names = [get_act_name(a, l) for a in acts for l in range(cfg.n_layers)]
        names += [get_act_name("rot_k" if cfg.positional_embedding_type == "rotary" else "k", l) for l in range(cfg.n_layers)]
        names = sorted({n for n in names if n in model.hook_dict})
        with torch.no_grad():
            clean_logits, clean_cache = model.run_with_cache(clean_tokens, names_filter=names, return_cache_object=False)
            corr_logits, corr_cache = model.run_with_cache(corrupted_tokens, names_filter=names, return_cache_object=False)
        answers = None
        if metric is None:
            answers = answer_tokens(model, answer, incorrect, clean_logits, corr_logits)
            metric = normalised_logit_diff(answers, clean_logits, corr_logits)
        elif not callable(metric):
            raise InvalidOptionError("metric", type(metric).__name__, ["None (normalised logit difference)", "a callable logits -> scalar"])
        n_pos = int(clean_tokens.shape[1])
        kv = corr_cache[get_act_name("v", 0)].shape[2] if get_act_name("v", 0) in corr_cache else cfg.n_heads
        texts = (clean_texts, corrupted_texts) if clean_texts is not None and corrupted_texts is not None else None
        return cls(model, clean_tokens, corrupted_tokens, _str_tokens(model, clean_tokens), _str_tokens(model, corrupted_tokens),
                   texts, clean_cache, corr_cache, clean_logits, corr_logits, answers, metric,
                   MetricAdapter(metric, n_pos), answers is not None,
                   Dims(cfg.n_layers, n_pos, cfg.n_heads, int(kv)), acts)

    @property
    def batch(self) -> int:
        return int(self.clean_tokens.shape[0])

    @property
    def n_pos(self) -> int:
        return int(self.clean_tokens.shape[1])

    def value(self, logits: torch.Tensor) -> float:
        """The metric of one run's full logits [batch, pos, d_vocab]."""
        sel = logits[:, self.adapter.positions]
        return float(self.adapter.evaluate(sel[None])[0])


def _tokens(model: Any, source: Any, side: str) -> tuple[torch.Tensor, list[str] | None]:
    """[batch, pos] token ids (each string tokenised on its own, so nothing is padded)."""
    if isinstance(source, str):
        source = [source]
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, str) for s in source):
        rows = [model.to_tokens(s)[0] for s in source]
        lengths = {int(r.shape[0]) for r in rows}
        if len(lengths) > 1:
            shown = "\n".join(f"  {side} {i} ({len(r)} tokens): {_shown(model, r)}" for i, r in enumerate(rows))
            raise ShapeMismatchError(
                f"the {side} prompts have different token lengths, and patching needs one length for every prompt:\n"
                f"{shown}\nChoose prompts of equal token length (or pass token ids of one shape)."
            )
        return torch.stack(rows).to(model.cfg.device), list(source)
    if isinstance(source, torch.Tensor) and not source.is_floating_point() and source.dtype != torch.bool:
        tokens = source[None] if source.ndim == 1 else source
        if tokens.ndim != 2 or tokens.shape[1] == 0:
            raise ShapeMismatchError(f"{side} tokens must be [batch, pos] or [pos]; got shape {tuple(source.shape)}")
        return tokens.to(model.cfg.device), None
    raise InvalidOptionError(f"{side} input", type(source).__name__, ["a prompt str", "a list of prompt strs", "token ids [batch, pos]"])


def _shown(model: Any, row: torch.Tensor) -> str:
    toks = _str_tokens(model, row[None])[0]
    more = f" ... (+{len(toks) - MAX_SHOWN_TOKENS})" if len(toks) > MAX_SHOWN_TOKENS else ""
    return repr(toks[:MAX_SHOWN_TOKENS]) + more


def _str_tokens(model: Any, tokens: torch.Tensor) -> list[list[str]]:
    try:
        return [[str(s) for s in model.to_str_tokens(row)] for row in tokens.cpu()]
    except Exception:  # no tokenizer: show the ids
        return [[f"<{int(i)}>" for i in row] for row in tokens.cpu()]


def check_aligned(model: Any, clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    """Clean and corrupted tokens must have one shape; the error shows both tokenisations."""
    if clean.shape == corrupted.shape:
        return
    if clean.shape[0] != corrupted.shape[0]:
        raise ShapeMismatchError(
            f"{clean.shape[0]} clean prompt(s) but {corrupted.shape[0]} corrupted prompt(s); "
            "give one corrupted prompt per clean prompt"
        )
    rows = "\n".join(
        f"  prompt {i}:\n    clean ({clean.shape[1]} tokens):     {_shown(model, clean[i])}\n"
        f"    corrupted ({corrupted.shape[1]} tokens): {_shown(model, corrupted[i])}"
        for i in range(min(3, clean.shape[0]))
    )
    raise ShapeMismatchError(
        f"clean prompts have {clean.shape[1]} tokens but corrupted prompts have {corrupted.shape[1]}; patching "
        f"swaps activations position by position, so both must tokenise to the same length:\n{rows}\n"
        "To align them, change words so that both prompts have the same number of tokens (e.g. swap a name for "
        "another single-token name), or pad the shorter prompt with filler words until the lengths match."
    )


def _answer_ids(model: Any, value: Any, batch: int, what: str) -> list[list[int]]:
    """One list of token ids per prompt."""
    if isinstance(value, torch.Tensor):
        t = value.long()
        if t.ndim == 0:
            return [[int(t)]] * batch
        if t.ndim == 1 and t.shape[0] == batch:
            return [[int(x)] for x in t]
        if t.ndim == 2 and t.shape[0] == batch:
            return [[int(x) for x in row] for row in t]
        raise ShapeMismatchError(f"{what} tokens of shape {tuple(t.shape)}: expected [batch={batch}] or [batch, n]")
    if isinstance(value, bool):
        raise InvalidOptionError(what, value, ["a str", "a token id", "one per prompt"])
    if isinstance(value, int):
        return [[value]] * batch
    if isinstance(value, str):
        return [_tokenize_answer(model, value, what)] * batch
    if isinstance(value, (list, tuple)):
        if len(value) != batch:
            raise ShapeMismatchError(f"{len(value)} {what}s for {batch} prompts; give one per prompt (or a single one)")
        out = []
        for v in value:
            if isinstance(v, str):
                out.append(_tokenize_answer(model, v, what))
            elif isinstance(v, int) and not isinstance(v, bool):
                out.append([v])
            else:
                raise InvalidOptionError(f"{what} entry", v, ["a str", "a token id"])
        return out
    raise InvalidOptionError(what, type(value).__name__, ["a str", "a token id", "a list (one per prompt)", "a tensor"])


def _tokenize_answer(model: Any, text: str, what: str) -> list[int]:
    ids = [int(i) for i in model.to_tokens(text, prepend_bos=False)[0]]
    if not ids:
        raise TokenizationError(f"the {what} {text!r} has no tokens")
    return ids


def answer_tokens(model: Any, answer: Any, incorrect: Any, clean_logits: torch.Tensor,
                  corrupted_logits: torch.Tensor) -> torch.Tensor:
    """[batch, 2, n]: answer and incorrect ids. Defaults: the clean run's top token and the
    corrupted run's top token other than the answer."""
    batch = int(clean_logits.shape[0])
    if answer is None:
        ans = [[int(i)] for i in clean_logits[:, -1].argmax(-1)]
    else:
        ans = _answer_ids(model, answer, batch, "answer")
    if incorrect is None:
        inc = []
        for b in range(batch):
            top = corrupted_logits[b, -1].topk(len(ans[b]) + 1).indices.tolist()
            inc.append([next(t for t in top if t not in ans[b])] * len(ans[b]))
    else:
        inc = _answer_ids(model, incorrect, batch, "incorrect answer")
    n = len(ans[0])
    for b in range(batch):
        if len(ans[b]) != n or len(inc[b]) != n:
            raise TokenizationError(
                f"prompt {b}: the answer has {len(ans[b])} token(s) and the incorrect answer {len(inc[b])} "
                f"({_pieces(model, ans[b])} vs {_pieces(model, inc[b])}); the logit difference compares them token by "
                f"token, so every answer needs the same number of tokens (here {n})"
            )
    vocab = int(clean_logits.shape[-1])
    for ids in ans + inc:
        for i in ids:
            if not 0 <= i < vocab:
                raise InvalidOptionError("answer token id", i, [f"0..{vocab - 1}"])
    return torch.tensor([[a, c] for a, c in zip(ans, inc)], device=clean_logits.device)


def _pieces(model: Any, ids: Sequence[int]) -> str:
    try:
        return repr([str(s) for s in model.to_str_tokens(torch.tensor(ids))])
    except Exception:
        return repr(list(ids))


def logit_diff(last: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """``last`` [..., batch, d_vocab] -> [...]: mean of logit[answer] - logit[incorrect]."""
    idx = answers.expand(*last.shape[:-2], *answers.shape)  # [..., batch, 2, n]
    picked = last.unsqueeze(-2).expand(*idx.shape[:-1], last.shape[-1]).gather(-1, idx)
    return (picked[..., 0, :] - picked[..., 1, :]).mean((-1, -2))


def normalised_logit_diff(answers: torch.Tensor, clean_logits: torch.Tensor, corrupted_logits: torch.Tensor) -> PatchingMetric:
    """Seed 004's metric as a declared, batched patching metric (0 = corrupted, 1 = clean)."""
    clean_ld = float(logit_diff(clean_logits[:, -1], answers))
    corr_ld = float(logit_diff(corrupted_logits[:, -1], answers))
    if not abs(clean_ld - corr_ld) > 1e-6:
        raise InvalidOptionError(
            f"answer/incorrect pair: it gives the same logit difference ({clean_ld:.4g}) on the clean and corrupted runs, "
            "so the normalised metric is undefined", answers[0].tolist(),
            ["tokens that the two runs rank differently", "metric=<your function of logits>"])

    def normalised(logits: torch.Tensor) -> torch.Tensor:
        """logits [runs, batch, 1, d_vocab] -> [runs]."""
        return (logit_diff(logits[:, :, -1], answers) - corr_ld) / (clean_ld - corr_ld)

    metric = PatchingMetric(normalised, positions=[-1], batched=True)
    metric.clean_logit_diff, metric.corrupted_logit_diff = clean_ld, corr_ld
    return metric


@torch.no_grad()
def top_tokens(model: Any, last: torch.Tensor, k: int) -> list[dict]:
    """Top ``k`` tokens of one position's logits [d_vocab]: token, id, prob, logit."""
    probs = torch.softmax(last.float(), -1)
    top = probs.topk(min(k, probs.shape[-1]))
    ids = top.indices.tolist()
    names = _str_tokens(model, torch.tensor([ids]))[0]
    return [{"token": names[i], "id": int(t), "prob": float(top.values[i]), "logit": float(last[t])}
            for i, t in enumerate(ids)]


@torch.no_grad()
def difference_map(runs: Runs, act: str, position: int | None) -> torch.Tensor:
    """[n_layers, n_cols]: ``|clean - corrupted| / |corrupted|`` of each grid cell (0: patching it is a no-op)."""
    rows = []
    for layer in range(runs.dims.n_layers):
        name = get_act_name(act, layer)
        clean, corr = runs.clean_cache[name].float(), runs.corrupted_cache[name].float()
        if act == "pattern":  # [b, h, dest, src]: cells are heads (rows of one dest, or all)
            if position is not None:
                clean, corr = clean[:, :, position], corr[:, :, position]
            dims = tuple(d for d in range(clean.ndim) if d != 1)
        elif clean.ndim == 4:  # [b, pos, h, d]
            if position is not None:
                clean, corr = clean[:, position], corr[:, position]
                dims = (0, 2)
            else:
                dims = (0, 1, 3)
        else:  # [b, pos, d]
            dims = (0, 2)
        diff = (clean - corr).pow(2).sum(dims).sqrt()
        rows.append(diff / corr.pow(2).sum(dims).sqrt().clamp_min(1e-12))
    return torch.stack(rows).cpu()
