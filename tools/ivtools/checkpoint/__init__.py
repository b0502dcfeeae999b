"""Checkpoint tools: load/save any state-dict format, unwrap, edit keys, resize position tables,
consolidate DeepSpeed ZeRO folders, and run model-specific conversions registered by generations.

Typical fine-tuning use::

    from ivtools.checkpoint import interpolate_pos_embed, load_state_dict_file, strip_prefix, unwrap_state_dict

    sd = unwrap_state_dict(load_state_dict_file("ckpt.pth"), "model|module")
    sd = strip_prefix(strip_prefix(sd, "backbone."), "encoder.")
    sd["pos_embed"] = interpolate_pos_embed(sd["pos_embed"], 1, (8, 16, 16), (16, 16, 16))

The same operations are available from the shell as ``ivtools-ckpt`` (see :mod:`.cli`).
"""

from .edit import add_prefix, count_by_prefix, describe, format_table, select_keys, strip_prefix
from .io import DEFAULT_WRAPPER_KEYS, load_state_dict_file, save_state_dict_file, unwrap_state_dict
from .pos_embed import interpolate_pos_embed
from .registry import (
    ENTRY_POINT_GROUP,
    Conversion,
    get_conversion,
    list_conversions,
    register_conversion,
    unregister_conversion,
)
from .report import LoadReport, load_matching
from .zero import consolidate_zero_checkpoint

__all__ = [
    "DEFAULT_WRAPPER_KEYS",
    "ENTRY_POINT_GROUP",
    "Conversion",
    "LoadReport",
    "add_prefix",
    "consolidate_zero_checkpoint",
    "count_by_prefix",
    "describe",
    "format_table",
    "get_conversion",
    "interpolate_pos_embed",
    "list_conversions",
    "load_matching",
    "load_state_dict_file",
    "register_conversion",
    "save_state_dict_file",
    "select_keys",
    "strip_prefix",
    "unregister_conversion",
    "unwrap_state_dict",
]
