"""Loading Hugging Face models from local folders, refusing anything that would leave weights random.

``from_pretrained`` only warns when checkpoint keys are missing and re-initialises those weights, so
a wrong folder (another model family, a truncated download) would silently train against a random
teacher or decoder. Here a folder must hold the expected ``model_type`` and every weight of the
built module must come from the checkpoint. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn


def local_model_type(path: str | os.PathLike, what: str) -> str | None:
    """The ``model_type`` in ``path/config.json``; a clear error when the folder or file is absent."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{what} folder {folder} has no config.json (not a Hugging Face model folder)"
        )
    return json.loads(config_file.read_text()).get("model_type")


def load_local_pretrained(
    model_class: type[nn.Module], path: str | os.PathLike, model_types: tuple[str, ...], what: str
) -> nn.Module:
    """``model_class.from_pretrained(path)`` from local files only, in float32, with every weight loaded.

    float32 whatever the checkpoint's storage dtype (transformers >= 5 would otherwise keep a bf16
    copy in bf16): these are master weights, mixed precision is the training backend's job, and
    the random-init path builds float32 too.
    """
    model_type = local_model_type(path, what)
    if model_type not in model_types:
        raise ValueError(
            f"{path} holds a {model_type!r} model, but the {what} needs model_type in {model_types}"
        )
    model, info = model_class.from_pretrained(
        path,
        local_files_only=True,
        attn_implementation="sdpa",
        dtype=torch.float32,
        output_loading_info=True,
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"{path}: {len(missing)} {what} weights are not in the checkpoint and would stay random, "
            f"e.g. {missing[:5]}"
        )
    return model
