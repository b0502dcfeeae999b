"""Load released InternVideo2 checkpoints into this package's models, as a user does it.

:func:`load_checkpoint` accepts a file (any format :func:`ivtools.checkpoint.load_state_dict_file`
reads) or a state dict, in every wrapping the releases use (bare, ``{'model': ...}``,
``{'module': ...}``, ``module.``/``backbone.``/``encoder.`` prefixes, the ``vision_encoder.`` part of
a multi-modality checkpoint), adapts it (:func:`adapt_state_dict`) and loads it strictly: what
cannot be explained by a documented conversion (pretraining heads dropped, a classifier head of
another class count re-initialised) is an error naming the first offending keys and shapes.

The conversions are also registered with ``ivtools.checkpoint`` (``ivtools-ckpt convert-model``):
``internvideo2_to_encoder`` keeps the encoder part of any InternVideo2 checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ivtools.checkpoint import (
    interpolate_pos_embed,
    load_state_dict_file,
    register_conversion,
    strip_prefix,
    unwrap_state_dict,
)

from .backbone import infer_grid

StateDict = dict[str, torch.Tensor]

WRAPPER_PREFIXES = ("module.", "backbone.", "encoder.")
# Parameters only the pretraining / stage-2 objectives use; a classifier or encoder drops them.
ALIGNMENT_PARTS = ("clip_decoder.", "final_clip_decoder.", "mae_decoder.", "clip_", "mae_", "img_pos_embed")
HEAD_PARTS = ("head.", "fc_norm.", "extra_mlp.", "down.", "down_norm.")


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model (another size or modality)."""


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did besides copying matching tensors."""

    dropped: list[str] = field(default_factory=list)  # in the checkpoint, not used by this model
    reinitialised: list[str] = field(default_factory=list)  # kept at their initial value
    resized: list[str] = field(default_factory=list)  # position tables / patch kernels adapted

    def __str__(self) -> str:
        def short(keys: list[str]) -> str:
            return (
                ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
                if keys
                else "none"
            )

        return (
            f"resized: {short(self.resized)}; re-initialised: {short(self.reinitialised)}; "
            f"dropped: {short(self.dropped)}"
        )


def _is_alignment_key(key: str) -> bool:
    return key.startswith(ALIGNMENT_PARTS) or key == "img_pos_embed"


def to_encoder_state_dict(
    state_dict: Mapping[str, torch.Tensor], prefix: str = "vision_encoder."
) -> StateDict:
    """The InternVideo2 encoder part of any released checkpoint (single- or multi-modality).

    Strips wrapper prefixes; when keys start with ``prefix`` (a multi-modality checkpoint) keeps
    only those; then removes the pretraining alignment parts (``clip_decoder``, ``clip_pos_embed``,
    ``mae_*``, ``img_pos_embed``, ...). Classifier heads are kept.
    """
    out = dict(state_dict)
    for wrapper in WRAPPER_PREFIXES:
        out = strip_prefix(out, wrapper)
    if any(k.startswith(prefix) for k in out):
        out = {k[len(prefix) :]: v for k, v in out.items() if k.startswith(prefix)}
    return {k: v for k, v in out.items() if not _is_alignment_key(k)}


def _adapt_patch_kernel(
    key: str, value: torch.Tensor, target: torch.Tensor, report: LoadReport
) -> torch.Tensor:
    if value.dim() == 4 and target.dim() == 5:  # a 2D image kernel: centre-inflate (InternVL)
        out = value.new_zeros(*value.shape[:2], target.shape[2], *value.shape[2:])
        out[:, :, target.shape[2] // 2] = value
    elif value.dim() == 5 and target.dim() == 5 and target.shape[2] == 1:  # tubelet t -> 1: average
        out = value.mean(dim=2, keepdim=True)
    else:
        return value
    report.resized.append(key)
    return out


def adapt_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    orig_t_size: int | None = None,
    report: LoadReport | None = None,
) -> StateDict:
    """Make a released state dict fit ``model``: prefixes, alignment parts, patch kernel, pos tables, head.

    ``orig_t_size`` names the frame count (in tokens) the checkpoint's position tables were made
    for, when it cannot be inferred from the token count.
    """
    report = report if report is not None else LoadReport()
    target = model.state_dict()
    out = dict(state_dict)
    for wrapper in WRAPPER_PREFIXES:
        if not any(k.startswith(wrapper) for k in target):
            out = strip_prefix(out, wrapper)
    if not any(k.startswith("vision_encoder.") for k in target) and any(
        k.startswith("vision_encoder.") for k in out
    ):
        report.dropped += [k for k in out if not k.startswith("vision_encoder.")]
        out = {k[len("vision_encoder.") :]: v for k, v in out.items() if k.startswith("vision_encoder.")}
    for key in [k for k in out if k not in target and _is_alignment_key(k)]:
        report.dropped.append(key)
        del out[key]
    for key, value in list(out.items()):
        if key.endswith("patch_embed.proj.weight") and key in target and value.shape != target[key].shape:
            out[key] = _adapt_patch_kernel(key, value, target[key], report)
    tables = getattr(model, "pos_tables", dict)()
    for name, (extra, grid) in tables.items():
        value = out.get(name)
        if value is None or value.dim() != 3 or value.shape[1] == extra + math.prod(grid):
            continue
        rows = value.shape[1] - extra
        old = (
            infer_grid(rows, grid, name)
            if orig_t_size is None
            else _grid_with_frames(rows, orig_t_size, name)
        )
        out[name] = interpolate_pos_embed(value, extra, old, grid)
        report.resized.append(name)
    for key in [
        k for k in out if k.startswith(HEAD_PARTS) and k in target and out[k].shape != target[k].shape
    ]:
        report.dropped.append(key)
        del out[key]
    return out


def _grid_with_frames(rows: int, frames: int, key: str) -> tuple[int, int, int]:
    side = math.isqrt(rows // frames)
    if side * side * frames != rows:
        raise CheckpointMismatchError(f"{key}: {rows} position rows are not {frames} frames of a square grid")
    return (frames, side, side)


def _mismatch_message(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> str | None:
    target = model.state_dict()
    wrong = [
        (k, tuple(v.shape), tuple(target[k].shape))
        for k, v in state_dict.items()
        if k in target and v.shape != target[k].shape
    ]
    missing = [k for k in target if k not in state_dict and not k.startswith(HEAD_PARTS)]
    unexpected = [k for k in state_dict if k not in target]
    if not (wrong or missing or unexpected):
        return None
    lines = [f"checkpoint {source} does not fit {type(model).__name__}:"]
    if wrong:
        lines.append(
            "  shape mismatches (key: checkpoint vs model): "
            + "; ".join(f"{k}: {a} vs {b}" for k, a, b in wrong[:5])
        )
    if missing:
        lines.append(f"  missing ({len(missing)}): " + ", ".join(missing[:5]))
    if unexpected:
        lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected[:5]))
    return "\n".join(lines)


def load_checkpoint(
    model: nn.Module,
    checkpoint: str | Path | Mapping[str, torch.Tensor],
    model_key: str = "model|module|state_dict",
    orig_t_size: int | None = None,
    strict: bool = True,
) -> LoadReport:
    """Load a released checkpoint (path or state dict) into ``model``; return what was adapted.

    Strict by default: any shape mismatch, missing encoder key or unexplained extra key raises
    :class:`CheckpointMismatchError` naming the first of them. Classifier head parameters missing
    from the checkpoint, or of another class count, keep their initial values (reported in
    ``reinitialised``). ``strict=False`` loads what fits and reports the rest as dropped.
    """
    source = str(checkpoint) if isinstance(checkpoint, (str, Path)) else "state dict"
    raw = load_state_dict_file(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    state_dict = unwrap_state_dict(raw, model_key) if isinstance(checkpoint, (str, Path)) else dict(raw)
    report = LoadReport()
    state_dict = adapt_state_dict(model, state_dict, orig_t_size, report)
    problem = _mismatch_message(model, state_dict, source)
    if problem and strict:
        raise CheckpointMismatchError(problem)
    target = model.state_dict()
    if not strict:
        report.dropped += [k for k, v in state_dict.items() if k not in target or v.shape != target[k].shape]
        state_dict = {k: v for k, v in state_dict.items() if k in target and v.shape == target[k].shape}
    result = model.load_state_dict(state_dict, strict=False)
    report.reinitialised = list(result.missing_keys)
    return report


register_conversion(
    "internvideo2_to_encoder",
    to_encoder_state_dict,
    help="InternVideo2: the encoder of a pretraining / stage-2 / fine-tuned checkpoint (alignment heads dropped)",
    overwrite=True,
)
