"""Lean loading: group-by-group processing equals whole-model processing, weights go straight
into the target dtype, checkpoint pages are released, the processed-weight cache is written
tensor by tensor, hub ids are read like local directories, and a reload from lenswidget's
cache needs neither transformers' config classes nor (without a tokenizer) transformers.

Peak memory against HF and TransformerLens is measured in ``benchmarks/bench_memory.py``;
the bound checked here is loose, to catch a full extra copy of the weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_FAMILIES, make_tiny_hf
from lenswidget import processing
from lenswidget.loading import family_for
from lenswidget.loading.checkpoint import SafetensorsCheckpoint, StreamingWriter
from lenswidget.loading.materialize import materialize

REPO = Path(__file__).resolve().parents[1]
FLAG_SETS = {
    "default": dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True,
                    refactor_factored_attn_matrices=False),
    "some": dict(fold_ln=False, center_writing_weights=True, center_unembed=False, fold_value_biases=True,
                 refactor_factored_attn_matrices=False),
    "refactor": dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True,
                     refactor_factored_attn_matrices=True),
}


def _ht():
    from lenswidget import HookedTransformer

    return HookedTransformer


def _tokens():
    return torch.randint(0, 211, (2, 8), generator=torch.Generator().manual_seed(5))


# refactoring is defined for models without rotary embeddings or GQA only: GPT-2 here
@pytest.mark.parametrize("family, flags", [(f, k) for f in TINY_FAMILIES for k in FLAG_SETS
                                           if k != "refactor" or f == "gpt2"])
@pytest.mark.parametrize("slice_bytes", [16 << 20, 512], ids=["whole", "sliced"])
def test_processing_group_by_group_equals_whole_model_processing(family, flags, slice_bytes):
    """Blocks one at a time, and (``sliced``) the embedding and unembedding processed in slices
    of rows inside their final tensors: the same weights as processing the whole state dict."""
    flags = FLAG_SETS[flags]
    hf = make_tiny_hf(family)
    model = _ht().from_pretrained_no_processing("tiny", hf_model=hf, device="cpu")
    cfg = model.cfg
    converted = family_for(hf.config).convert_state_dict(hf.state_dict(), cfg)
    ref, _ = processing.process_state_dict({k: v.detach().clone() for k, v in converted.items()}, cfg, **flags)
    out: dict[str, torch.Tensor] = {}
    materialize(dict(converted), cfg, model.state_dict(), flags=flags, work_dtype=torch.float32,
                target_dtype=torch.float32, work_device=lambda g: torch.device("cpu"), deliver=out.__setitem__,
                slice_bytes=slice_bytes)
    assert sorted(out) == sorted(ref)
    refactored = flags["refactor_factored_attn_matrices"]
    for k in ref:  # the same arithmetic; sums may run in another memory order (rounding only)
        if refactored and ".attn." in k:
            continue  # SVD factors are defined up to signs: compare their products below
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-6, msg=k)
    for l in range(cfg.n_layers) if refactored else ():
        p = f"blocks.{l}.attn."
        for sd in (out, ref):
            q = torch.cat([sd[p + "W_Q"], sd[p + "b_Q"][:, None]], 1)  # bias-augmented, as refactored
            k = torch.cat([sd[p + "W_K"], sd[p + "b_K"][:, None]], 1)
            sd["qk"] = q @ k.transpose(-1, -2)
            sd["ov"] = sd[p + "W_V"] @ sd[p + "W_O"]
        torch.testing.assert_close(out["qk"], ref["qk"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out["ov"], ref["ov"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out[p + "b_O"], ref[p + "b_O"], rtol=1e-5, atol=1e-6)
        if k in model.state_dict():  # delivered in the parameter's own memory layout
            assert out[k].stride() == model.state_dict()[k].stride() or out[k].dim() < 2, k


@pytest.mark.parametrize("saved", [torch.bfloat16, torch.float32])
def test_low_precision_target_is_processed_in_float32_then_cast(tmp_path, saved):
    """bf16 target from a bf16 or float32 checkpoint: the same numbers as processing the float32
    values and casting the result, with bf16 parameters in the model's own layout."""
    hf = make_tiny_hf("llama").to(saved)
    hf.save_pretrained(tmp_path)
    ref = _ht().from_pretrained(str(tmp_path), device="cpu", dtype=torch.float32)
    low = _ht().from_pretrained(str(tmp_path), device="cpu", dtype=torch.bfloat16)
    assert low.cfg.dtype == torch.bfloat16
    for (k, a), (_, b) in zip(ref.state_dict().items(), low.state_dict().items()):
        assert b.dtype == torch.bfloat16 and torch.equal(a.to(torch.bfloat16), b), k
        assert a.stride() == b.stride(), k


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm (Linux)")
def test_released_checkpoint_pages_leave_resident_memory_and_read_back(tmp_path):
    from safetensors.torch import save_file

    data = torch.randn(16, 1 << 20, generator=torch.Generator().manual_seed(0))  # 64 MiB
    save_file({"w": data}, str(tmp_path / "w.safetensors"))
    ckpt = SafetensorsCheckpoint([tmp_path / "w.safetensors"])
    before = _rss()
    w = ckpt["w"]
    assert torch.equal(w, data)  # reads every page
    touched = _rss()
    ckpt.release([w])
    after = _rss()
    assert touched - before > 48 << 20 and touched - after > 48 << 20, (before, touched, after)
    assert torch.equal(ckpt["w"], data)  # pages come back from the file


def test_streaming_writer_files_are_plain_safetensors(tmp_path):
    from safetensors import safe_open

    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int64),
               "c": torch.randn(2, 3).to(torch.bfloat16), "empty": torch.zeros(0)}
    for reserve in (4096, 16):  # ample; too small (the file is rewritten with a bigger header)
        path = tmp_path / f"t{reserve}.safetensors"
        w = StreamingWriter(path, reserve)
        for k, v in tensors.items():
            w.write(k, v)
        w.finish({"note": "x"})
        with safe_open(str(path), "pt") as f:
            assert f.metadata() == {"note": "x"} and sorted(f.keys()) == sorted(tensors)
            for k, v in tensors.items():
                assert torch.equal(f.get_tensor(k), v), k
        assert all(torch.equal(SafetensorsCheckpoint([path])[k], v) for k, v in tensors.items())


def test_hub_id_is_read_from_the_local_hf_cache_without_building_an_hf_model(tmp_path, monkeypatch):
    """A hub id found in the HF cache (offline): files are read like a local directory."""
    import transformers

    hf = make_tiny_hf("llama")
    snap = tmp_path / "models--someone--tiny-llama" / "snapshots" / ("a" * 40)
    hf.save_pretrained(snap)
    (tmp_path / "models--someone--tiny-llama" / "refs").mkdir()
    (tmp_path / "models--someone--tiny-llama" / "refs" / "main").write_text("a" * 40)

    def no_hf_model(*a, **k):
        raise AssertionError("an HF model was built")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_hf_model)
    model = _ht().from_pretrained("someone/tiny-llama", cache_dir=str(tmp_path), local_files_only=True,
                                  device="cpu")
    with torch.no_grad():
        assert (model(_tokens()).log_softmax(-1) - hf(_tokens()).logits.log_softmax(-1)).abs().max() <= 1e-4
    from lenswidget.errors import ConfigError, ModelNotAvailableError

    with pytest.raises(ConfigError, match="unsupported keyword argument"):
        _ht().from_pretrained("someone/tiny-llama", cache_dir=str(tmp_path), local_files_only=True, bogus=1)
    with pytest.raises(ModelNotAvailableError, match="not in the local HF cache"):
        _ht().from_pretrained("someone/absent", cache_dir=str(tmp_path), local_files_only=True)


_RELOAD = """
import sys, torch
import lenswidget
from lenswidget import HookedTransformer
assert "transformers" not in sys.modules, "import lenswidget imported transformers"
m = HookedTransformer.from_pretrained({path!r}, device="cpu")
print("CONFIG_CLASS_IMPORTED", "transformers.models.llama.configuration_llama" in sys.modules)
print("TRANSFORMERS", "transformers" in sys.modules)
print("LOGITS", float(m(torch.tensor([[5, 6, 7]])).sum()))
print("AFTER_IDS_FORWARD", "transformers" in sys.modules)
print("PREPENDS", m.cfg.tokenizer_prepends_bos)
print("TOKENS", m.to_tokens("The cat sat on the mat").tolist())
print("TOKENIZER", type(m.tokenizer).__name__, m.tokenizer.padding_side, m.cfg.tokenizer_prepends_bos)
"""


def test_reload_from_lenswidget_cache_skips_transformers(tmp_path):
    """The converted config, the tokenizer's facts and the processed weights are cached beside a
    cache-owned model, so a fresh process reloads it without transformers: the tokenizer loads
    when text is first tokenized (a forward on token ids does not need it)."""
    from tests.models import tiny_tokenizer

    d = tmp_path / "cache" / "m"
    make_tiny_hf("llama", vocab_size=300).save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    env = {**os.environ, "PYTHONPATH": str(REPO), "LENSWIDGET_CACHE_DIR": str(tmp_path / "cache")}
    code = _RELOAD.format(path=str(d))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    first, second = (dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line) for r in runs)
    assert first["CONFIG_CLASS_IMPORTED"] == "True" and first["TRANSFORMERS"] == "True"  # converts once
    assert second["CONFIG_CLASS_IMPORTED"] == "False" and second["TRANSFORMERS"] == "False"
    assert second["AFTER_IDS_FORWARD"] == "False"
    for k in ("LOGITS", "PREPENDS", "TOKENS", "TOKENIZER"):  # the same model and tokenizer either way
        assert first[k] == second[k], k
    assert second["TOKENIZER"].startswith("TokenizersBackend")
    assert len(list(d.glob("lenswidget-config-*.json"))) == 1
    assert len(list(d.glob("processed-*.safetensors"))) == 1


@pytest.mark.smollm2
def test_own_tokenizer_fast_path_matches_autotokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    from lenswidget.loading.sources import _own_tokenizer

    fast, auto = _own_tokenizer(smollm2_dir), AutoTokenizer.from_pretrained(smollm2_dir)
    assert type(fast) is type(auto)
    assert fast.special_tokens_map == auto.special_tokens_map and fast.padding_side == auto.padding_side
    assert fast.chat_template == auto.chat_template and len(fast) == len(auto)
    for text in ["Hello world", " The capital of France is", "<|im_start|>user\nhi<|im_end|>", "ünïcödé 123"]:
        assert fast(text)["input_ids"] == auto(text)["input_ids"], text
    msgs = [{"role": "user", "content": "Hi"}]
    assert fast.apply_chat_template(msgs, tokenize=False) == auto.apply_chat_template(msgs, tokenize=False)


_PEAK = """
import gc, json, sys, torch
from lenswidget import HookedTransformer
HookedTransformer.from_pretrained({tiny!r}, device="cpu", dtype=torch.bfloat16)  # imports, warm-up
out = []
for path in {paths!r}:
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak resident set size (VmHWM)
    base = int(open("/proc/self/statm").read().split()[1]) * 4096
    m = HookedTransformer.from_pretrained(path, device="cpu", dtype=torch.bfloat16)
    hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
    out.append({{"base": base, "hwm": hwm, "weights": sum(p.numel() * p.element_size() for p in m.parameters())}})
    del m
print(json.dumps(out))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self (Linux)")
def test_load_peak_memory_stays_near_the_target_dtype_size(tmp_path):
    """A 52M-parameter model loaded as bf16 (from a bf16 and from a float32 checkpoint, with
    processing) peaks well below two copies of its bf16 weights (a float32 copy alone is two)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8,
                      num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(cfg)
    hf.save_pretrained(tmp_path / "f32")
    hf.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    del hf
    make_tiny_hf("llama").save_pretrained(tmp_path / "tiny")
    code = _PEAK.format(tiny=str(tmp_path / "tiny"), paths=[str(tmp_path / "bf16"), str(tmp_path / "f32")])
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for m in json.loads(r.stdout.strip().splitlines()[-1]):
        extra = m["hwm"] - m["base"]
        assert m["weights"] > 90 << 20
        assert extra <= 1.5 * m["weights"] + (48 << 20), (extra / m["weights"], m)
