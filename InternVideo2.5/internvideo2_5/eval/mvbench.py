"""MVBench-style multiple-choice video QA: prompts, answer parsing, per-task accuracy.

Input: a JSON file holding either ``{task: [item, ...]}`` or a list of items each with a
``task_type`` (or ``task``). An item is MVBench's ``{"video", "question", "candidates",
"answer"}`` where ``answer`` is the text of the correct candidate (a letter such as ``"B"`` or an
``answer_idx`` also works); optional ``"start"``/``"end"`` seconds are not used for sampling.

The prompt is InternVL's ``internvl_chat/eval/mvbench/evaluate_mvbench.py`` (checked against the
source): in the user turn, after the ``Frame{i}: <image>`` lines, the "Carefully watch the video..."
instruction and a blank line, then ``Question: ...\\nOptions:\\n(A) ...\\n(B) ...`` and
``\\nOnly give the best option.``; the system message stays the template's. The generated text is
parsed for an option letter (:func:`parse_option`).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MVBENCH_PROMPT = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
    "movement of objects, and the action and pose of persons. Based on your observations, select the best "
    "option that accurately addresses the question.\n"
)
ANSWER_PROMPT = "Only give the best option."


@dataclass(frozen=True)
class MCQItem:
    task: str
    video: str
    question: str
    candidates: tuple[str, ...]
    answer_index: int


def _answer_index(raw: dict, candidates: list[str], where: str) -> int:
    if "answer_idx" in raw:
        index = int(raw["answer_idx"])
    else:
        answer = str(raw.get("answer", "")).strip()
        if answer in candidates:
            index = candidates.index(answer)
        elif re.fullmatch(r"\(?[A-Z]\)?", answer):
            index = ord(answer.strip("()")) - ord("A")
        else:
            raise ValueError(f"{where}: answer {answer!r} is neither a candidate nor an option letter")
    if not 0 <= index < len(candidates):
        raise ValueError(f"{where}: answer index {index} outside the {len(candidates)} candidates")
    return index


def load_mcq(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[MCQItem]:
    """Items of an MVBench-style JSON; relative video paths are resolved against ``video_root``."""
    path = Path(path)
    data = json.loads(path.read_text())
    pairs = (
        [(task, item) for task, items in data.items() for item in items]
        if isinstance(data, dict)
        else [(item.get("task_type", item.get("task", "default")), item) for item in data]
    )
    root = Path(video_root) if video_root else path.parent
    items = []
    for n, (task, raw) in enumerate(pairs):
        where = f"{path} item {n}"
        missing = [k for k in ("video", "question", "candidates") if k not in raw]
        if missing:
            raise KeyError(f"{where}: missing keys {missing}")
        candidates = [str(c) for c in raw["candidates"]]
        if not 2 <= len(candidates) <= 26:
            raise ValueError(f"{where}: needs 2..26 candidates, got {len(candidates)}")
        video = Path(raw["video"])
        items.append(
            MCQItem(
                str(task),
                str(video if video.is_absolute() else root / video),
                str(raw["question"]),
                tuple(candidates),
                _answer_index(raw, candidates, where),
            )
        )
    return items


def format_question(item: MCQItem) -> str:
    """The instruction, a blank line, ``Question: q\\nOptions:\\n(A) c0\\n...`` and the answer prompt."""
    lines = [MVBENCH_PROMPT, f"Question: {item.question}", "Options:"]
    lines += [f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(item.candidates)]
    return "\n".join(lines) + "\n" + ANSWER_PROMPT


_LEADING = re.compile(r"^\s*(?:(?i:best option)\s*:?\s*)?\(?([A-Z])(?:\)|\.|:|,|\s|$)")
_ANYWHERE = [re.compile(r"\(([A-Z])\)"), re.compile(r"\b(?i:answer|option)\s*(?i:is|:)?\s*\(?([A-Z])\b")]


def parse_option(text: str, num_options: int) -> int | None:
    """The option index a generated answer names, or ``None``.

    Tried in order: a leading letter (``"B"``, ``"(B) a dog"``, ``"B. ..."``, ``"Best option: (B)"``),
    a parenthesised letter anywhere, ``"answer is B"``. Letters beyond the options do not count;
    unlike MVBench's substring check, an empty answer is never right.
    """
    text = text.strip()
    matches = [_LEADING.match(text)] + [p.search(text) for p in _ANYWHERE]
    for match in matches:
        if match:
            index = ord(match.group(1).upper()) - ord("A")
            if 0 <= index < num_options:
                return index
    return None


@dataclass
class TaskScore:
    correct: int = 0
    total: int = 0
    failed: int = 0

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total if self.total else 0.0


def evaluate_mcq(
    items: list[MCQItem], answer_fn: Callable[[MCQItem, str], str]
) -> tuple[dict[str, TaskScore], list[dict]]:
    """Ask every item with ``answer_fn(item, question_text)``; score per task.

    A video that cannot be read (``answer_fn`` raising ``OSError``/``RuntimeError``/``ValueError``)
    counts as wrong and is recorded with its error, so that one bad file does not stop a run.
    """
    scores: dict[str, TaskScore] = defaultdict(TaskScore)
    records = []
    for item in items:
        score = scores[item.task]
        score.total += 1
        record = {
            "task": item.task,
            "video": item.video,
            "question": item.question,
            "answer": item.answer_index,
        }
        try:
            text = answer_fn(item, format_question(item))
        except (OSError, RuntimeError, ValueError) as exc:
            score.failed += 1
            records.append({**record, "error": f"{type(exc).__name__}: {exc}"})
            continue
        predicted = parse_option(text, len(item.candidates))
        score.correct += int(predicted == item.answer_index)
        records.append({**record, "output": text, "prediction": predicted})
    return dict(scores), records


def format_report(scores: dict[str, TaskScore]) -> str:
    """Accuracy per task, then the mean over items and over tasks."""
    width = max([len(t) for t in scores] + [len("overall (items)")])
    lines = [f"{'task':<{width}}  {'acc':>6}  {'n':>5}  {'failed':>6}"]
    lines += [
        f"{t:<{width}}  {s.accuracy:6.2f}  {s.total:5d}  {s.failed:6d}" for t, s in sorted(scores.items())
    ]
    total = TaskScore(
        sum(s.correct for s in scores.values()),
        sum(s.total for s in scores.values()),
        sum(s.failed for s in scores.values()),
    )
    task_mean = sum(s.accuracy for s in scores.values()) / len(scores) if scores else 0.0
    lines.append(f"{'overall (items)':<{width}}  {total.accuracy:6.2f}  {total.total:5d}  {total.failed:6d}")
    lines.append(f"{'overall (tasks)':<{width}}  {task_mean:6.2f}")
    return "\n".join(lines)


def write_results(scores: dict[str, TaskScore], records: list[dict], path: str | os.PathLike) -> None:
    """Per-task accuracies and every item's output as JSON."""
    summary = {
        t: {"accuracy": s.accuracy, "correct": s.correct, "total": s.total, "failed": s.failed}
        for t, s in scores.items()
    }
    Path(path).write_text(json.dumps({"tasks": summary, "items": records}, indent=2, ensure_ascii=False))
