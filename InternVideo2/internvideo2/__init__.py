"""InternVideo2: video ViTs (S14..6B), single-modality training, and multi-modality video-text models."""

from . import models  # noqa: F401  (registers the timm factories on `import internvideo2`)
