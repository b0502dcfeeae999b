"""The B14 distillation pretraining step on one GPU: frozen 1B teacher + masked B14 student.

The recipe of ``scripts/distillation/B14_dist_1B_stage2.sh`` (8 frames, attention-guided masks
at 80 %, teacher features at 6 layers, l2-normalised alignment losses, AdamW), with the teacher
in bf16 and the student under bf16 autocast; batch per GPU from ``--batch_size`` (the recipe
uses 128). Reports clips/s, peak memory, and MFU over the teacher's and the student's model
FLOPs (teacher: forward only; student: 3 x forward on the visible 20 % of tokens).

    python benchmarks/distill_step.py
    python benchmarks/distill_step.py --quick      # tiny models, CPU ok (the test)
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from common import measured_matmul_flops, peak_memory_gib, reset_peak_memory, time_per_call, write_report

from internvideo2.engine.pretrain import masked_distillation_loss, teacher_targets
from internvideo2.engine.pretrain_pipeline import (
    add_pretrain_args,
    build_student,
    build_teachers,
    distillation_config,
)
from internvideo2.models import forward_flops
from ivtools.train import compile_blocks

RECIPE = [
    "--model", "distill_internvideo2_base_patch14_224", "--clip_teacher", "teacher_internvideo2_1B",
    "--mask_type", "attention", "--mask_ratio", "0.8", "--clip_teacher_embed_dim", "1408",
    "--clip_teacher_final_dim", "768", "--clip_return_attn", "--clip_return_layer", "6",
    "--clip_teacher_return_interval", "3.34", "--clip_student_return_interval", "1",
    "--clip_student_decoder", "MLP_Decoder", "--tubelet_size", "1", "--num_frames", "8",
    "--teacher_random_init",
]  # fmt: skip
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 56}


def parse(argv) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    parser = add_pretrain_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]), distill=True)
    parser.add_argument("--quick", action="store_true")  # --compile comes with add_pretrain_args
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--output", default=None)
    args, rest = parser.parse_known_args(argv)
    quick = [
        "--clip_teacher_kwargs",
        json.dumps(TINY | {"embed_dim": 48}),
        "--model_kwargs",
        json.dumps(TINY),
    ]
    tiny = [*quick, "--clip_teacher_embed_dim", "48", "--clip_return_layer", "1", "--input_size", "56"]
    tiny += ["--clip_input_resolution", "56"]
    return parser.parse_args([*RECIPE, *(tiny if args.quick else []), *argv])


def main(argv=None) -> str:
    args = parse(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        args.batch_size, args.warmup, args.iters = 2, 1, 1
    student = build_student(args).to(device).train()
    teacher, _ = build_teachers(args)
    teacher = teacher.to(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    cfg = distillation_config(args)
    cfg.teacher_dtype = torch.bfloat16 if device.type == "cuda" else None
    size = args.input_size
    flops = 3 * forward_flops(student, 1, keep_ratio=1 - args.mask_ratio) + forward_flops(teacher, 1)
    if args.compile:
        compile_blocks(student)
        compile_blocks(teacher)
    video = torch.randn(args.batch_size, 3, args.num_frames, size, size, device=device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step():
        targets = teacher_targets(video, teacher, None, cfg, None)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs = student(targets["student_video"], targets["mask"])
        loss, _ = masked_distillation_loss([o.float() for o in outputs], targets, cfg)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    peak = measured_matmul_flops(device)
    reset_peak_memory(device)
    seconds = time_per_call(step, device, args.warmup, args.iters)
    clips = args.batch_size / seconds
    table = [
        "| student | teacher | batch | clips/s | ms/step | peak mem (GiB) | GFLOPs/clip | MFU |",
        "|---|---|---|---|---|---|---|---|",
        f"| {args.model} | {args.clip_teacher} | {args.batch_size} | {clips:.1f} | {1000 * seconds:.0f} | "
        f"{peak_memory_gib(device):.1f} | {flops / 1e9:.0f} | {100 * flops * clips / peak:.1f}% |",
    ]
    notes = [
        f"Measured bf16 matmul rate: {peak / 1e12:.0f} TFLOP/s; {args.num_frames} frames, mask ratio "
        f"{args.mask_ratio} ({args.mask_type}){', torch.compile' if args.compile else ''}."
    ]
    return write_report(
        "distill_step", "InternVideo2 B14 distillation step", table, notes, device, args.output
    )


if __name__ == "__main__":
    main()
