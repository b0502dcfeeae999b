"""Captioning plumbing: frame sampler -> per-frame captioner -> fusion -> manifest.

InternVid captions clips at two scales: an image captioner describes sampled frames, and a
language model fuses the frame captions into one clip caption. This module runs that pipeline
with pluggable parts, or hands the whole clip to a video chat model instead:

* :class:`FrameCaptioner` -- ``caption_frames(frames (T, H, W, 3) uint8) -> T captions``;
* :class:`CaptionFuser` -- ``fuse(frame_captions) -> caption``; :class:`JoinFuser` (no model)
  and :class:`LLMFuser` (any ``generate(prompt) -> text`` callable) are built in;
* :class:`VideoCaptioner` -- ``caption_video(path) -> caption``; :class:`ChatCaptioner` adapts
  a ``chat(video, question, **kwargs) -> str`` function, by default the InternVideo2.5 package's
  ``internvideo2_5:chat`` (loaded by its import path only, when used).

No captioning model ships here; tests drive the pipeline with fake captioners.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ivtools.video import VideoReadError

from .jsonio import RowError, RowErrors
from .manifest import CAPTION, Clip
from .plugins import load_object
from .scoring import load_clip_frames

DEFAULT_FUSION_PROMPT = (
    "These are captions of frames sampled in order from one video clip:\n{captions}\n"
    "Write one concise sentence that describes what happens in the clip."
)
DEFAULT_CHAT_QUESTION = "Describe this video in one concise sentence."
FRAME_CAPTIONS = "frame_captions"


@runtime_checkable
class FrameCaptioner(Protocol):
    def caption_frames(self, frames: np.ndarray) -> Sequence[str]: ...


@runtime_checkable
class CaptionFuser(Protocol):
    def fuse(self, frame_captions: Sequence[str]) -> str: ...


@runtime_checkable
class VideoCaptioner(Protocol):
    def caption_video(self, path: str) -> str: ...


class JoinFuser:
    """Fusion without a model: drop repeats of the previous caption, join the rest with ``sep``."""

    def __init__(self, sep: str = "; then "):
        self.sep = sep

    def fuse(self, frame_captions: Sequence[str]) -> str:
        distinct = [
            c.strip()
            for i, c in enumerate(frame_captions)
            if i == 0 or c.strip() != frame_captions[i - 1].strip()
        ]
        return self.sep.join(c for c in distinct if c)


class LLMFuser:
    """Fusion by a language model: ``generate(prompt.format(captions=numbered list))``."""

    def __init__(self, generate: Callable[[str], str] | str, prompt: str = DEFAULT_FUSION_PROMPT):
        if "{captions}" not in prompt:
            raise ValueError("the fusion prompt must contain {captions}")
        self.generate = load_object(generate) if isinstance(generate, str) else generate
        self.prompt = prompt

    def fuse(self, frame_captions: Sequence[str]) -> str:
        listing = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(frame_captions))
        return _text(self.generate(self.prompt.format(captions=listing)), "the fusion model")


class ChatCaptioner:
    """A video chat model as a captioner: ``chat(path, question, **chat_kwargs)`` must return text.

    ``chat`` may be the callable or its import path; the default names the InternVideo2.5
    package's ``chat`` function, imported only when this captioner is built.
    """

    def __init__(
        self,
        chat: Callable[..., str] | str = "internvideo2_5:chat",
        question: str = DEFAULT_CHAT_QUESTION,
        **chat_kwargs,
    ):
        self.chat = load_object(chat) if isinstance(chat, str) else chat
        self.question = question
        self.chat_kwargs = chat_kwargs

    def caption_video(self, path: str) -> str:
        return _text(self.chat(path, self.question, **self.chat_kwargs), "the chat model")


def _text(value: object, who: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{who} returned {type(value).__name__}, expected a caption string")
    return value.strip()


def caption_clip(
    path: str | os.PathLike,
    num_frames: int,
    frame_captioner: FrameCaptioner | None = None,
    fuser: CaptionFuser | None = None,
    video_captioner: VideoCaptioner | None = None,
) -> tuple[str, list[str]]:
    """``(caption, frame captions)`` for one clip file (frame captions empty for a video captioner)."""
    if video_captioner is not None:
        return video_captioner.caption_video(str(path)), []
    if frame_captioner is None or fuser is None:
        raise ValueError("give a video captioner, or both a frame captioner and a fuser")
    frames = load_clip_frames(path, num_frames)
    per_frame = [str(c) for c in frame_captioner.caption_frames(frames)]
    if len(per_frame) != len(frames):
        raise ValueError(f"frame captioner returned {len(per_frame)} captions for {len(frames)} frames")
    return fuser.fuse(per_frame), per_frame


def caption_clips(
    clips: Iterable[Clip],
    video_root: str | os.PathLike,
    errors: RowErrors,
    manifest: str = "",
    num_frames: int = 8,
    frame_captioner: FrameCaptioner | None = None,
    fuser: CaptionFuser | None = None,
    video_captioner: VideoCaptioner | None = None,
    field: str = CAPTION,
    keep_frame_captions: bool = False,
) -> Iterator[Clip]:
    """Caption every clip into ``field`` (``Caption`` replaces the caption; any other name adds a
    column). An unreadable clip or an empty caption goes to ``errors`` with its manifest line."""
    for clip in clips:
        try:
            caption, per_frame = caption_clip(
                Path(video_root) / clip.clip_path, num_frames, frame_captioner, fuser, video_captioner
            )
        except VideoReadError as exc:
            errors.add(RowError(manifest, clip.line, f"video unreadable: {exc}", clip.to_row()))
            continue
        if not caption:
            errors.add(RowError(manifest, clip.line, "captioner returned an empty caption", clip.to_row()))
            continue
        fields = dict(clip.fields)
        if keep_frame_captions and per_frame:
            fields[FRAME_CAPTIONS] = per_frame
        if field == CAPTION:
            yield replace(clip, caption=caption, fields=fields)
        else:
            yield replace(clip, fields={**fields, field: caption})
