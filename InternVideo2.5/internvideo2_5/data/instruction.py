"""Video instruction data for supervised fine-tuning: the two released row layouts and meta files.

Rows come from a JSON list or a JSONL file, in either layout:

* VideoChat (``videochat_instruct_11k``, VideoChat2-IT): ``{"video": "x.mp4", "QA": [{"q": ..., "a": ...,
  "i": optional instruction}, ...]}``; a turn's user text is the instruction and the question, one
  per line.
* LLaVA ``conversations`` (the InternVideo2.5 fine-tuning code in VideoChat-Flash):
  ``{"video": "x.mp4", "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", ...}]}``;
  turns alternate human/gpt. The video slot is ``<video>`` or (as in the released example data) a
  single ``<image>``, in the first human message; without one, the frames go first.

A meta file (the fine-tuning code's ``diy_ft_data.json``) names several annotation files::

    {"name": {"root": "videos/", "annotation": "ann.jsonl", "repeat_time": 1}, ...}

Every user text is kept with a ``<video>`` marker in the first turn, where the dataset puts the
``Frame{i}: <image>`` lines.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from internvideo2_5.constants import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER

ROLES = ("human", "gpt")


@dataclass(frozen=True)
class VideoConversation:
    """A video file and its ``(user, assistant)`` turns; the first user text holds ``<video>``."""

    video: Path
    turns: list[tuple[str, str]]
    where: str = ""


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _with_video_slot(text: str, where: str) -> str:
    """The first user text with exactly one ``<video>`` marker (a lone ``<image>`` counts as one)."""
    videos, images = text.count(VIDEO_PLACEHOLDER), text.count(IMAGE_PLACEHOLDER)
    if videos + images > 1:
        raise ValueError(
            f"{where}: {videos} {VIDEO_PLACEHOLDER} and {images} {IMAGE_PLACEHOLDER}; one video slot"
        )
    if images:
        return text.replace(IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER)
    return text if videos else f"{VIDEO_PLACEHOLDER}\n{text}"


def _qa_turns(qa: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(qa, list) or not qa:
        raise ValueError(f"{where}: QA must be a non-empty list of {{q, a}} objects")
    turns = []
    for number, item in enumerate(qa, 1):
        at = f"{where} QA[{number}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: expected an object, got {item!r}")
        parts = [item.get("i", ""), item.get("q", "")]
        user = "\n".join(p for p in parts if isinstance(p, str) and p.strip())
        turns.append((_string(user, f"{at} i/q"), _string(item.get("a"), f"{at} a")))
    return turns


def _conversation_turns(messages: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages or len(messages) % 2:
        raise ValueError(f"{where}: conversations must be a non-empty list of human/gpt message pairs")
    values = []
    for number, message in enumerate(messages):
        at = f"{where} conversations[{number}]"
        expected = ROLES[number % 2]
        if not isinstance(message, dict) or message.get("from") != expected:
            raise ValueError(f"{at}: expected a message from {expected!r}, got {message!r}")
        values.append(_string(message.get("value"), f"{at} value"))
    return list(zip(values[0::2], values[1::2]))


def conversation_from_row(row: Any, root: Path, where: str) -> VideoConversation:
    """One annotation row of either layout; ``ValueError`` names ``where`` and what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected an object, got {type(row).__name__}")
    if ("QA" in row) == ("conversations" in row):
        raise ValueError(f"{where}: a row needs exactly one of 'QA' or 'conversations'")
    video = _string(row.get("video"), f"{where} video")
    if "QA" in row:
        turns = _qa_turns(row["QA"], where)
    else:
        turns = _conversation_turns(row["conversations"], where)
    later = [user for user, _ in turns[1:] if VIDEO_PLACEHOLDER in user or IMAGE_PLACEHOLDER in user]
    if later:
        raise ValueError(f"{where}: only the first user turn may hold the video slot, found {later[0]!r}")
    turns[0] = (_with_video_slot(turns[0][0], where), turns[0][1])
    return VideoConversation(root / video, turns, where)


def _rows(path: Path) -> list[tuple[str, Any]]:
    """``(where, row)`` pairs of a JSON list or a JSONL file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of rows (or a .jsonl file)")
        return [(f"{path} row {i}", row) for i, row in enumerate(rows)]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return out


def read_annotation(path: str | os.PathLike, video_root: str | os.PathLike = "") -> list[VideoConversation]:
    """All rows of one annotation file; videos are resolved under ``video_root``."""
    path = Path(path)
    return [conversation_from_row(row, Path(video_root), where) for where, row in _rows(path)]


def _repeat(items: list[VideoConversation], times: float, where: str) -> list[VideoConversation]:
    """InternVL's ``repeat_time``: below 1 a seeded random subset, above 1 whole repeats."""
    if times <= 0 or (times > 1 and times != int(times)):
        raise ValueError(f"{where}: repeat_time must be in (0, 1] or a whole number, got {times}")
    if times < 1:
        return random.Random(0).sample(items, k=int(len(items) * times))
    return items * int(times)


def read_meta(path: str | os.PathLike) -> list[VideoConversation]:
    """Every annotation file a meta JSON lists (relative paths are taken from the meta file's folder)."""
    path = Path(path)
    meta = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or not meta:
        raise ValueError(f"{path}: expected an object of {{name: {{root, annotation, repeat_time}}}}")
    out = []
    for name, entry in meta.items():
        where = f"{path} [{name}]"
        if not isinstance(entry, dict) or "annotation" not in entry:
            raise ValueError(f"{where}: needs an 'annotation' path")
        annotation = path.parent / entry["annotation"]
        root = path.parent / entry.get("root", "")
        out += _repeat(read_annotation(annotation, root), float(entry.get("repeat_time", 1)), where)
    return out


def load_instruction_data(
    path: str | os.PathLike, video_root: str | os.PathLike = ""
) -> list[VideoConversation]:
    """A meta JSON (an object of datasets) or one annotation file (a JSON list or JSONL)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instruction data {path} does not exist")
    if path.suffix == ".json" and path.read_text(encoding="utf-8").lstrip().startswith("{"):
        return read_meta(path)
    return read_annotation(path, video_root)
