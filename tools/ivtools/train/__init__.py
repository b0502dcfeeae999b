"""Training infrastructure shared by every generation.

* :class:`~ivtools.train.trainer.Trainer` -- the loop: accumulation, schedules, EMA, logging,
  evaluation, checkpoints every N epochs and on SIGTERM/SIGUSR1, exact ``resume="auto"``. A task
  plugs in ``step_fn(model, batch, backend) -> (loss, metrics)``.
* :mod:`~ivtools.train.backend` -- :class:`NativeBackend` (DDP, autocast, scaler) and
  :class:`DeepSpeedBackend` (ZeRO 0-3, bf16/fp16).
* :mod:`~ivtools.train.optim` -- timm optimizers with layer-wise lr decay, cosine schedules.
* :mod:`~ivtools.train.setup` -- optimizer, schedules, backend and TrainerConfig from the original's
  argument names (shared by every entry point).
* :mod:`~ivtools.train.evaluation` -- multi-view score averaging, top-k, mAP.
* :mod:`~ivtools.train.classification` -- the complete fine-tuning / testing pipeline with the
  original's command-line arguments (``add_classification_args`` + ``run_classification``).
* :mod:`ivtools.distributed` (one level up) -- process-group set-up and collectives.
"""

from .backend import DeepSpeedBackend, NativeBackend
from .compile import add_compile_argument, compile_blocks, maybe_compile
from .evaluation import evaluate_classification, mean_average_precision, topk_accuracy
from .optim import (
    WarmupCosineMultiplier,
    WeightDecaySchedule,
    build_lr_scheduler,
    build_optimizer,
    layer_lr_scales,
    scale_lr,
)
from .resume import CheckpointManager, Preemption
from .setup import (
    backend_from_args,
    global_batch_size,
    optimizer_from_args,
    schedules_from_args,
    seed_everything,
    trainer_config_from_args,
    updates_per_epoch_or_fail,
)
from .trainer import Trainer, TrainerConfig, updates_per_epoch

__all__ = [
    "backend_from_args",
    "global_batch_size",
    "optimizer_from_args",
    "schedules_from_args",
    "seed_everything",
    "trainer_config_from_args",
    "updates_per_epoch_or_fail",
    "CheckpointManager",
    "DeepSpeedBackend",
    "NativeBackend",
    "Preemption",
    "Trainer",
    "TrainerConfig",
    "WarmupCosineMultiplier",
    "WeightDecaySchedule",
    "build_lr_scheduler",
    "add_compile_argument",
    "compile_blocks",
    "maybe_compile",
    "build_optimizer",
    "evaluate_classification",
    "layer_lr_scales",
    "mean_average_precision",
    "scale_lr",
    "topk_accuracy",
    "updates_per_epoch",
]
