"""Feature-extraction throughput of InternVideo2 S14/B14/L14/1B at batch 1 and 32 on one GPU.

bf16 weights, ``torch.inference_mode``, 8 frames at 224 px, the classifier's pooled features.
MFU = forward FLOPs (counted from the model's shapes) x clips/s / measured bf16 matmul rate.

    python benchmarks/inference.py
    python benchmarks/inference.py --quick        # tiny model, CPU ok (the test)
"""

from __future__ import annotations

import argparse

import torch
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

MODELS = [
    "internvideo2_small_patch14_224",
    "internvideo2_base_patch14_224",
    "internvideo2_large_patch14_224",
    "internvideo2_1B_patch14_224",
]


def measure(name: str, batch: int, args, device, peak: float) -> str:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, (frames, size) = build_model(name, args.frames, args.quick, device, dtype)
    model.eval()
    flops = forward_flops(model, batch_size=1)
    features = compile_for_benchmark(model, model.forward_features, args)
    video = torch.randn(batch, 3, frames, size, size, device=device, dtype=dtype)

    @torch.inference_mode()
    def forward():
        features(video)

    reset_peak_memory(device)
    seconds = time_per_call(forward, device, args.warmup, args.iters)
    clips = batch / seconds
    return (
        f"| {name} | {batch} | {clips:.1f} | {1000 * seconds:.1f} | {peak_memory_gib(device):.1f} | "
        f"{100 * flops * clips / peak:.1f}% |"
    )


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--frames", type=int, default=8)
    add_compile_args(parser)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        args.models, args.batch_sizes, args.warmup, args.iters = MODELS[:1], [1, 2], 1, 2
    peak = measured_matmul_flops(device)
    rows = [measure(m, b, args, device, peak) for m in args.models for b in args.batch_sizes]
    table = [
        "| model | batch | clips/s | ms/batch | peak mem (GiB) | MFU |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    notes = [
        f"Measured bf16 matmul rate (8192^3): {peak / 1e12:.0f} TFLOP/s; "
        f"{args.frames} frames; forward_features in inference mode, {compile_note(args)}."
    ]
    return write_report("inference", "InternVideo2 inference throughput", table, notes, device, args.output)


if __name__ == "__main__":
    main()
