"""The two kernels that bound the InternVideo2 step: attention at the models' shapes, and fc1+GELU.

* ``scaled_dot_product_attention`` with each PyTorch backend (cuDNN, flash, memory-efficient) at
  the L14 shape (batch 32, 16 heads, 2049 tokens = 8x16x16 patches + class token, head dim 64),
  the 1B shape (batch 8, head dim 88, and 88 zero-padded to 96/128), and 2048 tokens for
  comparison: forward and forward+backward TFLOP/s (model FLOPs: 4 B H N^2 d forward, 3x that
  for forward+backward).
* ``fc1 -> tanh-GELU`` of L14 and 1B at their fine-tuning batches: the bare GEMM, eager and
  compiled GEMM + GELU, and the cuBLASLt GELU epilogue (``torch._addmm_activation``).

    python benchmarks/kernels.py            # on the GPU
    python benchmarks/kernels.py --quick    # tiny shapes on the CPU (the test)
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from common import time_per_call, write_report
from torch.nn.attention import SDPBackend, sdpa_kernel

# (batch, heads, tokens, head dim, head dim as padded)
ATTENTION_SHAPES = [
    (32, 16, 2049, 64, 64),
    (32, 16, 2048, 64, 64),
    (8, 16, 2049, 88, 88),
    (8, 16, 2049, 88, 96),
    (8, 16, 2049, 88, 128),
]
BACKENDS = {
    "default": None,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
# (name, tokens M, width K, hidden N)
MLP_SHAPES = [("L14 fc1, batch 32", 32 * 2049, 1024, 4096), ("1B fc1, batch 8", 8 * 2049, 1408, 6144)]


def attention_rows(shape, backends, device, dtype, iters) -> list[str]:
    b, h, n, d, padded = shape
    q, k, v = (
        torch.randn(b, n, h, padded, device=device, dtype=dtype).transpose(1, 2).requires_grad_()
        for _ in range(3)
    )
    grad = torch.randn_like(q)
    flops = 4 * b * h * n * n * d

    def forward():
        return F.scaled_dot_product_attention(q, k, v, scale=d**-0.5)

    def forward_backward():
        forward().backward(grad)

    rows = []
    for name, backend in backends.items():
        context = contextlib.nullcontext() if backend is None else sdpa_kernel([backend])
        try:
            with context:
                fwd = time_per_call(forward, device, 3, iters)
                both = time_per_call(forward_backward, device, 3, iters)
        except RuntimeError as err:  # a backend that does not take this shape/device
            rows.append(f"| {b}x{h}x{n} | {d} ({padded}) | {name} | n/a: {str(err).splitlines()[0][:60]} | |")
            continue
        rows.append(
            f"| {b}x{h}x{n} | {d} ({padded}) | {name} | {flops / fwd / 1e12:.0f} ({1e3 * fwd:.2f} ms) | "
            f"{3 * flops / both / 1e12:.0f} ({1e3 * both:.2f} ms) |"
        )
    return rows


def mlp_rows(shape, device, dtype, iters) -> list[str]:
    name, m, k, n = shape
    x = torch.randn(m, k, device=device, dtype=dtype)
    w = torch.randn(n, k, device=device, dtype=dtype) * 0.02
    bias = torch.randn(n, device=device, dtype=dtype)

    def unfused():
        return F.gelu(F.linear(x, w, bias), approximate="tanh")

    variants = {
        "GEMM only": lambda: F.linear(x, w, bias),
        "GEMM + GELU, eager": unfused,
        "GEMM + GELU, compiled": torch.compile(unfused),
        "GELU epilogue (_addmm_activation)": lambda: torch._addmm_activation(bias, x, w.t(), use_gelu=True),
    }
    rows = []
    for variant, fn in variants.items():
        seconds = time_per_call(fn, device, 3, iters)
        rows.append(f"| {name} | {variant} | {2 * m * k * n / seconds / 1e12:.0f} | {1e3 * seconds:.3f} |")
    return rows


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny shapes on the CPU (the test)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    attention, mlp, backends = ATTENTION_SHAPES, MLP_SHAPES, BACKENDS
    if device.type != "cuda":
        attention, mlp, backends = [(1, 2, 65, 8, 8)], [("tiny", 64, 16, 32)], {"default": None}
        args.iters = 1
    table = [
        "| batch x heads x tokens | head dim (padded) | backend | forward TFLOP/s | forward+backward TFLOP/s |",
        "|---|---|---|---|---|",
        *(row for shape in attention for row in attention_rows(shape, backends, device, dtype, args.iters)),
        "",
        "| GEMM | variant | TFLOP/s | ms |",
        "|---|---|---|---|",
        *(row for shape in mlp for row in mlp_rows(shape, device, dtype, args.iters)),
    ]
    notes = [f"{dtype}; {args.iters} timed calls after 3 warm-up calls."]
    return write_report(
        "kernels", "Attention and fc1+GELU kernels at InternVideo2 shapes", table, notes, device, args.output
    )


if __name__ == "__main__":
    main()
