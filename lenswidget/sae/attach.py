"""How an SAE sits on a model's hook points (used by :class:`HookedSAETransformer`).

The SAE runs as a forward hook of its output hook point (``cfg.hook_name_out``, the input
hook for an SAE). That hook is a raw torch hook, not one of the model's hook handles, so
``model.reset_hooks()`` / ``model.hooks()`` never remove it; only ``reset_saes`` does. A
transcoder also captures its input at ``cfg.hook_name`` with a second raw hook.

Its hook points appear under the output hook's name, as in SAELens::

    blocks.3.hook_resid_post.hook_sae_input      the SAE's input (in the SAE's dtype)
    blocks.3.hook_resid_post.hook_sae_acts_pre   pre-activations   [batch, pos, d_sae]
    blocks.3.hook_resid_post.hook_sae_acts_post  feature activations
    blocks.3.hook_resid_post.hook_sae_recons     reconstruction
    blocks.3.hook_resid_post.hook_sae_error      activation - clean reconstruction (use_error_term)
    blocks.3.hook_resid_post.hook_sae_output     what flows on

The hook point itself (``blocks.3.hook_resid_post``) stays: hooks added to it later see the
SAE's output (add them with ``prepend=True`` to edit the SAE's input instead).

**Error term.** With ``use_error_term=True`` the output is
``activation + (recons_hooked - recons_clean) + (error_hooked - error)``, which equals the
activation bit for bit when no hook edits the SAE, and equals SAELens's
``recons_hooked + error_hooked`` otherwise. The clean reconstruction and the error are
computed without gradients, so gradients reach the features (and the error hook), not the
activation's identity path; this is SAELens's semantics.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn

from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h

__all__ = ["SAEAttachment", "SHARED_HOOKS", "OWN_HOOKS"]

SHARED_HOOKS = ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons")
OWN_HOOKS = ("hook_sae_error", "hook_sae_output")


class SAEAttachment(nn.Module):
    """One attached SAE: its settings, its error/output hook points and its torch hook handles.

    The SAE is kept out of the module tree (as in SAELens) so the model's ``state_dict`` and
    hook names do not change; its four encode/decode hook points are attached to the output
    hook point by :meth:`attach`.
    """

    def __init__(self, sae: Any, use_error_term: bool = False, exclude_special_tokens: Any = False):
        super().__init__()
        self.__dict__["sae"] = sae
        self.use_error_term = bool(use_error_term)
        self.exclude_special_tokens = exclude_special_tokens
        self.hook_sae_error = HookPoint()
        self.hook_sae_output = HookPoint()
        self.token_mask: Optional[torch.Tensor] = None
        self._captured: Optional[torch.Tensor] = None
        self._handles: list = []
        self._out_point: Optional[HookPoint] = None

    @property
    def hook_name(self) -> str:
        return self.sae.cfg.hook_name

    @property
    def hook_name_out(self) -> str:
        return self.sae.cfg.hook_name_out

    # ------------------------------------------------------------------ attach / detach
    def attach(self, in_point: HookPoint, out_point: HookPoint) -> None:
        """Register the hook points under ``out_point`` and the raw hooks (call model.setup() after)."""
        for name in SHARED_HOOKS:
            out_point.add_module(name, getattr(self.sae, name))
        for name in OWN_HOOKS:
            out_point.add_module(name, getattr(self, name))
        if in_point is not out_point:
            self._handles.append(in_point.register_forward_hook(self._capture, prepend=False))
        # runs after the hooks already on the point, before any added later
        self._handles.append(out_point.register_forward_hook(self._run, prepend=False))
        self._out_point = out_point
        move_last = getattr(out_point, "_move_bwd_wrappers_last", None)
        if move_last is not None:  # backward-hook wrappers must see the SAE's output
            move_last()

    def detach(self) -> None:
        """Remove the raw hooks and the child hook points (call model.setup() and sae.setup() after)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        point = self._out_point
        if point is not None:
            for name in SHARED_HOOKS + OWN_HOOKS:
                point._modules.pop(name, None)
        self._out_point = None
        self._captured = None
        self.token_mask = None

    # ------------------------------------------------------------------ the forward hooks
    def _capture(self, module, inputs, output):
        self._captured = output
        return None

    def _run(self, module, inputs, output):
        x = output
        if self._captured is not None:
            x, self._captured = self._captured, None
        elif self.sae.cfg.is_transcoder:
            raise RuntimeError(
                f"transcoder {self.hook_name!r} -> {self.hook_name_out!r}: the input hook did not run before "
                "the output hook in this forward pass")
        return self.apply_sae(x, output)

    def _hooked(self) -> bool:
        sae = self.sae
        return any(getattr(sae, n)._forward_hooks or getattr(sae, n)._forward_pre_hooks for n in SHARED_HOOKS)

    def _reconstruct(self, sae_in: torch.Tensor, like: torch.Tensor, hooks: bool) -> torch.Tensor:
        sae = self.sae
        out = sae.decode(sae.encode(sae_in, hooks=hooks), hooks=hooks)
        if sae.cfg.has_skip:
            out = out + sae.skip(sae_in)
        return out.to(like.dtype)

    def apply_sae(self, sae_in: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """What flows on from the output hook: the reconstruction (+ error term), hooked."""
        mask = self.token_mask
        if mask is not None:
            mask = mask.to(original.device)
            while mask.dim() < original.dim():
                mask = mask.unsqueeze(-1)
        if not self.use_error_term:
            out = self._reconstruct(sae_in, original, hooks=True)
        else:
            hooked = self._hooked()
            if hooked:
                with torch.no_grad():
                    clean = self._reconstruct(sae_in, original, hooks=False)
            recons = self._reconstruct(sae_in, original, hooks=True)
            if not hooked:
                clean = recons.detach()
            with torch.no_grad():
                err = original - clean
                if mask is not None:
                    err = torch.where(mask, torch.zeros_like(err), err)
            out = original.detach() + (recons - clean)
            point = self.hook_sae_error
            if point._forward_hooks or point._forward_pre_hooks:
                ref = err.clone()  # hooks may edit the error in place
                out = out + (point(err) - ref)
        if mask is not None:
            out = torch.where(mask, original, out)
        return _h(self.hook_sae_output, out)
