"""Checkpoints that resume a run exactly, and saving on a preemption signal.

A checkpoint holds the model, the backend's optimizer (and scaler) state, the lr scheduler,
the sampler position, every rank's random-number-generator state, the EMA weights and the
loop counters. Native checkpoints are single files ``checkpoint-<tag>.pth`` in the original's
layout (``{"model": state_dict, "optimizer": ..., "epoch": ...}``), written by rank 0;
DeepSpeed checkpoints are DeepSpeed's own folders (``<output_dir>/checkpoint-<tag>/``), written
by every rank. ``latest_checkpoint`` in the output directory names the newest one, so
``--resume auto`` needs no path.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import torch

from ivtools.distributed import all_gather_object, barrier, get_rank, get_world_size, is_main_process

LATEST = "latest_checkpoint"


def rng_state() -> dict:
    # NumPy's key array is stored as a tensor so that checkpoints load with weights_only=True.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        # This rank's own device only: a resumed run may see another number of GPUs per process.
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Preemption:
    """Turns SIGTERM/SIGUSR1 (what SLURM sends before a kill or at a time limit) into a flag.

    The training loop checks :attr:`requested` at optimizer-step boundaries and saves.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)):
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def request(self) -> None:
        self.requested = True


class CheckpointManager:
    def __init__(self, output_dir: str | Path, backend, keep_last: int = 2):
        self.output_dir = Path(output_dir)
        self.backend = backend
        self.keep_last = keep_last

    def path(self, tag: str) -> Path:
        suffix = "" if self.backend.kind == "deepspeed" else ".pth"
        return self.output_dir / f"checkpoint-{tag}{suffix}"

    def save(self, tag: str, state: dict, model_extras: dict | None = None) -> Path:
        """Save ``state`` (loop counters, scheduler, sampler, EMA ...) with model and optimizer.

        Collective: every rank must call it (each contributes its RNG state).
        """
        state = {**state, "rng": all_gather_object(rng_state())}
        path = self.path(tag)
        if self.backend.kind == "deepspeed":
            self.backend.model.save_checkpoint(str(self.output_dir), tag=path.name, client_state=state)
        elif is_main_process():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            payload = {"model": self.backend.module.state_dict(), **self.backend.state_dict(), **state}
            payload.update(model_extras or {})
            tmp = path.with_suffix(".tmp")
            torch.save(payload, tmp)
            os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint behind
        if is_main_process():
            (self.output_dir / LATEST).write_text(path.name + "\n")
            self._prune(keep={path.name})
        barrier()
        return path

    def _prune(self, keep: set[str]) -> None:
        """Delete old numbered epoch checkpoints beyond ``keep_last`` (named ones are kept)."""
        if self.keep_last <= 0:
            return
        numbered = sorted(
            (
                p
                for p in self.output_dir.glob("checkpoint-*")
                if p.name.split("-", 1)[1].split(".")[0].isdigit()
            ),
            key=lambda p: int(p.name.split("-", 1)[1].split(".")[0]),
        )
        for old in numbered[: -self.keep_last]:
            if old.name in keep:
                continue
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()

    def latest(self) -> Path | None:
        marker = self.output_dir / LATEST
        if not marker.is_file():
            return None
        path = self.output_dir / marker.read_text().strip()
        return path if path.exists() else None

    def resolve(self, resume: str) -> Path | None:
        """``""`` → None, ``"auto"`` → the latest checkpoint (None if none), else the path."""
        if not resume:
            return None
        if resume == "auto":
            return self.latest()
        path = Path(resume)
        if not path.exists():
            raise FileNotFoundError(f"resume checkpoint not found: {path}")
        return path

    def load(self, path: Path) -> dict:
        """Restore model, optimizer and this rank's RNG from ``path``; return the saved state."""
        if self.backend.kind == "deepspeed":
            saved_world = zero_world_size(path)
            universal = saved_world is not None and saved_world != get_world_size()
            if universal:
                path = universal_checkpoint(path)
                # DeepSpeed reads this flag when loading; it re-partitions the optimizer state.
                self.backend.model._config.load_universal_checkpoint = True
            _, state = self.backend.model.load_checkpoint(str(path.parent), tag=path.name)
            if state is None:
                raise RuntimeError(f"DeepSpeed could not load checkpoint {path}")
            optimizer = self.backend.model.optimizer
            base_optimizer = getattr(optimizer, "optimizer", optimizer)
            if universal and self.backend.model.zero_optimization_stage() == 3:
                restore_zero3_universal_groups(base_optimizer, path)
            steps_beside_parameters(base_optimizer)
        else:
            state = torch.load(path, map_location="cpu", weights_only=False)
            self.backend.module.load_state_dict(state["model"])
            self.backend.load_state_dict(state)
        states = state.get("rng") or []
        if len(states) > get_rank():
            set_rng_state(states[get_rank()])
        return state


def steps_beside_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Move Adam-style ``step`` counters onto their parameters' devices.

    DeepSpeed's universal-checkpoint loader restores them on the CPU, and fused AdamW refuses
    counters that are not on the parameters' device.
    """
    # Through the state, not the groups: ZeRO-3 puts a group's parameters in only while stepping it.
    for p, state in optimizer.state.items():
        step = state.get("step")
        if isinstance(step, torch.Tensor) and step.device != p.device:
            state["step"] = step.to(p.device)


def restore_zero3_universal_groups(optimizer: torch.optim.Optimizer, universal: Path) -> None:
    """Repair what DeepSpeed 0.19's ZeRO-3 universal loader gets wrong in ``optimizer``.

    ``load_hp_checkpoint_state_from_checkpoint_dir_stage3`` gives every parameter group the
    first saved group's hyperparameters (so decayed groups lose their weight decay, and layer
    decay its lr scales) and hands all groups one shared ``step`` tensor, which AdamW then
    advances once per group per update. The saved groups are in the universal folder.
    """
    saved = torch.load(universal / "zero" / "optimizer_state.pt", map_location="cpu", weights_only=False)
    saved_groups = saved["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        raise RuntimeError(
            f"{universal} holds {len(saved_groups)} parameter groups, the optimizer "
            f"{len(optimizer.param_groups)}: the checkpoint was written by another optimizer setup"
        )
    for group, saved_group in zip(optimizer.param_groups, saved_groups):
        group.update({k: v for k, v in saved_group.items() if k != "params"})
    # Through the state, not the groups: ZeRO-3 puts a group's parameters in only while stepping it.
    for state in optimizer.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].clone()


def zero_world_size(folder: Path) -> int | None:
    """How many data-parallel ranks wrote a DeepSpeed ZeRO checkpoint folder (None if not one).

    Every stage writes one ``zero_pp_rank_<r>_mp_rank_00_optim_states.pt`` per rank (some modes
    prefix it, e.g. ``bf16_``); ZeRO-3's per-rank ``..._model_states.pt`` are not counted.
    """
    shards = list(Path(folder).glob("*zero_pp_rank_*_mp_rank_00_optim_states.pt"))
    return len(shards) or None


def universal_checkpoint(path: Path) -> Path:
    """DeepSpeed's universal form of a ZeRO checkpoint, stages 1-3 (made once, next to it), which
    loads at any world size: a run saved on N GPUs resumes on M."""
    out = path.parent / "universal" / path.name
    if is_main_process() and not (out / "zero").is_dir():
        from deepspeed.checkpoint import ds_to_universal

        options = {"num_extract_workers": 1, "num_merge_workers": 1, "keep_temp_folder": False}
        options.update(strict=True, inject_missing_state=True)
        ds_to_universal.main(argparse.Namespace(input_folder=str(path), output_folder=str(out), **options))
    barrier()
    return out
