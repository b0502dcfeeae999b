"""Load released InternVideo2 checkpoints into this package's models, as a user does it.

:func:`load_checkpoint` accepts a file (any format :func:`ivtools.checkpoint.load_state_dict_file`
reads) or a state dict, in every wrapping the releases use (bare, ``{'model': ...}``,
``{'module': ...}``, ``module.``/``backbone.``/``encoder.`` prefixes, the ``vision_encoder.`` part of
a multi-modality checkpoint), adapts it (:func:`adapt_state_dict`) and loads it strictly: what
cannot be explained by a documented conversion (pretraining heads dropped, a classifier head of
another class count re-initialised) is an error naming the first offending keys and shapes.

It is the one loader of the package: fine-tuning (:func:`internvideo2.engine.finetune.load_pretrained`)
calls it non-strict, with an ``edit`` hook for the original's ``--model_prefix`` /
``--finetune_extra`` / K710-head options and ``center_init`` for 2D patch-kernel inflation.

The conversions are also registered with ``ivtools.checkpoint`` (``ivtools-ckpt convert-model``):
``internvideo2_to_encoder`` keeps the encoder part of any InternVideo2 checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ivtools.checkpoint import LoadReport as MatchReport
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
class LoadReport(MatchReport):
    """What :func:`load_checkpoint` did: :class:`ivtools.checkpoint.LoadReport`'s lists plus conversions.

    ``loaded``, ``missing``, ``unexpected`` and ``mismatched`` mean what they mean for
    :func:`ivtools.checkpoint.load_matching`; ``dropped`` (checkpoint tensors not used) and
    ``reinitialised`` (model tensors kept at their initial value) are the views the fine-tuning
    log prints.
    """

    resized: list[str] = field(default_factory=list)  # position tables / patch kernels adapted
    notes: list[str] = field(default_factory=list)  # what the caller's options changed

    @property
    def dropped(self) -> list[str]:
        return self.unexpected + self.mismatched_keys

    @property
    def reinitialised(self) -> list[str]:
        return self.missing + self.mismatched_keys

    def __str__(self) -> str:
        def short(keys: list[str]) -> str:
            return (
                ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
                if keys
                else "none"
            )

        return "; ".join(
            [f"{len(self.loaded)} tensors loaded", *self.notes]
            + [f"resized: {short(self.resized)}, re-initialised: {short(self.reinitialised)}"]
            + [f"dropped: {short(self.dropped)}"]
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
    out = strip_wrappers(state_dict)
    if any(k.startswith(prefix) for k in out):
        out = {k[len(prefix) :]: v for k, v in out.items() if k.startswith(prefix)}
    return {k: v for k, v in out.items() if not _is_alignment_key(k)}


def strip_wrappers(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> StateDict:
    """Remove the ``module.``/``backbone.``/``encoder.`` wrappers (those ``model``'s own keys lack)."""
    own = model.state_dict() if model is not None else {}
    out = dict(state_dict)
    for wrapper in WRAPPER_PREFIXES:
        if not any(k.startswith(wrapper) for k in own):
            out = strip_prefix(out, wrapper)
    return out


def inflate_patch_weight(weight_2d: torch.Tensor, frames: int, center: bool = True) -> torch.Tensor:
    """``(D, C, h, w)`` image patch kernel -> ``(D, C, frames, h, w)`` video kernel.

    ``center`` puts the 2D kernel in the middle frame (zeros elsewhere, InternVL's inflation);
    otherwise it is spread evenly over the frames. Either way a static clip gets the image
    model's response.
    """
    if center:
        out = weight_2d.new_zeros(*weight_2d.shape[:2], frames, *weight_2d.shape[2:])
        out[:, :, frames // 2] = weight_2d
        return out
    return weight_2d.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames


def _adapt_patch_kernel(
    key: str, value: torch.Tensor, target: torch.Tensor, report: LoadReport, center: bool
) -> torch.Tensor:
    if value.dim() == 4 and target.dim() == 5:  # a 2D image kernel
        out = inflate_patch_weight(value, target.shape[2], center)
    elif value.dim() == 5 and target.dim() == 5 and value.shape[2] == 1:  # single-frame kernel -> tubelet
        out = inflate_patch_weight(value[:, :, 0], target.shape[2], center)
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
    center_init: bool = True,
) -> StateDict:
    """Make a released state dict fit ``model``: prefixes, alignment parts, patch kernel, pos tables, head.

    ``orig_t_size`` names the frame count (in tokens) the checkpoint's joint position tables were
    made for, when it cannot be inferred from the token count. ``center_init`` chooses how a 2D
    (or single-frame) patch kernel is inflated to the model's tubelet (:func:`inflate_patch_weight`).
    """
    report = report if report is not None else LoadReport()
    target = model.state_dict()
    out = strip_wrappers(state_dict, model)
    if not any(k.startswith("vision_encoder.") for k in target) and any(
        k.startswith("vision_encoder.") for k in out
    ):
        report.unexpected += [k for k in out if not k.startswith("vision_encoder.")]
        out = {k[len("vision_encoder.") :]: v for k, v in out.items() if k.startswith("vision_encoder.")}
    for key in [k for k in out if k not in target and _is_alignment_key(k)]:
        report.unexpected.append(key)
        del out[key]
    for key, value in list(out.items()):
        if key.endswith("patch_embed.proj.weight") and key in target and value.shape != target[key].shape:
            out[key] = _adapt_patch_kernel(key, value, target[key], report, center_init)
    tables = getattr(model, "pos_tables", dict)()
    for name, (extra, grid) in tables.items():
        value = out.get(name)
        if value is None or value.dim() != 3 or value.shape[1] == extra + math.prod(grid):
            continue
        rows = value.shape[1] - extra
        joint = grid[0] > 1 and grid[1] * grid[2] > 1  # separable / image tables have no frame count
        old = (
            _grid_with_frames(rows, orig_t_size, name)
            if orig_t_size is not None and joint
            else infer_grid(rows, grid, name)
        )
        out[name] = interpolate_pos_embed(value, extra, old, grid)
        report.resized.append(name)
    for key in [
        k for k in out if k.startswith(HEAD_PARTS) and k in target and out[k].shape != target[k].shape
    ]:
        report.add_mismatch(key, out[key].shape, target[key].shape)
        del out[key]
    return out


def _grid_with_frames(rows: int, frames: int, key: str) -> tuple[int, int, int]:
    side = math.isqrt(rows // frames)
    if side * side * frames != rows:
        raise CheckpointMismatchError(
            f"{key}: {rows} position rows are not {frames} frames of a square grid; "
            "set orig_t_size (--orig_t_size) to the frame count the checkpoint was trained with"
        )
    return (frames, side, side)


def mismatch_message(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> str | None:
    """What keeps ``state_dict`` from loading strictly into ``model`` (first keys of each kind), or None."""
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
    center_init: bool = True,
    edit: Callable[[StateDict], StateDict] | None = None,
) -> LoadReport:
    """Load a released checkpoint (path or state dict) into ``model``; return what was adapted.

    Strict by default: any shape mismatch, missing encoder key or unexplained extra key raises
    :class:`CheckpointMismatchError` naming the first of them. Classifier head parameters missing
    from the checkpoint, or of another class count, keep their initial values (reported in
    ``reinitialised``). ``strict=False`` loads what fits and reports the rest as dropped, but a
    checkpoint of which nothing fits is still an error. ``edit(state_dict) -> state_dict`` runs on
    the unwrapped state dict before the conversions (a released file's layout, fine-tuning options).
    """
    source = str(checkpoint) if isinstance(checkpoint, (str, Path)) else "state dict"
    raw = load_state_dict_file(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    state_dict = unwrap_state_dict(raw, model_key) if isinstance(checkpoint, (str, Path)) else dict(raw)
    report = LoadReport()
    if edit is not None:
        state_dict = edit(state_dict)
    state_dict = adapt_state_dict(model, state_dict, orig_t_size, report, center_init)
    problem = mismatch_message(model, state_dict, source)
    target = model.state_dict()
    fitting = {k: v for k, v in state_dict.items() if k in target and v.shape == target[k].shape}
    if problem and (strict or not fitting):
        prefix = "" if fitting else "no tensor matches the model; "
        raise CheckpointMismatchError(prefix + problem)
    for key in [k for k in state_dict if k not in fitting]:
        if key in target:
            report.add_mismatch(key, state_dict[key].shape, target[key].shape)
        else:
            report.unexpected.append(key)
    result = model.load_state_dict(fitting, strict=False)
    mismatched = set(report.mismatched_keys)
    report.missing = [k for k in result.missing_keys if k not in mismatched]
    report.loaded = list(fitting)
    return report


register_conversion(
    "internvideo2_to_encoder",
    to_encoder_state_dict,
    help="InternVideo2: the encoder of a pretraining / stage-2 / fine-tuned checkpoint (alignment heads dropped)",
    overwrite=True,
)
