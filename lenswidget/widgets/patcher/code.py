"""The "Copy as code" script: a self-contained ``run_with_hooks`` script reproducing the active patches.

The script needs only ``model`` (the patcher's model) in scope: it holds the token ids
(not the text, so tokenisation settings cannot change them), reruns both prompts with
``run_with_cache``, rebuilds the metric and the patches as ``(hook name, hook)`` pairs and
leaves ``metric_value`` (a float) and ``patched_logits`` behind. A custom metric cannot be
written out; the script then expects it in scope as ``metric``.

Token strings only ever appear inside ``repr()`` literals in comments, so untrusted text
cannot break out of the generated code.
"""

from __future__ import annotations

from typing import Sequence

from ...utils import get_act_name
from .patches import Patch, active, label
from .runs import Runs


def _ids(tokens) -> str:
    return repr(tokens.tolist())


def _axis(values: Sequence[int] | None) -> str:
    if values is None:
        return "slice(None)"
    if list(values) == list(range(values[0], values[-1] + 1)):
        return f"slice({values[0]}, {values[-1] + 1})"
    return f"torch.tensor({list(values)!r})"


def index_text(act: str, positions: Sequence[int] | None, heads: Sequence[int] | None) -> str:
    """Python source of the region index (mirrors ``forward.region_index``)."""
    pos, hs = _axis(positions), _axis(heads)
    both = positions is not None and heads is not None and pos.startswith("torch") and hs.startswith("torch")
    if act == "pattern":
        if both:
            hs, pos = f"{hs}[:, None]", f"{pos}[None, :]"
        return f"(slice(None), {hs}, {pos})"
    if heads is None:
        return f"(slice(None), {pos})"
    if both:
        pos, hs = f"{pos}[:, None]", f"{hs}[None, :]"
    return f"(slice(None), {pos}, {hs})"


def _source(p: Patch, name: str) -> str:
    if p.mode == "zero":
        return "0.0"
    if p.mode == "mean":
        return f"mean_of({name!r})"
    return f"clean_cache[{name!r}]"


def _comment(texts: list[str] | None, side: str) -> str:
    if not texts:
        return ""
    shown = texts[0] if len(texts) == 1 else texts
    return f"  # {side}: {shown!r}"


def generate(runs: Runs, patches: Sequence[Patch]) -> str:
    """The script for ``patches`` (disabled chips are left out) on ``runs``."""
    chips = active(patches)
    summary = "; ".join(label(p) for p in chips) or "none"
    texts = runs.texts or (None, None)
    out = [
        f"# lenswidget patcher: {len(chips)} active patch(es): {summary}",
        "# Reproduces the patcher's metric with model.run_with_hooks; needs `model` in scope.",
        "import torch",
        "from functools import partial",
        "",
        f"clean_tokens = torch.tensor({_ids(runs.clean_tokens)}, device=model.cfg.device){_comment(texts[0], 'clean')}",
        f"corrupted_tokens = torch.tensor({_ids(runs.corrupted_tokens)}, device=model.cfg.device){_comment(texts[1], 'corrupted')}",
        "with torch.no_grad():",
        "    clean_logits, clean_cache = model.run_with_cache(clean_tokens)",
        "    corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens)",
        "",
    ]
    if runs.default_metric:
        out += [
            f"answer_tokens = torch.tensor({_ids(runs.answers)}, device=model.cfg.device)  # [batch, (answer, incorrect), n]",
            "",
            "",
            "def logit_diff(logits):",
            '    """Mean over prompts and answer tokens of logit[answer] - logit[incorrect], last position."""',
            "    final = logits[:, -1, :]",
            "    answer = final.gather(-1, answer_tokens[:, 0])",
            "    incorrect = final.gather(-1, answer_tokens[:, 1])",
            "    return (answer - incorrect).mean()",
            "",
            "",
            "clean_logit_diff = logit_diff(clean_logits)",
            "corrupted_logit_diff = logit_diff(corrupted_logits)",
            "",
            "",
            "def patching_metric(logits):",
            '    """Normalised logit difference: 0 = corrupted run, 1 = clean run."""',
            "    return (logit_diff(logits) - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)",
        ]
    else:
        out += ["# The patcher was given a custom metric, which cannot be written out: define it as `metric`.",
                "patching_metric = metric"]
    out += [
        "",
        "",
        "def patch_hook(activation, hook, index, source):",
        '    """Overwrite activation[index] with source[index] (a tensor) or a number (0.0: zero ablation)."""',
        "    activation[index] = source[index] if torch.is_tensor(source) else source",
        "    return activation",
        "",
        "",
        "def mean_of(name):",
        '    """Mean ablation: the corrupted run\'s mean over batch and positions."""',
        "    act = corrupted_cache[name]",
        "    return act.mean(dim=(0, 1), keepdim=True).expand_as(act)",
        "",
        "",
        "fwd_hooks = [",
    ]
    for p in chips:
        out.append(f"    # {label(p)}")
        index = index_text(p.act, p.positions, p.heads)
        for layer in p.layers:
            name = get_act_name(p.act, layer)
            out.append(f"    ({name!r}, partial(patch_hook, index={index}, source={_source(p, name)})),")
    out += [
        "]",
        "with torch.no_grad():",
        "    patched_logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=fwd_hooks)",
        "metric_value = float(patching_metric(patched_logits))",
        'print(f"metric: {metric_value:.4f}")',
        "",
    ]
    return "\n".join(out)
