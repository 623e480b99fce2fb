"""Where a model's HF config, weights and tokenizer come from.

``resolve_source`` accepts the built-in default name, a local HF directory, a ``.gguf`` file,
an in-memory HF model, or a hub id (its files are fetched with huggingface_hub, or found in the
local HF cache, and read like a local directory; offline it fails fast with
:class:`~lenswidget.errors.ModelNotAvailableError`). transformers is imported only when
needed: for an HF config object, a tokenizer, or an in-memory model.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import urlparse

import torch

from lenswidget.errors import ModelNotAvailableError

from .checkpoint import SafetensorsCheckpoint
from .default_model import DEFAULT_MODEL, default_model_dir, is_default_model
from .gguf import gguf_dir

logger = logging.getLogger("lenswidget.loading")

#: TransformerLens short names that notebooks use, mapped to hub ids.
_TL_ALIASES = {"gpt2-small": "gpt2", "gpt2-medium": "gpt2-medium", "gpt2-large": "gpt2-large",
               "gpt2-xl": "gpt2-xl"}
_PYTHIA = re.compile(r"^pythia-[0-9.]+[mb](-deduped)?$")


class Source:
    """Everything a converter needs: the HF config, a (lazy) HF state dict and a tokenizer.

    ``owned``: the state dict's tensors are private copy-on-write mappings nobody else holds, so
    they may become parameters (and be processed in place) without copying. ``directory``: the
    HF directory the weights came from, if any. ``hf_config`` is built on first use (it imports
    transformers); ``config_dict`` is the raw ``config.json`` of a directory.
    """

    def __init__(self, name: str, hf_config: Any, state_dict: Mapping[str, torch.Tensor],
                 tokenizer: Any | None, tokenizer_name: str | None, owned: bool = False,
                 directory: Path | None = None, config_loader: Callable[[], Any] | None = None,
                 config_dict: dict | None = None, tokenizer_loader: Callable[[], Any] | None = None):
        self.name, self.state_dict, self._tokenizer = name, state_dict, tokenizer
        self.tokenizer_name, self.owned, self.directory = tokenizer_name, owned, directory
        self._hf_config, self._config_loader, self.config_dict = hf_config, config_loader, config_dict
        #: loads the tokenizer (directories lenswidget wrote); ``tokenizer`` calls it on first use
        self.tokenizer_loader = tokenizer_loader

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None and self.tokenizer_loader is not None:
            self._tokenizer = self.tokenizer_loader()
            self.tokenizer_loader = None
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        self._tokenizer, self.tokenizer_loader = value, None

    @property
    def has_tokenizer(self) -> bool:
        """Whether a tokenizer is (or can be) loaded, without loading it."""
        return self._tokenizer is not None or self.tokenizer_loader is not None

    @property
    def hf_config(self) -> Any:
        if self._hf_config is None and self._config_loader is not None:
            self._hf_config = self._config_loader()
        return self._hf_config

    @hf_config.setter
    def hf_config(self, value: Any) -> None:
        self._hf_config = value

    def config_summary(self) -> Any:
        """``model_type`` and ``architectures`` without building the HF config when possible."""
        if self._hf_config is None and self.config_dict is not None:
            return SimpleNamespace(model_type=self.config_dict.get("model_type"),
                                   architectures=self.config_dict.get("architectures"))
        return self.hf_config


#: Kept for code that imported the old name.
MmapCheckpoint = SafetensorsCheckpoint


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
            return SafetensorsCheckpoint(files)
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


def _own_tokenizer(directory: Path) -> Any | None:
    """The tokenizer of a directory lenswidget wrote itself, loaded with the class it was saved
    as (AutoTokenizer would first import the model's HF config class, which is slow)."""
    try:
        saved = json.loads((directory / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError):
        return None
    if saved != "TokenizersBackend" or not (directory / "tokenizer.json").is_file():
        return None
    import transformers

    cls = getattr(transformers, saved, None)
    return None if cls is None else cls.from_pretrained(directory)


def _from_directory(directory: Path, name: str, tokenizer: Any | None,
                    hf_model: Any | None = None, config_kwargs: dict | None = None) -> Source:
    from .processed_cache import is_cache_owned

    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ModelNotAvailableError(f"{directory} is not an HF model directory: it has no config.json")
    if hf_model is not None:
        sd, hf_config, raw = hf_model.state_dict(), hf_model.config, None
    else:
        sd, hf_config = _weights_of(directory), None
        try:
            raw = json.loads(config_file.read_text())
        except ValueError as exc:
            raise ModelNotAvailableError(f"{config_file} is not valid JSON ({exc})") from None

    def load_config() -> Any:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(directory, **(config_kwargs or {}))

    loader = None
    if tokenizer is None and any((directory / f).is_file() for f in _TOKENIZER_FILES):
        loader = functools.partial(directory_tokenizer, directory, is_cache_owned(directory),
                                   config_kwargs or {})
    return Source(name, hf_config, sd, tokenizer, str(directory), owned=hf_model is None,
                  directory=directory if hf_model is None else None, config_loader=load_config,
                  config_dict=raw, tokenizer_loader=loader)


def directory_tokenizer(directory: Path, own: bool, kwargs: dict) -> Any | None:
    """The tokenizer of an HF directory (None, with a warning, if it cannot be loaded)."""
    return (_own_tokenizer(directory) if own else None) or _tokenizer_from(directory, **kwargs)


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


#: Files fetched for a hub model: config, safetensors weights, tokenizer.
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
_HUB_KWARGS = ("revision", "cache_dir", "token", "force_download")


def _from_hub(name: str, tokenizer: Any | None, hf_kwargs: dict) -> Source:
    """A hub model: its files are fetched (or found in the local HF cache) and read like a local
    directory, so no HF model (and no float32 copy of it) is ever built."""
    from huggingface_hub import snapshot_download

    from lenswidget.errors import ConfigError

    name = _TL_ALIASES.get(name, f"EleutherAI/{name}" if _PYTHIA.match(name) else name)
    kwargs = dict(hf_kwargs)
    # Go to the network only when allowed and reachable; otherwise use the local HF cache.
    local = hub_offline() or bool(kwargs.pop("local_files_only", False))
    why = ("offline mode is on (HF_HUB_OFFLINE)" if hub_offline() else "local_files_only=True") if local else ""
    if not local and not hub_reachable():
        local, why = True, "the hub is unreachable (offline?)"
    hub = {k: kwargs.pop(k) for k in _HUB_KWARGS if k in kwargs}
    config_kwargs = {k: kwargs.pop(k) for k in ("trust_remote_code",) if k in kwargs}
    if kwargs:
        raise ConfigError(f"unsupported keyword argument(s) {sorted(kwargs)} for hub model {name!r}; "
                          f"lenswidget reads the checkpoint itself and accepts "
                          f"{', '.join(_HUB_KWARGS + ('trust_remote_code', 'local_files_only'))}")

    def fetch(patterns: list[str]) -> Path:
        try:
            return Path(snapshot_download(name, allow_patterns=patterns, local_files_only=local, **hub))
        except Exception as exc:  # the hub client raises many kinds; all mean "not available"
            reason = f"{why} and it is not in the local HF cache" if local else f"{type(exc).__name__}: {exc}"
            raise ModelNotAvailableError(
                f"cannot load {name!r} from the Hugging Face hub: {reason}. {_offline_alternatives()}"
            ) from None

    directory = fetch(_HUB_FILES)
    if not any(directory.glob("*.safetensors")):  # older repos: PyTorch .bin weights only
        directory = fetch(["*.bin", "*.bin.index.json"])
    src = _from_directory(directory, name, tokenizer, config_kwargs=config_kwargs)
    src.tokenizer_name = name
    return src


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
