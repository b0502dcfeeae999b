"""Partial loading with a report: what a checkpoint gave a model, and what it did not.

Initialising a classifier from a pretraining checkpoint (``--finetune``) loads the tensors whose
name and shape match and must say clearly what was left at its initial value (``missing``), what
the checkpoint had that the model does not use (``unexpected``, e.g. pretraining-only decoders)
and what had the wrong shape (``mismatched``)::

    report = load_matching(model, state_dict)
    print(report.summary("ckpt.pth"))

Loaders with conversions of their own (InternVideo2's ``load_checkpoint``) extend the report and
fill the same four lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    mismatched: list[str] = field(default_factory=list)  # "key: checkpoint shape -> model shape"

    def add_mismatch(self, key: str, checkpoint_shape: Sequence[int], model_shape: Sequence[int]) -> None:
        """Record that ``key`` was not loaded because its shape differs (kept at init)."""
        self.mismatched.append(f"{key}: {tuple(checkpoint_shape)} -> {tuple(model_shape)}")

    @property
    def mismatched_keys(self) -> list[str]:
        return [entry.split(": ", 1)[0] for entry in self.mismatched]

    def summary(self, path: str) -> str:
        lines = [f"loaded {len(self.loaded)} tensors from {path}"]
        if self.missing:
            lines.append(
                f"  missing in checkpoint (kept at init): {len(self.missing)}: {', '.join(self.missing)}"
            )
        if self.mismatched:
            lines.append(
                f"  shape mismatch (kept at init): {len(self.mismatched)}: {', '.join(self.mismatched)}"
            )
        if self.unexpected:
            # Pretraining checkpoints carry hundreds of head tensors: count them per top-level module.
            groups: dict[str, int] = {}
            for key in self.unexpected:
                groups[key.split(".")[0]] = groups.get(key.split(".")[0], 0) + 1
            counts = ", ".join(f"{name} ({n})" for name, n in groups.items())
            lines.append(f"  unexpected in checkpoint (ignored): {len(self.unexpected)}: {counts}")
        return "\n".join(lines)


def load_matching(module: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Load the tensors of ``state_dict`` whose name and shape match ``module``; report the rest."""
    own = module.state_dict()
    report = LoadReport()
    loadable = {}
    for key, value in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.add_mismatch(key, value.shape, own[key].shape)
        else:
            loadable[key] = value
    report.missing = [k for k in own if k not in state_dict]
    report.loaded = list(loadable)
    module.load_state_dict(loadable, strict=False)
    return report
