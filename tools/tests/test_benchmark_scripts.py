"""The benchmark scripts run in their quick mode, so that they never rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ivtools.video import available_backends

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_video_decode_benchmark_writes_a_full_table(tmp_path):
    out = tmp_path / "video_decode.md"
    report = _load("video_decode").main(["--quick", "--output", str(out)])
    assert out.read_text() == report
    rows = [line for line in report.splitlines() if line.startswith("| 240p") or line.startswith("| 720p")]
    backends = [b for b in available_backends() if b != "frames"]
    assert len(rows) == 2 * len(backends) * 2
    for row in rows:
        decode, pipeline = (float(x) for x in row.strip("| ").split(" | ")[-2:])
        assert decode > 0 and pipeline > 0
