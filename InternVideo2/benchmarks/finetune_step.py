"""Fine-tuning step speed of InternVideo2 S14/B14/L14/1B on one GPU: clips/s, memory, MFU.

The step is the fine-tuning recipe's (8 frames, 224 px, the recipe's batch per GPU: 32 for
S/B/L, 8 for 1B; no gradient checkpointing, which 80 GB does not need), AdamW, bf16, soft-target cross
entropy (mixup targets). ``--precision autocast`` keeps fp32 weights under bf16 autocast;
``bf16`` holds the weights in bf16 as DeepSpeed's bf16 mode computes (fp32 master weights live
in the optimizer there; here AdamW updates the bf16 weights directly, which costs the same
kernels for the forward/backward being measured).

``--device_augment`` feeds the step a ``(B, T, 3, 224, 224)`` uint8 batch, as the training's
``--device_augment`` workers deliver it, and each step first runs ``DeviceAugment`` (RandAugment,
normalise, erasing) on the GPU: what that augmentation costs the step.

MFU = 3 x forward FLOPs (counted from the model's shapes) x clips/s / measured bf16 matmul rate.

    python benchmarks/finetune_step.py                      # all four models on the GPU
    python benchmarks/finetune_step.py --quick              # tiny models, CPU ok (the test)
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from common import (
    add_compile_args,
    build_model,
    compile_for_benchmark,
    compile_note,
    measured_matmul_flops,
    peak_memory_gib,
    reset_peak_memory,
    time_per_call,
    write_report,
)

from internvideo2.models import forward_flops

# name -> (batch per GPU, use_checkpoint, checkpoint_num): the K400 fine-tuning recipes' batches.
# The 1B recipe also checkpoints 6 blocks; on an 80 GB GPU batch 8 fits without (45 GiB), and the
# recompute costs a quarter of the throughput, so checkpointing is off here (--checkpoint_num 6
# measures the recipe's setting).
RECIPES = {
    "internvideo2_small_patch14_224": (32, False, 0),
    "internvideo2_base_patch14_224": (32, False, 0),
    "internvideo2_large_patch14_224": (32, False, 0),
    "internvideo2_1B_patch14_224": (8, False, 0),
}
QUICK = {"internvideo2_small_patch14_224": (2, False, 0)}


def step_fn(forward, optimizer, video, target, autocast):
    """One training step; ``video`` is a tensor or a callable that makes the step's input."""

    def step():
        clips = video() if callable(video) else video
        with autocast():
            loss = F.cross_entropy(forward(clips).float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def measure(name: str, recipe, args, device, peak: float) -> str:
    batch, use_ckpt, ckpt_num = recipe
    batch = args.batch_size or batch
    if args.checkpoint_num is not None:
        use_ckpt, ckpt_num = args.checkpoint_num > 0, args.checkpoint_num
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    kwargs = {"use_checkpoint": use_ckpt, "checkpoint_num": ckpt_num}
    model, (frames, size) = build_model(name, args.frames, args.quick, device, dtype, **kwargs)
    model.train()
    flops = forward_flops(model, batch_size=1)
    forward = compile_for_benchmark(model, model, args)
    video = (
        augmented_input(batch, frames, size, device, dtype)
        if args.device_augment
        else torch.randn(batch, 3, frames, size, size, device=device, dtype=dtype)
    )
    target = torch.randn(batch, 400, device=device).softmax(-1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if args.precision == "autocast"
        else contextlib.nullcontext
    )
    reset_peak_memory(device)
    seconds = time_per_call(
        step_fn(forward, optimizer, video, target, autocast), device, args.warmup, args.iters
    )
    clips = batch / seconds
    mfu = 3 * flops * clips / peak
    del model, optimizer, video
    return (
        f"| {name} | {batch} | {'yes' if use_ckpt else 'no'} | {clips:.1f} | {1000 * seconds:.0f} | "
        f"{peak_memory_gib(device):.1f} | {flops / 1e9:.0f} | {100 * mfu:.1f}% |"
    )


def augmented_input(batch: int, frames: int, size: int, device, dtype):
    """A step input made as ``--device_augment`` training makes it: DeviceAugment on uint8 clips."""
    from ivtools.data import DeviceAugment, TrainTransformConfig

    augment = DeviceAugment(TrainTransformConfig(input_size=size, device_augment=True))
    raw = torch.randint(0, 256, (batch, frames, 3, size, size), dtype=torch.uint8, device=device)
    return lambda: augment(raw).to(dtype)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(RECIPES))
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=None, help="override the recipe's batch")
    parser.add_argument(
        "--checkpoint_num", type=int, default=None, help="override the recipe's checkpointed blocks (0: none)"
    )
    parser.add_argument("--precision", choices=["autocast", "bf16"], default="autocast")
    parser.add_argument(
        "--device_augment", action="store_true", help="each step augments a uint8 batch on the device first"
    )
    add_compile_args(parser)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny model, 2 iterations (CPU ok)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    recipes = QUICK if args.quick else {m: RECIPES[m] for m in args.models}
    if args.quick:
        args.warmup, args.iters = 1, 2
    peak = measured_matmul_flops(device)
    rows = []
    for name, recipe in recipes.items():
        try:
            rows.append(measure(name, recipe, args, device, peak))
        except torch.OutOfMemoryError:
            checkpointed = recipe[1] if args.checkpoint_num is None else args.checkpoint_num > 0
            rows.append(
                f"| {name} | {args.batch_size or recipe[0]} | {'yes' if checkpointed else 'no'} | OOM | | | | |"
            )
        if device.type == "cuda":
            torch.cuda.empty_cache()
    table = [
        "| model | batch | grad ckpt | clips/s | ms/step | peak mem (GiB) | fwd GFLOPs/clip | MFU |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    notes = [
        f"Measured bf16 matmul rate (8192^3): {peak / 1e12:.0f} TFLOP/s. Precision: {args.precision}"
        f", {compile_note(args)}; {args.frames} frames, AdamW, soft-target CE"
        + ("; DeviceAugment in every step." if args.device_augment else ".")
    ]
    return write_report("finetune_step", "InternVideo2 fine-tuning step", table, notes, device, args.output)


if __name__ == "__main__":
    main()
