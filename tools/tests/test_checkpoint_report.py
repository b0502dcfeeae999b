"""Partial loading: matching tensors load, the rest is reported by reason."""

import torch
from torch import nn

from ivtools.checkpoint import load_matching


def test_load_matching_loads_matches_and_reports_the_rest():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = model[1].weight.detach().clone()
    state = {
        "0.weight": torch.ones(4, 3),
        "0.bias": torch.full((4,), 2.0),
        "1.weight": torch.ones(5, 4),  # wrong shape: kept at init
        "decoder.0.weight": torch.zeros(1),
        "decoder.1.weight": torch.zeros(1),
        "mask_token": torch.zeros(1),
    }
    report = load_matching(model, state)
    assert report.loaded == ["0.weight", "0.bias"]
    assert report.missing == ["1.bias"]
    assert report.mismatched == ["1.weight: (5, 4) -> (2, 4)"]
    assert report.mismatched_keys == ["1.weight"]
    assert report.unexpected == ["decoder.0.weight", "decoder.1.weight", "mask_token"]
    assert torch.equal(model[0].weight, torch.ones(4, 3)) and torch.equal(
        model[0].bias, torch.full((4,), 2.0)
    )
    assert torch.equal(model[1].weight, before)
    summary = report.summary("x.pth")
    assert summary.splitlines()[0] == "loaded 2 tensors from x.pth"
    assert "missing in checkpoint (kept at init): 1: 1.bias" in summary
    assert "unexpected in checkpoint (ignored): 3: decoder (2), mask_token (1)" in summary
