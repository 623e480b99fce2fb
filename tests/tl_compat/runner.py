"""Load a model with one library and run the differential cases on it.

Used in-process for lenswidget and, through ``tl_worker.py``, in the TransformerLens 3.9 venv.
Both libraries load the same local HF directory with ``from_pretrained(dir, hf_model=...,
tokenizer=...)`` (processed) or ``from_pretrained_no_processing`` (unprocessed). For
TransformerLens the official-name lookup is patched out, so a local directory goes through
its own config conversion, weight conversion and processing unchanged, and nothing is fetched.
"""

from __future__ import annotations

import time
import traceback
from types import SimpleNamespace
from typing import Any

import torch

from . import cases as case_module


def library(lib: str) -> SimpleNamespace:
    """The modules a case may use, for ``lib`` in ("lenswidget", "transformer_lens")."""
    if lib == "transformer_lens":
        import warnings

        warnings.simplefilter("ignore")
        import transformer_lens as tl
        import transformer_lens.loading_from_pretrained as loading
        import transformer_lens.patching as patching
        import transformer_lens.tools.analysis as analysis
        import transformer_lens.utils as utils

        loading.get_official_model_name = lambda name: name  # local directories, no hub
        return SimpleNamespace(lib=lib, HookedTransformer=tl.HookedTransformer, FactoredMatrix=tl.FactoredMatrix,
                               ActivationCache=tl.ActivationCache, utils=utils, patching=patching, analysis=analysis)
    import lenswidget as lw
    import lenswidget.tools.analysis as analysis

    return SimpleNamespace(lib=lib, HookedTransformer=lw.HookedTransformer, FactoredMatrix=lw.FactoredMatrix,
                           ActivationCache=lw.ActivationCache, utils=lw.utils, patching=lw.patching, analysis=analysis)


def load(libs: SimpleNamespace, model_dir: str, processed: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    HT = libs.HookedTransformer
    load_fn = HT.from_pretrained if processed else HT.from_pretrained_no_processing
    return load_fn(model_dir, hf_model=hf, tokenizer=tok, device="cpu").eval()


def _detach(x: Any) -> Any:
    """Results as plain data: tensors detached on the CPU, tuples kept, other objects as strings."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().clone()
    if isinstance(x, dict):
        return {str(k): _detach(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_detach(v) for v in x)
    if isinstance(x, list):
        return [_detach(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return f"<{type(x).__name__}>"


def run_cases(lib: str, family: str, model_dir: str, processed: bool, names=None) -> dict:
    """``{case: result}`` (an error becomes ``{"__error__": "Type: message"}``) plus ``__seconds__``."""
    libs = library(lib)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    if family != "smollm2":
        torch.set_num_threads(1)  # tiny models: one thread is faster, and steadier on a busy box
    try:
        return _run(libs, family, model_dir, processed, names)
    finally:
        torch.set_num_threads(threads)


def _run(libs, family, model_dir, processed, names) -> dict:
    t0 = time.perf_counter()
    model = load(libs, model_dir, processed)
    ctx = SimpleNamespace(**vars(libs), model=model, family=family, processed=processed, memo={})
    out: dict = {}
    timings: dict = {}
    with torch.no_grad():
        for name in names if names is not None else case_module.selected(family, processed):
            fn = case_module.CASES[name][0]
            t = time.perf_counter()
            try:
                out[name] = _detach(fn(ctx))
            except Exception as exc:  # recorded: the other library must fail the same way
                out[name] = {"__error__": f"{type(exc).__name__}: {exc}"[:500],
                             "__traceback__": traceback.format_exc()[-2000:]}
            finally:
                model.reset_hooks(including_permanent=True)
                timings[name] = round(time.perf_counter() - t, 3)
    out["__seconds__"] = time.perf_counter() - t0
    out["__case_seconds__"] = timings
    return out
