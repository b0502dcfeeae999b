"""Kinetics-710 head maps rebuilt from class lists, against hand-made lists."""

from __future__ import annotations

import pytest
import torch

from internvideo2.data.k710 import k710_head_indices, remap_k710_head


@pytest.fixture
def k710_list(tmp_path):
    names = [f"action number {i}" for i in range(710)]
    path = tmp_path / "k710.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def test_map_from_lists_follows_target_order_and_spelling(k710_list, tmp_path):
    # Target classes in their own order, spelt with underscores / capitals / quotes.
    target = ["Action_Number_700", "action number 3", '"action number 0"']
    path = tmp_path / "target.txt"
    path.write_text("\n".join(target) + "\n")
    assert k710_head_indices(3, k710_list, path) == [700, 3, 0]


def test_k400_default_is_the_first_400_rows():
    assert k710_head_indices(400) == list(range(400))


def test_errors_name_the_problem(k710_list, tmp_path):
    with pytest.raises(ValueError, match="--k710_label_list"):
        k710_head_indices(600)
    with pytest.raises(ValueError, match="both"):
        k710_head_indices(600, k710_label_list=k710_list)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("action number 1\nno such action\n")
    with pytest.raises(KeyError, match="no such action"):
        k710_head_indices(2, k710_list, wrong)
    with pytest.raises(ValueError, match="--nb_classes is 5"):
        k710_head_indices(5, k710_list, wrong)


def test_remap_selects_rows():
    sd = {
        "head.weight": torch.arange(710.0).unsqueeze(1).repeat(1, 3),
        "head.bias": torch.arange(710.0),
        "x": torch.ones(1),
    }
    out = remap_k710_head(sd, [5, 709, 0])
    assert out["head.bias"].tolist() == [5.0, 709.0, 0.0]
    assert out["head.weight"][:, 0].tolist() == [5.0, 709.0, 0.0]
    assert out["x"] is sd["x"]
    with pytest.raises(ValueError, match="710"):
        remap_k710_head({"head.weight": torch.zeros(4, 2), "head.bias": torch.zeros(4)}, [0])
