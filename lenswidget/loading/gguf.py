"""GGUF checkpoints: converted once into a float32 HF directory in lenswidget's cache.

Llama and Qwen2 GGUFs (the built-in SmolLM2 is a Llama) are converted here: the header is
parsed directly, each tensor is dequantised with ``gguf``'s vectorised numpy readers (on a few
threads; numpy releases the GIL) and streamed into ``model.safetensors``, Q/K rows are put
back in HF's order (llama.cpp interleaves the rotary halves), and the config is written from
the GGUF metadata; the tokenizer comes from transformers' GGUF tokenizer builder. Other
architectures go through transformers' own (slower) GGUF loader.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .disk_cache import cached_dir

logger = logging.getLogger("lenswidget.loading")

#: Bump when the layout of converted directories changes, to invalidate old caches.
FORMAT_VERSION = 1

# GGUF metadata value types (the GGUF specification's gguf_metadata_value_type)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8",
          12: "<f8"}
_STRING, _ARRAY = 8, 9


def gguf_cache_name(gguf_path: str | os.PathLike) -> str:
    """Cache directory name for a GGUF file: its stem plus a digest of path, size and mtime."""
    p = Path(gguf_path).resolve()
    st = p.stat()
    key = f"{FORMAT_VERSION}:{p}:{st.st_size}:{st.st_mtime_ns}".encode()
    return f"{p.stem}-{hashlib.sha256(key).hexdigest()[:12]}"


@dataclass
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # torch order (outermost first): the reverse of GGUF's dims
    qtype: int
    offset: int  # absolute, in the file
    nbytes: int


class GGUFFile:
    """A GGUF file's metadata (``fields``) and tensor table, with the file memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        self.path = Path(path)
        with open(self.path, "rb") as fh:
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf = self._mm
        if buf[:4] != b"GGUF":
            raise ValueError(f"{self.path} is not a GGUF file")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version not in (2, 3):
            raise ValueError(f"{self.path}: unsupported GGUF version {version}")
        self._pos = 24
        self.fields: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self._string()
            self.fields[key] = self._value(self._u32())
        infos = []
        for _ in range(n_tensors):
            name = self._string()
            dims = [self._u64() for _ in range(self._u32())]
            qtype, offset = self._u32(), self._u64()
            infos.append((name, dims, qtype, offset))
        align = int(self.fields.get("general.alignment", 32))
        data_start = -(-self._pos // align) * align
        self.tensors: list[GGUFTensor] = []
        for name, dims, qtype, offset in infos:
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
            count = 1
            for d in dims:
                count *= d
            self.tensors.append(GGUFTensor(name, tuple(reversed(dims)), qtype, data_start + offset,
                                           count // block * size))

    def _u32(self) -> int:
        (v,) = struct.unpack_from("<I", self._mm, self._pos)
        self._pos += 4
        return v

    def _u64(self) -> int:
        (v,) = struct.unpack_from("<Q", self._mm, self._pos)
        self._pos += 8
        return v

    def _string(self) -> str:
        n = self._u64()
        s = self._mm[self._pos:self._pos + n].decode("utf-8", errors="replace")
        self._pos += n
        return s

    def _value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self._string()
        if vtype == _ARRAY:
            etype, count = self._u32(), self._u64()
            if etype in _NUMPY:
                import numpy as np

                arr = np.frombuffer(self._mm, dtype=_NUMPY[etype], count=count, offset=self._pos)
                self._pos += arr.nbytes
                return arr.tolist()
            return [self._value(etype) for _ in range(count)]
        fmt = _SCALARS[vtype]
        (v,) = struct.unpack_from(fmt, self._mm, self._pos)
        self._pos += struct.calcsize(fmt)
        return v

    def dequantize(self, t: GGUFTensor) -> torch.Tensor:
        """Tensor ``t`` as float32 (``gguf``'s vectorised dequantisation)."""
        import numpy as np
        from gguf.constants import GGMLQuantizationType
        from gguf.quants import dequantize

        raw = np.frombuffer(self._mm, dtype=np.uint8, count=t.nbytes, offset=t.offset)
        rows = 1
        for d in t.shape[:-1]:
            rows *= d
        values = dequantize(raw.reshape(rows, t.nbytes // rows), GGMLQuantizationType(t.qtype))
        values = np.ascontiguousarray(values, dtype=np.float32)
        if not values.flags.writeable:  # plain float32 tensors are views of the read-only mapping
            values = values.copy()
        return torch.from_numpy(values.reshape(t.shape))


# ------------------------------------------------------------------ Llama / Qwen2 GGUFs

_CONFIG_KEYS = {  # GGUF "<arch>.<key>" -> HF config field (as transformers' GGUF loader names them)
    "context_length": "max_position_embeddings", "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size", "embedding_length": "hidden_size",
    "rope.freq_base": "rope_theta", "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads", "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "vocab_size": "vocab_size",
}
_TOKEN_IDS = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id",
              "unknown_token_id": "unk_token_id", "padding_token_id": "pad_token_id"}
_GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                 "output.weight": "lm_head.weight"}
_BLOCK_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
                "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                "ffn_down": "mlp.down_proj"}
SUPPORTED = ("llama", "qwen2")


def hf_config_dict(g: GGUFFile) -> dict[str, Any]:
    """The HF config of a Llama/Qwen2 GGUF, field for field as transformers' loader builds it."""
    arch = g.fields["general.architecture"]
    model_type = "mistral" if arch == "llama" and "mistral" in str(g.fields.get("general.name", "")).lower() else arch
    out: dict[str, Any] = {"model_type": model_type}
    if "general.name" in g.fields:
        out["_model_name_or_path"] = g.fields["general.name"]
    for key, field in _CONFIG_KEYS.items():
        if f"{arch}.{key}" in g.fields:
            out[field] = g.fields[f"{arch}.{key}"]
    if arch == "llama" and f"{arch}.rope.dimension_count" in g.fields:
        out["head_dim"] = g.fields[f"{arch}.rope.dimension_count"]
    for key, field in _TOKEN_IDS.items():
        if f"tokenizer.ggml.{key}" in g.fields:
            out[field] = g.fields[f"tokenizer.ggml.{key}"]
    if "vocab_size" not in out and "tokenizer.ggml.tokens" in g.fields:
        out["vocab_size"] = len(g.fields["tokenizer.ggml.tokens"])
    out["tie_word_embeddings"] = all(t.name != "output.weight" for t in g.tensors)
    return out


def _hf_name(gguf_name: str) -> str | None:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in _BLOCK_NAMES:
        return f"model.layers.{parts[1]}.{_BLOCK_NAMES[parts[2]]}.{parts[3]}"
    return None  # e.g. rope_freqs: recomputed from the config


def _unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K row permutation (rotary halves interleaved per head)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _write_config_and_tokenizer(g: GGUFFile, cfg_dict: dict[str, Any], out_dir: Path) -> None:
    import transformers
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    config = AutoConfig.for_model(**cfg_dict)
    config.dtype = torch.float32
    config.save_pretrained(out_dir)
    GenerationConfig.from_model_config(config).save_pretrained(out_dir)
    # The class AutoTokenizer picks for these GGUFs, called directly: AutoTokenizer would first
    # read the whole GGUF again with gguf's (slow) field reader to build the model config.
    tokenizer_cls = getattr(transformers, "TokenizersBackend", AutoTokenizer)
    tokenizer = tokenizer_cls.from_pretrained(g.path.parent, gguf_file=g.path.name)
    tokenizer.save_pretrained(out_dir)


def _convert_fast(g: GGUFFile, out_dir: Path) -> None:
    from .checkpoint import StreamingWriter

    arch = g.fields["general.architecture"]
    cfg_dict = hf_config_dict(g)
    heads, kv = cfg_dict["num_attention_heads"], cfg_dict.get("num_key_value_heads")
    jobs = [(t, _hf_name(t.name)) for t in g.tensors]
    jobs = [(t, n) for t, n in jobs if n is not None]

    def work(job):
        t, name = job
        w = g.dequantize(t)
        if arch == "llama" and (".attn_q." in t.name or ".attn_k." in t.name):
            w = _unpermute(w, heads if ".attn_q." in t.name or kv is None else kv)
        return name, w

    workers = max(1, min(4, os.cpu_count() or 1))
    writer = StreamingWriter(out_dir / "model.safetensors", 1024 + 160 * len(jobs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        window = 2 * workers  # results waiting to be written: bounds memory on large files
        futures = [pool.submit(work, j) for j in jobs[:window]]
        for i in range(len(jobs)):
            name, w = futures[i].result()
            futures[i] = None
            if i + window < len(jobs):
                futures.append(pool.submit(work, jobs[i + window]))
            writer.write(name, w)
    writer.finish({"format": "pt", "source": g.path.name})
    # after the weights: building the tokenizer is Python-heavy and would contend for the GIL
    _write_config_and_tokenizer(g, cfg_dict, out_dir)


def _convert_with_transformers(p: Path, out_dir: Path) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain float32
    config.dtype = torch.float32
    state = model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt", "source": p.name})
    config.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def convert_gguf(gguf_path: str | os.PathLike, out_dir: Path) -> None:
    """Write ``config.json``, ``model.safetensors`` (float32) and tokenizer files for a GGUF."""
    p = Path(gguf_path).resolve()
    logger.warning("lenswidget: converting %s to float32 (one time, cached in %s)", p.name, out_dir.parent)
    g = GGUFFile(p)
    if g.fields.get("general.architecture") in SUPPORTED and not any(
            k.startswith(f"{g.fields['general.architecture']}.rope.scaling") for k in g.fields):
        _convert_fast(g, out_dir)
    else:
        _convert_with_transformers(p, out_dir)


def gguf_dir(gguf_path: str | os.PathLike) -> Path:
    """The cached float32 HF directory for ``gguf_path`` (converted on first use)."""
    return cached_dir(gguf_cache_name(gguf_path), lambda tmp: convert_gguf(gguf_path, tmp))


__all__ = ["GGUFFile", "convert_gguf", "gguf_cache_name", "gguf_dir", "hf_config_dict"]
