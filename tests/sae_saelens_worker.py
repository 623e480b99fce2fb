"""Worker for tests/test_sae_saelens.py, run inside the TransformerLens 3.9 + SAELens venv.

Reads ``job.json`` in the job dir (HF model dir, SAE folders, tokens), then for each SAE and
each ``use_error_term``: runs SAELens's ``HookedSAETransformer.run_with_cache_with_saes`` on
TransformerLens 3.9 loaded from the same weights, and also this checkout's lenswidget
``HookedSAETransformer`` given the *SAELens* SAE object (sae_lens installed: accepted
natively). Writes ``out.pt``: {case: {"saelens": {...}, "lenswidget_with_saelens_sae": {...}}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def _tl_model(model_dir: str):
    import transformer_lens.loading_from_pretrained as loading
    from sae_lens import HookedSAETransformer
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cfg = loading.get_pretrained_model_config(model_dir, hf_cfg=hf.config.to_dict(), fold_ln=True, device="cpu")
    cfg.tokenizer_name = None  # token ids only: the random model has no tokenizer
    model = HookedSAETransformer(cfg)
    state = loading.get_pretrained_state_dict(model_dir, cfg, hf)
    model.load_and_process_state_dict(state, fold_ln=True, center_writing_weights=True, center_unembed=True,
                                      fold_value_biases=True)
    return model.eval()


def _sae_entries(cache, logits):
    out = {"logits": logits.detach().clone()}
    for k in cache.keys():
        out[k] = cache[k].detach().clone()
    return out


def main(job_dir: str) -> None:
    torch.set_num_threads(1)
    job = json.loads((Path(job_dir) / "job.json").read_text())
    from sae_lens import SAE as SLSAE

    from lenswidget import HookedSAETransformer as LWModel

    tokens = torch.tensor(job["tokens"])
    tl = _tl_model(job["model_dir"])
    lw = LWModel.from_pretrained(job["model_dir"], device="cpu").eval()
    results = {}
    with torch.no_grad():
        for case, folder in job["saes"].items():
            sae = SLSAE.load_from_disk(folder)
            for use_error_term in (False, True):
                key = f"{case}/{'error' if use_error_term else 'recons'}"
                logits, cache = tl.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=use_error_term)
                assert not tl.acts_to_saes
                lw_logits, lw_cache = lw.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=use_error_term)
                results[key] = {"saelens": _sae_entries(cache, logits),
                                "lenswidget_with_saelens_sae": _sae_entries(lw_cache, lw_logits)}
    torch.save(results, Path(job_dir) / "out.pt")
    print("ok", len(results))


if __name__ == "__main__":
    main(sys.argv[1])
