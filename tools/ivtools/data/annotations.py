"""Annotation lists of video classification datasets, as the original InternVideo code reads them.

* Kinetics / UCF / HMDB / ANet style lists (``train.csv``/``val.csv``/``test.csv``): one row per
  video, ``<path><sep><label>``, or ``<path><sep><num_frames><sep><label>`` for frame folders.
  ``label`` may be a comma-separated list for multi-label sets.
* ActivityNet / HACS interval lists (the original's ``ANet_interval`` / ``HACS_interval``):
  ``<path><sep><total duration><sep><start><sep><end><sep><label>``, times in seconds; the clip is
  sampled from ``[start, end]`` only. ``-1`` in any time column means the whole video.
* Something-Something V2's official JSON: a list of ``{"id", "template", ...}`` plus
  ``labels.json`` mapping each template (brackets removed) to its class index.

Every error names the file and line at fault.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: ``path`` (prefix applied), ``labels`` (one or more class indices).

    ``window`` is ``(total duration, start, end)`` in seconds when only part of the video is
    annotated (interval lists); ``None`` means the whole video.
    """

    path: str
    labels: tuple[int, ...]
    num_frames: int | None = None
    window: tuple[float, float, float] | None = None

    @property
    def label(self) -> int:
        return self.labels[0]


def _join(prefix: str, path: str) -> str:
    return os.path.join(prefix, path) if prefix and not os.path.isabs(path) else path


def _parse_labels(text: str, where: str, num_classes: int | None) -> tuple[int, ...]:
    try:
        labels = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{where}: label {text!r} is not an integer (or comma-separated integers)") from None
    for label in labels:
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise ValueError(f"{where}: label {label} outside the class range [0, {num_classes})")
    return labels


def read_video_list(
    path: str | os.PathLike, sep: str = " ", prefix: str = "", num_classes: int | None = None
) -> list[VideoRecord]:
    """Read a ``<path> <label>`` (or ``<path> <num_frames> <label>``) list.

    ``sep`` is the column separator (the original's ``--split``); ``prefix`` is joined to
    relative paths; labels are checked against ``num_classes`` when given.
    """

    def parse(line: str, where: str) -> VideoRecord:
        # The path may itself contain the separator (e.g. spaces): labels are the last columns.
        parts = line.rsplit(sep if sep.strip() else None, 2)
        if len(parts) < 2:
            raise ValueError(f"{where}: expected '<path>{sep}<label>', got {line!r}")
        num_frames = None
        if len(parts) == 3 and parts[1].isdigit():
            num_frames = int(parts[1])
        elif len(parts) == 3:
            parts = [f"{parts[0]}{sep}{parts[1]}", parts[2]]
        return VideoRecord(_join(prefix, parts[0]), _parse_labels(parts[-1], where, num_classes), num_frames)

    return _read_rows(path, parse)


def _read_rows(path: str | os.PathLike, parse: Callable[[str, str], VideoRecord]) -> list[VideoRecord]:
    """``parse(line, "file:line")`` for every non-blank line; a file without rows is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    lines = enumerate(path.read_text().splitlines(), start=1)
    records = [parse(line.strip(), f"{path}:{no}") for no, line in lines if line.strip()]
    if not records:
        raise ValueError(f"annotation file {path} lists no videos")
    return records


def _parse_window(texts: list[str], where: str) -> tuple[float, float, float] | None:
    try:
        total, start, end = (float(x) for x in texts)
    except ValueError:
        raise ValueError(f"{where}: duration/start/end {' '.join(texts)!r} are not numbers") from None
    if -1 in (total, start, end):  # the original's marker for "no interval: use the whole video"
        return None
    if total <= 0 or start < 0 or end <= start:
        raise ValueError(
            f"{where}: need duration > 0 and 0 <= start < end, got duration {total}, start {start}, end {end}"
        )
    return (total, start, end)


def read_interval_list(
    path: str | os.PathLike, sep: str = " ", prefix: str = "", num_classes: int | None = None
) -> list[VideoRecord]:
    """Read a ``<path> <total duration> <start> <end> <label>`` list (ANet / HACS intervals).

    Times are seconds; ``-1`` in any of them selects the whole video. ``sep``, ``prefix`` and
    ``num_classes`` as in :func:`read_video_list`.
    """

    def parse(line: str, where: str) -> VideoRecord:
        # The path may itself contain the separator: the four numeric columns are the last ones.
        parts = line.rsplit(sep if sep.strip() else None, 4)
        if len(parts) != 5:
            raise ValueError(
                f"{where}: expected '<path>{sep}<duration>{sep}<start>{sep}<end>{sep}<label>', got {line!r}"
            )
        return VideoRecord(
            _join(prefix, parts[0]),
            _parse_labels(parts[4], where, num_classes),
            window=_parse_window(parts[1:4], where),
        )

    return _read_rows(path, parse)


def _ssv2_template(text: str) -> str:
    return text.replace("[", "").replace("]", "")


def read_ssv2_json(
    annotation: str | os.PathLike, labels: str | os.PathLike, prefix: str = "", suffix: str = ".webm"
) -> list[VideoRecord]:
    """Read Something-Something V2's official ``*-train.json`` / ``*-validation.json`` with ``labels.json``."""
    annotation, labels = Path(annotation), Path(labels)
    for file in (annotation, labels):
        if not file.is_file():
            raise FileNotFoundError(f"annotation file not found: {file}")
    classes = {name: int(index) for name, index in json.loads(labels.read_text()).items()}
    records = []
    for i, item in enumerate(json.loads(annotation.read_text())):
        template = _ssv2_template(item.get("template", ""))
        if template not in classes:
            raise ValueError(
                f"{annotation}: entry {i} (id {item.get('id')!r}) has unknown template {template!r}"
            )
        records.append(VideoRecord(_join(prefix, f"{item['id']}{suffix}"), (classes[template],)))
    if not records:
        raise ValueError(f"annotation file {annotation} lists no videos")
    return records


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line (blank lines ignored), e.g. the Kinetics label lists."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def label_map_between(source: list[str], target: list[str]) -> list[int]:
    """Index in ``source`` of every ``target`` class (e.g. Kinetics-710 → Kinetics-400 heads).

    Names are compared case-insensitively with quotes, underscores and extra spaces ignored,
    the way the Kinetics lists differ in spelling. A target class missing from ``source``
    raises an error naming it.
    """

    def norm(name: str) -> str:
        return " ".join(name.lower().replace('"', "").replace("'", "").replace("_", " ").split())

    index = {norm(name): i for i, name in enumerate(source)}
    missing = [name for name in target if norm(name) not in index]
    if missing:
        raise KeyError(f"{len(missing)} target classes not in the source list, first: {missing[0]!r}")
    return [index[norm(name)] for name in target]
