"""Python config files, as the original's ``configs/*.py``, resolved and overridden with OmegaConf.

A config file is plain Python: its public module-level names (or a ``Config`` dict, if it defines
one) form the config. It may ``from configs.data import *`` (shared parts are imported relative to
``root``, the ``multi_modality`` folder) and use OmegaConf references such as ``"${num_frames}"``
or ``"${TextEncoders[${text_enc}]}"``. Command-line overrides are ``key.sub=value`` items (or the
original's ``key.sub value`` pairs); values are parsed as YAML. Overriding a key the file does not
define raises :class:`ConfigError` naming the key and the file, and so does reading one that is
missing through :func:`require`.
"""

from __future__ import annotations

import runpy
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

SOURCE_KEY = "config_file"


class ConfigError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0])


def _public_names(namespace: dict) -> dict:
    if isinstance(namespace.get("Config"), dict):
        return dict(namespace["Config"])
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and not isinstance(v, (types.ModuleType, types.FunctionType, type))
    }


def read_python_config(path: str | Path, root: str | Path | None = None) -> dict:
    """Execute a config file and return its settings as a plain dict."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    root = str(Path(root).resolve()) if root else None
    added = root is not None and root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        # Shared parts must be re-read per config (they read environment variables at import).
        for name in [m for m in sys.modules if m == "configs" or m.startswith("configs.")]:
            del sys.modules[name]
        namespace = runpy.run_path(str(path))
    finally:
        if added:
            sys.path.remove(root)
    return _public_names(namespace)


def _split_overrides(overrides: Sequence[str]) -> list[tuple[str, str]]:
    items, rest = [], list(overrides)
    while rest:
        item = rest.pop(0)
        if "=" in item:
            key, value = item.split("=", 1)
        elif rest:
            key, value = item, rest.pop(0)
        else:
            raise ConfigError(f"override {item!r} has no value (use key=value)")
        items.append((key.strip(), value))
    return items


def load_config(
    path: str | Path, overrides: Sequence[str] = (), root: str | Path | None = None, resolve: bool = True
) -> DictConfig:
    """Read ``path``, apply ``overrides`` and resolve references; the result is in struct mode."""
    values = read_python_config(path, root)
    values[SOURCE_KEY] = str(path)
    if root is not None:
        values.setdefault("config_root", str(root))
    cfg = OmegaConf.create(values)
    OmegaConf.set_struct(cfg, True)
    for key, text in _split_overrides(overrides):
        if OmegaConf.select(cfg, key, default=_Missing) is _Missing:
            raise ConfigError(f"override key {key!r} does not exist in config {path}")
        value = OmegaConf.create({"v": text}).v if text.startswith("${") else _parse_value(text)
        try:
            OmegaConf.update(cfg, key, value, merge=True)
        except (ConfigKeyError, OmegaConfBaseException) as err:
            raise ConfigError(f"cannot set {key!r} in config {path}: {err}") from err
    if resolve:
        try:
            OmegaConf.resolve(cfg)
        except OmegaConfBaseException as err:
            raise ConfigError(f"config {path}: cannot resolve a reference: {err}") from err
    return cfg


class _Missing:
    pass


def _parse_value(text: str) -> Any:
    return OmegaConf.from_dotlist([f"v={text}"]).v


def require(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]`` for a dotted ``key``; a missing key raises ConfigError naming key and file."""
    value = OmegaConf.select(cfg, key, default=_Missing)
    if value is _Missing:
        source = OmegaConf.select(cfg, SOURCE_KEY, default="<unknown file>")
        raise ConfigError(f"config key {key!r} is missing from config {source}")
    return value


def optional(cfg: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, key, default=default)
