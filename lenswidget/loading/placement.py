"""Placing a model over several devices with accelerate: whole blocks per device, disk offload.

A *placement unit* is a top-level module that holds weights: ``embed``, ``pos_embed`` (models
with learned positions), ``blocks.{i}``, ``ln_final`` and ``unembed``. :func:`plan_placement`
turns ``n_devices=k`` or ``device_map="auto" | "balanced" | "balanced_low_0" | "sequential" |
dict`` (with ``max_memory``) into one device per unit, using accelerate's planner
(``infer_auto_device_map`` over whole blocks, ``get_balanced_memory``) exactly as HF does.

The resulting :class:`Placement` follows accelerate's rules for what runs where: units on a
GPU run there; with a GPU in the map, ``"cpu"`` and ``"disk"`` units are *offloaded*: their
weights stay in CPU memory (or in ``offload_folder``) and run on the main device, moved there
for each forward by accelerate's ``AlignDevicesHook``. Without a GPU everything runs on the CPU.
Weights offloaded to disk are written in accelerate's offload format (``index.json`` plus one
``.dat`` file per tensor) and memory-mapped copy-on-write as the parameters: they are read
when used, and the kernel can drop them again under memory pressure.

The model's forward moves the residual stream to each block's execution device at block
boundaries; results come back on the main device (``device=``, by default the first GPU of
the map, else the CPU), which is ``model.cfg.device``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import torch

from lenswidget.errors import ConfigError, InvalidOptionError, UnknownNameError

from .checkpoint import inverse_order, storage_order

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_DEVICE = re.compile(r"^(cpu|disk|mps|meta|cuda(:\d+)?|xpu(:\d+)?|npu(:\d+)?)$")


def unit_of(key: str) -> str:
    """The placement unit of a parameter name (``blocks.3.attn.W_Q`` -> ``blocks.3``)."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]


def model_units(model: torch.nn.Module) -> list[str]:
    """Placement units of ``model``, in forward order."""
    n = len(model.blocks)
    head = ["embed"] + (["pos_embed"] if "pos_embed" in model._modules else [])
    tail = [u for u in ("ln_final", "unembed") if model._modules.get(u) is not None]
    return head + [f"blocks.{i}" for i in range(n)] + tail


def _device_name(value: Any, what: str) -> str:
    """``0`` -> ``cuda:0``, ``"cuda"`` -> ``cuda:0``, ``torch.device`` -> str; validated."""
    if isinstance(value, bool):
        raise InvalidOptionError(what, value, ["cpu", "disk", "cuda:N", "an int GPU index"])
    if isinstance(value, int):
        return f"cuda:{value}"
    name = str(value).strip()
    if name in ("cuda", "xpu", "npu"):
        name += ":0"
    if not _DEVICE.match(name) or name == "meta":
        raise InvalidOptionError(what, value, ["cpu", "disk", "cuda:N", "an int GPU index", "mps"])
    return name


def _accelerator(name: str) -> bool:
    return name not in ("cpu", "disk")


@dataclass
class Placement:
    """One device per unit (``devices``) and the main device; see the module docstring."""

    devices: dict[str, str]
    main: str
    offload_folder: Optional[str] = None
    _exec: dict[str, torch.device] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        main = torch.device(self.main)
        for unit, dev in self.devices.items():
            self._exec[unit] = torch.device(dev) if _accelerator(dev) else (
                torch.device("cpu") if main.type == "cpu" else main)
        blocks = sorted((int(u.split(".")[1]), d) for u, d in self._exec.items() if u.startswith("blocks."))
        self.block_devices = [d for _, d in blocks]

    def execution(self, unit: str) -> torch.device:
        """Where ``unit`` computes (its inputs are moved there)."""
        return self._exec[unit]

    def weight_device(self, unit: str) -> torch.device:
        """Where ``unit``'s weights live between forwards (disk ones are mapped into CPU memory)."""
        dev = self.devices[unit]
        return torch.device(dev) if _accelerator(dev) else torch.device("cpu")

    def offloaded(self, unit: str) -> bool:
        """Whether ``unit``'s weights are moved to its execution device for each forward."""
        return self.weight_device(unit) != self._exec[unit]

    @property
    def is_split(self) -> bool:
        return len(set(self._exec.values())) > 1 or any(d == "disk" or self.offloaded(u)
                                                         for u, d in self.devices.items())

    def describe(self) -> str:
        groups: dict[str, list[str]] = {}
        for unit, dev in self.devices.items():
            groups.setdefault(dev, []).append(unit)
        return "; ".join(f"{dev}: {_ranges(units)}" for dev, units in groups.items())

    # -------------------------------------------------------------- used by the forward pass
    def to_block(self, index: int, *tensors: Any) -> tuple:
        """``tensors`` (None allowed) on block ``index``'s execution device."""
        dev = self.block_devices[index]
        return tuple(t.to(dev) if isinstance(t, torch.Tensor) and t.device != dev else t for t in tensors)

    def to_unit(self, unit: str, t: torch.Tensor) -> torch.Tensor:
        dev = self._exec[unit]
        return t if t.device == dev else t.to(dev)

    def to_main(self, t: Any) -> Any:
        dev = torch.device(self.main)
        return t.to(dev) if isinstance(t, torch.Tensor) and t.device != dev else t


def _ranges(units: list[str]) -> str:
    """``embed, blocks.0-11, ln_final`` style summary."""
    out: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            out.append(f"blocks.{run[0]}" if len(run) == 1 else f"blocks.{run[0]}-{run[-1]}")
            run.clear()

    for u in units:
        if u.startswith("blocks."):
            i = int(u.split(".")[1])
            if run and i != run[-1] + 1:
                flush()
            run.append(i)
        else:
            flush()
            out.append(u)
    flush()
    return ", ".join(out)


def _from_dict(device_map: Mapping, units: list[str]) -> dict[str, str]:
    """A user dict (keys: units, ``"blocks"`` for all blocks, ``""`` for everything) -> per unit."""
    valid = [""] + ["blocks"] + units
    normal: dict[str, str] = {}
    for key, dev in device_map.items():
        key = str(key)
        if key not in valid:
            raise UnknownNameError("device_map key", key, valid,
                                   hint="keys are lenswidget module names: embed, pos_embed, "
                                        "blocks.{i}, ln_final, unembed ('blocks' for every block, "
                                        "'' for everything)")
        normal[key] = _device_name(dev, f"device for {key!r}")
    out: dict[str, str] = {}
    missing = []
    for unit in units:
        for key in (unit, "blocks" if unit.startswith("blocks.") else None, ""):
            if key is not None and key in normal:
                out[unit] = normal[key]
                break
        else:
            missing.append(unit)
    if missing:
        raise ConfigError(f"device_map gives no device for {_ranges(missing)}; give every module "
                          f"({', '.join(['embed', 'blocks.{i}', 'ln_final', 'unembed'])}) a device, "
                          "or use '' as a default for everything")
    return out


def _max_memory(max_memory: Optional[Mapping], n_devices: Optional[int]) -> Optional[dict]:
    if max_memory is None:
        if n_devices is None:
            return None
        from accelerate.utils import get_max_memory

        found = get_max_memory()
        return {i: found[i] for i in range(n_devices) if i in found}
    out: dict = {}
    for key, value in max_memory.items():
        dev = key if isinstance(key, int) else str(key)
        if isinstance(dev, str) and dev.startswith("cuda:"):
            dev = int(dev.split(":")[1])
        if dev not in ("cpu", "disk", "mps") and not isinstance(dev, int):
            raise InvalidOptionError("max_memory key", key, ["an int GPU index", "'cuda:N'", "'cpu'", "'mps'"])
        out[dev] = value
    return out


def _from_accelerate(model: torch.nn.Module, strategy: str, max_memory: Optional[dict],
                     dtype: torch.dtype, units: list[str]) -> dict[str, str]:
    from accelerate.utils import get_balanced_memory, infer_auto_device_map

    no_split = sorted({type(b).__name__ for b in model.blocks})
    if strategy != "sequential":
        gpus = [k for k in (max_memory or {}) if isinstance(k, int)]
        if max_memory is None or len(gpus) > 1:
            max_memory = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=no_split,
                                             dtype=dtype, low_zero=strategy == "balanced_low_0")
    plan = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split, dtype=dtype)
    out = {}
    for unit in units:
        key = max((k for k in plan if k == "" or unit == k or unit.startswith(k + ".")), key=len, default=None)
        if key is None:  # modules with no weights are not in accelerate's map
            raise ConfigError(f"accelerate placed no device for {unit!r} (plan: {plan})")
        out[unit] = _device_name(plan[key], f"device for {unit!r}")
    return out


def _tie(devices: dict[str, str], follower: str, leader: str, given: Optional[Mapping]) -> None:
    """Keep ``follower`` (pos_embed) with ``leader`` (embed): they read the same tokens."""
    if follower not in devices or leader not in devices or devices[follower] == devices[leader]:
        return
    explicit = given is not None and follower in given and leader in given
    if explicit:
        raise ConfigError(f"device_map puts {follower!r} on {devices[follower]} but {leader!r} on "
                          f"{devices[leader]}; they must share a device")
    devices[follower] = devices[leader]


def plan_placement(model: torch.nn.Module, *, device_map: Any = None, n_devices: int = 1,
                   max_memory: Optional[Mapping] = None, dtype: torch.dtype = torch.float32,
                   device: Any = None, offload_folder: Any = None) -> Optional[Placement]:
    """The placement for these options, or None for an ordinary one-device model.

    ``model`` may be a skeleton on the meta device (only parameter sizes are read).
    """
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
        raise InvalidOptionError("n_devices", n_devices, ["an int >= 1"])
    if device_map is None and n_devices == 1:
        if max_memory is not None:
            raise ConfigError("max_memory needs device_map='auto' (or another strategy) or n_devices > 1")
        return None
    if device_map is not None and n_devices != 1:
        raise ConfigError("give either n_devices or device_map, not both")
    units = model_units(model)
    if isinstance(device_map, Mapping):
        if max_memory is not None:
            raise ConfigError("max_memory is used by device_map strategies ('auto', 'balanced', ...), "
                              "not with an explicit device_map dict")
        devices = _from_dict(device_map, units)
    elif isinstance(device_map, (str, int, torch.device)) and str(device_map) in STRATEGIES:
        devices = _from_accelerate(model, str(device_map), _max_memory(max_memory, None), dtype, units)
    elif device_map is None:
        mm = _max_memory(max_memory, n_devices)
        if not mm or not all(i in mm for i in range(n_devices)):
            found = torch.cuda.device_count()
            raise ConfigError(f"n_devices={n_devices} needs {n_devices} CUDA devices, found {found}"
                              + ("" if found else " (no GPU)") + "; use device_map='auto' to offload to "
                              "the CPU or disk instead")
        mm = {k: v for k, v in mm.items() if not isinstance(k, int) or k < n_devices}
        devices = _from_accelerate(model, "balanced", mm, dtype, units)
    elif isinstance(device_map, (str, int, torch.device)):
        dev = _device_name(device_map, "device_map")  # one device for everything, as in HF
        devices = {u: dev for u in units}
    else:
        raise InvalidOptionError("device_map", device_map, list(STRATEGIES) + ["a dict {module: device}"])
    given = device_map if isinstance(device_map, Mapping) else None
    _tie(devices, "pos_embed", "embed", given)
    gpus = [d for d in devices.values() if _accelerator(d)]
    if device is not None:
        main = _device_name(device, "device")
        if main == "disk":
            raise InvalidOptionError("device (the main device of a split model)", device, ["cpu", "cuda:N"])
    else:
        main = gpus[0] if gpus else "cpu"
    if "disk" in devices.values() and offload_folder is None:
        disk = [u for u, d in devices.items() if d == "disk"]
        raise ConfigError(f"device_map offloads {_ranges(disk)} to disk: pass offload_folder=<a directory> "
                          "for their weights (as in HF from_pretrained)")
    return Placement(devices, main, None if offload_folder is None else str(offload_folder))


def check_available(placement: Placement) -> None:
    """Raise if the placement names a device this machine does not have."""
    wanted = set(placement.devices.values()) | {placement.main}
    cuda = sorted(int(d.split(":")[1]) for d in wanted if d.startswith("cuda:"))
    have = torch.cuda.device_count()
    if cuda and cuda[-1] >= have:
        raise ConfigError(f"the device map uses cuda:{cuda[-1]} but this machine has {have} CUDA "
                          f"device(s); placement: {placement.describe()}")
    if "mps" in wanted and not torch.backends.mps.is_available():
        raise ConfigError("the device map uses mps, which is not available here")


def offload_to_disk(placement: Placement, name: str, t: torch.Tensor, index: dict) -> None:
    """Write ``t`` into the offload folder (accelerate's format), in its memory layout."""
    from accelerate.utils import offload_weight

    os.makedirs(placement.offload_folder, exist_ok=True)
    order = storage_order(t)
    offload_weight(t.permute(order).contiguous(), name, placement.offload_folder, index=index)
    index[name]["order"] = order


def map_offloaded(placement: Placement, name: str, info: dict) -> torch.Tensor:
    """The tensor ``name`` of the offload folder, memory-mapped copy-on-write."""
    import numpy as np

    dtype = info["dtype"]
    stored = {"bfloat16": "int16"}.get(dtype, dtype)
    shape = tuple(info["shape"]) or (1,)
    path = os.path.join(placement.offload_folder, f"{name}.dat")
    t = torch.from_numpy(np.memmap(path, dtype=stored, shape=shape, mode="c"))
    if dtype == "bfloat16":
        t = t.view(torch.bfloat16)
    if not info["shape"]:
        t = t.reshape(())
    return t.permute(inverse_order(info.get("order", list(range(t.dim())))))


def attach_offload_hook(module: torch.nn.Module, execution_device: Any) -> None:
    """accelerate's ``AlignDevicesHook`` on ``module``: for each forward its weights are moved to
    ``execution_device`` (with its inputs), and its own CPU (or memory-mapped) weights are put back
    afterwards, so code that reads a weight directly between forwards still finds it."""
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module
    from accelerate.utils import set_module_tensor_to_device

    class KeepWeightsHook(AlignDevicesHook):
        def init_hook(self, module):
            return module

        def post_forward(self, module, output):
            for name, value in self.weights_map.items():
                set_module_tensor_to_device(module, name, value.device, value=value)
            return output

    weights = {k: v.detach() for k, v in module.state_dict(keep_vars=True).items()}
    add_hook_to_module(module, KeepWeightsHook(execution_device=execution_device, offload=True, io_same_device=False,
                                               weights_map=weights, place_submodules=True))


def dispatch(model: torch.nn.Module, placement: Placement) -> None:
    """Attach the offload hooks of offloaded units; record the placement on the model."""
    for unit in placement.devices:
        if placement.offloaded(unit):
            attach_offload_hook(model.get_submodule(unit), placement.execution(unit))
    model._placement = placement
    model.hf_device_map = dict(placement.devices)


def read_weight(model: torch.nn.Module, unit: str, get: Any) -> torch.Tensor:
    """``get()`` (a weight of ``unit``) on the main device."""
    t = get()
    main = torch.device(model._placement.main)
    return t if t is None or t.device == main else t.to(main)


__all__ = ["Placement", "STRATEGIES", "attach_offload_hook", "check_available", "dispatch", "map_offloaded", "model_units",
           "offload_to_disk", "plan_placement", "read_weight", "unit_of"]
