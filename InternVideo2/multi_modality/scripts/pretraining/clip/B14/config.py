"""Stage-1 CLIP alignment of the distilled B14 video encoder with MobileCLIP-B's text tower."""

from configs.clip import *  # noqa: F403

clip_size = "B14"
