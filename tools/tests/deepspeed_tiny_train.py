"""Helper run in a subprocess by test_zero_consolidate.py: train a tiny model for two steps with
DeepSpeed ZeRO (each stage given on the command line), save a real DeepSpeed checkpoint, and
save the parameters and buffers the engine ends with (and the initial parameters) as
``<out>/stage<k>/reference.pt``.

Usage: python deepspeed_tiny_train.py OUT_DIR STAGE [STAGE ...]
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29533")
os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", DS_BUILD_OPS="0", DS_ACCELERATOR="cpu")

import deepspeed
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.frozen = nn.Linear(8, 8)  # frozen weights must survive consolidation too
        self.head = nn.Linear(8, 3)
        self.frozen.requires_grad_(False)
        self.register_buffer("counts", torch.arange(3))

    def forward(self, x):
        return self.head(torch.relu(self.frozen(torch.relu(self.embed(x)))))


def train(out: Path, stage: int) -> None:
    torch.manual_seed(stage)
    model = Tiny()
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=0.1)
    config = {
        "train_micro_batch_size_per_gpu": 4,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": stage},
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
    }
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    for _ in range(2):
        x = torch.randn(4, 4)
        loss = engine(x).pow(2).mean()
        engine.backward(loss)
        engine.step()
    engine.save_checkpoint(str(out / f"stage{stage}"))
    params = dict(engine.module.named_parameters())
    with deepspeed.zero.GatheredParameters(list(params.values()), enabled=stage == 3):
        expected = {name: p.detach().clone().float() for name, p in params.items()}
    expected.update({name: b.clone() for name, b in engine.module.named_buffers()})
    torch.save({"expected": expected, "initial": initial}, out / f"stage{stage}" / "reference.pt")


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    for stage in map(int, sys.argv[2:]):
        train(out_dir, stage)
