"""Hook points and the root module that manages them (TransformerLens-compatible).

A :class:`HookPoint` is an identity module placed on every interesting activation. Hook
functions ``fn(activation, hook) -> tensor | None`` run through PyTorch forward hooks, so a
HookPoint with no hooks costs one cheap module call.

>>> import torch
>>> class Tiny(HookedRootModule):
...     def __init__(self):
...         super().__init__()
...         self.hook_x = HookPoint()
...         self.setup()
...     def forward(self, x):
...         return self.hook_x(x) * 2
>>> m = Tiny()
>>> m.run_with_hooks(torch.ones(2), fwd_hooks=[("hook_x", lambda a, hook: a + 1)])
tensor([4., 4.])
>>> out, cache = m.run_with_cache(torch.ones(2))
>>> list(cache)
['hook_x']
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from lenswidget.errors import InvalidOptionError, ShapeMismatchError, UnknownNameError

HookFunction = Callable[..., Optional[torch.Tensor]]
NamesFilter = Union[None, str, Sequence[str], Callable[[str], bool]]
_DIRS = ("fwd", "bwd")


@dataclass
class LensHandle:
    """A registered hook: the torch handle, whether it is permanent and its context level."""

    hook: RemovableHandle
    is_permanent: bool = False
    context_level: Optional[int] = None
    active: bool = field(default=True, repr=False)

    def remove(self) -> None:
        self.active = False
        self.hook.remove()


def _check_dir(dir: str, allow_both: bool = False) -> None:
    valid = _DIRS + (("both",) if allow_both else ())
    if dir not in valid:
        raise InvalidOptionError("hook direction", dir, valid)


class HookPoint(nn.Module):
    """Identity module that exposes an activation to hook functions.

    ``hook.name`` is set by :meth:`HookedRootModule.setup`; ``hook.ctx`` is a scratch dict that
    hook functions may use (cleared by ``clear_context``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.fwd_hooks: list[LensHandle] = []
        self.bwd_hooks: list[LensHandle] = []
        self.ctx: dict = {}
        self.name: Optional[str] = None

    def forward(self, x: Any) -> Any:
        return x

    def has_hooks(self, dir: str = "fwd") -> bool:
        """True if a hook of that direction ("fwd", "bwd" or "both") is attached. Cheap.

        "both" also counts raw torch forward hooks registered outside ``add_hook``.
        """
        if dir == "fwd":
            return bool(self.fwd_hooks)
        if dir == "bwd":
            return bool(self.bwd_hooks)
        return bool(self._forward_hooks) or bool(self._forward_pre_hooks)

    def add_perma_hook(self, hook: HookFunction, dir: str = "fwd") -> None:
        self.add_hook(hook, dir=dir, is_permanent=True)

    def add_hook(
        self,
        hook: HookFunction,
        dir: str = "fwd",
        is_permanent: bool = False,
        level: Optional[int] = None,
        prepend: bool = False,
    ) -> LensHandle:
        """Attach ``hook(activation, hook=self)``; a returned tensor replaces the activation.

        Backward hooks receive the gradient of this activation and may return a replacement.
        """
        _check_dir(dir)
        if not callable(hook):
            raise TypeError(f"hook for {self.name!r} must be callable, got {type(hook).__name__}")
        if dir == "fwd":

            def fwd_wrapper(module, module_input, module_output):
                return hook(module_output, hook=self)

            handle = LensHandle(self.register_forward_hook(fwd_wrapper, prepend=prepend), is_permanent, level)
            if prepend:
                self.fwd_hooks.insert(0, handle)
            else:
                self.fwd_hooks.append(handle)
                self._move_bwd_wrappers_last()
            return handle

        lens_handle = LensHandle(None, is_permanent, level)  # type: ignore[arg-type]

        def bwd_wrapper(module, module_input, module_output):
            if isinstance(module_output, torch.Tensor) and module_output.requires_grad:

                def on_grad(grad):
                    if lens_handle.active:
                        return hook(grad, hook=self)
                    return None

                module_output.register_hook(on_grad)
            return None

        lens_handle.hook = self.register_forward_hook(bwd_wrapper)
        if prepend:
            self.bwd_hooks.insert(0, lens_handle)
            self._move_bwd_wrappers_last()
        else:
            self.bwd_hooks.append(lens_handle)
        return lens_handle

    def _move_bwd_wrappers_last(self) -> None:
        # Gradient hooks must attach to the final output, after every forward hook has run.
        if not self.bwd_hooks:
            return
        for h in self.bwd_hooks:
            if h.hook.id in self._forward_hooks:
                self._forward_hooks.move_to_end(h.hook.id)

    def remove_hooks(self, dir: str = "fwd", including_permanent: bool = False, level: Optional[int] = None) -> None:
        """Remove hooks of direction ``dir`` ("fwd", "bwd", "both"), optionally only one level."""
        _check_dir(dir, allow_both=True)
        if not self.fwd_hooks and not self.bwd_hooks:  # the common case: nothing attached
            return

        def keep(h: LensHandle) -> bool:
            drop = (including_permanent or not h.is_permanent) and (level is None or h.context_level == level)
            if drop:
                h.remove()
            return not drop

        if dir in ("fwd", "both"):
            self.fwd_hooks = [h for h in self.fwd_hooks if keep(h)]
        if dir in ("bwd", "both"):
            self.bwd_hooks = [h for h in self.bwd_hooks if keep(h)]

    def clear_context(self) -> None:
        self.ctx = {}

    def layer(self) -> int:
        """The block index for names like ``blocks.3.attn.hook_z``."""
        if self.name is None:
            raise ValueError("HookPoint has no name; call setup() on the root module first")
        parts = self.name.split(".")
        if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit():
            raise ValueError(f"hook {self.name!r} is not inside a block")
        return int(parts[1])

    def extra_repr(self) -> str:
        return f"name={self.name!r}" if self.name else ""


def hook_or_pass(hook_point: HookPoint, x: Any) -> Any:
    """``hook_point(x)`` when it has hooks, else ``x`` itself (skips the module-call overhead).

    Components call their hook points through this on the hot path.
    """
    if hook_point._forward_hooks or hook_point._forward_pre_hooks:
        return hook_point(x)
    return x


def _normalize_filter(names_filter: NamesFilter, valid: dict) -> Callable[[str], bool]:
    """Turn a str / list / callable / None filter into a predicate; unknown names raise."""
    if names_filter is None:
        return lambda name: True
    if isinstance(names_filter, str):
        names = [names_filter]
    elif callable(names_filter):
        return names_filter
    else:
        names = list(names_filter)
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"names_filter entries must be str, got {type(n).__name__}")
        if n not in valid:
            raise UnknownNameError("hook", n, valid.keys(), hint=_optional_hint(n))
    chosen = set(names)
    return lambda name: name in chosen


def _optional_hint(name: str) -> str:
    hints = {
        "hook_result": "call model.set_use_attn_result(True) to enable per-head results",
        "hook_q_input": "call model.set_use_split_qkv_input(True)",
        "hook_k_input": "call model.set_use_split_qkv_input(True)",
        "hook_v_input": "call model.set_use_split_qkv_input(True)",
        "hook_attn_in": "call model.set_use_attn_in(True)",
        "hook_mlp_in": "call model.set_use_hook_mlp_in(True)",
        "hook_tokens": "set cfg.use_hook_tokens=True when building the model",
    }
    for suffix, hint in hints.items():
        if str(name).endswith(suffix):
            return hint
    return ""


def _pos_dim(name: str) -> int:
    if name.endswith(("hook_q", "hook_k", "hook_v", "hook_z", "hook_result", "hook_rot_q", "hook_rot_k")):
        return -3
    if name.endswith(("hook_q_input", "hook_k_input", "hook_v_input", "hook_attn_in")):
        return -3
    return -2


class HookedRootModule(nn.Module):
    """Root module: finds its HookPoints (``setup``) and adds, runs and removes hooks.

    Subclasses build their modules, then call ``self.setup()``.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        self.is_caching = False
        self.context_level = 0
        self.hook_dict: dict[str, HookPoint] = {}
        self.mod_dict: dict[str, nn.Module] = {}

    # ------------------------------------------------------------------ discovery
    def setup(self) -> None:
        """Name every HookPoint and build ``mod_dict`` and ``hook_dict``."""
        self.mod_dict = {}
        self.hook_dict = {}
        for name, module in self.named_modules():
            if name == "":
                continue
            module.name = name
            self.mod_dict[name] = module
            if isinstance(module, HookPoint):
                self.hook_dict[name] = module

    def hook_points(self):
        return self.hook_dict.values()

    def _resolve(self, name: Union[str, Callable[[str], bool]]) -> list[tuple[str, HookPoint]]:
        """Hook points selected by a name, a list of names or a predicate."""
        if isinstance(name, str):
            hp = self.hook_dict.get(name)
            if hp is None:
                raise UnknownNameError("hook", name, self.hook_dict.keys(), hint=_optional_hint(name))
            return [(name, hp)]
        if callable(name):
            return [(n, hp) for n, hp in self.hook_dict.items() if name(n)]
        if isinstance(name, (list, tuple)):
            out: list[tuple[str, HookPoint]] = []
            for n in name:
                out.extend(self._resolve(n))
            return out
        raise TypeError(f"hook name must be a str or a callable, got {type(name).__name__}")

    # ------------------------------------------------------------------ add / remove
    def check_hooks_to_add(
        self,
        hook_point: HookPoint,
        hook_point_name: str,
        hook: HookFunction,
        dir: str = "fwd",
        is_permanent: bool = False,
        prepend: bool = False,
    ) -> None:
        """Override to veto hooks; raise to refuse one."""

    def add_hook(
        self,
        name: Union[str, Callable[[str], bool]],
        hook: HookFunction,
        dir: str = "fwd",
        is_permanent: bool = False,
        level: Optional[int] = None,
        prepend: bool = False,
    ) -> None:
        """Add ``hook`` to the hook point ``name`` (or every hook point where ``name(n)`` is True)."""
        _check_dir(dir)
        targets = self._resolve(name)
        for n, hp in targets:
            self.check_hooks_to_add(hp, n, hook, dir=dir, is_permanent=is_permanent, prepend=prepend)
        added: list[LensHandle] = []
        try:
            for n, hp in targets:
                added.append(hp.add_hook(hook, dir=dir, is_permanent=is_permanent, level=level, prepend=prepend))
        except BaseException:
            for h in added:
                h.remove()
            for _, hp in targets:
                hp.fwd_hooks = [h for h in hp.fwd_hooks if h.active]
                hp.bwd_hooks = [h for h in hp.bwd_hooks if h.active]
            raise

    def add_perma_hook(self, name: Union[str, Callable[[str], bool]], hook: HookFunction, dir: str = "fwd") -> None:
        self.add_hook(name, hook, dir=dir, is_permanent=True)

    def remove_hook(
        self, name: Union[str, Callable[[str], bool]], dir: str = "both", including_permanent: bool = False
    ) -> None:
        """Remove the hooks on one hook point (or those matching a predicate)."""
        for _, hp in self._resolve(name):
            hp.remove_hooks(dir, including_permanent=including_permanent)

    def remove_all_hook_fns(
        self, direction: str = "both", including_permanent: bool = False, level: Optional[int] = None
    ) -> None:
        _check_dir(direction, allow_both=True)
        for hp in self.hook_dict.values():
            hp.remove_hooks(direction, including_permanent=including_permanent, level=level)

    def clear_contexts(self) -> None:
        for hp in self.hook_dict.values():
            hp.clear_context()

    def reset_hooks(
        self,
        clear_contexts: bool = True,
        direction: str = "both",
        including_permanent: bool = False,
        level: Optional[int] = None,
    ) -> None:
        """Remove (non-permanent) hooks everywhere; optionally clear every ``hook.ctx``."""
        if clear_contexts:
            self.clear_contexts()
        self.remove_all_hook_fns(direction, including_permanent, level=level)
        self.is_caching = False

    def _all_handles(self) -> Iterator[LensHandle]:
        for hp in self.hook_dict.values():
            yield from hp.fwd_hooks
            yield from hp.bwd_hooks

    # ------------------------------------------------------------------ scoped hooks
    @contextmanager
    def hooks(
        self,
        fwd_hooks: Iterable = (),
        bwd_hooks: Iterable = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
    ):
        """Context manager: hooks added on entry are removed on exit (and always on error).

        >>> with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", fn)]):  # doctest: +SKIP
        ...     model(tokens)
        """
        fwd_hooks, bwd_hooks = list(fwd_hooks or ()), list(bwd_hooks or ())
        # Validate every name first so that nothing is added when one is wrong.
        for pair in fwd_hooks + bwd_hooks:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"hooks must be (name, function) pairs, got {pair!r}")
            self._resolve(pair[0])
        self.context_level += 1
        level = self.context_level
        failed = True
        try:
            for name, fn in fwd_hooks:
                self.add_hook(name, fn, dir="fwd", level=level)
            for name, fn in bwd_hooks:
                self.add_hook(name, fn, dir="bwd", level=level)
            yield self
            failed = False
        finally:
            if reset_hooks_end or failed:
                self.remove_all_hook_fns("both", including_permanent=False, level=level)
                if clear_contexts:
                    self.clear_contexts()
            self.context_level -= 1

    def run_with_hooks(
        self,
        *model_args: Any,
        fwd_hooks: Iterable = (),
        bwd_hooks: Iterable = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        **model_kwargs: Any,
    ):
        """Run the model with temporary hooks; they are removed afterwards (even on error)."""
        bwd_hooks = list(bwd_hooks or ())
        if bwd_hooks and reset_hooks_end:
            logging.warning(
                "run_with_hooks removes backward hooks when it returns, before any backward pass; "
                "pass reset_hooks_end=False or use model.hooks(...) to keep them for a backward pass."
            )
        with self.hooks(fwd_hooks, bwd_hooks, reset_hooks_end, clear_contexts):
            return self(*model_args, **model_kwargs)

    # ------------------------------------------------------------------ caching
    def get_caching_hooks(
        self,
        names_filter: NamesFilter = None,
        incl_bwd: bool = False,
        device: Any = None,
        remove_batch_dim: bool = False,
        cache: Optional[dict] = None,
        pos_slice: Any = None,
    ) -> tuple[dict, list, list]:
        """Hooks that store activations into ``cache`` (returned with the fwd and bwd hook lists).

        Each selected hook point gets exactly one caching hook per direction; gradients are
        stored as ``<name>_grad``.
        """
        cache = {} if cache is None else cache
        predicate = _normalize_filter(names_filter, self.hook_dict)
        slicer = _make_pos_slicer(pos_slice)

        plain = device is None and not remove_batch_dim and slicer is None

        def save(tensor: torch.Tensor, key: str, name: str) -> None:
            t = tensor.detach()
            if device is not None:
                t = t.to(device)
            if remove_batch_dim:
                if t.shape[0] != 1:
                    raise ShapeMismatchError(
                        f"remove_batch_dim=True needs batch size 1, but {name} has batch size {t.shape[0]}"
                    )
                t = t[0]
            if slicer is not None:
                dim = _pos_dim(name)
                if t.dim() >= -dim:
                    t = slicer(t, dim)
            cache[key] = t

        def make(name: str, key: str):
            if plain:  # the common case: one detach and one dict store per activation

                def fast(tensor, hook):
                    cache[key] = tensor.detach()

                return fast
            return lambda tensor, hook: save(tensor, key, name)

        fwd, bwd = [], []
        for name in self.hook_dict:
            if predicate(name):
                fwd.append((name, make(name, name)))
                if incl_bwd:
                    bwd.append((name, make(name, name + "_grad")))
        return cache, fwd, bwd

    def add_caching_hooks(
        self,
        names_filter: NamesFilter = None,
        incl_bwd: bool = False,
        device: Any = None,
        remove_batch_dim: bool = False,
        cache: Optional[dict] = None,
    ) -> dict:
        """Add (non-permanent) caching hooks and return the dict they fill; remove with reset_hooks()."""
        cache, fwd, bwd = self.get_caching_hooks(names_filter, incl_bwd, device, remove_batch_dim, cache=cache)
        self.is_caching = True
        for name, fn in fwd:
            self.add_hook(name, fn, "fwd")
        for name, fn in bwd:
            self.add_hook(name, fn, "bwd")
        return cache

    def cache_some(
        self,
        cache: dict,
        names: Callable[[str], bool],
        incl_bwd: bool = False,
        device: Any = None,
        remove_batch_dim: bool = False,
    ) -> None:
        """Add (non-permanent) caching hooks to the selected hook points, writing into ``cache``."""
        self.add_caching_hooks(names, incl_bwd, device, remove_batch_dim, cache=cache)

    def cache_all(self, cache: dict, incl_bwd: bool = False, device: Any = None, remove_batch_dim: bool = False) -> None:
        self.cache_some(cache, lambda name: True, incl_bwd, device, remove_batch_dim)

    def run_with_cache(
        self,
        *model_args: Any,
        names_filter: NamesFilter = None,
        device: Any = None,
        remove_batch_dim: bool = False,
        incl_bwd: bool = False,
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        pos_slice: Any = None,
        **model_kwargs: Any,
    ):
        """Run the model and return ``(output, cache_dict)``.

        With ``incl_bwd=True`` the output must be a scalar; ``backward()`` is called on it and
        gradients are cached as ``<name>_grad``.
        """
        cache, fwd, bwd = self.get_caching_hooks(
            names_filter, incl_bwd, device, remove_batch_dim=remove_batch_dim, pos_slice=pos_slice
        )
        with self.hooks(fwd, bwd, reset_hooks_end=reset_hooks_end, clear_contexts=clear_contexts):
            if incl_bwd:
                with torch.enable_grad():
                    out = self(*model_args, **model_kwargs)
                    if not (isinstance(out, torch.Tensor) and out.numel() == 1 and out.requires_grad):
                        raise ShapeMismatchError(
                            "incl_bwd=True needs a scalar output that requires grad; pass return_type='loss' "
                            f"(got {type(out).__name__} of shape {getattr(out, 'shape', None)})"
                        )
                    out.backward()
            else:
                out = self(*model_args, **model_kwargs)
        return out, cache


def _make_pos_slicer(pos_slice: Any):
    """A function ``(tensor, dim) -> tensor`` for pos_slice, or None for no slicing."""
    if pos_slice is None:
        return None
    if hasattr(pos_slice, "apply"):
        return lambda t, dim: pos_slice.apply(t, dim=dim)
    try:
        from lenswidget.utils import Slice  # owned by the cache module; TL-compatible

        s = Slice(pos_slice)
        return lambda t, dim: s.apply(t, dim=dim)
    except ImportError:  # pragma: no cover - fallback while utils is missing
        pass
    if isinstance(pos_slice, int):
        return lambda t, dim: t.narrow(dim % t.dim(), pos_slice % t.shape[dim], 1).squeeze(dim % t.dim())
    if isinstance(pos_slice, (tuple, list)) and len(pos_slice) <= 3 and all(
        isinstance(v, (int, type(None))) for v in pos_slice
    ):
        sl = slice(*pos_slice)
    elif isinstance(pos_slice, slice):
        sl = pos_slice
    else:
        idx = torch.as_tensor(pos_slice)
        return lambda t, dim: t.index_select(dim % t.dim(), idx.to(t.device))
    return lambda t, dim: t[(slice(None),) * (dim % t.dim()) + (sl,)]


__all__ = ["HookPoint", "HookedRootModule", "LensHandle", "HookFunction", "NamesFilter", "hook_or_pass"]
