"""InternVid annotation rows ("manifests"): read, validate and write the release's JSONL.

A release row looks like::

    {"YoutubeID": "LsWGof0vcls", "Start_timestamp": "00:10:41.467", "End_timestamp": "00:10:57.567",
     "Caption": "two men in black holding up their arms near a field",
     "Aesthetic_Score": 4.609375, "UMT_Score": 0.407715}

Every other column (``ViCLIP_Score``, the -INFO release's metadata, or the ``clip_*`` fields
that ``internvid cut`` adds) is kept in :attr:`Clip.fields`, in file order, and written back.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .jsonio import RowError, RowErrors, iter_records, write_jsonl
from .timestamps import compact_timestamp, format_timestamp, parse_timestamp

YOUTUBE_ID = "YoutubeID"
START = "Start_timestamp"
END = "End_timestamp"
CAPTION = "Caption"
REQUIRED = (YOUTUBE_ID, START, END, CAPTION)
# Numeric columns: the release's UMT similarity and LAION aesthetic score, and the ViCLIP
# similarity that `internvid score` writes by default.
SCORE_FIELDS = ("UMT_Score", "Aesthetic_Score", "ViCLIP_Score")
# Written by `internvid cut`: where the clip file is (relative to the cut folder) and what it holds.
CLIP_PATH = "clip_path"

_STRICT_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_LOOSE_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # still safe in file names and WebDataset keys
# The InternVideo training loaders' caption normalisation (`pre_text`): lower-case, drop this
# punctuation, turn '-' and '/' into spaces; rows with fewer than 2 words are then dropped.
_TRAINING_PUNCTUATION = re.compile(r"[,.'!?\"()*#:;~]")
TRAINING_MIN_CAPTION_WORDS = 2


def training_words(caption: str) -> list[str]:
    """The words the InternVideo training loaders see after their caption normalisation."""
    text = _TRAINING_PUNCTUATION.sub("", caption.lower())
    text = text.replace("-", " ").replace("/", " ").replace("<person>", "person")
    return text.split()


@dataclass
class Clip:
    """One annotated clip. Equality ignores :attr:`line` (where it was read from)."""

    youtube_id: str
    start_ms: int
    end_ms: int
    caption: str
    fields: dict[str, Any] = field(default_factory=dict)
    line: int = field(default=0, compare=False)

    @property
    def duration(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0

    @property
    def key(self) -> str:
        """``<id>_<HHMMSSmmm>_<HHMMSSmmm>``: the clip's file stem and WebDataset key."""
        return f"{self.youtube_id}_{compact_timestamp(self.start_ms)}_{compact_timestamp(self.end_ms)}"

    @property
    def default_clip_path(self) -> str:
        """Where ``internvid cut`` puts this clip, relative to its output folder."""
        return f"{self.youtube_id}/{self.key}.mp4"

    @property
    def clip_path(self) -> str:
        return self.fields.get(CLIP_PATH, self.default_clip_path)

    def score(self, name: str) -> float:
        """The numeric column ``name``; ``KeyError``/``ValueError`` say which is missing or bad."""
        if name not in self.fields:
            raise KeyError(f"row has no {name!r} column")
        return _number(name, self.fields[name])

    def to_row(self) -> dict[str, Any]:
        row = {
            YOUTUBE_ID: self.youtube_id,
            START: format_timestamp(self.start_ms),
            END: format_timestamp(self.end_ms),
            CAPTION: self.caption,
        }
        row.update(self.fields)
        return row


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} {value!r} is not a finite number")
    return float(value)


def clip_from_row(row: Any, strict_ids: bool = True, min_caption_words: int = 1) -> Clip:
    """Validate one release row; ``ValueError`` carries a reason fit for a ``file:line`` report."""
    if not isinstance(row, dict):
        raise ValueError(f"row is a JSON {type(row).__name__}, expected an object")
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    video_id = row[YOUTUBE_ID]
    pattern = _STRICT_ID if strict_ids else _LOOSE_ID
    if not isinstance(video_id, str) or not pattern.match(video_id):
        what = "an 11-character YouTube id" if strict_ids else "an id of letters, digits, '_' and '-'"
        raise ValueError(f"{YOUTUBE_ID} {video_id!r} is not {what}")
    start = _timestamp(row, START)
    end = _timestamp(row, END)
    if end <= start:
        raise ValueError(f"{END} {row[END]} is not after {START} {row[START]}")
    caption = row[CAPTION]
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"{CAPTION} is empty or not a string ({caption!r})")
    words = len(training_words(caption))
    if words < min_caption_words:
        raise ValueError(
            f"{CAPTION} {caption!r} has {words} word(s) after the training's text normalisation "
            f"(at least {min_caption_words} required)"
        )
    extra = {k: v for k, v in row.items() if k not in REQUIRED}
    for name in SCORE_FIELDS:
        if name in extra:
            _number(name, extra[name])
    return Clip(video_id, start, end, caption, extra)


def _timestamp(row: dict, key: str) -> int:
    try:
        return parse_timestamp(row[key])
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def iter_manifest(
    path: str | os.PathLike,
    errors: RowErrors,
    strict_ids: bool = True,
    min_caption_words: int = 1,
    unique: bool = False,
) -> Iterator[Clip]:
    """Valid clips of a manifest (JSONL or JSON list); bad rows go to ``errors`` with their line.

    ``unique=True`` also reports a row whose id and timestamps repeat an earlier row's.
    """
    seen: dict[str, int] = {}
    for line, value in iter_records(path):
        if isinstance(value, RowError):
            errors.add(value)
            continue
        try:
            clip = clip_from_row(value, strict_ids=strict_ids, min_caption_words=min_caption_words)
        except ValueError as exc:
            errors.add(RowError(str(path), line, str(exc), value))
            continue
        clip.line = line
        if unique:
            if clip.key in seen:
                errors.add(
                    RowError(str(path), line, f"duplicate of line {seen[clip.key]} ({clip.key})", value)
                )
                continue
            seen[clip.key] = line
        yield clip


def read_manifest(path: str | os.PathLike, errors: RowErrors | None = None, **kwargs) -> list[Clip]:
    """All valid clips. Without ``errors``, any bad row raises ``BadRowsError`` listing them all."""
    own = errors is None
    errors = errors if errors is not None else RowErrors("fail")
    clips = list(iter_manifest(path, errors, **kwargs))
    if own:
        errors.finish()
    return clips


def write_manifest(path: str | os.PathLike, clips: Iterable[Clip]) -> int:
    """Write clips as release-style JSONL (atomically); returns the count."""
    return write_jsonl(path, (c.to_row() for c in clips))
