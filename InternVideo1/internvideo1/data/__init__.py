"""Datasets specific to InternVideo1: video-text pairs (:mod:`.video_text`)."""

from .video_text import VideoText, VideoTextDataset, read_video_text_json

__all__ = ["VideoText", "VideoTextDataset", "read_video_text_json"]
