"""Read and write state-dict files (.pth/.pt/.bin/.ckpt, .safetensors, sharded HF folders).

Released InternVideo checkpoints are usually wrappers (``{"model": state_dict, "epoch": ...}``
or DeepSpeed's ``{"module": state_dict, ...}``): :func:`load_state_dict_file` returns what the
file holds and :func:`unwrap_state_dict` digs the tensors out, the way the original's
``--model_key model|module`` does.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pyth")  # .pyth: PySlowFast (UniFormerV2 releases)
SAFETENSORS_SUFFIX = ".safetensors"
DEFAULT_WRAPPER_KEYS = ("model", "module", "state_dict")
StateDict = dict[str, torch.Tensor]


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    raise ValueError(
        f"{path}: unknown checkpoint format {suffix!r}; expected one of "
        f"{', '.join((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX))} or a sharded folder with an *.index.json"
    )


def _load_torch(path: Path, weights_only: bool | None) -> Any:
    if weights_only is not None:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Released checkpoints often pickle an argparse.Namespace or numpy scalars next to the
        # weights; those need the full unpickler, which runs code from the file.
        warnings.warn(
            f"{path}: not loadable with weights_only=True ({str(exc).splitlines()[0]}); "
            "loading with the full unpickler, only do this for files you trust",
            stacklevel=3,
        )
        return torch.load(path, map_location="cpu", weights_only=False)


def _load_safetensors(path: Path) -> StateDict:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _load_sharded(folder: Path, weights_only: bool | None) -> StateDict:
    indexes = sorted(folder.glob("*.index.json"))
    if not indexes:
        singles = [folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()]
        if singles:
            return load_state_dict_file(singles[0], weights_only=weights_only)
        hint = ""
        if (folder / "latest").is_file() or any(folder.glob("*/mp_rank_00_model_states.pt")):
            hint = " (it looks like a DeepSpeed checkpoint: use consolidate_zero_checkpoint)"
        raise ValueError(f"{folder}: folder has no *.index.json and no single weights file{hint}")
    if len(indexes) > 1:
        raise ValueError(f"{folder}: several index files {[p.name for p in indexes]}; pass one of them")
    return _load_index(indexes[0], weights_only)


def _load_index(index: Path, weights_only: bool | None) -> StateDict:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{index}: not a sharded-checkpoint index (needs a 'weight_map')") from exc
    out: StateDict = {}
    for shard in sorted(set(weight_map.values())):
        tensors = load_state_dict_file(index.parent / shard, weights_only=weights_only)
        for key in tensors:
            if weight_map.get(key) == shard:
                out[key] = tensors[key]
    missing = [k for k in weight_map if k not in out]
    if missing:
        raise KeyError(
            f"{index}: key {missing[0]!r} listed in the index is missing from {weight_map[missing[0]]}"
        )
    return {k: out[k] for k in weight_map}


def load_state_dict_file(path: str | os.PathLike, weights_only: bool | None = None) -> Any:
    """Load a checkpoint onto the CPU and return what it holds (often a wrapper dict).

    ``weights_only=None`` tries PyTorch's safe loader first and falls back, with a warning, to
    the full unpickler that older checkpoints need; ``True`` forbids the fallback. A folder is
    read as a sharded Hugging Face checkpoint (``*.index.json``) or as the single
    ``model.safetensors`` / ``pytorch_model.bin`` inside it; ``*.index.json`` may also be given
    directly.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        return _load_sharded(path, weights_only)
    if path.name.endswith(".index.json"):
        return _load_index(path, weights_only)
    fmt = _format_of(path)
    try:
        return _load_safetensors(path) if fmt == "safetensors" else _load_torch(path, weights_only)
    except (FileNotFoundError, ValueError):
        raise
    except Exception as exc:
        raise ValueError(f"{path}: cannot read as a {fmt} checkpoint ({type(exc).__name__}: {exc})") from exc


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: Any, keys: Iterable[str] | str = DEFAULT_WRAPPER_KEYS) -> StateDict:
    """The tensor mapping inside a checkpoint wrapper.

    ``keys`` are tried in order at each level (``"model|module"`` is accepted, as in the original's
    ``--model_key``), descending through nested wrappers until every value is a tensor. A plain
    state dict is returned as a new ``dict`` with the same tensors.
    """
    keys = tuple(keys.split("|")) if isinstance(keys, str) else tuple(keys)
    path: list[str] = []
    while True:
        if not isinstance(obj, Mapping):
            where = "/".join(path) or "checkpoint"
            raise TypeError(f"{where} is a {type(obj).__name__}, not a mapping of tensors")
        inner = next((k for k in keys if isinstance(obj.get(k), Mapping)), None)
        if inner is not None:
            path.append(inner)
            obj = obj[inner]
            continue
        if _is_state_dict(obj):
            return dict(obj)
        where = "/".join(path) or "checkpoint"
        others = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))[:8]
        raise KeyError(
            f"{where} has none of the wrapper keys {list(keys)} and non-tensor entries {others}; "
            "pass the key that holds the weights"
        )


def _safetensors_ready(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Contiguous tensors with no storage shared between two entries (safetensors' requirement)."""
    out: StateDict = {}
    seen: set[tuple[torch.device, int]] = set()
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"key {key!r} holds a {type(tensor).__name__}; safetensors stores tensors only")
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        shares = tensor.numel() > 0 and storage in seen
        seen.add(storage)
        # A view of a larger storage or a tied weight is written as its own copy.
        whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
        out[key] = (
            tensor.detach().clone().contiguous() if shares or not whole else tensor.detach().contiguous()
        )
    return out


def save_state_dict_file(
    state_dict: Mapping[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``state_dict`` to ``path`` in the format its suffix names; returns the path.

    ``.safetensors`` stores tensors only (tied or non-contiguous tensors are written as
    copies; ``metadata`` goes into the header); the torch formats store any picklable mapping.
    """
    path = Path(path)
    fmt = _format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(_safetensors_ready(state_dict), str(path), metadata=metadata)
    else:
        if metadata:
            raise ValueError(f"{path}: metadata is only stored in .safetensors files")
        torch.save(dict(state_dict), path)
    return path
