"""Test helpers shared by every generation (the fixtures live in :mod:`ivtools.testing.plugin`)."""

from .media import SampleVideo, real_video_files, write_corrupt_files, write_sample_videos
from .process import run_script

__all__ = ["SampleVideo", "real_video_files", "run_script", "write_corrupt_files", "write_sample_videos"]
