"""Where a model's HF config, weights and tokenizer come from.

``resolve_source`` accepts the built-in default name, a local HF directory, a ``.gguf`` file,
an in-memory HF model, or a hub id (handed to transformers; offline it fails fast with
:class:`~lenswidget.errors.ModelNotAvailableError`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from lenswidget.errors import ModelNotAvailableError

from .default_model import DEFAULT_MODEL, default_model_dir, is_default_model
from .gguf import gguf_dir

logger = logging.getLogger("lenswidget.loading")

#: TransformerLens short names that notebooks use, mapped to hub ids.
_TL_ALIASES = {"gpt2-small": "gpt2", "gpt2-medium": "gpt2-medium", "gpt2-large": "gpt2-large",
               "gpt2-xl": "gpt2-xl"}
_PYTHIA = re.compile(r"^pythia-[0-9.]+[mb](-deduped)?$")


@dataclass
class Source:
    """Everything a converter needs: the HF config, a (lazy) HF state dict and a tokenizer.

    ``owned``: the state dict's tensors are private copy-on-write mappings nobody else holds, so
    they may become parameters (and be processed in place) without copying. ``directory``: the
    HF directory the weights came from, if any.
    """

    name: str
    hf_config: Any
    state_dict: Mapping[str, torch.Tensor]
    tokenizer: Any | None
    tokenizer_name: str | None
    owned: bool = False
    directory: Path | None = None


_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
              "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
              "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


class MmapCheckpoint(Mapping):
    """Read-only mapping over safetensors shards, each memory-mapped copy-on-write.

    Tensors are views of a private mapping (``torch.from_file(shared=False)``): nothing is read
    until used, writing to them never touches the file, and they can become parameters
    without a copy.
    """

    def __init__(self, files: list[Path]):
        self._where: dict[str, tuple[torch.Tensor, int, int, torch.dtype, list[int]]] = {}
        for f in files:
            size = f.stat().st_size
            buf = torch.from_file(str(f), shared=False, size=size, dtype=torch.uint8)
            n = int.from_bytes(bytes(buf[:8].numpy()), "little")
            header = json.loads(bytes(buf[8:8 + n].numpy()))
            header.pop("__metadata__", None)
            base = 8 + n
            for key, info in header.items():
                start, end = info["data_offsets"]
                self._where[key] = (buf, base + start, base + end, _ST_DTYPES[info["dtype"]],
                                    info["shape"])

    def __getitem__(self, key: str) -> torch.Tensor:
        buf, start, end, dtype, shape = self._where[key]
        raw = buf[start:end]
        try:
            return raw.view(dtype).reshape(shape)
        except RuntimeError:  # misaligned data (old writers): copy instead
            return raw.clone().view(dtype).reshape(shape)

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def _offline_alternatives() -> str:
    return (f"Load from a local HF directory (from_pretrained('/path/to/model_dir')), pass an "
            f"already-loaded model with hf_model=..., or use the built-in {DEFAULT_MODEL!r}")


def _weights_of(directory: Path) -> Mapping[str, torch.Tensor]:
    """The checkpoint in an HF directory: safetensors (single or sharded), else PyTorch .bin."""
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        index = directory / index_name
        if index.is_file():
            files = sorted({directory / f for f in json.loads(index.read_text())["weight_map"].values()})
        elif (directory / single).is_file():
            files = [directory / single]
        else:
            continue
        if single.endswith(".safetensors"):
            return MmapCheckpoint(files)
        sd: dict[str, torch.Tensor] = {}
        for f in files:
            sd.update(torch.load(f, map_location="cpu", weights_only=True, mmap=True))
        return sd
    raise ModelNotAvailableError(
        f"no weights found in {directory}: expected model.safetensors, a sharded "
        "model.safetensors.index.json, or pytorch_model.bin"
    )


#: Files whose presence means a directory has a tokenizer (transformers would otherwise build
#: an empty one from the model config alone).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model",
                    "tokenizer_config.json")


def _tokenizer_from(where: str | Path, **kwargs: Any) -> Any | None:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(where, **kwargs)
    except Exception as exc:  # a model without tokenizer files still loads (tokens only)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning("lenswidget: no tokenizer loaded for %s (%s); the model accepts token ids "
                       "only, pass tokenizer=... to use strings", where, reason)
        return None


def _from_directory(directory: Path, name: str, tokenizer: Any | None,
                    hf_model: Any | None = None) -> Source:
    from transformers import AutoConfig

    if not (directory / "config.json").is_file():
        raise ModelNotAvailableError(f"{directory} is not an HF model directory: it has no config.json")
    hf_config = hf_model.config if hf_model is not None else AutoConfig.from_pretrained(directory)
    sd = hf_model.state_dict() if hf_model is not None else _weights_of(directory)
    if tokenizer is None and any((directory / f).is_file() for f in _TOKENIZER_FILES):
        tokenizer = _tokenizer_from(directory)
    return Source(name, hf_config, sd, tokenizer, str(directory), owned=hf_model is None,
                  directory=directory if hf_model is None else None)


def hub_offline() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the hub endpoint, so an offline machine fails in seconds instead of
    waiting through huggingface_hub's retries. Assumed reachable when a proxy is configured."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(name: str, tokenizer: Any | None, hf_kwargs: dict) -> Source:
    from transformers import AutoConfig, AutoModelForCausalLM

    name = _TL_ALIASES.get(name, f"EleutherAI/{name}" if _PYTHIA.match(name) else name)
    kwargs = dict(hf_kwargs)
    # Go to the network only when allowed and reachable; otherwise use the local HF cache.
    local = hub_offline() or bool(kwargs.pop("local_files_only", False))
    why = ("offline mode is on (HF_HUB_OFFLINE)" if hub_offline() else "local_files_only=True") if local else ""
    if not local and not hub_reachable():
        local, why = True, "the hub is unreachable (offline?)"
    try:
        hf_config = AutoConfig.from_pretrained(name, local_files_only=local, **kwargs)
    except OSError as exc:
        reason = f"{why} and it is not in the local HF cache" if local else str(exc)
        raise ModelNotAvailableError(
            f"cannot load {name!r} from the Hugging Face hub: {reason}. {_offline_alternatives()}"
        ) from None
    load_kwargs = dict(kwargs, local_files_only=local)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(name, **{"dtype": torch.float32, **load_kwargs})
    except OSError as exc:
        raise ModelNotAvailableError(f"cannot load the weights of {name!r} ({exc}). "
                                     f"{_offline_alternatives()}") from None
    if tokenizer is None:
        tokenizer = _tokenizer_from(name, **{k: v for k, v in load_kwargs.items()
                                             if k in ("revision", "cache_dir", "token",
                                                      "trust_remote_code", "local_files_only")})
    return Source(name, hf_config, hf_model.state_dict(), tokenizer, name)


def _looks_like_path(name: str) -> bool:
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name))


def resolve_source(name: str | os.PathLike | None, hf_model: Any | None = None,
                   tokenizer: Any | None = None, **hf_kwargs: Any) -> Source:
    """Find config, weights and tokenizer for ``name`` (see module docstring)."""
    if name is None and hf_model is None:
        raise ModelNotAvailableError(f"give a model name, a local directory or hf_model=. "
                                     f"{_offline_alternatives()}")
    label = str(name) if name is not None else str(getattr(hf_model, "name_or_path", "") or "hf_model")
    if hf_model is not None and (name is None or not (is_default_model(label) or Path(label).expanduser().is_dir())):
        # In-memory model: weights and config from it; tokenizer from the name if we can.
        if tokenizer is None and label and label != "hf_model" and not _looks_like_path(label):
            tokenizer = _tokenizer_from(label, local_files_only=hub_offline() or not hub_reachable())
        return Source(label, hf_model.config, hf_model.state_dict(), tokenizer, label)
    if is_default_model(label):
        src = _from_directory(default_model_dir(), DEFAULT_MODEL, tokenizer, hf_model)
        src.tokenizer_name = DEFAULT_MODEL
        return src
    path = Path(label).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotAvailableError(f"GGUF file {str(path)!r} does not exist")
        return _from_directory(gguf_dir(path), label, tokenizer, hf_model)
    if path.is_dir():
        return _from_directory(path, label, tokenizer, hf_model)
    if _looks_like_path(label):
        raise ModelNotAvailableError(f"no such model directory: {str(path)!r}. {_offline_alternatives()}")
    return _from_hub(label, tokenizer, hf_kwargs)
