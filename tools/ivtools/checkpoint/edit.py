"""Key edits and summaries of state dicts: prefixes, glob selection, parameter counts."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

StateDict = dict[str, torch.Tensor]


def _matches(key: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(key, pattern)


def _rename(state_dict: Mapping[str, torch.Tensor], rename: Callable[[str], str]) -> StateDict:
    out: StateDict = {}
    for key, value in state_dict.items():
        new = rename(key)
        if new in out:
            raise ValueError(f"renaming {key!r} gives {new!r}, which another key already has")
        out[new] = value
    return out


def strip_prefix(
    state_dict: Mapping[str, torch.Tensor], prefix: str, pattern: str | None = None
) -> StateDict:
    """Remove ``prefix`` from every key that starts with it (and matches the glob ``pattern``).

    Keys without the prefix are kept unchanged, as the original's loaders do for ``module.``,
    ``backbone.`` and ``encoder.``; two keys that would collide raise ``ValueError``.
    """
    if not prefix:
        raise ValueError("prefix must not be empty")
    return _rename(
        state_dict, lambda k: k[len(prefix) :] if k.startswith(prefix) and _matches(k, pattern) else k
    )


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str, pattern: str | None = None) -> StateDict:
    """Put ``prefix`` in front of every key (or only of keys matching the glob ``pattern``)."""
    if not prefix:
        raise ValueError("prefix must not be empty")
    return _rename(state_dict, lambda k: prefix + k if _matches(k, pattern) else k)


def select_keys(state_dict: Mapping[str, torch.Tensor], pattern: str | None) -> StateDict:
    """The entries whose key matches the glob ``pattern`` (all when ``None``)."""
    return {k: v for k, v in state_dict.items() if _matches(k, pattern)}


@dataclass(frozen=True)
class TensorInfo:
    key: str
    shape: tuple[int, ...]
    dtype: str
    numel: int


def describe(state_dict: Mapping[str, torch.Tensor]) -> list[TensorInfo]:
    """One row per tensor, in the state dict's order."""
    return [
        TensorInfo(k, tuple(v.shape), str(v.dtype).removeprefix("torch."), v.numel())
        for k, v in state_dict.items()
    ]


def count_by_prefix(state_dict: Mapping[str, torch.Tensor], depth: int = 1) -> dict[str, int]:
    """Element counts grouped by the first ``depth`` dot-separated parts of each key."""
    counts: dict[str, int] = {}
    for key, tensor in state_dict.items():
        group = ".".join(key.split(".")[:depth])
        counts[group] = counts.get(group, 0) + tensor.numel()
    return counts


def format_table(state_dict: Mapping[str, torch.Tensor], depth: int = 1) -> str:
    """A plain-text table of keys, shapes and dtypes, then counts per prefix and the total."""
    rows = [
        (i.key, "x".join(map(str, i.shape)) or "scalar", i.dtype, f"{i.numel:,}")
        for i in describe(state_dict)
    ]
    counts = count_by_prefix(state_dict, depth)
    total = sum(counts.values())
    lines = _columns([("key", "shape", "dtype", "numel"), *rows], right_align={3})
    lines.append("")
    lines += _columns(
        [
            ("prefix", "numel", "share"),
            *((p, f"{n:,}", f"{n / max(total, 1):.1%}") for p, n in counts.items()),
        ],
        right_align={1, 2},
    )
    lines.append(f"total: {total:,} elements in {len(rows)} tensors")
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]], right_align: set[int]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if c in right_align else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
