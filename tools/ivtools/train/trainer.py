"""The generic training loop every entry point uses.

A task supplies ``step_fn(model, batch, backend) -> (loss, metrics)``: it moves the batch with
``backend.prepare``, runs the model and returns the micro-batch loss and a dict of detached
metric tensors. The :class:`Trainer` does the rest: epochs, gradient accumulation, lr and
weight-decay schedules per optimizer update, EMA, logging, periodic evaluation, checkpoints
every N epochs and on a preemption signal, and ``resume="auto"`` that continues exactly where
the last run stopped (mid-epoch included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ivtools.distributed import DistInfo, all_reduce_sum
from ivtools.train.logger import TrainLogger
from ivtools.train.resume import CheckpointManager, Preemption

StepFn = Callable[[torch.nn.Module, dict, object], tuple[torch.Tensor, dict]]


@dataclass
class TrainerConfig:
    epochs: int
    output_dir: str | None = None
    accumulation: int = 1  # the original's --update_freq
    max_updates_per_epoch: int | None = None  # cap on optimizer updates per epoch
    log_every: int = 10
    save_every: int = 1  # epochs between checkpoints (the original's --save_ckpt_freq)
    keep_last: int = 2
    resume: str = ""  # "", "auto", or a checkpoint path
    eval_every: int = 1
    best_metric: str | None = None  # e.g. "top1": keep checkpoint-best with the highest value
    tensorboard: bool = True


@dataclass
class TrainState:
    epoch: int = 0  # epoch in progress (or the next one at an epoch boundary)
    micro_step: int = 0  # micro-batches already done in that epoch
    update: int = 0  # optimizer updates done in total
    best: float | None = None
    history: list = field(default_factory=list)


class Trainer:
    def __init__(
        self,
        backend,
        loader,
        step_fn: StepFn,
        cfg: TrainerConfig,
        dist: DistInfo,
        lr_scheduler=None,
        wd_schedule=None,
        ema=None,
        evaluate_fn: Callable[[torch.nn.Module], dict] | None = None,
        preemption: Preemption | None = None,
    ):
        self.backend, self.loader, self.step_fn, self.cfg, self.dist = backend, loader, step_fn, cfg, dist
        self.lr_scheduler, self.wd_schedule, self.ema = lr_scheduler, wd_schedule, ema
        self.evaluate_fn = evaluate_fn
        self.preemption = preemption or Preemption()
        self.state = TrainState()
        self.checkpoints = (
            CheckpointManager(cfg.output_dir, backend, cfg.keep_last) if cfg.output_dir else None
        )
        self.log = TrainLogger(cfg.output_dir, cfg.log_every, cfg.tensorboard)

    @property
    def micro_steps_per_epoch(self) -> int:
        return (
            updates_per_epoch(self.loader, self.cfg.accumulation, self.cfg.max_updates_per_epoch)
            * self.cfg.accumulation
        )

    # ---- checkpoints ----------------------------------------------------------------------
    def _snapshot(self) -> dict:
        state = {
            "epoch": self.state.epoch,
            "micro_step": self.state.micro_step,
            "update": self.state.update,
            "best": self.state.best,
            "history": self.state.history,
            "sampler": self.loader.sampler.state_dict(),
        }
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        if self.ema is not None:
            state["model_ema"] = self.ema.module.state_dict()
        return state

    def save(self, tag: str) -> Path | None:
        if self.checkpoints is None:
            return None
        return self.checkpoints.save(tag, self._snapshot())

    def resume(self) -> bool:
        """Restore from ``cfg.resume``; True if a checkpoint was loaded."""
        if self.checkpoints is None:
            return False
        path = self.checkpoints.resolve(self.cfg.resume)
        if path is None:
            return False
        saved = self.checkpoints.load(path)
        self.state = TrainState(
            epoch=saved["epoch"],
            micro_step=saved["micro_step"],
            update=saved["update"],
            best=saved.get("best"),
            history=list(saved.get("history", [])),
        )
        self.loader.sampler.load_state_dict(saved["sampler"])
        if self.lr_scheduler is not None and "lr_scheduler" in saved:
            self.lr_scheduler.load_state_dict(saved["lr_scheduler"])
        if self.ema is not None and "model_ema" in saved:
            self.ema.module.load_state_dict(saved["model_ema"])
        if self.dist.is_main:
            print(
                f"resumed from {path} at epoch {self.state.epoch}, step {self.state.micro_step}", flush=True
            )
        return True

    # ---- the loop -------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        """Train to ``cfg.epochs``; returns the per-epoch records. Stops early on preemption."""
        self.resume()
        try:
            while self.state.epoch < self.cfg.epochs:
                epoch = self.state.epoch
                record = self.train_epoch(epoch)
                if record is None:  # preempted: a checkpoint was written mid-epoch
                    return self.state.history
                if self.evaluate_fn is not None and (
                    (epoch + 1) % self.cfg.eval_every == 0 or epoch + 1 == self.cfg.epochs
                ):
                    record.update(self.evaluate_fn(self.backend.module))
                self.state.history.append({"epoch": epoch, **record})
                self.log.epoch_summary(epoch, record)
                self.state.epoch, self.state.micro_step = epoch + 1, 0
                self._maybe_save_best(record)
                if (epoch + 1) % self.cfg.save_every == 0 or epoch + 1 == self.cfg.epochs:
                    self.save(str(epoch))
        finally:
            self.log.close()
        return self.state.history

    def _maybe_save_best(self, record: dict) -> None:
        key = self.cfg.best_metric
        if key is None or key not in record:
            return
        if self.state.best is None or record[key] > self.state.best:
            self.state.best = record[key]
            self.save("best")

    def _update_schedules(self) -> None:
        if self.lr_scheduler is not None:
            self.lr_scheduler.step_update(self.state.update)
        if self.wd_schedule is not None:
            self.wd_schedule.step_update(self.state.update)

    def _lr_range(self) -> dict[str, float]:
        lrs = [g["lr"] for g in self.backend.optimizer.param_groups]
        return {"lr": max(lrs), "min_lr": min(lrs)}

    def train_epoch(self, epoch: int) -> dict | None:
        """One epoch from the current position; None if preempted (after saving)."""
        sampler = self.loader.sampler
        resuming = self.state.micro_step > 0
        if not resuming:
            sampler.set_epoch(epoch)
        if hasattr(self.loader.dataset, "set_epoch"):
            self.loader.dataset.set_epoch(epoch)
        accumulation = self.cfg.accumulation
        total = self.micro_steps_per_epoch
        self.backend.module.train()
        self.log.start_epoch(epoch, total // accumulation, initial=self.state.micro_step // accumulation)
        device = self.dist.device
        loss_sum, skipped, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        step = self.state.micro_step
        for batch in self.loader:
            if step >= total:
                break
            update = (step + 1) % accumulation == 0
            if step % accumulation == 0:
                self._update_schedules()
            with self.backend.autocast():
                loss, metrics = self.step_fn(self.backend.model, batch, self.backend)
            grad_norm = self.backend.backward_step(loss, update)
            step += 1
            loss_sum += loss.detach().float()
            seen += 1
            if "skipped" in batch:
                skipped += batch["skipped"].sum().to(device)
            if not update:
                continue
            self.state.update += 1
            if self.ema is not None:
                self.ema.update(self.backend.module, step=self.state.update)
            extras = {"grad_norm": grad_norm} if grad_norm is not None else {}
            self.log.update(
                self.state.update,
                _batch_size(batch) * accumulation,
                self._lr_range(),
                loss=loss.detach(),
                **metrics,
                **extras,
            )
            if self.preemption.requested:
                self.state.micro_step = step
                sampler.set_start(step * self.loader.batch_size)
                self.log.end_epoch()
                self.save("preempt")
                return None
        self.log.end_epoch()
        self.state.micro_step = 0
        sampler.set_start(0)
        totals = all_reduce_sum(torch.stack([loss_sum, skipped, torch.tensor(float(seen), device=device)]))
        loss_total, skipped_total, seen_total = totals.tolist()
        record = {"train_loss": loss_total / max(seen_total, 1), "skipped_videos": int(round(skipped_total))}
        if record["skipped_videos"] and self.dist.is_main:
            print(f"[epoch {epoch}] skipped {record['skipped_videos']} unreadable videos", flush=True)
        return record


def updates_per_epoch(loader, accumulation: int = 1, cap: int | None = None) -> int:
    """Optimizer updates in one full epoch of ``loader`` (a loader over a ResumableSampler).

    Incomplete accumulation windows at the end of an epoch are dropped, as in the original.
    """
    samples = loader.sampler.epoch_size()
    batches = samples // loader.batch_size if loader.drop_last else -(-samples // loader.batch_size)
    updates = batches // accumulation
    return min(updates, cap) if cap is not None else updates


def _batch_size(batch) -> int:
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return int(value.shape[0])
    return 0
