"""The benchmark scripts run in their quick mode, so that they never rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ivtools.video import available_backends

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_video_decode_benchmark_writes_a_full_table(tmp_path):
    out = tmp_path / "video_decode.md"
    argv = ["--quick", "--output", str(out), "--workers", "0", "--device_augment", "--decode_threads", "2"]
    argv += ["--loader_threads", "1", "2", "--keyints", "30", "4"]
    report = _load("video_decode").main(argv)
    assert out.read_text() == report
    decoding, loader, threads, keyints, augment = report.split("\n## ")
    rows = [line for line in decoding.splitlines() if line.startswith("| 240p") or line.startswith("| 720p")]
    backends = [b for b in available_backends() if b != "frames"]
    assert len(rows) == 2 * len(backends) * 2
    for row in rows:
        decode, pipeline = (float(x) for x in row.strip("| ").split(" | ")[-2:])
        assert decode > 0 and pipeline > 0
    # --device_augment: the loader with workers doing all or only decode+crop+flip, and DeviceAugment
    loader_rows = [row.strip("| ").split(" | ") for row in loader.splitlines() if row.startswith("| 240p")]
    assert [(row[2], row[4]) for row in loader_rows] == [
        ("1", "all"),
        ("1", "decode+crop+flip"),
        ("2", "all"),
        ("2", "decode+crop+flip"),
    ]
    assert all(float(row[5]) > 0 for row in loader_rows)
    (thread_row,) = [row.strip("| ").split(" | ") for row in threads.splitlines() if row.startswith("| 240p")]
    assert thread_row[2] == "2" and float(thread_row[3]) > 0
    keyint_rows = [
        row.strip("| ").split(" | ") for row in keyints.splitlines() if row[:4] in ("| 30", "| 4 ")
    ]
    assert [row[0] for row in keyint_rows] == ["30", "4"]
    sizes = [float(row[1]) for row in keyint_rows]
    assert sizes[1] > sizes[0] > 0  # more keyframes cost bytes
    assert all(float(row[2]) > 0 for row in keyint_rows)
    (device, clips, ms, rate) = augment.splitlines()[-1].strip("| ").split(" | ")
    assert device == (torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU, 1 thread")
    assert clips == "2"
    assert float(rate) == pytest.approx(2 / float(ms) * 1e3, rel=0.05)
