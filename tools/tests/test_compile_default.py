"""``--compile`` defaults: on for CUDA training, off on the CPU, and always overridable."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from ivtools.train import add_compile_argument, maybe_compile


class _Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_compile_argument(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "device", "expected"),
    [
        ((), "cpu", False),
        ((), "cuda", True),
        (("--compile",), "cpu", True),
        (("--no-compile",), "cuda", False),
    ],
)
def test_default_follows_the_device_and_flags_override(argv, device, expected):
    model = _Blocks()
    assert maybe_compile(model, _args(*argv), torch.device(device)) is expected
    assert all((block._compiled_call_impl is not None) is expected for block in model.blocks)


def test_models_without_blocks_are_skipped_by_default_and_refused_when_asked():
    plain = nn.Linear(2, 2)
    assert maybe_compile(plain, _args(), torch.device("cuda")) is False
    with pytest.raises(ValueError, match="no block list 'blocks'"):
        maybe_compile(plain, _args("--compile"), torch.device("cpu"))
