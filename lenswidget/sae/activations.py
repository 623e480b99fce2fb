"""Feature activations over many texts, in batches, stopping after the SAE's block.

>>> acts = feature_activations(model, sae, ["The fox ran.", "Paris is big."])          # doctest: +SKIP
>>> [a.shape for a in acts]                    # one [pos, d_sae] tensor per text     # doctest: +SKIP
>>> feature_activations(model, sae, corpus, features=[1412], batch_size=32)           # doctest: +SKIP

Activations do not depend on anything after the SAE's input hook, so each batch runs the model
only up to that block (``stop_at_layer``) and encodes the cached input without hooks. Texts are
right-padded in a batch (causal attention: padding never changes earlier positions) and each
result is cut to the text's own length. Position 0 (BOS, SmolLM2's attention sink) is included.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch

from lenswidget.errors import OutOfRangeError

__all__ = ["feature_activations"]


def feature_activations(
    model,
    sae,
    texts: Sequence[str],
    features: Optional[Sequence[int]] = None,
    batch_size: int = 16,
    on_progress: Optional[Callable[[int, int], None]] = None,
) -> List[torch.Tensor]:
    """Per text, ``[pos, d_sae]`` float32 activations (``[pos, len(features)]`` when ``features`` is given).

    ``on_progress(done, total)`` is called after each batch (e.g. to drive a progress bar).
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    if features is not None:
        features = [int(f) for f in features]
        for f in features:
            if not 0 <= f < sae.cfg.d_sae:
                raise OutOfRangeError("feature", f, 0, sae.cfg.d_sae - 1)
    hook = sae.cfg.hook_name
    parts = hook.split(".")
    stop = int(parts[1]) + 1 if parts[0] == "blocks" and parts[1].isdigit() else None
    idx = None if features is None else torch.tensor(features)
    out: List[torch.Tensor] = []
    for start in range(0, len(texts), max(1, int(batch_size))):
        chunk = texts[start:start + max(1, int(batch_size))]
        lengths = [model.to_tokens(t).shape[1] for t in chunk]
        tokens = model.to_tokens(chunk, padding_side="right")
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=[hook], stop_at_layer=stop)
            acts = sae.encode(cache[hook], hooks=False)
            if idx is not None:
                acts = acts[..., idx.to(acts.device)]
        acts = acts.float().cpu()
        out.extend(acts[i, :n] for i, n in enumerate(lengths))
        if on_progress is not None:
            on_progress(len(out), len(texts))
    return out
