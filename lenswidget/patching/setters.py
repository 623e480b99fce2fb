"""Patch setters: write the clean activation into the corrupted one at an index.

A setter is ``setter(corrupted_activation, index, clean_activation) -> activation`` where
``index`` is one row of the sweep's index table (its first entry is always the layer). It
may edit ``corrupted_activation`` in place and return it.

The built-in setters below also carry a *region* (:func:`region_of`): the part of the
activation (after the batch dim) that the index addresses. The fast engine uses it to skip
applying the setter cell by cell; a custom setter still works, through the generic path.

>>> import torch
>>> corr, clean = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
>>> layer_pos_patch_setter(corr, [0, 1], clean)[0, :, 0]
tensor([0., 1., 0.])
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

__all__ = [
    "layer_pos_patch_setter",
    "layer_pos_head_vector_patch_setter",
    "layer_head_vector_patch_setter",
    "layer_head_pattern_patch_setter",
    "layer_head_pos_pattern_patch_setter",
    "layer_head_dest_src_pos_pattern_patch_setter",
    "region_of",
]

ALL = slice(None)


def _check_len(index: Sequence, n: int, what: str) -> None:
    if len(index) != n:
        from ..errors import ShapeMismatchError

        raise ShapeMismatchError(f"{what} expects an index of {n} entries, got {list(index)!r}")


def layer_pos_patch_setter(corrupted_activation, index, clean_activation):
    """Index ``(layer, pos)``: patch every feature at one position (resid, attn_out, mlp_out)."""
    _check_len(index, 2, "layer_pos_patch_setter")
    _, pos = index
    corrupted_activation[:, pos, ...] = clean_activation[:, pos, ...]
    return corrupted_activation


def layer_pos_head_vector_patch_setter(corrupted_activation, index, clean_activation):
    """Index ``(layer, pos, head)`` on a ``[batch, pos, head, d_head]`` activation (z, q, k, v)."""
    _check_len(index, 3, "layer_pos_head_vector_patch_setter")
    _, pos, head = index
    corrupted_activation[:, pos, head] = clean_activation[:, pos, head]
    return corrupted_activation


def layer_head_vector_patch_setter(corrupted_activation, index, clean_activation):
    """Index ``(layer, head)`` on a ``[batch, pos, head, d_head]`` activation, every position."""
    _check_len(index, 2, "layer_head_vector_patch_setter")
    _, head = index
    corrupted_activation[:, :, head] = clean_activation[:, :, head]
    return corrupted_activation


def layer_head_pattern_patch_setter(corrupted_activation, index, clean_activation):
    """Index ``(layer, head)`` on a ``[batch, head, dest, src]`` pattern: the whole head."""
    _check_len(index, 2, "layer_head_pattern_patch_setter")
    _, head = index
    corrupted_activation[:, head, :, :] = clean_activation[:, head, :, :]
    return corrupted_activation


def layer_head_pos_pattern_patch_setter(corrupted_activation, index, clean_activation):
    """Index ``(layer, head, dest)`` on a pattern: one destination row."""
    _check_len(index, 3, "layer_head_pos_pattern_patch_setter")
    _, head, dest = index
    corrupted_activation[:, head, dest, :] = clean_activation[:, head, dest, :]
    return corrupted_activation


def layer_head_dest_src_pos_pattern_patch_setter(corrupted_activation, index, clean_activation):
    """Index ``(layer, head, dest, src)`` on a pattern: one entry."""
    _check_len(index, 4, "layer_head_dest_src_pos_pattern_patch_setter")
    _, head, dest, src = index
    corrupted_activation[:, head, dest, src] = clean_activation[:, head, dest, src]
    return corrupted_activation


# setter -> function(index) -> region tuple over the activation's non-batch dims
_REGIONS: dict = {
    layer_pos_patch_setter: lambda i: (int(i[1]),),
    layer_pos_head_vector_patch_setter: lambda i: (int(i[1]), int(i[2])),
    layer_head_vector_patch_setter: lambda i: (ALL, int(i[1])),
    layer_head_pattern_patch_setter: lambda i: (int(i[1]),),
    layer_head_pos_pattern_patch_setter: lambda i: (int(i[1]), int(i[2])),
    layer_head_dest_src_pos_pattern_patch_setter: lambda i: (int(i[1]), int(i[2]), int(i[3])),
}


def region_of(setter: Callable, index: Sequence) -> Optional[Tuple]:
    """The region a built-in setter writes for ``index`` (None for a custom setter).

    >>> region_of(layer_head_vector_patch_setter, [3, 1])
    (slice(None, None, None), 1)
    """
    fn = _REGIONS.get(setter)
    return None if fn is None else fn(index)
