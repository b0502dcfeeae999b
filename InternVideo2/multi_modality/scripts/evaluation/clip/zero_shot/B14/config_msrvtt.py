"""Zero-shot MSR-VTT retrieval with the B14 CLIP model."""

from configs.clip import *  # noqa: F403

clip_size = "B14"
