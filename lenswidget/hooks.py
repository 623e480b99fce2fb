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

    def has_hooks(self, dir: str = "both", including_permanent: bool = True, level: Optional[int] = None) -> bool:
        """True if a hook of direction ``dir`` ("fwd", "bwd" or "both") is attached. Cheap.

        ``including_permanent=False`` ignores permanent hooks; ``level`` counts only the hooks
        of that ``hooks()`` context level.
        """
        _check_dir(dir, allow_both=True)
        handles = (self.fwd_hooks if dir != "bwd" else []) + (self.bwd_hooks if dir != "fwd" else [])
        return any(
            (including_permanent or not h.is_permanent) and (level is None or h.context_level == level)
            for h in handles
        )

    def add_perma_hook(self, hook: HookFunction, dir: str = "fwd") -> None:
        self.add_hook(hook, dir=dir, is_permanent=True)

    def add_hook(
        self,
        hook: HookFunction,
        dir: str = "fwd",
        is_permanent: bool = False,
        level: Optional[int] = None,
        prepend: bool = False,
        alias_names: Optional[Sequence[str]] = None,
    ) -> LensHandle:
        """Attach ``hook(activation, hook=self)``; a returned tensor replaces the activation.

        Backward hooks receive the gradient of this activation and may return a replacement.
        With ``alias_names`` the hook runs once per alias and sees a view of this hook point
        whose ``name`` is that alias (each call gets the previous call's result).
        """
        _check_dir(dir)
        if not callable(hook):
            raise TypeError(f"hook for {self.name!r} must be callable, got {type(hook).__name__}")
        if alias_names is not None:
            hook = _aliased(hook, self, list(alias_names))
        if dir == "fwd":

            def fwd_wrapper(module, module_input, module_output):
                out = hook(module_output, hook=self)
                if out is not None and isinstance(out, torch.Tensor) and isinstance(module_output, torch.Tensor):
                    if out.shape != module_output.shape:
                        raise _wrong_shape(self.name, hook, out.shape, module_output.shape)
                return out

            handle = LensHandle(self.register_forward_hook(fwd_wrapper, prepend=prepend), is_permanent, level)
            if prepend:
                self.fwd_hooks.insert(0, handle)
            else:
                self.fwd_hooks.append(handle)
                self._move_bwd_wrappers_last()
            return handle

        lens_handle = LensHandle(None, is_permanent, level)  # type: ignore[arg-type]

        def on_grad(grad):
            if lens_handle.active:
                return hook(grad, hook=self)
            return None

        def bwd_wrapper(module, module_input, module_output):
            if isinstance(module_output, torch.Tensor) and module_output.requires_grad:
                # A fresh view per hook point (shared by its backward hooks): gradient hooks then
                # fire in reverse forward order, as with TransformerLens's module backward
                # hooks, even when two hook points see the same tensor (resid_post/resid_pre).
                out = module_output
                if getattr(out, "_lw_grad_point", None) is not self:
                    out = module_output.view_as(module_output)
                    out._lw_grad_point = self
                out.register_hook(on_grad)
                return out
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


class _AliasedHookPoint:
    """A hook point seen under another name (``add_hook(..., alias_names=...)``)."""

    def __init__(self, name: str, target: "HookPoint"):
        self.name, self._target = name, target

    @property
    def ctx(self) -> dict:
        return self._target.ctx

    def layer(self) -> int:
        return HookPoint.layer(self)  # type: ignore[arg-type]


def _aliased(hook: HookFunction, point: "HookPoint", names: list[str]) -> HookFunction:
    views = [_AliasedHookPoint(n, point) for n in names]

    def run_aliases(tensor, hook=None):
        changed = False
        for view in views:
            out = hook_fn(tensor, hook=view)
            if out is not None:
                tensor, changed = out, True
        return tensor if changed else None

    hook_fn = hook
    run_aliases.__name__ = getattr(hook, "__name__", type(hook).__name__)
    return run_aliases


def _wrong_shape(name: Optional[str], hook: Any, got: torch.Size, want: torch.Size) -> ShapeMismatchError:
    fn = getattr(hook, "__name__", None) or type(hook).__name__
    return ShapeMismatchError(
        f"hook {fn!r} on {name!r} returned a tensor of shape {tuple(got)}, but the activation has shape "
        f"{tuple(want)}; a forward hook must return a tensor of the same shape (or None to keep the activation)"
    )


def hook_or_pass(hook_point: HookPoint, x: Any) -> Any:
    """``hook_point(x)`` when it has hooks, else ``x`` itself (skips the module-call overhead).

    Components call their hook points through this on the hot path.
    """
    if hook_point._forward_hooks or hook_point._forward_pre_hooks:
        return hook_point(x)
    return x


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

    def check_and_add_hook(
        self,
        hook_point: HookPoint,
        hook_point_name: str,
        hook: HookFunction,
        dir: str = "fwd",
        is_permanent: bool = False,
        level: Optional[int] = None,
        prepend: bool = False,
    ) -> None:
        """Run :meth:`check_hooks_to_add`, then add ``hook`` to ``hook_point``."""
        self.check_hooks_to_add(hook_point, hook_point_name, hook, dir=dir, is_permanent=is_permanent, prepend=prepend)
        hook_point.add_hook(hook, dir=dir, is_permanent=is_permanent, level=level, prepend=prepend)

    def list_hooks(
        self, name_filter: NamesFilter = None, dir: str = "both", including_permanent: bool = True
    ) -> dict[str, list[LensHandle]]:
        """The attached hooks by hook name (hook points without any are left out)."""
        _check_dir(dir, allow_both=True)
        out: dict[str, list[LensHandle]] = {}
        for name in self._cache_names(name_filter) if name_filter is not None else self.hook_dict:
            hp = self.hook_dict[name]
            handles = (hp.fwd_hooks if dir != "bwd" else []) + (hp.bwd_hooks if dir != "fwd" else [])
            handles = [h for h in handles if including_permanent or not h.is_permanent]
            if handles:
                out[name] = handles
        return out

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
    def _cache_names(self, names_filter: NamesFilter) -> list[str]:
        """The hook names a names_filter selects, in hook_dict order (unknown listed names raise)."""
        if names_filter is None:
            return list(self.hook_dict)
        if isinstance(names_filter, str) or not callable(names_filter):
            chosen = {names_filter} if isinstance(names_filter, str) else set(_check_names(names_filter, self.hook_dict))
            return [n for n in self.hook_dict if n in chosen]
        return [n for n in self.hook_dict if names_filter(n)]

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

        Each selected hook point gets one caching hook per direction (the same callable, which
        reads the key from ``hook.name``); gradients are stored as ``<name>_grad``.
        """
        cache = {} if cache is None else cache
        names = self._cache_names(names_filter)
        self.is_caching = True
        fwd_rec = ActivationRecorder(cache, device, remove_batch_dim, pos_slice)
        fwd = [(name, fwd_rec) for name in names]
        bwd: list = []
        if incl_bwd:
            bwd_rec = ActivationRecorder(cache, device, remove_batch_dim, pos_slice, suffix="_grad")
            bwd = [(name, bwd_rec) for name in names]
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
        cache_device: Any = None,
        **model_kwargs: Any,
    ):
        """Run the model and return ``(output, cache_dict)``.

        ``device`` (alias ``cache_device``) moves each activation there as it is cached, during
        the forward, so a model's activations never pile up on its own device. ``pos_slice``
        keeps the position axis (``-1`` caches ``[batch, 1, ...]``, as in TransformerLens).
        With ``incl_bwd=True`` the output must be a scalar; ``backward()`` is called on it and
        gradients are cached as ``<name>_grad``.
        """
        if cache_device is not None:
            if device is not None and torch.device(device) != torch.device(cache_device):
                raise InvalidOptionError("cache_device (an alias of device; pass one)", cache_device, [device])
            device = cache_device
        names = self._cache_names(names_filter)
        cache: dict = {}
        recorder = ActivationRecorder(cache, device, remove_batch_dim, pos_slice)
        bwd = []
        if incl_bwd:
            grad_rec = ActivationRecorder(cache, device, remove_batch_dim, pos_slice, suffix="_grad")
            bwd = [(name, grad_rec) for name in names]
        self.is_caching = True
        from lenswidget.allocator import keep_freed_memory

        keep_freed_memory()
        with self.hooks((), bwd, reset_hooks_end=reset_hooks_end, clear_contexts=clear_contexts):
            # One shared recorder registered straight on each hook point (no wrapper per hook).
            level = self.context_level
            hook = recorder.torch_hook
            for name in names:
                hp = self.hook_dict[name]
                hp.fwd_hooks.append(LensHandle(hp.register_forward_hook(hook), False, level))
                if hp.bwd_hooks:
                    hp._move_bwd_wrappers_last()
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


def _check_names(names: Iterable, valid: dict) -> list[str]:
    out = []
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"names_filter entries must be str, got {type(n).__name__}")
        if n not in valid:
            raise UnknownNameError("hook", n, valid.keys(), hint=_optional_hint(n))
        out.append(n)
    return out


_POS_DIM: dict[str, int] = {}


def _pos_dim(name: str) -> int:
    """Where the (query) position axis is, counted from the end, for the activation ``name``."""
    dim = _POS_DIM.get(name)
    if dim is None:
        leaf = name.rsplit(".", 1)[-1].removesuffix("_grad")
        if leaf in _HEAD_ACTS:
            dim = -3  # [batch, pos, head, d]
        elif leaf == "hook_tokens":
            dim = -1  # [batch, pos]
        else:
            dim = -2  # [batch, pos, d] and [batch, head, query_pos, key_pos]
        _POS_DIM[name] = dim
    return dim


_HEAD_ACTS = frozenset(
    "hook_" + a for a in ("q", "k", "v", "z", "result", "rot_q", "rot_k", "q_input", "k_input", "v_input", "attn_in")
)


class ActivationRecorder:
    """The caching hook: stores ``tensor.detach()`` under the hook's name (plus ``suffix``).

    One instance serves every hook point of a run; ``device`` moves each activation as it is
    stored, ``remove_batch_dim`` keeps element 0 of a batch of one, and ``pos_slice`` (a Slice
    input; an int keeps its axis, as in TransformerLens) slices the position axis.
    """

    __slots__ = ("cache", "device", "remove_batch_dim", "pos_slice", "suffix", "plain")

    def __init__(self, cache: dict, device: Any = None, remove_batch_dim: bool = False, pos_slice: Any = None,
                 suffix: str = ""):
        from lenswidget.utils import Slice

        self.cache = cache
        self.device = None if device is None else torch.device(device)
        self.remove_batch_dim = remove_batch_dim
        sl = Slice.unwrap(pos_slice)
        self.pos_slice = None if sl.mode == "identity" else sl
        self.suffix = suffix
        self.plain = self.device is None and not remove_batch_dim and self.pos_slice is None

    def __call__(self, tensor: torch.Tensor, hook: HookPoint) -> None:
        self.store(hook.name, tensor)

    def torch_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        """The same, as a raw torch forward hook (what run_with_cache registers)."""
        if self.plain:
            self.cache[module.name] = output.detach()
        else:
            self.store(module.name, output)

    def store(self, name: str, tensor: torch.Tensor) -> None:
        t = tensor.detach()
        if self.remove_batch_dim:
            if t.shape[0] != 1:
                raise ShapeMismatchError(
                    f"remove_batch_dim=True needs batch size 1, but {name} has batch size {t.shape[0]}"
                )
            t = t[0]
        if self.pos_slice is not None:
            dim = _pos_dim(name)
            if t.dim() >= -dim:
                t = self.pos_slice.apply(t, dim, what="pos_slice")
        if self.device is not None and t.device != self.device:
            t = t.to(self.device)
        self.cache[name + self.suffix] = t


__all__ = [
    "HookPoint", "HookedRootModule", "LensHandle", "HookFunction", "NamesFilter", "ActivationRecorder", "hook_or_pass",
]
