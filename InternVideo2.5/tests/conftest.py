"""Fixtures of this subproject: a tiny released-layout checkpoint, a chat on it, a coded video."""

import pytest

from internvideo2_5.chat import VideoChat
from internvideo2_5.tiny import write_tiny_checkpoint
from ivtools.video.synthetic import coded_frames, write_video


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_internvideo2_5"))


@pytest.fixture(scope="session")
def tiny_chat(tiny_checkpoint):
    return VideoChat.from_pretrained(tiny_checkpoint, num_frames=8)


@pytest.fixture(scope="session")
def coded_video(tmp_path_factory):
    """40 frames at 10 fps; frame i carries code i (ivtools.video.synthetic.read_frame_code)."""
    return write_video(tmp_path_factory.mktemp("videos") / "coded.mp4", coded_frames(40, 96, 160), fps=10)
