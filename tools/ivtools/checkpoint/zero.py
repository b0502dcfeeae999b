"""Consolidate a DeepSpeed ZeRO checkpoint folder into one fp32 state dict.

DeepSpeed writes ``<dir>/latest`` (naming the newest tag) and ``<dir>/<tag>/`` with
``mp_rank_00_model_states.pt`` (ZeRO-3: one ``zero_pp_rank_<r>_mp_rank_00_model_states.pt`` per rank) and one ``*_optim_states.pt`` per rank; the fp32 master weights
live, partitioned, in the optimizer states. DeepSpeed's own ``zero_to_fp32`` merges them; this
module only finds the folder and tag and reports problems by path.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

MODEL_STATES_GLOB = "*mp_rank_00_model_states.pt"  # ZeRO-3 prefixes it with zero_pp_rank_<r>_


def _is_tag_folder(folder: Path) -> bool:
    return any(folder.glob(MODEL_STATES_GLOB))


def _resolve(folder: Path, tag: str | None) -> tuple[Path, str]:
    """Accept the checkpoint root (with ``latest``) or one tag folder itself."""
    if not folder.is_dir():
        raise FileNotFoundError(f"DeepSpeed checkpoint folder not found: {folder}")
    if tag is None and _is_tag_folder(folder) and not (folder / "latest").is_file():
        return folder.parent, folder.name
    if tag is None:
        latest = folder / "latest"
        if not latest.is_file():
            raise FileNotFoundError(f"{folder}: no 'latest' file; pass tag= (one of the step folders)")
        tag = latest.read_text().strip()
    if not _is_tag_folder(folder / tag):
        raise FileNotFoundError(f"{folder / tag}: no {MODEL_STATES_GLOB}; not a DeepSpeed checkpoint tag")
    return folder, tag


def consolidate_zero_checkpoint(
    folder: str | os.PathLike, tag: str | None = None, exclude_frozen: bool = False
) -> dict[str, torch.Tensor]:
    """fp32 weights of a ZeRO stage 1/2/3 checkpoint (root folder with ``latest``, or a tag folder).

    Trainable parameters come from the fp32 master copies in the optimizer states (DeepSpeed's
    ``get_fp32_state_dict_from_zero_checkpoint``); buffers and frozen parameters are included
    unless ``exclude_frozen``. Needs the ``deepspeed`` package.
    """
    try:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError as exc:
        raise ImportError(
            "consolidating ZeRO checkpoints needs deepspeed: pip install 'ivtools[deepspeed]'"
        ) from exc
    root, tag = _resolve(Path(folder), tag)
    state_dict = get_fp32_state_dict_from_zero_checkpoint(
        str(root), tag=tag, exclude_frozen_parameters=exclude_frozen
    )
    state_dict = dict(state_dict)
    if not exclude_frozen:
        state_dict.update(_frozen_params_missing_from_zero1(root / tag, state_dict))
    return state_dict


def _frozen_params_missing_from_zero1(
    tag_folder: Path, merged: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Frozen parameters that DeepSpeed leaves out of ZeRO-1 consolidation, from the module copy.

    ZeRO-1 engines do not record ``frozen_param_shapes``, so ``zero_to_fp32`` drops frozen
    parameters. Stages 1 and 2 save the whole (unpartitioned) module next to the optimizer
    states; parameters missing from the merged result are taken from it, in fp32.
    """
    model_states = tag_folder / "mp_rank_00_model_states.pt"
    if not model_states.is_file():  # ZeRO-3 records its frozen parameters itself
        return {}
    module = torch.load(model_states, map_location="cpu", weights_only=False).get("module") or {}
    return {
        key: tensor.float() if tensor.is_floating_point() else tensor
        for key, tensor in module.items()
        if key not in merged and tensor.numel() > 0
    }
