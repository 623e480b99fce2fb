"""The default SAE: a TopK SAE (d_sae 2048, k 32) on SmolLM2-135M-Instruct's ``blocks.12.hook_resid_post``.

Trained once, at setup, on the shipped public-domain corpus (:func:`~lenswidget.sae.corpus.load_corpus`)
and cached as a SAELens folder under ``~/.cache/lenswidget`` (atomic write, rebuilt when broken or
when the corpus or recipe changes)::

    python -m lenswidget.sae.default --prepare      # what scripts/setup.sh runs (idempotent)

>>> from lenswidget import HookedSAETransformer                                      # doctest: +SKIP
>>> from lenswidget.sae import load_default_sae                                      # doctest: +SKIP
>>> model = HookedSAETransformer.from_pretrained("SmolLM2-135M-Instruct")             # doctest: +SKIP
>>> sae = load_default_sae()                                                         # doctest: +SKIP
>>> demo_features(model, sae)       # {"capital city": 1234, ...}, found by probing  # doctest: +SKIP

Position 0 of every prompt carries SmolLM2's attention-sink activation (norm ~2e4, versus ~150
elsewhere); the SAE is not trained there, so run it with ``use_error_term=True`` (or ignore
position 0) when that matters.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from .activations import feature_activations
from .corpus import CORPUS_PATH, load_corpus

__all__ = ["DEFAULT_HOOK", "default_sae_dir", "load_default_sae", "demo_features", "collect_activations",
           "DEMO_PROBES"]

MODEL = "SmolLM2-135M-Instruct"
DEFAULT_HOOK = "blocks.12.hook_resid_post"
RECIPE = {"d_sae": 2048, "k": 32, "steps": 600, "batch_size": 256, "lr": 1e-3, "seed": 0, "context": 128,
          "hook": DEFAULT_HOOK, "version": 1}


def _cache_name() -> str:
    from . import train

    h = hashlib.sha256()
    h.update(CORPUS_PATH.read_bytes())
    h.update(json.dumps(RECIPE, sort_keys=True).encode())
    h.update(inspect.getsource(train.train_topk_sae).encode())
    return f"sae-smollm2-L12-resid-topk2048-{h.hexdigest()[:12]}"


def collect_activations(model, texts: List[str], hook: str, context: int = 128, batch: int = 16) -> torch.Tensor:
    """Activations [n_tokens, d] at ``hook`` over ``texts`` packed into windows of ``context`` tokens.

    Position 0 of each window (the attention sink) is dropped.
    """
    ids = model.to_tokens("\n\n".join(texts), prepend_bos=False, truncate=False)[0]
    n_win = ids.numel() // context
    windows = ids[: n_win * context].view(n_win, context)
    layer = int(hook.split(".")[1])
    out = []
    with torch.no_grad():
        for i in range(0, n_win, batch):
            _, cache = model.run_with_cache(windows[i:i + batch], names_filter=[hook], stop_at_layer=layer + 1)
            out.append(cache[hook][:, 1:].reshape(-1, cache[hook].shape[-1]).float())
    return torch.cat(out)


def _build(folder: Path) -> None:
    from lenswidget import HookedTransformer

    from .train import train_topk_sae

    t0 = time.perf_counter()
    model = HookedTransformer.from_pretrained(MODEL, device="cpu").eval()
    acts = collect_activations(model, load_corpus(), RECIPE["hook"], RECIPE["context"])
    t_acts = time.perf_counter() - t0
    sae, stats = train_topk_sae(acts, RECIPE["d_sae"], RECIPE["k"], RECIPE["hook"], steps=RECIPE["steps"],
                                batch_size=RECIPE["batch_size"], lr=RECIPE["lr"], seed=RECIPE["seed"],
                                model_name=MODEL)
    sae.cfg.metadata["context_size"] = RECIPE["context"]
    sae.cfg.metadata["prepend_bos"] = False
    sae.cfg.metadata["dataset_path"] = "lenswidget/data/corpus.txt"
    sae.save_model(folder)
    stats.update({"activation_seconds": round(t_acts, 2), "recipe": RECIPE, "torch_threads": torch.get_num_threads()})
    with torch.no_grad():
        found = demo_features(model, sae)
    stats["demo_features"] = found
    (folder / "training_stats.json").write_text(json.dumps(stats, indent=1))


def default_sae_dir(build: bool = True) -> Path:
    """The cached SAELens folder of the default SAE (trained now if missing and ``build``)."""
    from lenswidget.loading.disk_cache import cache_root, cached_dir, is_complete

    name = _cache_name()
    if not build:
        path = cache_root() / name
        if not is_complete(path):
            from lenswidget.errors import ModelNotAvailableError

            raise ModelNotAvailableError(
                f"the default SAE is not built yet ({path}); run: python -m lenswidget.sae.default --prepare "
                "(scripts/setup.sh does)")
        return path
    return cached_dir(name, _build)


def load_default_sae(device: str = "cpu", dtype: Optional[str] = None, build: bool = True):
    """The default SAE as a :class:`~lenswidget.sae.SAE` (see the module docstring)."""
    from .sae import SAE

    return SAE.load_from_disk(default_sae_dir(build=build), device=device, dtype=dtype)


# concept -> (prompts, the words whose tokens are the concept); background = every other token
DEMO_PROBES: Dict[str, tuple] = {
    "capital city": ([
        "The capital of France is Paris.", "She flew to Tokyo, the capital of Japan.", "Rome is a beautiful city.",
        "We spent a week in Berlin and Vienna.", "The embassy in Madrid was closed.", "He moved from Cairo to Athens.",
        "Our flight to Moscow was delayed.", "The museum in Lisbon opens at nine.",
    ], ["Paris", "Tokyo", "Rome", "Berlin", "Vienna", "Madrid", "Cairo", "Athens", "Moscow", "Lisbon"]),
    "country": ([
        "The capital of France is Paris.", "She flew to Tokyo, the capital of Japan.", "Germany borders Poland.",
        "They drove across Spain and Portugal.", "Egypt is famous for its pyramids.", "Italy won the match.",
    ], ["France", "Japan", "Germany", "Poland", "Spain", "Portugal", "Egypt", "Italy"]),
    "first name": ([
        "When Mary and John went to the store, John gave a drink to Mary.", "Alice met Bob at the station.",
        "Sarah called David yesterday.", "Emma and Thomas walked to school.", "Peter thanked Lucy for the gift.",
    ], ["Mary", "John", "Alice", "Bob", "Sarah", "David", "Emma", "Thomas", "Peter", "Lucy"]),
    "number": ([
        "12 + 34 = 46.", "There are 17 apples in the basket.", "The bridge was built in 1854.",
        "She bought 3 tickets for 25 dollars each.", "Chapter 9 begins on page 81.",
    ], ["12", "34", "46", "17", "1854", "3", "25", "9", "81", "1", "4", "6", "7", "8", "5", "2"]),
    "animal": ([
        "The fox ran across the field.", "A small grey cat sat near the door.", "The horse likes to eat apples.",
        "An owl and a rabbit lived in the forest.", "The dog waited by the door.", "The whale swam past the boat.",
    ], ["fox", "cat", "horse", "owl", "rabbit", "dog", "whale"]),
    "month or day": ([
        "The meeting is on Monday, March 3.", "She was born on July 12.", "Every Friday the market opens early.",
        "The school year starts in September.", "We will see you next Tuesday.", "In December the days grow shorter.",
    ], ["Monday", "March", "July", "Friday", "September", "Tuesday", "December"]),
}


def demo_features(model, sae, probes: Optional[Dict[str, tuple]] = None) -> Dict[str, int]:
    """For each concept, the feature most selective for its words' tokens in the probe prompts.

    Score = mean activation on the concept's tokens minus mean activation on every other token
    of all probes, among features active on at least half of the concept's tokens. Position 0
    (the attention sink) is ignored.
    """
    probes = probes or DEMO_PROBES
    prompts = sorted({p for ps, _ in probes.values() for p in ps})
    acts = dict(zip(prompts, (a[1:] for a in feature_activations(model, sae, prompts))))
    strs = {p: model.to_str_tokens(p)[1:] for p in prompts}
    out = {}
    for concept, (ps, words) in probes.items():
        on, off = [], []
        for p in prompts:
            mask = torch.tensor([p in ps and s.strip() in words for s in strs[p]], dtype=torch.bool)
            on.append(acts[p][mask])
            off.append(acts[p][~mask])
        on_t, off_t = torch.cat(on), torch.cat(off)
        if len(on_t) == 0:
            continue
        frac = (on_t > 0).float().mean(0)
        score = on_t.mean(0) - off_t.mean(0)
        score[frac < 0.5] = float("-inf")
        out[concept] = int(score.argmax())
    return out


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepare", action="store_true", help="train and cache the default SAE unless already cached")
    args = ap.parse_args(argv)
    if not args.prepare:
        ap.print_help()
        return
    from lenswidget.errors import ModelNotAvailableError

    try:
        from lenswidget.loading import default_gguf_path

        default_gguf_path()
    except ModelNotAvailableError as exc:
        print(f"default SAE: skipped ({exc})")
        return
    t0 = time.perf_counter()
    folder = default_sae_dir()
    stats = json.loads((folder / "training_stats.json").read_text())
    print(f"default SAE: {folder} ({time.perf_counter() - t0:.1f} s; explained variance "
          f"{stats['explained_variance']}, L0 {stats['l0']}, dead {stats['dead_fraction']:.1%})")


if __name__ == "__main__":
    main()
