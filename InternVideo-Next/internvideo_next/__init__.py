"""InternVideo-Next: video foundation models trained without video-text supervision."""

from . import models  # noqa: F401  (registers the timm factories)
