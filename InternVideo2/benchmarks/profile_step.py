"""Where the time of an InternVideo2 forward (or training) step goes: top GPU kernels by time.

Groups kernels into matmul / attention / normalisation+elementwise / other, so that a results
file can say what bounds the step.

    python benchmarks/profile_step.py --model internvideo2_large_patch14_224 --batch 32 --mode inference
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import add_compile_args, build_model, compile_for_benchmark, write_report
from torch.profiler import ProfilerActivity, profile

GROUPS = {
    "attention": ("flash", "fmha", "attention", "sdpa", "efficient_attention", "cudnn_sdp"),
    "matmul": ("gemm", "cutlass", "sm90_xmma", "nvjet", "cublas", "matmul", "wgrad", "dgrad"),
}


def group_of(name: str) -> str:
    lower = name.lower()
    for group, keys in GROUPS.items():
        if any(k in lower for k in keys):
            return group
    return "norm/elementwise/other"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="internvideo2_large_patch14_224")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--mode", choices=["inference", "train"], default="inference")
    add_compile_args(parser)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    device = torch.device("cuda")
    model, (frames, size) = build_model(args.model, args.frames, False, device, torch.bfloat16)
    model.train(args.mode == "train")
    forward = compile_for_benchmark(model, model, args)
    video = torch.randn(args.batch, 3, frames, size, size, device=device, dtype=torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def step():
        if args.mode == "inference":
            with torch.inference_mode():
                forward(video)
            return
        loss = F.cross_entropy(
            forward(video).float(), torch.zeros(args.batch, dtype=torch.long, device=device)
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA" or e.self_device_time_total > 0]
    total = sum(e.self_device_time_total for e in events) or 1.0
    groups: dict[str, float] = {}
    for e in events:
        groups[group_of(e.key)] = groups.get(group_of(e.key), 0.0) + e.self_device_time_total
    table = ["| kernel group | share of GPU time |", "|---|---|"]
    table += [f"| {g} | {100 * t / total:.1f}% |" for g, t in sorted(groups.items(), key=lambda kv: -kv[1])]
    table += ["", "| top kernels | calls | share |", "|---|---|---|"]
    top = sorted(events, key=lambda e: -e.self_device_time_total)[:15]
    table += [f"| `{e.key[:90]}` | {e.count} | {100 * e.self_device_time_total / total:.1f}% |" for e in top]
    notes = [f"{args.model}, batch {args.batch}, {args.frames} frames, {args.mode}, bf16 weights."]
    name = f"profile_{args.mode}_{args.model.split('_')[1]}"
    return write_report(name, f"Profile: {args.model} {args.mode}", table, notes, device, args.output)


if __name__ == "__main__":
    main()
