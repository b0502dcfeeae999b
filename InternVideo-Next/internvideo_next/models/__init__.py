"""InternVideo-Next models; importing this registers the timm factories under the original names."""

from .classifier import InternVideoNextClassifier
from .common import MLPDecoder, PatchEmbed, VideoTransformer, return_layer_indices
from .diffloss import DiffLoss, GaussianDiffusion, cosine_betas
from .encoder import InternVideoNext, internvideo_next_base_patch14_224, internvideo_next_large_patch14_224
from .semantic_decoder import build_semantic_decoder, run_semantic_decoder
from .stage1 import (
    InternVideoNextStage1,
    Stage1Output,
    internvideo_next_stage1_1b,
    internvideo_next_stage1_base,
    internvideo_next_stage1_large,
    video_patches,
)
from .stage2 import (
    InternVideoNextStage2,
    internvideo_next_stage2_1b,
    internvideo_next_stage2_base,
    internvideo_next_stage2_large,
)
from .teacher import SiglipTeacher, TeacherOutput, build_siglip_teacher

__all__ = [
    "DiffLoss",
    "GaussianDiffusion",
    "InternVideoNext",
    "InternVideoNextClassifier",
    "InternVideoNextStage1",
    "InternVideoNextStage2",
    "MLPDecoder",
    "PatchEmbed",
    "SiglipTeacher",
    "Stage1Output",
    "TeacherOutput",
    "VideoTransformer",
    "build_semantic_decoder",
    "build_siglip_teacher",
    "cosine_betas",
    "internvideo_next_base_patch14_224",
    "internvideo_next_large_patch14_224",
    "internvideo_next_stage1_1b",
    "internvideo_next_stage1_base",
    "internvideo_next_stage1_large",
    "internvideo_next_stage2_1b",
    "internvideo_next_stage2_base",
    "internvideo_next_stage2_large",
    "return_layer_indices",
    "run_semantic_decoder",
    "video_patches",
]
