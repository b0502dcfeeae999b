"""InternVideo2: video ViTs (S14..6B), single-modality training, and multi-modality video-text models."""
