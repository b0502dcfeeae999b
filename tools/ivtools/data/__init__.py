"""Video classification data shared by every generation.

* :mod:`~ivtools.data.annotations` -- ``path label`` lists, ANet/HACS interval lists, SSv2 JSON, class-name lists, label maps;
* :mod:`~ivtools.data.transforms` -- train augmentation (crop/flip/RandAugment/erasing) and multi-crop eval;
* :mod:`~ivtools.data.video_dataset` -- :class:`VideoClassificationDataset` (skips and counts bad videos);
* :mod:`~ivtools.data.loader` -- the resumable distributed sampler and ``build_loader``;
* :mod:`~ivtools.data.masking` -- tube / random token masks for masked video modelling.
"""

from .annotations import (
    VideoRecord,
    label_map_between,
    read_class_names,
    read_interval_list,
    read_ssv2_json,
    read_video_list,
)
from .loader import ResumableSampler, build_loader
from .masking import RandomMaskGenerator, TubeMaskGenerator, build_mask_generator
from .transforms import (
    DeviceAugment,
    EvalTransform,
    TrainTransform,
    TrainTransformConfig,
    normalize,
    to_video_tensor,
)
from .video_dataset import ClipSampling, VideoClassificationDataset, collate_samples, seeded, window_frames

__all__ = [
    "ClipSampling",
    "DeviceAugment",
    "EvalTransform",
    "RandomMaskGenerator",
    "ResumableSampler",
    "TrainTransform",
    "TrainTransformConfig",
    "TubeMaskGenerator",
    "VideoClassificationDataset",
    "VideoRecord",
    "build_loader",
    "build_mask_generator",
    "collate_samples",
    "label_map_between",
    "normalize",
    "read_class_names",
    "read_interval_list",
    "read_ssv2_json",
    "read_video_list",
    "seeded",
    "to_video_tensor",
    "window_frames",
]
