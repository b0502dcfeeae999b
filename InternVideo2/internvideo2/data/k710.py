"""Kinetics-710 classifier heads reused for Kinetics-400/600/700 fine-tuning.

A K710 checkpoint's ``head`` has 710 rows. The original keeps the first 400 for K400 (the K710
label order starts with the K400 classes in K400 order) and picks rows for K600/K700 with the
index files ``k710/label_mixto{600,700}.json``. Those files are data derived from two class
lists, so here the index is rebuilt from the lists themselves: ``row i`` of the new head is the
K710 row whose class name matches class ``i`` of the target list
(:func:`ivtools.data.label_map_between`, spelling-tolerant).
"""

from __future__ import annotations

import os

import torch

from ivtools.data import label_map_between, read_class_names

K710_CLASSES = 710
K400_CLASSES = 400


def k710_head_indices(
    nb_classes: int,
    k710_label_list: str | os.PathLike | None = None,
    target_label_list: str | os.PathLike | None = None,
) -> list[int]:
    """Rows of a 710-way head that make a ``nb_classes``-way head, in the target's label order.

    With both class lists the map is rebuilt from them; without them only K400 (the first 400
    rows) is known. Any other case raises an error that says which lists are needed.
    """
    if (k710_label_list is None) != (target_label_list is None):
        raise ValueError("pass both --k710_label_list and --target_label_list, or neither")
    if k710_label_list is not None:
        source = read_class_names(k710_label_list)
        target = read_class_names(target_label_list)
        if len(source) != K710_CLASSES:
            raise ValueError(f"{k710_label_list}: {len(source)} classes, a K710 list has {K710_CLASSES}")
        if len(target) != nb_classes:
            raise ValueError(f"{target_label_list}: {len(target)} classes but --nb_classes is {nb_classes}")
        return label_map_between(source, target)
    if nb_classes == K400_CLASSES:
        return list(range(K400_CLASSES))
    raise ValueError(
        f"a K710 head can be mapped to {nb_classes} classes only with the class lists: pass "
        "--k710_label_list (710 names in the checkpoint's order) and --target_label_list"
    )


def remap_k710_head(
    state_dict: dict[str, torch.Tensor], indices: list[int], prefix: str = "head."
) -> dict[str, torch.Tensor]:
    """Select ``indices`` rows of ``head.weight``/``head.bias`` (a new dict; other keys shared)."""
    out = dict(state_dict)
    index = torch.as_tensor(indices, dtype=torch.long)
    for name in ("weight", "bias"):
        key = prefix + name
        if key not in out:
            raise KeyError(f"checkpoint has no {key!r} to remap")
        if out[key].shape[0] != K710_CLASSES:
            raise ValueError(f"{key} has {out[key].shape[0]} rows, a K710 head has {K710_CLASSES}")
        out[key] = out[key].index_select(0, index)
    return out
