"""Fixtures for the Data tests: release-style rows, manifests written line by line, coded sources."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ivtools.video.synthetic import coded_frames, write_video

# Two 11-character YouTube-style ids.
VID_A = "AAAAAAAAAA1"
VID_B = "BBBBBBBBBB2"


@pytest.fixture
def ids():
    return VID_A, VID_B


@pytest.fixture
def row():
    """``row(id, start, end, caption=..., **columns)`` -> a release row dict."""

    def _row(video_id: str, start: str, end: str, caption: str = "a man rides a bike", **columns) -> dict:
        return {
            "YoutubeID": video_id,
            "Start_timestamp": start,
            "End_timestamp": end,
            "Caption": caption,
            **columns,
        }

    return _row


@pytest.fixture
def lines_file(tmp_path):
    """``lines_file(name, items)``: one line per item; dicts as JSON, strings verbatim (bad JSON)."""

    def _write(name: str, items: list) -> Path:
        path = tmp_path / name
        path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in items))
        return path

    return _write


@pytest.fixture(scope="session")
def _coded_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coded_sources")
    write_video(folder / f"{VID_A}.mp4", coded_frames(100, 96, 160), fps=25, gop=10)
    write_video(folder / f"{VID_B}.mp4", coded_frames(75, 96, 160, seed=1), fps=25, gop=10)
    return folder


@pytest.fixture
def source_dir(tmp_path, _coded_sources):
    """A fresh copy (tests may damage it) of coded 25 fps sources, frame i carrying code i, a
    keyframe every 10 frames: A has 100 frames (4 s), B 75 (3 s)."""
    return Path(shutil.copytree(_coded_sources, tmp_path / "sources"))
