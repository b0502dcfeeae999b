"""JSON / JSON Lines reading with line numbers, bad-row reporting, and atomic writes.

Every reader here yields ``(line_number, value)`` so that a bad row can be reported as
``file:line: reason``. A bad row is never dropped silently: :class:`RowErrors` either collects
them and fails at the end (after reading everything, so the user sees every problem at once),
or writes them to a rejects file that keeps the original row.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ON_ERROR_CHOICES = ("fail", "reject")


@dataclass(frozen=True)
class RowError:
    """One unusable row: where it is, why, and the row as read (kept for the rejects file)."""

    path: str
    line: int
    reason: str
    row: Any = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"

    def to_json(self) -> dict:
        return {"file": self.path, "line": self.line, "reason": self.reason, "row": self.row}


class BadRowsError(ValueError):
    """Raised under ``on_error="fail"``; lists the bad rows (the first 20 in the message)."""

    def __init__(self, errors: list[RowError]):
        self.errors = list(errors)
        shown = "\n  ".join(str(e) for e in self.errors[:20])
        more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} bad row(s):\n  {shown}{more}")


@dataclass
class RowErrors:
    """Where bad rows go: ``"fail"`` raises :class:`BadRowsError` on :meth:`finish`;
    ``"reject"`` appends each to ``rejects_path`` (JSONL with file, line, reason and row)."""

    on_error: str = "fail"
    rejects_path: str | os.PathLike | None = None
    errors: list[RowError] = field(default_factory=list)

    def __post_init__(self):
        if self.on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {self.on_error!r}")
        if self.on_error == "reject" and self.rejects_path is None:
            raise ValueError("on_error='reject' needs a rejects_path to write the bad rows to")

    def add(self, error: RowError) -> None:
        self.errors.append(error)

    def extend(self, errors: Iterable[RowError]) -> None:
        self.errors.extend(errors)

    def finish(self) -> list[RowError]:
        """Fail, or write the rejects file (always written under "reject", empty if none)."""
        if self.on_error == "fail":
            if self.errors:
                raise BadRowsError(self.errors)
            return []
        write_jsonl(self.rejects_path, (e.to_json() for e in self.errors))
        return self.errors


def _open_text(path: str | os.PathLike, mode: str = "rt"):
    if str(path).endswith(".gz"):
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode.replace("t", ""), encoding="utf-8")


def is_jsonl(path: str | os.PathLike) -> bool:
    name = str(path)
    return name.endswith((".jsonl", ".jsonl.gz", ".ndjson"))


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any | RowError]]:
    """``(line, value)`` per non-blank line; a line that is not JSON yields a :class:`RowError`."""
    with _open_text(path) as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield (
                    number,
                    RowError(
                        str(path),
                        number,
                        f"not valid JSON ({exc.msg} at column {exc.colno})",
                        text.rstrip("\n"),
                    ),
                )


def iter_json_array(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """``(line, item)`` for each item of a top-level JSON array, with the line the item starts on.

    A syntax error cannot be skipped inside one JSON document, so it raises ``ValueError``
    naming ``file:line:column``.
    """
    with _open_text(path) as handle:
        text = handle.read()
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise ValueError(f"{path}: expected a JSON list (file starts with {text[pos : pos + 20]!r})")
    pos = _skip_space(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from exc
        yield text.count("\n", 0, pos) + 1, item
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        raise ValueError(f"{path}:{line}: expected ',' or ']' after a list item")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def iter_records(path: str | os.PathLike) -> Iterator[tuple[int, Any | RowError]]:
    """JSONL (``.jsonl``/``.jsonl.gz``/``.ndjson``) line by line, anything else as a JSON list."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return iter_jsonl(path) if is_jsonl(path) else iter_json_array(path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, binary: bool = False):
    """Write to ``<path>.tmp`` and rename over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if str(path).endswith(".gz"):
            raw = gzip.open(tmp, "wb")  # noqa: SIM115 - closed by the `with handle` below
            handle = raw if binary else io.TextIOWrapper(raw, encoding="utf-8")
        else:
            handle = open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"}))  # noqa: SIM115
        with handle:
            yield handle
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Write one JSON value per line (UTF-8, not ASCII-escaped); returns the row count."""
    count = 0
    with atomic_output(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json(path: str | os.PathLike, value: Any, indent: int | None = None) -> None:
    with atomic_output(path) as handle:
        json.dump(value, handle, ensure_ascii=False, indent=indent)
        handle.write("\n")
