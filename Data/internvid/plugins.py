"""Load user components (scorers, captioners, fusers) from ``package.module:name`` strings.

Data never imports a model generation directly: a model is plugged in by naming a factory on
the command line, e.g. ``--scorer mypkg.scorers:make_viclip --scorer-arg checkpoint=/ckpt.pth``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from typing import Any


class PluginError(ValueError):
    """A component named on the command line cannot be imported, found or built."""


def load_object(spec: str) -> Any:
    """The object named by ``"package.module:attr"`` (``attr`` may be dotted, ``Class.method``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"import path {spec!r} must look like 'package.module:name'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"cannot import module {module_name!r} of {spec!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{spec!r}: {module_name} has no attribute {attr!r}") from None
    return obj


def build(spec: str, kwargs: dict[str, Any] | None = None) -> Any:
    """Call the factory (or class) named by ``spec`` with ``kwargs`` and return what it makes."""
    factory = load_object(spec)
    if not callable(factory):
        raise PluginError(f"{spec!r} is a {type(factory).__name__}, not a factory or class")
    return factory(**(kwargs or {}))


def parse_kwargs(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; each value is JSON when it parses (numbers, true, lists), else text."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PluginError(f"argument {pair!r} must look like key=value")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
