"""InternVid clip timestamps: ``HH:MM:SS.mmm`` strings held as integer milliseconds.

The release writes every ``Start_timestamp``/``End_timestamp`` as exactly twelve characters,
e.g. ``00:10:41.467``. Integer milliseconds make parse -> format round trips exact (a float
number of seconds would not), and :func:`to_seconds` gives an exact ``Fraction`` for comparing
against a stream's rational time base.
"""

from __future__ import annotations

import re
from fractions import Fraction

_TIMESTAMP = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d)(?:\.(\d{1,3}))?$")


def parse_timestamp(text: str) -> int:
    """``"HH:MM:SS.mmm"`` -> milliseconds. One to three fraction digits; hours may exceed 99.

    Raises ``ValueError`` naming the text for anything else (so a caller can report the row).
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string like '00:01:02.345', got {text!r}")
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        raise ValueError(f"timestamp {text!r} is not HH:MM:SS.mmm")
    hours, minutes, seconds, fraction = match.groups()
    millis = int((fraction or "0").ljust(3, "0"))
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + millis


def format_timestamp(millis: int) -> str:
    """Milliseconds -> ``"HH:MM:SS.mmm"`` (the release's twelve-character form)."""
    if millis < 0:
        raise ValueError(f"timestamp cannot be negative, got {millis} ms")
    seconds, ms = divmod(int(millis), 1000)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}.{ms:03d}"


def compact_timestamp(millis: int) -> str:
    """``HHMMSSmmm`` digits only: safe in file names and WebDataset keys (no ``:`` or ``.``)."""
    return format_timestamp(millis).replace(":", "").replace(".", "")


def to_seconds(millis: int) -> Fraction:
    """Exact seconds as a ``Fraction`` (compare with ``pts * time_base`` without rounding)."""
    return Fraction(int(millis), 1000)


def seconds_to_millis(seconds: float | Fraction) -> int:
    """Seconds -> milliseconds, rounded to the nearest millisecond."""
    return round(Fraction(seconds) * 1000)
