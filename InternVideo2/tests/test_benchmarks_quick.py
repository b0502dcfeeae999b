"""The GPU benchmark scripts run end to end in their quick mode (tiny models, CPU), so they never rot."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmark_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return load


def _rows(report: str) -> list[list[str]]:
    lines = [
        line
        for line in report.splitlines()
        if line.startswith("| internvideo2") or line.startswith("| distill")
    ]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.parametrize(
    "script, extra",
    [("finetune_step", []), ("finetune_step", ["--device_augment"]), ("inference", []), ("distill_step", [])],
)
def test_benchmark_writes_a_table_with_positive_rates(benchmark_module, tmp_path, script, extra):
    out = tmp_path / f"{script}.md"
    report = benchmark_module(script).main(["--quick", "--output", str(out), *extra])
    assert out.read_text() == report and "- command:" in report and "- device:" in report
    rows = _rows(report)
    assert rows, report
    for row in rows:
        clips_per_s = float(row[3] if script != "inference" else row[2])
        assert clips_per_s > 0
        assert row[-1].endswith("%")


@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_per_block_cuda_graphs_are_refused(benchmark_module, mode):
    common = benchmark_module("common")
    args = SimpleNamespace(compile=True, compile_scope="blocks", compile_mode=mode)
    with pytest.raises(ValueError, match="compile_scope model"):
        common.compile_for_benchmark(torch.nn.Linear(2, 2), None, args)
    assert not common.uses_cuda_graphs("max-autotune-no-cudagraphs") and not common.uses_cuda_graphs(None)


def test_kernels_benchmark_times_every_attention_and_gemm_variant(benchmark_module, tmp_path):
    out = tmp_path / "kernels.md"
    report = benchmark_module("kernels").main(["--quick", "--output", str(out)])
    assert out.read_text() == report
    milliseconds = [float(cell.split("(")[1].split()[0]) for cell in report.split("| default |")[1:2]]
    assert milliseconds and milliseconds[0] > 0
    gemm_rows = [line for line in report.splitlines() if line.startswith("| tiny |")]
    assert len(gemm_rows) == 4 and all(float(row.strip("|").split("|")[-1]) > 0 for row in gemm_rows)


def _agreement_rows(report: str) -> list[list[str]]:
    rows = [line for line in report.splitlines() if " ranks x " in line or "resumed" in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in rows]


def test_multi_gpu_benchmark_two_ranks_train_like_one(benchmark_module, tmp_path):
    """Two CPU ranks against one with the same global batch: fine-tuning (DDP, resumed both ways),
    stage-2 contrastive training through the all-gather, and the scaling table."""
    reports = benchmark_module("multi_gpu").main(
        ["--quick", "--backends", "ddp", "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "work")]
    )
    assert set(reports) == {"finetune", "stage2", "scaling"}
    for part, expected_rows in (("finetune", 3), ("stage2", 1)):
        assert (tmp_path / f"multi_gpu_{part}.md").read_text() == reports[part]
        rows = _agreement_rows(reports[part])
        assert len(rows) == expected_rows, reports[part]
        for row in rows:
            loss_diff, grad_diff = float(row[3]), float(row[4])
            assert loss_diff <= 1e-3 and grad_diff <= 1e-3 and row[-1] == "yes", row
    scaling = [line for line in reports["scaling"].splitlines() if line.startswith("| DDP |")]
    assert len(scaling) == 2 and all(float(line.split("|")[3]) > 0 for line in scaling)
