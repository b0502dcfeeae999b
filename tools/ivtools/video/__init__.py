"""Video I/O shared by every generation: open, read frames at indices, sample indices.

Typical use in a dataset::

    from ivtools.video import VideoReadError, open_video, sparse_indices

    try:
        with open_video(path) as video:
            frames = video.get_frames(sparse_indices(len(video), 8, rng=rng))  # (8, H, W, 3) uint8
    except VideoReadError as err:
        ...  # skip the sample and count it; err.path names the file
"""

from .errors import VideoReadError
from .reader import BACKENDS, VideoReader, available_backends, open_video, read_frames
from .sampling import (
    dense_indices,
    fps_indices,
    multi_view_list,
    segment_indices,
    sparse_indices,
    spatial_crop_starts,
    uniform_indices,
)

__all__ = [
    "BACKENDS",
    "VideoReadError",
    "VideoReader",
    "available_backends",
    "dense_indices",
    "fps_indices",
    "multi_view_list",
    "open_video",
    "read_frames",
    "segment_indices",
    "sparse_indices",
    "spatial_crop_starts",
    "uniform_indices",
]
