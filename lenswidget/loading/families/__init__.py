"""One converter module per model family.

Each module defines ``MODEL_TYPES`` and ``ARCHITECTURES`` (HF names it handles),
``config_from_hf(hf_config) -> dict`` (lenswidget config fields, derived from the HF config)
and ``convert_state_dict(hf_state_dict, cfg) -> dict`` (HF tensors -> lenswidget names).
"""

FAMILY_MODULES = ("gpt2", "gpt_neox", "gptj", "llama", "qwen2", "qwen3", "mistral", "phi3", "olmo2", "gemma", "gemma2",
                  "gemma3")
