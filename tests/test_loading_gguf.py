"""The GGUF converter (own header parser, ``gguf``'s numpy dequantisation, Q/K rows restored)
against independent references: ``gguf``'s own GGUFReader for the metadata and tensor table,
transformers' GGUF loader for the config and the Q/K permutation, on the real SmolLM2 GGUF."""

from __future__ import annotations

import pytest
import torch

from lenswidget.loading.checkpoint import SafetensorsCheckpoint
from lenswidget.loading.gguf import GGUFFile, convert_gguf, hf_config_dict


@pytest.fixture(scope="module")
def reader():
    from gguf import GGUFReader

    from lenswidget.errors import ModelNotAvailableError
    from lenswidget.loading import default_gguf_path

    try:
        path = default_gguf_path()
    except ModelNotAvailableError as exc:
        import os

        if os.environ.get("CI"):
            raise
        pytest.skip(f"the real SmolLM2 model is not installed: {exc}")
    return GGUFReader(path)


@pytest.mark.smollm2
@pytest.mark.slow
def test_gguf_conversion_matches_gguf_reader_and_transformers(reader, smollm2_dir, monkeypatch):
    import gguf
    from gguf.quants import dequantize
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor, load_gguf_checkpoint

    g = GGUFFile(reader.data.filename)
    # metadata: every field, as gguf's reader decodes it
    assert set(g.fields) == {k for k in reader.fields if not k.startswith("GGUF.")}
    for k, f in reader.fields.items():
        if not k.startswith("GGUF."):
            assert g.fields[k] == f.contents(), k
    # tensor table: names, shapes (torch order), types, data offsets
    assert [(t.name, t.shape, t.qtype, t.offset) for t in g.tensors] == [
        (t.name, tuple(int(d) for d in reversed(t.shape)), int(t.tensor_type), int(t.data_offset))
        for t in reader.tensors]
    # config: what transformers' GGUF loader builds (it is handed the reader already parsed)
    monkeypatch.setattr(gguf, "GGUFReader", lambda path: reader)
    ref_cfg = load_gguf_checkpoint(reader.data.filename, return_tensors=False)["config"]
    ours = hf_config_dict(g)
    assert {k: v for k, v in ours.items() if k in ref_cfg} == ref_cfg
    assert set(ours) - set(ref_cfg) <= {"tie_word_embeddings"}
    skip = {"transformers_version", "dtype", "_name_or_path"}
    saved = {k: v for k, v in AutoConfig.from_pretrained(smollm2_dir).to_dict().items() if k not in skip}
    expected = {k: v for k, v in AutoConfig.for_model(**ref_cfg).to_dict().items() if k not in skip}
    assert saved == expected
    # weights: gguf's dequantisation of the reader's data, Q/K rows put back by transformers
    processor = LlamaTensorProcessor(config=ref_cfg)
    ckpt = SafetensorsCheckpoint([smollm2_dir / "model.safetensors"])
    names = {"token_embd.weight": "model.embed_tokens.weight",
             "blk.0.attn_q.weight": "model.layers.0.self_attn.q_proj.weight",
             "blk.0.attn_k.weight": "model.layers.0.self_attn.k_proj.weight",
             "blk.0.attn_v.weight": "model.layers.0.self_attn.v_proj.weight",
             "blk.29.ffn_down.weight": "model.layers.29.mlp.down_proj.weight",
             "output_norm.weight": "model.norm.weight"}
    checked = 0
    for t in reader.tensors:
        if t.name in names:
            w = processor.process(weights=dequantize(t.data, t.tensor_type), name=t.name).weights
            assert torch.equal(torch.from_numpy(w.copy()), ckpt[names[t.name]]), t.name
            checked += 1
    assert checked == len(names) and len(ckpt) == len(reader.tensors)


@pytest.mark.smollm2
def test_unsupported_gguf_architectures_use_transformers(tmp_path, monkeypatch):
    """Only Llama/Qwen2 GGUFs take the fast path; any other goes to transformers' loader."""
    from lenswidget.loading import default_gguf_path, gguf

    path = default_gguf_path()
    calls = []
    monkeypatch.setattr(gguf, "_convert_with_transformers", lambda p, out: calls.append(("hf", p)))
    monkeypatch.setattr(gguf, "_convert_fast", lambda g, out: calls.append(("fast", g.path)))
    convert_gguf(path, tmp_path)
    monkeypatch.setattr(gguf, "SUPPORTED", ("qwen2",))
    convert_gguf(path, tmp_path)
    assert [c[0] for c in calls] == ["fast", "hf"]


def test_not_a_gguf_file_is_refused(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(ValueError, match="not a GGUF file"):
        GGUFFile(bad)
