"""Shared by the benchmark scripts: timing, the GPU's measured bf16 matrix rate, result files."""

from __future__ import annotations

import datetime
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def measured_matmul_flops(device: torch.device, dtype=torch.bfloat16, size: int = 8192) -> float:
    """FLOP/s of a large square matmul: the denominator of model FLOPs utilisation."""
    if device.type != "cuda":
        size = 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = time_per_call(lambda: a @ b, device, warmup=3, iters=20 if device.type == "cuda" else 3)
    return 2 * size**3 / seconds


def add_compile_args(parser) -> None:
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--compile_scope",
        choices=["blocks", "model"],
        default="blocks",
        help="compile each block in place (what training does) or the whole forward as one graph",
    )
    parser.add_argument(
        "--compile_mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs"
    )


def compile_for_benchmark(model: torch.nn.Module, forward: Callable, args) -> Callable:
    """``forward`` (a bound method or the model) as ``--compile`` / ``--compile_scope`` ask."""
    from ivtools.train import compile_blocks

    if not args.compile:
        return forward
    if args.compile_scope == "blocks" and uses_cuda_graphs(args.compile_mode):
        # The blocks share one compiled graph, so each block would replay one CUDA graph into the
        # same output buffer, overwriting the previous block's output while it is still needed.
        raise ValueError(
            f"--compile_mode {args.compile_mode} replays CUDA graphs: it needs --compile_scope model"
        )
    if args.compile_scope == "blocks":
        compile_blocks(model, mode=args.compile_mode)
        return forward
    return torch.compile(forward, mode=args.compile_mode)


def uses_cuda_graphs(mode: str | None) -> bool:
    """Whether torch.compile's ``mode`` replays CUDA graphs (``reduce-overhead``, ``max-autotune``)."""
    from torch._inductor import list_mode_options

    return bool(list_mode_options(mode).get("triton.cudagraphs"))


def compile_note(args) -> str:
    if not args.compile:
        return "eager"
    return f"torch.compile ({args.compile_scope}{f', mode {args.compile_mode}' if args.compile_mode else ''})"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"


def peak_memory_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def write_report(
    name: str,
    title: str,
    table: list[str],
    notes: list[str],
    device: torch.device,
    output=None,
    devices: int = 1,
) -> str:
    """Print a markdown report and write it to ``results/<name>.md`` (or ``output``)."""
    command = " ".join(["python", Path(sys.argv[0]).name, *sys.argv[1:]])
    header = [
        f"# {title}",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- device: {device_name(device) if devices == 1 else f'{devices} x {device_name(device)}'}",
        f"- torch {torch.__version__}, CUDA {torch.version.cuda}",
        f"- command: `{command}`",
        "",
    ]
    text = "\n".join([*header, *table, "", *notes, ""])
    print(text)
    path = Path(output) if output else RESULTS / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def build_model(name: str, frames: int, quick: bool, device, dtype, **kwargs):
    """A registered InternVideo2 classifier (tiny when ``quick``) and its input ``(frames, size)``."""
    import timm

    import internvideo2  # noqa: F401 - registers the models

    kwargs = {"num_classes": 400, "num_frames": frames, **kwargs}
    size = 224
    if quick:
        kwargs.update(embed_dim=64, depth=2, num_heads=2, img_size=56, num_frames=4)
        frames, size = 4, 56
    model = timm.create_model(name, **kwargs).to(device=device, dtype=dtype)
    return model, (frames, size)
