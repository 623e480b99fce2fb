"""Version counters for memoising on tensors, safe under ``torch.inference_mode``."""

import torch


def tensor_version(t: torch.Tensor) -> int:
    """``t._version``; -1 for inference tensors, which have no counter (and are rebuilt per call).

    >>> with torch.inference_mode():
    ...     tensor_version(torch.zeros(2))
    -1
    """
    return -1 if t.is_inference() else t._version
