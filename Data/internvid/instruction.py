"""Video instruction data (conversations about a video): read, validate, convert, load.

Two row layouts are read, both as a JSON list or JSONL:

``qa`` -- the VideoChat instruction release (``videochat_instruct_11k.json``: 7K detailed
descriptions and 4K multi-turn conversations on WebVid clips), also used by VideoChat2-IT::

    {"video": "1023443371.mp4", "QA": [{"q": "What is the man doing?", "a": "He is ..."}, ...]}

    Each turn may also carry ``"i"``, an instruction placed before the question.

``conversations`` -- the LLaVA-style layout of the InternVideo2.5 / VideoChat-Flash fine-tuning
code::

    {"video": "1023443371.mp4", "conversations": [
        {"from": "human", "value": "<video>\\nWhat is the man doing?"},
        {"from": "gpt", "value": "He is ..."}]}

    Turns alternate human/gpt starting with human; ``<video>`` appears exactly once, in the
    first human turn (where the model splices in the frame tokens).

Both convert into each other without loss (``i`` and ``q`` join with a newline). Bad rows are
reported with their line (see :mod:`internvid.jsonio`), never dropped silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivtools.video import VideoReadError, open_video, uniform_indices

from .jsonio import RowError, RowErrors, iter_records, write_json, write_jsonl

LAYOUTS = ("qa", "conversations")
VIDEO_TOKEN = "<video>"
HUMAN, GPT = "human", "gpt"


@dataclass(frozen=True)
class Turn:
    """One exchange: the user's ``instruction`` (optional) and ``question``, and the ``answer``."""

    question: str
    answer: str
    instruction: str = ""

    @property
    def prompt(self) -> str:
        """What the user says: the instruction and the question, one per line, whichever exist."""
        return "\n".join(part for part in (self.instruction, self.question) if part)


@dataclass
class InstructionSample:
    video: str
    turns: list[Turn]
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = field(default=0, compare=False)


def _text(value: Any, where: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} is a {type(value).__name__}, expected a string")
    if not allow_empty and not value.strip():
        raise ValueError(f"{where} is empty")
    return value


def _video(row: dict) -> str:
    if "video" not in row:
        raise ValueError("missing column video")
    return _text(row["video"], "video")


def _from_qa(row: dict) -> InstructionSample:
    qa = row["QA"]
    if not isinstance(qa, list) or not qa:
        raise ValueError("QA must be a non-empty list of {q, a} turns")
    turns = []
    for number, item in enumerate(qa, start=1):
        where = f"QA turn {number}"
        if not isinstance(item, dict):
            raise ValueError(f"{where} is a {type(item).__name__}, expected an object")
        missing = [k for k in ("q", "a") if k not in item]
        if missing:
            raise ValueError(f"{where} has no {' or '.join(missing)!r}")
        question = _text(item["q"], f"{where} q", allow_empty=True)
        instruction = _text(item.get("i", ""), f"{where} i", allow_empty=True)
        if not (question.strip() or instruction.strip()):
            raise ValueError(f"{where} has neither a question ('q') nor an instruction ('i')")
        if VIDEO_TOKEN in question or VIDEO_TOKEN in instruction:
            raise ValueError(f"{where} contains {VIDEO_TOKEN}; the qa layout never names the video slot")
        turns.append(Turn(question, _text(item["a"], f"{where} a"), instruction))
    extra = {k: v for k, v in row.items() if k not in ("video", "QA")}
    return InstructionSample(_video(row), turns, extra)


def _from_conversations(row: dict) -> InstructionSample:
    messages = row["conversations"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("conversations must be a non-empty list of {from, value} messages")
    if len(messages) % 2:
        raise ValueError(f"conversations has {len(messages)} messages; a human message needs a gpt answer")
    values = []
    for number, message in enumerate(messages, start=1):
        where = f"message {number}"
        if not isinstance(message, dict) or "from" not in message or "value" not in message:
            raise ValueError(f"{where} must be an object with 'from' and 'value'")
        expected = HUMAN if number % 2 else GPT
        if message["from"] != expected:
            raise ValueError(
                f"{where} is from {message['from']!r}, expected {expected!r} (turns alternate, human first)"
            )
        values.append(_text(message["value"], f"{where} value"))
    tokens = [v.count(VIDEO_TOKEN) for v in values]
    if tokens[0] != 1 or sum(tokens) != 1:
        where = [str(i + 1) for i, n in enumerate(tokens) for _ in range(n)]
        raise ValueError(
            f"{VIDEO_TOKEN} must appear once, in message 1; found in message(s) [{', '.join(where)}]"
        )
    first = values[0].replace(VIDEO_TOKEN, "", 1).strip("\n ")
    if not first:
        raise ValueError(f"message 1 holds only {VIDEO_TOKEN}, no question")
    prompts = [first] + values[2::2]
    turns = [Turn(prompt, answer) for prompt, answer in zip(prompts, values[1::2])]
    extra = {k: v for k, v in row.items() if k not in ("video", "conversations")}
    return InstructionSample(_video(row), turns, extra)


def sample_from_row(row: Any) -> InstructionSample:
    """Validate one row of either layout; ``ValueError`` says what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"row is a JSON {type(row).__name__}, expected an object")
    has_qa, has_conv = "QA" in row, "conversations" in row
    if has_qa == has_conv:
        raise ValueError("row needs exactly one of 'QA' (qa layout) or 'conversations'")
    return _from_qa(row) if has_qa else _from_conversations(row)


def iter_instructions(
    path: str | os.PathLike, errors: RowErrors, video_root: str | os.PathLike | None = None
) -> Iterator[InstructionSample]:
    """Valid samples; bad rows (and, given ``video_root``, rows whose video is missing) go to
    ``errors`` with their line number."""
    for line, value in iter_records(path):
        if isinstance(value, RowError):
            errors.add(value)
            continue
        try:
            sample = sample_from_row(value)
        except ValueError as exc:
            errors.add(RowError(str(path), line, str(exc), value))
            continue
        if video_root is not None and not (Path(video_root) / sample.video).exists():
            errors.add(
                RowError(str(path), line, f"video {sample.video!r} not found under {video_root}", value)
            )
            continue
        sample.line = line
        yield sample


def read_instructions(
    path: str | os.PathLike, errors: RowErrors | None = None, video_root: str | os.PathLike | None = None
) -> list[InstructionSample]:
    """All valid samples. Without ``errors``, any bad row raises ``BadRowsError`` listing them all."""
    own = errors is None
    errors = errors if errors is not None else RowErrors("fail")
    samples = list(iter_instructions(path, errors, video_root))
    if own:
        errors.finish()
    return samples


def to_qa_row(sample: InstructionSample) -> dict[str, Any]:
    qa = []
    for turn in sample.turns:
        item = {"q": turn.question, "a": turn.answer}
        if turn.instruction:
            item = {"i": turn.instruction, **item}
        qa.append(item)
    return {"video": sample.video, "QA": qa, **sample.extra}


def to_conversation_row(sample: InstructionSample) -> dict[str, Any]:
    messages = []
    for number, turn in enumerate(sample.turns):
        prompt = f"{VIDEO_TOKEN}\n{turn.prompt}" if number == 0 else turn.prompt
        messages += [{"from": HUMAN, "value": prompt}, {"from": GPT, "value": turn.answer}]
    return {"video": sample.video, "conversations": messages, **sample.extra}


def write_instructions(path: str | os.PathLike, samples: Iterable[InstructionSample], layout: str) -> int:
    """Write ``samples`` in ``layout`` (JSONL for ``.jsonl`` paths, else one JSON list)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    convert = to_qa_row if layout == "qa" else to_conversation_row
    rows = [convert(s) for s in samples]
    if str(path).endswith((".jsonl", ".jsonl.gz")):
        write_jsonl(path, rows)
    else:
        write_json(path, rows)
    return len(rows)


def instruction_stats(samples: Iterable[InstructionSample]) -> dict[str, Any]:
    """Counts a person checks after downloading the data: samples, turns, turns per sample."""
    counts = [len(s.turns) for s in samples]
    return {
        "samples": len(counts),
        "turns": sum(counts),
        "single_turn": sum(c == 1 for c in counts),
        "multi_turn": sum(c > 1 for c in counts),
        "max_turns": max(counts, default=0),
    }


class InstructionDataset(torch.utils.data.Dataset):
    """Samples with their frames, for supervised fine-tuning of a video chat model.

    Each item is ``{"frames": (T, H, W, 3) uint8, "conversations": [...], "video": path,
    "index": int, "skipped": int}``, the conversations in the LLaVA layout the InternVideo2.5
    fine-tuning code tokenises. An unreadable video is counted in ``skipped`` and replaced by
    the next sample (at most ``max_tries`` attempts), as the training loaders of ``ivtools`` do.
    """

    def __init__(
        self,
        samples: list[InstructionSample],
        video_root: str | os.PathLike,
        num_frames: int = 8,
        sample: str = "middle",
        max_tries: int = 5,
        seed: int = 0,
    ):
        if not samples:
            raise ValueError("no instruction samples")
        self.samples, self.video_root = samples, Path(video_root)
        self.num_frames, self.sample, self.max_tries = num_frames, sample, max_tries
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, index])
        failures = []
        for attempt in range(self.max_tries):
            item = self.samples[(index + attempt) % len(self.samples)]
            path = self.video_root / item.video
            try:
                with open_video(path) as video:
                    frames = video.get_frames(
                        uniform_indices(len(video), self.num_frames, mode=self.sample, rng=rng)
                    )
            except VideoReadError as exc:
                failures.append(str(exc))
                continue
            row = to_conversation_row(item)
            return {
                "frames": frames,
                "conversations": row["conversations"],
                "video": str(path),
                "index": index,
                "skipped": attempt,
            }
        raise VideoReadError(
            str(self.video_root), f"{self.max_tries} videos in a row unreadable: {'; '.join(failures)}"
        )
