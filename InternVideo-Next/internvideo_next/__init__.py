"""InternVideo-Next: video foundation models trained without video-text supervision."""
