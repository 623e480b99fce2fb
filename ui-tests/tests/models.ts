/**
 * Python snippets that build models in the kernel. Each defines ``model``.
 */
import { REPO_PATH_PRELUDE } from './utils';

/** Layers / heads of {@link TINY_MODEL}. */
export const TINY = { nLayers: 3, nHeads: 4 };

/**
 * A tiny random GPT-2 style model with an offline BPE tokenizer
 * (tests/models.py); n_ctx raised so that long test prompts fit.
 */
export const TINY_MODEL = `${REPO_PATH_PRELUDE}
import torch
torch.set_grad_enabled(False)
from tests.models import tiny_model
model = tiny_model("gpt2", tokenizer=True, n_layers=${TINY.nLayers}, n_heads=${TINY.nHeads}, n_ctx=256)
model_name = "tiny-gpt2"`;

/**
 * The real default model when it can be loaded (SmolLM2-135M-Instruct from
 * its local cache), else the tiny model; ``model_name`` says which.
 */
export const SMOLLM2_OR_TINY = `${TINY_MODEL}
try:
    import lenswidget
    model = lenswidget.HookedTransformer.from_pretrained("SmolLM2-135M-Instruct")
    model_name = "SmolLM2-135M-Instruct"
except Exception as exc:  # not prepared on this machine: measure the tiny model
    print("SmolLM2 unavailable, using the tiny model:", type(exc).__name__, exc)
print("MODEL", model_name, model.cfg.n_layers, model.cfg.n_heads)`;
