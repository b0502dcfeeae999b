"""Training logs: a tqdm progress bar, a JSON-lines file, and TensorBoard when installed.

Metrics are accumulated as device tensors and read back to the host only every ``log_every``
steps, so logging adds no synchronisation to the other steps. At those steps the windows are
averaged over the ranks, so that a logged loss is the global batch's, whatever the world size,
and ``samples_per_s`` counts every rank's samples.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from ivtools.distributed import all_reduce_mean, get_world_size, is_main_process


class TrainLogger:
    def __init__(self, output_dir: str | Path | None, log_every: int = 10, tensorboard: bool = True):
        self.log_every = max(1, log_every)
        self.main = is_main_process()
        self.jsonl = None
        self.tb = None
        if output_dir is not None and self.main:
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
            self.jsonl = open(out / "log.jsonl", "a")  # noqa: SIM115 - closed in close()
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(str(out / "tensorboard"))
                except ImportError:
                    self.tb = None
        self._bar = None
        self._reset_window()

    def _reset_window(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._samples = 0
        self._t0 = time.perf_counter()

    def start_epoch(self, epoch: int, total_steps: int, initial: int = 0) -> None:
        if self.main:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_steps, initial=initial, desc=f"epoch {epoch}", dynamic_ncols=True, leave=True
            )
        self._reset_window()

    def update(self, step: int, batch_size: int, scalars: dict[str, float], **tensors: torch.Tensor) -> None:
        """Accumulate one step; every ``log_every`` steps print and write the window's means.

        ``tensors`` stay on the device until the log step; ``scalars`` (lr, ...) are host floats.
        """
        for name, value in tensors.items():
            value = value.detach().float()
            self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._count += 1
        self._samples += batch_size
        if self._bar is not None:
            self._bar.update(1)
        if self._count % self.log_every == 0:
            self._flush(step, scalars)

    def _flush(self, step: int, scalars: dict[str, float]) -> None:
        names = list(self._sums)
        values = all_reduce_mean(torch.stack([self._sums[n] for n in names])).cpu().tolist() if names else []
        means = {n: v / self._count for n, v in zip(names, values)}
        bad = [n for n, v in means.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"non-finite {bad[0]} ({means[bad[0]]}) at step {step}; stopping")
        elapsed = time.perf_counter() - self._t0
        record = {
            "step": step,
            **means,
            **scalars,
            "samples_per_s": self._samples * get_world_size() / max(elapsed, 1e-9),
        }
        self.write(record)
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "step"}, refresh=False)
        self._reset_window()

    def write(self, record: dict, prefix: str = "train") -> None:
        if not self.main:
            return
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"kind": prefix, **record}) + "\n")
            self.jsonl.flush()
        if self.tb is not None:
            step = int(record.get("step", record.get("epoch", 0)))
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.tb.add_scalar(f"{prefix}/{key}", value, step)

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def epoch_summary(self, epoch: int, record: dict) -> None:
        self.write({"epoch": epoch, **record}, prefix="epoch")
        if self.main:
            text = "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
            )
            print(f"[epoch {epoch}] {text}", flush=True)

    def close(self) -> None:
        self.end_epoch()
        if self.jsonl is not None:
            self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
