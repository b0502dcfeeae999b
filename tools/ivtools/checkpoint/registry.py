"""Model-specific checkpoint conversions, registered by the generations that own them.

ivtools never imports a generation. A generation either calls :func:`register_conversion` at
import time or declares an entry point, which ``ivtools-ckpt convert-model`` discovers without
importing anything until the conversion is listed or run::

    [project.entry-points."ivtools.checkpoint_conversions"]
    internvideo2_k710_to_k400 = "internvideo2.checkpoints:k710_to_k400"

A conversion takes a state dict and keyword options and returns the converted state dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import torch

ENTRY_POINT_GROUP = "ivtools.checkpoint_conversions"
ConversionFn = Callable[..., dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Conversion:
    name: str
    fn: ConversionFn
    help: str
    source: str  # "registered" or the entry point's "module:attr"

    def __call__(self, state_dict: dict[str, torch.Tensor], **options) -> dict[str, torch.Tensor]:
        out = self.fn(state_dict, **options)
        if not isinstance(out, dict):
            raise TypeError(
                f"conversion {self.name!r} ({self.source}) returned {type(out).__name__}, not a dict"
            )
        return out


_REGISTERED: dict[str, Conversion] = {}


def _first_doc_line(fn: Callable) -> str:
    doc = (fn.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def register_conversion(name: str, fn: ConversionFn, help: str = "", overwrite: bool = False) -> None:
    """Make ``fn(state_dict, **options) -> state_dict`` available as conversion ``name``."""
    if not callable(fn):
        raise TypeError(f"conversion {name!r}: {fn!r} is not callable")
    if name in _REGISTERED and not overwrite:
        raise ValueError(f"conversion {name!r} is already registered ({_REGISTERED[name].source})")
    _REGISTERED[name] = Conversion(name, fn, help or _first_doc_line(fn), "registered")


def unregister_conversion(name: str) -> None:
    """Forget a conversion registered with :func:`register_conversion`."""
    if _REGISTERED.pop(name, None) is None:
        raise KeyError(f"no registered conversion named {name!r}")


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(ep: metadata.EntryPoint) -> Conversion:
    try:
        fn = ep.load()
    except Exception as exc:
        raise ImportError(f"conversion {ep.name!r}: cannot load entry point {ep.value!r} ({exc})") from exc
    if not callable(fn):
        raise TypeError(f"conversion {ep.name!r}: entry point {ep.value!r} is not callable")
    return Conversion(ep.name, fn, _first_doc_line(fn), ep.value)


def get_conversion(name: str) -> Conversion:
    """The conversion called ``name``; explicit registrations win over entry points."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = _entry_points()
    if name in eps:
        return _load_entry_point(eps[name])
    known = sorted({*_REGISTERED, *eps})
    raise KeyError(f"no checkpoint conversion named {name!r}; known: {known or 'none'}")


def list_conversions() -> dict[str, str]:
    """``{name: help}`` for every conversion; an entry point that fails to load says why."""
    out = {name: conv.help for name, conv in _REGISTERED.items()}
    for name, ep in _entry_points().items():
        if name in out:
            continue
        try:
            out[name] = _load_entry_point(ep).help
        except (ImportError, TypeError) as exc:
            out[name] = f"unavailable: {exc}"
    return dict(sorted(out.items()))
