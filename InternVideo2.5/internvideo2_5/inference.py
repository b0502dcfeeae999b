"""Batch inference over a JSONL of ``{"video": ..., "question": ...}`` lines, and the shared CLI options."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from internvideo2_5.chat import VideoChat
from internvideo2_5.constants import DEFAULT_NUM_FRAMES
from ivtools.video import VideoReadError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_model_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options every entry point shares: checkpoint, device, frame sampling, generation length."""
    parser.add_argument("--model", required=True, help="released-layout checkpoint directory")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype", choices=sorted(_DTYPES), default="bfloat16" if torch.cuda.is_available() else "float32"
    )
    parser.add_argument("--num-frames", type=int, default=DEFAULT_NUM_FRAMES, help="frames sampled uniformly")
    parser.add_argument("--frames-by-duration", action="store_true", help="~1 frame/s, clamped to [128, 512]")
    parser.add_argument("--max-num", type=int, default=1, help="max tiles per frame (dynamic resolution)")
    parser.add_argument(
        "--chunk-frames", type=int, default=None, help="long-video mode: encode this many frames at a time"
    )
    parser.add_argument(
        "--time-prompt", action="store_true", help="add the video length and frame timestamps to the prompt"
    )
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--video-backend", default="auto")
    return parser


def chat_from_args(args: argparse.Namespace) -> VideoChat:
    return VideoChat.from_pretrained(
        args.model,
        dtype=_DTYPES[args.dtype],
        device=args.device,
        num_frames=args.num_frames,
        max_num=args.max_num,
        chunk_frames=args.chunk_frames,
        frames_by_duration=args.frames_by_duration,
        time_prompt=args.time_prompt,
        backend=args.video_backend,
    )


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Lines of a JSONL file (blank lines skipped); each must hold ``video`` and ``question``."""
    path = Path(path)
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc})") from exc
        missing = [k for k in ("video", "question") if k not in row]
        if missing:
            raise KeyError(f"{path}:{n}: missing keys {missing}")
        rows.append(row)
    return rows


def _batches(rows: list[dict], size: int) -> Iterable[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def run_batch(
    chat: VideoChat,
    rows: list[dict],
    out_path: str | os.PathLike,
    batch_size: int = 4,
    generation_config: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Answer every row, writing one JSONL line per row (``answer`` or ``error``); returns counts.

    Videos are encoded one at a time; a video that cannot be read, or an empty question, gives an
    ``error`` line and is left out of the batch instead of stopping the run.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    counts = {"answered": 0, "failed": 0}
    with open(out_path, "w") as out:
        for batch in _batches(rows, batch_size):
            ready, encoded = [], []
            for row in batch:
                try:
                    if not str(row["question"]).strip():
                        raise ValueError("the question is empty")
                    encoded.append(chat.encode_video(row["video"]))
                    ready.append(row)
                except (VideoReadError, ValueError, OSError) as exc:
                    counts["failed"] += 1
                    out.write(
                        json.dumps({**row, "error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False)
                        + "\n"
                    )
            if ready:
                answers = chat.batch_chat(encoded, [r["question"] for r in ready], generation_config)
                for row, answer in zip(ready, answers):
                    out.write(json.dumps({**row, "answer": answer}, ensure_ascii=False) + "\n")
                counts["answered"] += len(ready)
            if progress:
                progress(len(batch))
    return counts


def converse(
    chat: VideoChat,
    video: str,
    questions: Iterable[str],
    generation_config: dict | None = None,
    stream: bool = False,
    write: Callable[[str], None] = lambda text: print(text, end="", flush=True),
) -> list[tuple[str, str]]:
    """A multi-turn conversation about ``video``, writing each answer (streamed or whole)."""
    history: list[tuple[str, str]] = []
    for question in questions:
        if stream:
            turn = chat.stream_chat(video, question, history, generation_config)
            for piece in turn:
                write(piece)
            history = turn.history
        else:
            answer, history = chat.chat(video, question, history, generation_config)
            write(answer)
        write("\n")
    return history
